"""Answering a DM check-in: what its buttons and form log, and plain-text replies (their buttons and form are
cogs/dm_buttons.py).

Every answer counts for the server's open round (one calendar, see coach/dm.py `answer`). A burst of DM
messages from one member gets one answer, to the latest of them: a message waits a moment in case another
follows, and a message that arrives while the last one is being answered is answered right after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from coach import dm
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
        self.settle_seconds = SETTLE_SECONDS
        self._latest: dict[int, discord.Message] = {}   # per member: the newest DM not answered yet
        self._heard: dict[int, float] = {}              # per member: when it arrived (loop time)
        self._answering: dict[int, asyncio.Task[None]] = {}  # per member: the one task answering their DMs
        self._inflight: set[asyncio.Task[None]] = set()
        self.repeats = Repeats()

    @property
    def storage(self):  # noqa: ANN201
        return self.bot.storage

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(DMAnswerButton, DMPickButton)

    async def cog_unload(self) -> None:
        tasks = list(self._answering.values()) + list(self._inflight)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def settled(self) -> None:
        """Wait until every DM received so far has been answered (tests)."""
        while self._answering:
            await asyncio.wait(set(self._answering.values()))

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
        user_id = message.author.id
        self._latest[user_id] = message  # a newer message replaces one still waiting: one answer per burst
        self._heard[user_id] = asyncio.get_running_loop().time()
        if user_id not in self._answering:
            task = asyncio.create_task(self._answer_burst(user_id), name=f"bounce-dm-reply-{user_id}")
            self._answering[user_id] = task

    async def _answer_burst(self, user_id: int) -> None:
        """Answer the member's latest DM once they have paused; again if more arrived while answering."""
        loop = asyncio.get_running_loop()
        try:
            while user_id in self._latest:
                latest_by = loop.time() + MAX_WAIT_SECONDS
                while True:  # wait for a pause: each new message pushes the answer back, up to latest_by
                    until = min(self._heard[user_id] + self.settle_seconds, latest_by)
                    if until <= loop.time():
                        break
                    await asyncio.sleep(until - loop.time())
                message = self._latest.pop(user_id)
                await self._answer_message(message)
        except Exception:
            log.exception("answering the DMs of user %s failed", user_id)
        finally:
            self._answering.pop(user_id, None)
            if user_id not in self._latest:
                self._heard.pop(user_id, None)

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
