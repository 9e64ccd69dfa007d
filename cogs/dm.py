"""Getting DM check-ins: `/me dm` (via cogs/me.py) and the DM round sender (through the outbox).

Answering them (buttons, forms, plain-text replies) lives in cogs/dm_replies.py."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from coach import dm, metrics, voice
from coach.clock import from_unix, to_unix
from coach.errors import NotAllowed, NotFound
from coach.outbox import Job, Retry, Sent, Skip, TakeReport
from coach.pacer import Pacer
from coach.rounds import nonce_for
from coach.text import CONTENT_MAX, cut_block, safe_name
from cogs.common import NO_PINGS, member_name, reply
from cogs.dm_replies import round_view
from cogs.outbox import GuildUnavailable, find_in_history, has_custom_id_prefix

if TYPE_CHECKING:
    from bot import BounceBot

log = logging.getLogger("bounce.dm")

WORKERS = 8              # DMs in flight at once; each waits for its slot in the global budget
DM_OPEN_PER_SECOND = 2   # new DM channels opened per second, at most (Discord: 40003 when opened too fast)
MEMBER_CHECK_EVERY = timedelta(days=7)  # how often the sender asks whether a DM member is still in the server


class DMs(commands.Cog):
    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot
        self._open_pacer = Pacer(DM_OPEN_PER_SECOND)

    @property
    def storage(self):  # noqa: ANN201
        return self.bot.storage

    async def cog_load(self) -> None:
        self.bot.outbox.register("dm", self.deliver, take=self.take, find=self.find, after=self.after,
                                 in_flight=WORKERS)

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
        await self.still_a_member(guild, round_.user_id)
        await self.storage.set_dm_round_target(round_.id, target.id)
        server = safe_name(guild.name, 60)
        prompt = await voice.choose_dm_text(self.storage, self.bot.prompts, round_.guild_id, round_.user_id,
                                            self.bot.rng, server=server)
        content = cut_block(dm.round_text(prompt, server, target.local_date, round_.late), CONTENT_MAX)
        return await self.send_dm(round_.user_id, content, nonce_for("dm", round_.id), view=round_view(round_.id))

    async def send_dm(self, user_id: int, content: str, nonce: str, *, view: discord.ui.View | None = None) -> Sent:
        """One DM: one request when the DM channel is stored (else it is opened once, paced, and stored).
        A stored DM channel that is gone is forgotten and the send retried (with a new one)."""
        channel_id = await self.storage.get_dm_channel(user_id)
        if channel_id is None:
            channel_id = await self.open_dm_channel(user_id)
        channel = self.bot.get_partial_messageable(channel_id, type=discord.ChannelType.private)
        try:
            if view is None:
                message = await channel.send(content=content, allowed_mentions=NO_PINGS, nonce=nonce)
            else:
                message = await channel.send(content=content, view=view, allowed_mentions=NO_PINGS, nonce=nonce)
        except discord.NotFound as exc:
            if exc.code == 10003:  # the stored DM channel is gone: open a new one on the retry
                await self.storage.forget_dm_channel(user_id)
                raise Retry("dm_channel_gone") from exc
            raise
        return Sent(message.id, channel_id)

    async def still_a_member(self, guild: discord.Guild, user_id: int) -> None:
        """About once a week, ask Discord whether the member is still in the server (without the members intent
        nothing says they left): someone who left gets no more DMs from it (Discord answers 10007)."""
        schedule = await self.storage.get_dm_schedule(guild.id, user_id)
        now = self.bot.clock.now()
        if schedule is None or (schedule.member_checked_at or 0) > to_unix(now - MEMBER_CHECK_EVERY):
            return
        try:
            await guild.fetch_member(user_id)
        except discord.NotFound as exc:
            if exc.code != 10007:
                raise
            await self.storage.dm_off(guild.id, user_id, "left_server", now)
            log.info("user %s left guild %s: DM check-ins from it switched off", user_id, guild.id)
            raise Skip("member_left") from exc
        await self.storage.dm_member_checked(guild.id, user_id, now)

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

    def _server(self, guild_id: int, limit: int = 60) -> str:
        guild = self.bot.get_guild(guild_id)
        return safe_name(guild.name if guild else f"server {guild_id}", limit)


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(DMs(bot))
