"""DM check-ins: `/me dm` (via cogs/me.py), the paced DM round sender, its buttons, and plain-text replies."""

from __future__ import annotations

import asyncio
import logging
import re
import time as _time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from coach import dm, metrics, voice
from coach.checkins import STATUS_LABELS
from coach.clock import from_unix, to_unix
from coach.errors import BadInput, NotAllowed, NotFound
from coach.outbox import Job, Retry, Sent, Skip, TakeReport
from coach.pacer import Pacer
from coach.rounds import nonce_for
from coach.text import CONTENT_MAX, cut, cut_block, escape_markdown, safe_name
from coach.textparse import parse_reply
from cogs.common import NO_PINGS, bot_of, guarded, member_name, orphaned_form, reply, stateless
from cogs.outbox import GuildUnavailable, find_in_history, has_custom_id_prefix
from cogs.rounds import CODE_OF, CODES, AnswerForm, status_button

if TYPE_CHECKING:
    from bot import BounceBot

log = logging.getLogger("bounce.dm")

WORKERS = 8              # DMs in flight at once; each waits for its slot in the global budget
DM_OPEN_PER_SECOND = 2   # new DM channels opened per second, at most (Discord: 40003 when opened too fast)
THROTTLE_SECONDS = 3.0   # a member's DM messages are answered at most once per this many seconds
MODAL_ID = re.compile(r"bounce:dm:(?P<round>\d+):(?P<code>[fus]):\d+")


class DMAnswerButton(discord.ui.DynamicItem[discord.ui.Button], template=r"bounce:d:(?P<round>\d+):(?P<code>[fus])"):
    """Finished / Unfinished / Skipped on a DM round: opens the same short form as the channel round."""

    def __init__(self, dm_round_id: int, status: str, label: str | None = None) -> None:
        super().__init__(status_button(f"bounce:d:{dm_round_id}", status, label=label))
        self.dm_round_id = dm_round_id
        self.status = status

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: Any):  # noqa: ANN206
        return cls(int(match["round"]), CODES[match["code"]])

    @guarded
    async def callback(self, interaction: discord.Interaction) -> None:
        await cog_of(interaction).open_form(interaction, self.dm_round_id, self.status)


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

    def __init__(self, cog: DMs, dm_round_id: int, status: str, project: str | None, note: str | None,
                 user_id: int) -> None:
        super().__init__(cog, dm_round_id, status, project, user_id)  # type: ignore[arg-type]  # cog.record
        self.custom_id = f"bounce:dm:{dm_round_id}:{CODE_OF[status]}:{user_id}"
        if note:
            self.note.default = note[: self.note.max_length or len(note)]


def cog_of(interaction: discord.Interaction) -> DMs:
    return bot_of(interaction).get_cog("DMs")  # type: ignore[return-value]


def round_view(dm_round_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for status in STATUS_LABELS:
        view.add_item(DMAnswerButton(dm_round_id, status))
    return stateless(view)


class DMs(commands.Cog):
    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot
        self.throttle_seconds = THROTTLE_SECONDS
        self._last_reply: dict[int, float] = {}
        self._open_pacer = Pacer(DM_OPEN_PER_SECOND)
        self._inflight: set[asyncio.Task[None]] = set()

    @property
    def storage(self):  # noqa: ANN201
        return self.bot.storage

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(DMAnswerButton, DMPickButton)
        self.bot.outbox.register("dm", self.deliver, take=self.take, find=self.find, after=self.after,
                                 in_flight=WORKERS)

    async def cog_unload(self) -> None:
        for task in list(self._inflight):
            task.cancel()

    async def drain(self) -> None:
        """Wait until everything due so far has been handled (tests, the benchmark)."""
        await self.bot.outbox.drain()

    # ------------------------------------------------------------------ scheduled sending (through the outbox)

    async def take(self, now: datetime) -> TakeReport:
        return await dm.take_due(self.storage, now, self.bot.grace)

    async def deliver(self, job: Job) -> Sent:
        """Send one DM round, delivering the server's open round: one request when the DM channel is stored."""
        round_ = await self.storage.get_dm_round(job.ref_id)
        if round_ is None:
            raise Skip("gone")
        why, target = await self.storage.dm_precheck(round_)
        if why is not None or target is None:
            raise Skip(why or "no_round")
        guild = self.bot.get_guild(round_.guild_id)
        if guild is None or guild.unavailable:
            raise GuildUnavailable()
        await self.storage.set_dm_round_target(round_.id, target.id)
        server = safe_name(guild.name, 60)
        channel_id = await self.storage.get_dm_channel(round_.user_id)
        if channel_id is None:
            channel_id = await self.open_dm_channel(round_.user_id)
        channel = self.bot.get_partial_messageable(channel_id, type=discord.ChannelType.private)
        prompt = await voice.choose_dm_text(self.storage, self.bot.prompts, round_.guild_id, round_.user_id,
                                            self.bot.rng, server=server)
        content = cut_block(dm.round_text(prompt, server, target.local_date, round_.late), CONTENT_MAX)
        try:
            message = await channel.send(content=content, view=round_view(round_.id), allowed_mentions=NO_PINGS,
                                         nonce=nonce_for("dm", round_.id))
        except discord.NotFound as exc:
            if exc.code == 10003:  # the stored DM channel is gone: open a new one on the retry
                await self.storage.forget_dm_channel(round_.user_id)
                raise Retry("dm_channel_gone") from exc
            raise
        return Sent(message.id, channel_id)

    async def find(self, job: Job) -> Sent | None:
        """Past Discord's nonce window: did an earlier attempt send this DM? (Its buttons carry the id.)"""
        round_ = await self.storage.get_dm_round(job.ref_id)
        channel_id = await self.storage.get_dm_channel(round_.user_id) if round_ else None
        if round_ is None or channel_id is None or job.first_try_at is None or self.bot.user is None:
            return None
        channel = self.bot.get_partial_messageable(channel_id, type=discord.ChannelType.private)
        return await find_in_history(channel, self.bot.user.id, from_unix(job.first_try_at),
                                     lambda m: has_custom_id_prefix(m, f"bounce:d:{job.ref_id}:"))

    async def after(self, job: Job, state: str, sent: Sent | None, reason: str | None) -> None:
        if state == "failed" and reason == "dms_closed":
            round_ = await self.storage.get_dm_round(job.ref_id)
            if round_ is not None:
                await self.dms_closed(round_)

    async def open_dm_channel(self, user_id: int) -> int:
        """The DM channel with a member: created once (one request), then stored. Opening DMs with members the
        bot never wrote to is paced on its own: Discord refuses (40003) and may quarantine bots that open many
        at once."""
        await self._open_pacer.wait()
        try:
            channel = await self.bot.create_dm(discord.Object(user_id))
        except discord.HTTPException as exc:
            if exc.code == 40003:
                raise Retry("dm_open_rate_limited") from exc
            raise
        await self.storage.set_dm_channel(user_id, channel.id, self.bot.clock.now())
        return channel.id

    async def dms_closed(self, round_: dm.DMRound) -> None:
        """Discord 50007: stop DMing this member everywhere, remember why, tell them in each server."""
        now = self.bot.clock.now()
        switched = await self.storage.dm_off_everywhere(round_.user_id, "dms_closed", now)
        metrics.dms_switched_off()
        for guild_id in sorted(set(switched) | {round_.guild_id}):
            await self.storage.set_notice(guild_id, round_.user_id, dm.CLOSED_NOTICE)
        log.warning("user %s has DMs closed (50007): DM check-ins switched off in %d server(s)",
                    round_.user_id, len(switched))

    # ------------------------------------------------------------------ /me dm

    async def handle_me_dm(self, interaction: discord.Interaction, switch: str | None, time: str | None,
                           timezone: str | None, days: str | None) -> None:
        if interaction.guild_id is None:
            raise NotAllowed("Run `/me dm` inside the server you want DM check-ins for.")
        guild_id, user_id, now = interaction.guild_id, interaction.user.id, self.bot.clock.now()
        chosen = dm.check_switch(switch, time, timezone, days)
        if chosen is None:
            await reply(interaction, dm.setting_text(await self.storage.get_dm_schedule(guild_id, user_id)))
        elif chosen == "off":
            off = await self.storage.dm_off(guild_id, user_id, "member", now)
            await reply(interaction, dm.OFF_TEXT if off else dm.ALREADY_OFF_TEXT)
        else:
            setting = dm.parse_setting(time, timezone, days, now)
            if await self.storage.get_guild(guild_id) is None:
                raise NotFound(dm.NO_CHECKIN_TEXT)
            await interaction.response.defer(ephemeral=True, thinking=True)
            await self.storage.touch_member(guild_id, user_id, member_name(interaction.user), now)
            await self.storage.set_dm_schedule(guild_id=guild_id, user_id=user_id, time_local=setting.time_local,
                                               timezone=setting.timezone, days=setting.days,
                                               next_due=to_unix(setting.next_due), now=now)
            if await self.storage.get_dm_channel(user_id) is None:
                try:
                    await self.open_dm_channel(user_id)
                except discord.HTTPException as exc:  # opened again when the first DM is due
                    log.info("could not open a DM channel with user %s yet: %s", user_id, exc)
            await reply(interaction, dm.on_text(self._server(guild_id), setting))

    # ------------------------------------------------------------------ answering by button

    async def open_form(self, interaction: discord.Interaction, dm_round_id: int, status: str) -> None:
        now = self.bot.clock.now()
        round_ = dm.check_open(await self.storage.get_dm_round(dm_round_id), interaction.user.id, now)
        project = await self.storage.latest_active_project(round_.guild_id, interaction.user.id)
        note = await self.storage.get_dm_pending(interaction.user.id, to_unix(now) - dm.PENDING_SECONDS)
        await interaction.response.send_modal(
            DMAnswerForm(self, round_.id, status, project.name if project else None, note, interaction.user.id))

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A DM form opened before a restart has no live Modal object any more: answer its submit here."""
        found = orphaned_form(interaction, MODAL_ID)
        if found is None:
            return
        match, values = found
        await guarded(self.record)(interaction, int(match["round"]), CODES[match["code"]], values.get("project"),
                                   values.get("note"), "dm_button")

    async def record(self, interaction: discord.Interaction, dm_round_id: int, status: str, project: str | None,
                     note: str | None, via: str) -> None:
        """The form's submit (AnswerForm calls `cog.record`)."""
        round_ = dm.check_open(await self.storage.get_dm_round(dm_round_id), interaction.user.id,
                               self.bot.clock.now())
        await self._answer(interaction, round_, status, project, note, "dm_button")

    async def pick(self, interaction: discord.Interaction, dm_round_id: int, status: str) -> None:
        """A "which server?" button: the status and the reply's note are known, log it."""
        now = self.bot.clock.now()
        round_ = dm.check_open(await self.storage.get_dm_round(dm_round_id), interaction.user.id, now)
        note = await self.storage.get_dm_pending(interaction.user.id, to_unix(now) - dm.PENDING_SECONDS)
        await self._answer(interaction, round_, status, None, note, "dm_text")

    async def _answer(self, interaction: discord.Interaction, round_: dm.DMRound, status: str,
                      project: str | None, note: str | None, via: str) -> None:
        text = await self.log_answer(interaction.user, round_, status, project, note, via)
        await reply(interaction, text, ephemeral=False)

    async def log_answer(self, user: discord.abc.User, round_: dm.DMRound, status: str, project: str | None,
                         note: str | None, via: str) -> str:
        guild = self.bot.get_guild(round_.guild_id)
        server = safe_name(guild.name if guild else "your server", 60)
        outcome = await dm.answer(
            self.storage, self.bot.prompts, self.bot.rng, dm_round=round_, member_name=member_name(user),
            server_name=server, status=status, project_name=project, note=note, via=via, now=self.bot.clock.now(),
        )
        await self.storage.clear_dm_pending(user.id)
        lines = [dm.logged_line(outcome, server, round_.local_date)]
        if outcome.project_created and outcome.project:
            lines.append(f"New project started: **{escape_markdown(cut(outcome.project.name, 80))}**.")
        lines.append(outcome.reply)
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

        task = asyncio.create_task(touch())
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    # ------------------------------------------------------------------ answering in plain text

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.guild is not None or message.author.bot or message.author.id == getattr(self.bot.user, "id", 0):
            return
        if not self._may_answer(message.author.id):
            log.debug("DM from user %s throttled", message.author.id)
            return
        try:
            text, view = await self.understand(message.author, message.content or "")
        except Exception:
            log.exception("could not handle a DM reply from user %s", message.author.id)
            text, view = dm.TROUBLE_TEXT, None
        await self._send_dm_reply(message.channel, text, view)

    def _may_answer(self, user_id: int) -> bool:
        now = _time.monotonic()
        last = self._last_reply.get(user_id)
        if last is not None and now - last < self.throttle_seconds:
            return False
        self._last_reply[user_id] = now
        if len(self._last_reply) > 10_000:
            cutoff = now - self.throttle_seconds
            self._last_reply = {u: t for u, t in self._last_reply.items() if t >= cutoff}
        return True

    async def _send_dm_reply(self, channel: discord.abc.Messageable, text: str, view: discord.ui.View | None) -> None:
        try:
            kwargs: dict[str, Any] = {"content": cut_block(text, CONTENT_MAX), "allowed_mentions": NO_PINGS}
            if view is not None:
                kwargs["view"] = view
            await channel.send(**kwargs)
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
                return await self.log_answer(user, target.round, status, None, note, "dm_text"), None
            except BadInput as exc:
                return exc.message, None
        await self.storage.set_dm_pending(user.id, note, now)
        if target.round is not None:
            text = dm.ask_status_text(self._server(target.round.guild_id), target.round.local_date, parsed.status)
            return text, round_view(target.round.id)
        return self._which_server(target.choices, status)

    def _which_server(self, choices: tuple[dm.DMRound, ...], status: str | None) -> tuple[str, discord.ui.View]:
        view = discord.ui.View(timeout=None)
        lines = [dm.which_server_text(status)]
        if status is not None:
            for round_ in choices[: dm.MAX_PICK_BUTTONS]:
                server = self._label(round_.guild_id, 40)
                view.add_item(DMPickButton(round_.id, status, label=cut(f"{server} · {dm.day_label(round_.local_date)}", 80)))
        else:
            for row, round_ in enumerate(choices[: dm.MAX_PICK_SERVERS]):
                server = self._label(round_.guild_id, 24)
                lines.append(f"Row {row + 1}: **{self._server(round_.guild_id)}**, {dm.day_label(round_.local_date)}")
                for s in STATUS_LABELS:
                    item = DMAnswerButton(round_.id, s, label=cut(f"{STATUS_LABELS[s]} · {server}", 80))
                    item.row = row
                    view.add_item(item)
        return "\n".join(lines), stateless(view)

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
    await bot.add_cog(DMs(bot))
