"""/coach adjust, /coach undo, /coach freezes (and /coach rewards): admin corrections and rewards.

These are subcommands of the /coach group that cogs/admin.py defines: this cog's commands are attached to it
when the cog loads (see `cog_load`), so /coach stays one command with one set of default permissions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from coach import board, rewards
from coach.errors import NotFound
from coach.text import safe_name
from cogs.board import guild_tz
from cogs.common import member_name, reply

if TYPE_CHECKING:
    from bot import BounceBot

CORRECTIONS_HEADER = ("when_utc", "member_id", "name", "kind", "points", "date", "status", "reason", "admin_id")


class Rewards(commands.Cog):
    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        """Move this cog's app commands under /coach (the Admin cog's group)."""
        admin = self.bot.get_cog("Admin")
        assert admin is not None, "cogs.admin must load before cogs.rewards"
        coach: app_commands.Group = admin.coach  # type: ignore[attr-defined]
        for command in self.__cog_app_commands__:  # already this cog's copies, bound to it
            command.parent = coach
            coach.add_command(command)
        self.__cog_app_commands__ = []  # not top-level commands of their own

    @property
    def storage(self):  # noqa: ANN201
        return self.bot.storage

    async def who(self, guild_id: int, user: discord.User | discord.Member) -> str:
        """The member's name for a reply, or NotFound for someone who isn't (and never was) a member here."""
        if user.bot:
            raise NotFound(f"{safe_name(member_name(user))} is a bot; bots don't check in or earn points.")
        stored = await self.storage.get_member(guild_id, user.id)
        if not isinstance(user, discord.Member) and stored is None:
            raise NotFound(f"{safe_name(member_name(user))} isn't a member of this server and has nothing stored "
                           "here. Pick someone from this server.")
        return safe_name(stored.display_name if stored and stored.display_name else member_name(user))

    # ------------------------------------------------------------------ corrections

    @app_commands.command(name="adjust", description="Add or take points from a member, with a reason they can see.")
    @app_commands.describe(member="Whose points", points="How many to add (negative to take away), -100 to 100",
                           reason="Why (the member sees it in /me export)")
    async def adjust(self, interaction: discord.Interaction, member: discord.User,
                     points: app_commands.Range[int, -1000, 1000],
                     reason: app_commands.Range[str, 1, 1000]) -> None:
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id
        name = await self.who(guild_id, member)
        points, reason = rewards.check_adjustment(points, reason, await self.storage.board_points(guild_id, member.id))
        await self.storage.adjust_points(guild_id, member.id, points, reason, interaction.user.id,
                                         self.bot.clock.now())
        total = await self.storage.board_points(guild_id, member.id)
        verb = f"Added **{points}** point{'s' if points != 1 else ''} to" if points > 0 else \
            f"Took **{-points}** point{'s' if points != -1 else ''} from"
        await reply(interaction, f"{verb} {name}'s board total: **{total:,}** now. The reason is in their "
                                 "`/me export` and in `/coach export`.")

    @app_commands.command(name="undo", description="Remove a member's check-in of one date, and its point.")
    @app_commands.describe(member="Whose check-in", date="The check-in's date: YYYY-MM-DD, today or yesterday",
                           reason="Why (optional; the member sees it in /me export)")
    async def undo(self, interaction: discord.Interaction, member: discord.User,
                   date: app_commands.Range[str, 1, 20], reason: app_commands.Range[str, 1, 1000] | None = None) -> None:
        assert interaction.guild_id is not None
        guild_id = interaction.guild_id
        name = await self.who(guild_id, member)
        today = board.local_today(self.bot.clock.now(), await guild_tz(self.bot, guild_id))
        day = rewards.parse_day(date, today).isoformat()
        why = rewards.check_reason(reason) if reason else None
        undone = await self.storage.undo_checkin(guild_id, member.id, day, why, interaction.user.id,
                                                 self.bot.clock.now())
        if undone is None:
            raise NotFound(f"{name} has no check-in on {day}, so there's nothing to undo. Their check-in dates "
                           "are in `/coach export`.")
        total = await self.storage.board_points(guild_id, member.id)
        await reply(interaction, f"Removed {name}'s check-in of {day} ({undone.status}) and its point: "
                                 f"**{total:,}** on the board now. Their streak is counted without it.")

    async def export_corrections(self, interaction: discord.Interaction) -> None:
        """The server's corrections as a CSV (sent with /coach export when there are any)."""
        guild_id = interaction.guild_id
        assert guild_id is not None
        items = await self.storage.corrections_of(guild_id, limit=100_000)
        if not items:
            return
        names = await self.storage.display_names(guild_id, [c.user_id for c in items])
        with board.CsvParts(f"bounce-corrections-{guild_id}", header=CORRECTIONS_HEADER) as parts:
            rows = [(datetime.fromtimestamp(c.created_at, UTC).isoformat(), str(c.user_id),
                     board.spreadsheet_safe(names.get(c.user_id)), c.kind, str(c.amount), c.local_date or "",
                     c.status or "", board.spreadsheet_safe(c.reason), str(c.admin_id)) for c in items]
            await asyncio.to_thread(lambda: [parts.write(r) for r in rows])
            paths = await asyncio.to_thread(parts.finish)
            for path in paths:
                await reply(interaction, f"And the corrections admins made: **{len(items):,}** (adjustments and "
                                         "undone check-ins, with who made them and why).",
                            file=discord.File(path, filename=path.name))

    # ------------------------------------------------------------------ streak freezes

    @app_commands.command(name="freezes", description="Streak freezes: a missed round doesn't break a streak.")
    @app_commands.describe(state="on or off (leave empty to see the setting)")
    @app_commands.choices(state=[app_commands.Choice(name="on", value="on"),
                                 app_commands.Choice(name="off", value="off")])
    async def freezes(self, interaction: discord.Interaction, state: app_commands.Choice[str] | None = None) -> None:
        assert interaction.guild_id is not None
        if state is not None:
            await self.storage.set_freezes(interaction.guild_id, state.value == "on", self.bot.clock.now())
        on = await self.storage.freezes_on(interaction.guild_id)
        if on:
            text = ("Streak freezes are **on**: every 7 rounds answered in a row earn one (at most 2 held), and a "
                    "missed round uses one so the streak lives on.")
        else:
            text = "Streak freezes are **off**: a missed round ends the streak, as it used to."
        if state is not None:
            text += " Every streak is counted this way from now on, across its whole history."
        await reply(interaction, text)


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(Rewards(bot))
