"""Opt-in nudges: `/me nudge` (via cogs/me.py) and the nudge sender (through the outbox, as DMs).

The rules live in coach/nudges.py; the DM channel is stored and opened by the DM check-in sender (cogs/dm.py)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from coach import nudges, voice
from coach.clock import from_unix
from coach.errors import NotAllowed, NotFound
from coach.outbox import Job, Sent, Skip, TakeReport
from coach.rounds import nonce_for
from coach.text import CONTENT_MAX, cut_block, safe_name
from cogs.common import member_name, reply
from cogs.outbox import GuildUnavailable, find_in_history

if TYPE_CHECKING:
    from bot import BounceBot
    from cogs.dm import DMs

log = logging.getLogger("bounce.nudges")

WORKERS = 8  # nudges in flight at once; each waits for its slot in the global budget


class Nudges(commands.Cog):
    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot

    @property
    def storage(self):  # noqa: ANN201
        return self.bot.storage

    @property
    def dms(self) -> DMs:
        return self.bot.get_cog("DMs")  # type: ignore[return-value]

    async def cog_load(self) -> None:
        self.bot.outbox.register("nudge", self.deliver, take=self.take, find=self.find, after=self.after,
                                 in_flight=WORKERS)

    # ------------------------------------------------------------------ scheduled sending (through the outbox)

    async def take(self, now: datetime) -> TakeReport:
        return await nudges.take_due(self.storage, now)

    async def deliver(self, job: Job) -> Sent:
        """Send one nudge, unless the member answered meanwhile (or it can't be sent now: a reason)."""
        nudge = await self.storage.get_nudge(job.ref_id)
        if nudge is None:
            raise Skip("gone")
        if nudge.state != "claimed":
            raise Skip("already_handled")
        check = await self.storage.nudge_check(nudge.guild_id, nudge.user_id)
        if check is None:
            raise Skip("forgotten")
        why = nudges.why_not(check, self.bot.clock.now(), nudge.round_id)
        if why is not None:
            raise Skip(why)
        content = nudge.content
        if content is None:
            content = await self.compose(nudge, check)
        return await self.dms.send_dm(nudge.user_id, content, nonce_for("nudge", nudge.id))

    async def compose(self, nudge: nudges.Nudge, check: nudges.NudgeCheck) -> str:
        """The nudge's words, stored before the first attempt so a retry sends (and finds) the same DM."""
        guild = self.bot.get_guild(nudge.guild_id)
        if guild is None or guild.unavailable:
            raise GuildUnavailable()
        server = safe_name(guild.name, 60)
        ignored = await self.storage.nudges_ignored(nudge.guild_id, nudge.user_id, check.on_at)
        pause = nudges.pauses_now(ignored)
        line = await self.say("nudge", nudge, server)
        pause_line = await self.say("nudge_pause", nudge, server) if pause else None
        link = nudges.round_link(nudge.guild_id, check.round_channel, check.round_message)
        content = cut_block(nudges.dm_text(line, server, from_unix(nudge.closes_at), link, pause_line),
                            CONTENT_MAX)
        await self.storage.set_nudge_content(nudge.id, content, pause)
        return content

    async def say(self, situation: str, nudge: nudges.Nudge, server: str) -> str:
        return await voice.say(self.storage, self.bot.prompts, self.bot.rng, situation, guild_id=nudge.guild_id,
                               user_id=nudge.user_id, server=server)

    async def find(self, job: Job) -> Sent | None:
        """Past Discord's nonce window: did an earlier attempt send this nudge? (Same words, stored.)"""
        nudge = await self.storage.get_nudge(job.ref_id)
        channel_id = await self.storage.get_dm_channel(nudge.user_id) if nudge else None
        if nudge is None or nudge.content is None or channel_id is None or job.first_try_at is None \
                or self.bot.user is None:
            return None
        channel = self.bot.get_partial_messageable(channel_id, type=discord.ChannelType.private)
        return await find_in_history(channel, self.bot.user.id, from_unix(job.first_try_at),
                                     lambda m: m.content == nudge.content)

    async def after(self, job: Job, state: str, sent: Sent | None, reason: str | None) -> None:
        if state != "failed" or reason != "dms_closed":
            return
        nudge = await self.storage.get_nudge(job.ref_id)
        if nudge is None:
            return
        switched = await self.storage.nudges_off_everywhere(nudge.user_id, "dms_closed", self.bot.clock.now())
        for guild_id in sorted(set(switched) | {nudge.guild_id}):
            await self.storage.set_notice(guild_id, nudge.user_id, nudges.CLOSED_NOTICE)
        log.warning("user %s has DMs closed (50007): nudges switched off in %d server(s)", nudge.user_id,
                    len(switched))

    # ------------------------------------------------------------------ /me nudge

    async def handle_me_nudge(self, interaction: discord.Interaction, switch: str | None,
                              hours_before: int | None) -> None:
        if interaction.guild_id is None:
            raise NotAllowed("Run `/me nudge` inside the server whose check-in you want nudges for.")
        guild_id, user_id, now = interaction.guild_id, interaction.user.id, self.bot.clock.now()
        chosen, hours = nudges.check_input(switch, hours_before)
        if chosen is None:
            await reply(interaction, nudges.setting_text(await self.storage.nudge_check(guild_id, user_id), now))
            return
        if chosen == "off":
            off = await self.storage.nudge_off(guild_id, user_id, "member", now)
            await reply(interaction, nudges.OFF_TEXT if off else nudges.ALREADY_OFF_TEXT)
            return
        settings = await self.storage.get_guild(guild_id)
        if settings is None:
            raise NotFound(nudges.NO_CHECKIN_TEXT)
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.storage.touch_member(guild_id, user_id, member_name(interaction.user), now)
        next_due = None if settings.paused else nudges.first_due(settings.next_due, hours, now)
        await self.storage.set_nudge(guild_id, user_id, hours, next_due, now)
        if await self.storage.get_dm_channel(user_id) is None:
            try:
                await self.dms.open_dm_channel(user_id)
            except discord.HTTPException as exc:  # opened again when the first nudge is due
                log.info("could not open a DM channel with user %s yet: %s", user_id, exc)
        check = await self.storage.nudge_check(guild_id, user_id)
        assert check is not None
        guild = self.bot.get_guild(guild_id)
        server = safe_name(guild.name if guild else f"server {guild_id}", 60)
        await reply(interaction, nudges.on_text(server, check, now))


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(Nudges(bot))
