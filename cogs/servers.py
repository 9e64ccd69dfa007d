"""Servers that remove the bot: marked when they go (or are found gone at start), purged 30 days later unless
the bot is added back."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from coach import board
from coach.clock import to_unix

if TYPE_CHECKING:
    from bot import BounceBot

log = logging.getLogger("bounce.board")
PURGE_BATCH = 20


class Servers(commands.Cog):
    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot

    @property
    def storage(self):  # noqa: ANN201
        return self.bot.storage

    # ------------------------------------------------------------------ servers that remove the bot

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await self.storage.mark_removed(guild.id, self.bot.clock.now())
        log.info("removed from guild %s; its data will be purged in %s unless I'm added back",
                 guild.id, board.PURGE_AFTER)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        # Removed while we were offline: no event arrives, but the server is missing from READY. (Servers in an
        # outage are still listed there, as unavailable.) Marking only starts the 30-day clock; a return clears it.
        present = {g.id for g in self.bot.guilds}
        for guild_id in await self.storage.present_guild_ids() - present:
            await self.storage.mark_removed(guild_id, self.bot.clock.now())
            log.info("guild %s is gone since my last start; its data will be purged in %s unless I'm added back",
                     guild_id, board.PURGE_AFTER)

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.returned(guild)

    @commands.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:
        # Also at every start (discord.py dispatches it for each guild in READY): a server re-added while we
        # were offline is seen here. And GUILD_CREATE with `unavailable: false` arrives as this event too.
        await self.returned(guild)

    async def returned(self, guild: discord.Guild) -> None:
        if await self.storage.mark_returned(guild.id):
            log.info("added back to guild %s; nothing will be purged", guild.id)

    async def run_due(self) -> int:
        """Purge the data of servers that removed the bot more than PURGE_AFTER ago. Returns how many."""
        cutoff = to_unix(self.bot.clock.now() - board.PURGE_AFTER)
        purged = 0
        for guild_id in await self.storage.due_purges(cutoff, PURGE_BATCH):
            counts = await self.storage.purge_guild(guild_id, cutoff)
            if counts is not None:
                purged += 1
                log.info("purged guild %s: %s", guild_id, {k: v for k, v in counts.items() if v})
        return purged


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(Servers(bot))
