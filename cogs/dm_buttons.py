"""The buttons and form of a DM check-in: the three answer buttons under a DM round (or under a question about a
plain-text reply), the "which server?" buttons, and the short form they open. Their custom_ids carry the DM
round, so they keep working after a restart; what an answer does is cogs/dm_replies.py."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord

from coach.checkins import STATUS_LABELS
from cogs.common import bot_of, guarded, stateless
from cogs.round_posts import CODE_OF, CODES, status_button
from cogs.rounds import AnswerForm

if TYPE_CHECKING:
    from cogs.dm_replies import DMReplies

MODAL_ID = re.compile(r"bounce:dm(?P<open>o?):(?P<round>\d+):(?P<code>[fus]):\d+")


class DMAnswerButton(discord.ui.DynamicItem[discord.ui.Button],
                     template=r"bounce:d(?P<open>o?):(?P<round>\d+):(?P<code>[fus])"):
    """Finished / Unfinished / Skipped: opens the same short form as the channel round. Under a DM round the
    buttons name the round it was sent for (closed once a newer one opens, like the channel's); under a
    question about a plain-text reply (`open_round`) they answer the server's open round, as the reply did."""

    def __init__(self, dm_round_id: int, status: str, label: str | None = None, open_round: bool = False) -> None:
        kind = "do" if open_round else "d"
        super().__init__(status_button(f"bounce:{kind}:{dm_round_id}", status, label=label))
        self.dm_round_id, self.status, self.open_round = dm_round_id, status, open_round

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any):  # noqa: ANN206
        return cls(int(match["round"]), CODES[match["code"]], open_round=bool(match["open"]))

    @guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        await cog_of(interaction).open_form(interaction, self.dm_round_id, self.status, names_round=not self.open_round)


class DMPickButton(discord.ui.DynamicItem[discord.ui.Button], template=r"bounce:dp:(?P<round>\d+):(?P<code>[fus])"):
    """A reply's server, when the status was clear: logs it at once with the reply's note."""

    def __init__(self, dm_round_id: int, status: str, label: str = "") -> None:
        super().__init__(status_button(f"bounce:dp:{dm_round_id}", status, label=label or None,
                                       style=discord.ButtonStyle.primary))
        self.dm_round_id = dm_round_id
        self.status = status

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any):  # noqa: ANN206
        return cls(int(match["round"]), CODES[match["code"]])

    @guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        await cog_of(interaction).pick(interaction, self.dm_round_id, self.status)


class DMAnswerForm(AnswerForm):
    """The channel round's form (project + note), answering a DM round; a pending reply's note prefilled."""

    def __init__(self, cog: DMReplies, dm_round_id: int, status: str, project: str | None, note: str | None,
                 user_id: int, names_round: bool) -> None:
        super().__init__(cog, dm_round_id, status, project, user_id)  # type: ignore[arg-type]
        self.dm_cog, self.names_round = cog, names_round
        self.custom_id = f"bounce:dm{'' if names_round else 'o'}:{dm_round_id}:{CODE_OF[status]}:{user_id}"
        if note:
            self.note.default = note[: self.note.max_length or len(note)]

    @guarded
    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.dm_cog.record(interaction, self.round_id, self.status, self.project.value, self.note.value,
                                 names_round=self.names_round)


def cog_of(interaction: discord.Interaction) -> DMReplies:
    return bot_of(interaction).get_cog("DMReplies")  # type: ignore[return-value]


def round_view(dm_round_id: int, open_round: bool = False) -> discord.ui.View:
    """The three answer buttons under a DM round (the sender in cogs/dm.py uses it too), or under a question
    about a plain-text reply (`open_round`)."""
    view = discord.ui.View(timeout=None)
    for status in STATUS_LABELS:
        view.add_item(DMAnswerButton(dm_round_id, status, open_round=open_round))
    return stateless(view)
