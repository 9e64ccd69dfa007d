"""The weekly recap: queued with the first round posted in a week (coach/storage/outbox.py), posted through the outbox."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from coach import board, voice
from coach.clock import from_unix
from coach.outbox import Job, Sent, Skip
from coach.rounds import nonce_for
from coach.storage import Round
from coach.text import safe_name
from cogs.board import guild_tz
from cogs.common import NO_PINGS
from cogs.outbox import find_in_history, postable_channel

if TYPE_CHECKING:
    from bot import BounceBot

log = logging.getLogger("bounce.recap")
RECAPS_IN_FLIGHT = 4
COLOUR = discord.Colour.from_rgb(241, 196, 15)


class Recaps(commands.Cog):
    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.outbox.register("recap", self.deliver_recap, find=self.find_recap, in_flight=RECAPS_IN_FLIGHT)

    @property
    def storage(self):  # noqa: ANN201
        return self.bot.storage

    # ------------------------------------------------------------------ weekly recap

    async def deliver_recap(self, job: Job) -> Sent:
        """The weekly recap queued with the first round posted in a week: the week before, summed up."""
        recap = await self.storage.get_recap(job.ref_id)
        round_ = await self.storage.get_round(recap.round_id) if recap and recap.round_id else None
        if recap is None or round_ is None:
            raise Skip("gone")
        storage, guild_id = self.storage, recap.guild_id
        monday = date.fromisoformat(recap.week)
        sunday = monday + timedelta(days=6)
        held, answers, active = await storage.week_checkin_stats(
            guild_id, recap.week, sunday.isoformat(), (monday - timedelta(days=21)).isoformat())
        if held == 0:
            raise Skip("empty")
        channel = postable_channel(self.bot, guild_id, recap.channel_id or round_.channel_id)
        embed = await self.recap_embed(round_, monday, board.RecapStats(held, answers, active),
                                       getattr(getattr(channel, "guild", None), "name", "") or "the server")
        message = await channel.send(embed=embed, allowed_mentions=NO_PINGS, nonce=nonce_for("recap", recap.id))
        return Sent(message.id, message.channel.id)

    async def find_recap(self, job: Job) -> Sent | None:
        """Past Discord's nonce window: did an earlier attempt post this recap? (Its title names the week.)"""
        recap = await self.storage.get_recap(job.ref_id)
        if recap is None or recap.channel_id is None or job.first_try_at is None or self.bot.user is None:
            return None
        title = f"Weekly recap · {board.week_label(date.fromisoformat(recap.week))}"
        channel = postable_channel(self.bot, recap.guild_id, recap.channel_id)
        return await find_in_history(channel, self.bot.user.id, from_unix(job.first_try_at),
                                     lambda m: bool(m.embeds) and m.embeds[0].title == title)

    async def recap_embed(self, round_: Round, monday: date, stats: board.RecapStats, server: str) -> discord.Embed:
        storage, guild_id = self.storage, round_.guild_id
        tz = await guild_tz(self.bot, guild_id)
        # A public post: only members who may be named publicly are named (coach.members); all are counted.
        finished = await storage.public_finished_projects(
            guild_id, board.local_midnight(monday, tz), board.local_midnight(monday + timedelta(days=7), tz))
        candidates = await storage.nameable_members(
            guild_id, await storage.checkin_users_since(guild_id, (monday - timedelta(days=63)).isoformat()))
        streaks = await storage.current_streaks(guild_id, candidates)
        top = board.longest_streaks(streaks)
        names = await storage.display_names(guild_id, [u for u, _ in top])
        intro = await voice.say(storage, self.bot.prompts, self.bot.rng, "recap_intro", guild_id=guild_id,
                                user_id=voice.SERVER, server=safe_name(server, 60), member="", project="", streak=0)
        embed = discord.Embed(title=f"Weekly recap · {board.week_label(monday)}", description=intro, colour=COLOUR)
        embed.add_field(name="Rounds held", value=str(stats.rounds))
        embed.add_field(name="Check-in rate", value=board.recap_rate_line(stats))
        title, value = board.recap_finished(
            [board.Finish(p.name, p.display_name, p.user_id) for p in finished.named], finished.total)
        embed.add_field(name=title, value=value, inline=False)
        embed.add_field(name="Longest streaks", inline=False, value=board.recap_streaks(top, names))
        return embed


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(Recaps(bot))
