"""Answering a DM check-in: what its buttons and form log, and plain-text replies (their buttons and form are
cogs/dm_buttons.py).

Every answer counts for the server's open round (one calendar, see coach/dm.py `answer`). A burst of DM
messages from one member gets one answer, to the latest of them (coach/bursts.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from coach import dm
from coach.bursts import Bursts
from coach.checkins import STATUS_LABELS
from coach.clock import to_unix
from coach.errors import BounceError
from coach.text import CONTENT_MAX, cut, cut_block, safe_name, safe_title
from coach.textparse import parse_reply
from cogs.common import NO_PINGS, Repeats, guarded, member_name, orphaned_form, reply, stateless
from cogs.dm_buttons import MODAL_ID, DMAnswerButton, DMAnswerForm, DMPickButton, round_view
from cogs.round_posts import CODES

if TYPE_CHECKING:
    from bot import BounceBot

log = logging.getLogger("bounce.dm")

SETTLE_SECONDS = 1.5     # a DM is answered once the member has been quiet this long (a burst gets one answer)
MAX_WAIT_SECONDS = 6.0   # ... but never later than this after the burst began


class DMReplies(commands.Cog):
    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot
        self.bursts: Bursts[int, discord.Message] = Bursts(
            self._answer_message, settle_seconds=SETTLE_SECONDS, max_wait_seconds=MAX_WAIT_SECONDS,
            name="DMs of user")
        self._inflight: set[asyncio.Task[None]] = set()
        self.repeats = Repeats()

    @property
    def storage(self):  # noqa: ANN201
        return self.bot.storage

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(DMAnswerButton, DMPickButton)

    async def cog_unload(self) -> None:
        await self.bursts.close()
        tasks = list(self._inflight)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def settle_seconds(self) -> float:
        """How long a member must be quiet before their DM is answered (tests shorten it)."""
        return self.bursts.settle_seconds

    @settle_seconds.setter
    def settle_seconds(self, value: float) -> None:
        self.bursts.settle_seconds = value

    async def settled(self) -> None:
        """Wait until every DM received so far has been answered (tests)."""
        await self.bursts.settled()

    # ------------------------------------------------------------------ answering by button

    async def open_form(self, interaction: discord.Interaction, dm_round_id: int, status: str, *,
                        names_round: bool) -> None:
        now = self.bot.clock.now()
        round_ = dm.check_open(await self.storage.get_dm_round(dm_round_id), interaction.user.id, now)
        dm.server_round(round_, await self.storage.latest_round(round_.guild_id), self._server(round_.guild_id),
                        names_round=names_round)
        project = await self.storage.latest_active_project(round_.guild_id, interaction.user.id)
        note = await self.storage.get_dm_pending(interaction.user.id, to_unix(now) - dm.PENDING_SECONDS)
        await interaction.response.send_modal(
            DMAnswerForm(self, round_.id, status, project.name if project else None, note, interaction.user.id,
                         names_round))

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A DM form opened before a restart has no live Modal object any more: answer its submit here."""
        found = orphaned_form(interaction, MODAL_ID)
        if found is None:
            return
        match, values = found
        await guarded(self.record)(interaction, int(match["round"]), CODES[match["code"]], values.get("project"),
                                   values.get("note"), names_round=not match["open"])

    async def record(self, interaction: discord.Interaction, dm_round_id: int, status: str, project: str | None,
                     note: str | None, *, names_round: bool) -> None:
        """The form's submit."""
        round_ = dm.check_open(await self.storage.get_dm_round(dm_round_id), interaction.user.id,
                               self.bot.clock.now())
        await self._answer(interaction, round_, status, project, note, "dm_button", names_round)

    async def pick(self, interaction: discord.Interaction, dm_round_id: int, status: str) -> None:
        """A "which server?" button: the status and the reply's note are known, log it."""
        now = self.bot.clock.now()
        round_ = dm.check_open(await self.storage.get_dm_round(dm_round_id), interaction.user.id, now)
        note = await self.storage.get_dm_pending(interaction.user.id, to_unix(now) - dm.PENDING_SECONDS)
        await self._answer(interaction, round_, status, None, note, "dm_text", names_round=False)

    async def _answer(self, interaction: discord.Interaction, round_: dm.DMRound, status: str,
                      project: str | None, note: str | None, via: str, names_round: bool) -> None:
        key = ("dm_answer", round_.id, interaction.user.id, status, project, note)
        text = await self.repeats.once(key, lambda: self.log_answer(interaction.user, round_, status, project,
                                                                     note, via, names_round=names_round))
        await reply(interaction, text, ephemeral=False)

    async def log_answer(self, user: discord.abc.User, round_: dm.DMRound, status: str, project: str | None,
                         note: str | None, via: str, *, names_round: bool) -> str:
        """Log an answer for the DM round's server. A text reply, and every button that follows up on one,
        answers the server's open round (`names_round` False), as `/checkin` does in the channel."""
        server = self._server(round_.guild_id)
        outcome = await dm.answer(
            self.storage, self.bot.prompts, self.bot.rng, dm_round=round_, member_name=member_name(user),
            server_name=server, status=status, project_name=project, note=note, via=via, now=self.bot.clock.now(),
            names_round=names_round,
        )
        await self.storage.clear_dm_pending(user.id)
        lines = [dm.logged_line(outcome, server)]
        if outcome.project_created and outcome.project:
            lines.append(f"New project started: **{safe_title(outcome.project.name)}**.")
        lines.append(outcome.reply)
        if outcome.freeze_note:
            lines.append(outcome.freeze_note)
        self._touch_channel_tally(outcome.checkin.round_id)
        return "\n".join(lines)

    def _touch_channel_tally(self, round_id: int | None) -> None:
        rounds = self.bot.get_cog("Rounds")
        if round_id is None or rounds is None:
            return

        async def touch() -> None:
            channel_round = await self.storage.get_round(round_id)
            if channel_round is not None:
                rounds.touch_tally(channel_round)  # type: ignore[attr-defined]

        self._keep(asyncio.create_task(touch()))

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    # ------------------------------------------------------------------ answering in plain text

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.guild is not None or message.author.bot or message.author.id == getattr(self.bot.user, "id", 0):
            return
        self.bursts.heard(message.author.id, message)

    async def _answer_message(self, message: discord.Message) -> None:
        try:
            text, view = await self.understand(message.author, message.content or "")
        except Exception:
            log.exception("could not handle a DM reply from user %s", message.author.id)
            text, view = dm.TROUBLE_TEXT, None
        try:
            kwargs: dict[str, Any] = {"content": cut_block(text, CONTENT_MAX), "allowed_mentions": NO_PINGS}
            if view is not None:
                kwargs["view"] = view
            await message.channel.send(**kwargs)
        except discord.HTTPException as exc:
            log.warning("could not answer a DM: %s", exc)

    async def understand(self, user: discord.abc.User, content: str) -> tuple[str, discord.ui.View | None]:
        """A plain-text DM: log it, ask which status or which server, or explain."""
        now = self.bot.clock.now()
        opened = [dm.OpenRound(r, answered) for r, answered in await self.storage.open_dm_rounds(user.id, to_unix(now))]
        target = dm.pick_target(opened)
        if target.round is None and not target.choices:
            return await self._nothing_open(user.id), None
        parsed = parse_reply(content)
        status = dm.confident_status(parsed)
        note = parsed.note or None
        if target.round is not None and status is not None:
            try:
                return await self.log_answer(user, target.round, status, None, note, "dm_text",
                                             names_round=False), None
            except BounceError as exc:
                return exc.message, None
        await self.storage.set_dm_pending(user.id, note, now)
        if target.round is not None:
            text = dm.ask_status_text(self._server(target.round.guild_id), await self._day(target.round),
                                      parsed.status)
            return text, round_view(target.round.id, open_round=True)
        return await self._which_server(target.choices, status)

    async def _which_server(self, choices: tuple[dm.DMRound, ...], status: str | None) -> tuple[str, discord.ui.View]:
        view = discord.ui.View(timeout=None)
        lines = [dm.which_server_text(status)]
        if status is not None:
            for round_ in choices[: dm.MAX_PICK_BUTTONS]:
                server = self._label(round_.guild_id, 40)
                day = dm.day_label(await self._day(round_))
                view.add_item(DMPickButton(round_.id, status, label=cut(f"{server} · {day}", 80)))
        else:
            for row, round_ in enumerate(choices[: dm.MAX_PICK_SERVERS]):
                server = self._label(round_.guild_id, 24)
                lines.append(f"Row {row + 1}: **{self._server(round_.guild_id)}**, "
                             f"{dm.day_label(await self._day(round_))}")
                for s in STATUS_LABELS:
                    item = DMAnswerButton(round_.id, s, label=cut(f"{STATUS_LABELS[s]} · {server}", 80),
                                          open_round=True)
                    item.row = row
                    view.add_item(item)
        return "\n".join(lines), stateless(view)

    async def _day(self, round_: dm.DMRound) -> str:
        """The day an answer to this DM is logged for: the server's open round (the DM's own day if none)."""
        latest = await self.storage.latest_round(round_.guild_id)
        return latest.local_date if latest is not None else round_.local_date

    def _server(self, guild_id: int, limit: int = 60) -> str:
        guild = self.bot.get_guild(guild_id)
        return safe_name(guild.name if guild else f"server {guild_id}", limit)

    def _label(self, guild_id: int, limit: int) -> str:
        """A server's name on a button: labels show no markdown and ping nobody, so it is only cut."""
        guild = self.bot.get_guild(guild_id)
        return cut(guild.name if guild else f"server {guild_id}", limit)

    async def _nothing_open(self, user_id: int) -> str:
        schedules = [s for s in await self.storage.dm_schedules_of(user_id) if s.enabled and s.next_due]
        if not schedules:
            return dm.NOT_SET_UP_TEXT
        soonest = min(schedules, key=lambda s: s.next_due or 0)
        return dm.nothing_open_text(soonest.next_due or 0, self._server(soonest.guild_id))


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(DMReplies(bot))
