"""Getting DM check-ins: `/me dm` (via cogs/me.py) and the paced DM round sender.

Answering them (buttons, forms, plain-text replies) lives in cogs/dm_replies.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from coach import dm
from coach.clock import to_unix
from coach.errors import NotAllowed, NotFound
from coach.rounds import nonce_for
from coach.text import CONTENT_MAX, cut_block, safe_name
from cogs.common import NO_PINGS, member_name, reply, stateless
from cogs.dm_replies import round_view

if TYPE_CHECKING:
    from bot import BounceBot

log = logging.getLogger("bounce.dm")

BATCH = 32               # due schedules claimed per step: claims stay just ahead of the paced sender
WORKERS = 8              # DMs in flight at once; each waits for its slot in the global budget


class DMs(commands.Cog):
    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot
        self._queue: asyncio.Queue[dm.DMRound] = asyncio.Queue(maxsize=BATCH)
        self._pump: asyncio.Task[None] | None = None
        self._again = False
        self._workers: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[None]] = set()

    @property
    def storage(self):  # noqa: ANN201
        return self.bot.storage

    async def cog_load(self) -> None:
        self._workers = [asyncio.create_task(self._worker(), name=f"bounce-dm-{i}") for i in range(WORKERS)]

    async def cog_unload(self) -> None:
        """Stop taking work; let DMs already being sent finish (so they are marked sent), briefly."""
        tasks = ([self._pump] if self._pump else []) + self._workers
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=5)

    # ------------------------------------------------------------------ scheduled sending

    async def run_due(self) -> None:
        """Hand what is due to the paced sender (a background pump); returns at once."""
        self._again = True  # a pump already running looks once more, with the clock as it is now
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._pump_due(), name="bounce-dm-pump")

    async def drain(self) -> None:
        """Wait until everything due so far has been handled (tests, the benchmark, shutdown)."""
        while self._pump is not None and not self._pump.done():
            await asyncio.wait({self._pump})
        await self._queue.join()

    async def _pump_due(self) -> None:
        """Claim due DM schedules a small batch at a time, oldest due first, just ahead of the sender."""
        try:
            await dm.expire_claims(self.storage, self.bot.clock.now(), self.bot.grace)
            more = True
            while more or self._again:
                self._again = False
                rounds, more = await dm.claim_due(self.storage, self.bot.clock.now(), self.bot.grace, BATCH)
                for round_ in rounds:
                    await self._queue.put(round_)  # waits while the sender is BATCH behind
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("claiming due DM check-ins failed")

    async def _worker(self) -> None:
        while True:
            round_ = await self._queue.get()
            try:
                task = asyncio.create_task(self._deliver_safely(round_))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                await asyncio.shield(task)
            finally:
                self._queue.task_done()

    async def _deliver_safely(self, round_: dm.DMRound) -> None:
        try:
            await self.deliver(round_)
        except Exception:
            log.exception("DM round %s failed", round_.id)
            with contextlib.suppress(Exception):
                await self.storage.mark_dm_unsent(round_.id, "failed", "internal_error")

    async def deliver(self, round_: dm.DMRound) -> discord.Message | None:
        """Send one DM round: one request when the DM channel is stored. Never retried on 403/404."""
        why = await self.storage.dm_precheck(round_)
        if why is not None:
            if why != "already_handled":
                await self.storage.mark_dm_unsent(round_.id, "answered" if why == "answered" else "cancelled", why)
            return None
        guild = self.bot.get_guild(round_.guild_id)
        if guild is None:
            log.warning("DM round %s: guild %s is not available; not sent", round_.id, round_.guild_id)
            await self.storage.mark_dm_unsent(round_.id, "cancelled", "guild_unavailable")
            return None
        server = safe_name(guild.name, 60)
        channel_id = await self.storage.get_dm_channel(round_.user_id)
        try:
            if channel_id is None:
                channel_id = await self.open_dm_channel(round_.user_id)
            channel = self.bot.get_partial_messageable(channel_id, type=discord.ChannelType.private)
            prompt = self.bot.prompts.reply("dm_round", self.bot.rng, server=server)
            content = cut_block(dm.round_text(prompt, server, round_.local_date, round_.late), CONTENT_MAX)
            message = await channel.send(content=content, view=stateless(round_view(round_.id)), allowed_mentions=NO_PINGS,
                                         nonce=nonce_for("dm", round_.id))
        except discord.Forbidden as exc:
            if exc.code == 50007:
                await self.dms_closed(round_)
            else:
                log.warning("DM round %s: forbidden (%s); not retried", round_.id, exc.code)
                await self.storage.mark_dm_unsent(round_.id, "failed", f"forbidden:{exc.code}")
            return None
        except discord.NotFound as exc:
            log.warning("DM round %s: DM channel not found (%s); forgetting it, not retried", round_.id, exc.code)
            await self.storage.forget_dm_channel(round_.user_id)
            await self.storage.mark_dm_unsent(round_.id, "failed", f"not_found:{exc.code}")
            return None
        except discord.HTTPException as exc:
            log.warning("DM round %s: Discord error %s; not retried", round_.id, exc.status)
            await self.storage.mark_dm_unsent(round_.id, "failed", f"discord_error:{exc.status}")
            return None
        await self.storage.mark_dm_sent(round_.id, channel_id, message.id, self.bot.clock.now())
        return message

    async def open_dm_channel(self, user_id: int) -> int:
        """The DM channel with a member: created once (one request), then stored."""
        channel = await self.bot.create_dm(discord.Object(user_id))
        await self.storage.set_dm_channel(user_id, channel.id, self.bot.clock.now())
        return channel.id

    async def dms_closed(self, round_: dm.DMRound) -> None:
        """Discord 50007: stop DMing this member everywhere, remember why, tell them in each server."""
        now = self.bot.clock.now()
        switched = await self.storage.dm_off_everywhere(round_.user_id, "dms_closed", now)
        await self.storage.mark_dm_unsent(round_.id, "failed", "dms_closed")
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
