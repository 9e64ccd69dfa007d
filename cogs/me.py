"""/me: a member's own settings and data in this server: announce, public, dm, nudge, away, back, export, forget."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from coach import board
from coach.clock import to_unix
from coach.errors import Conflict, NotAllowed
from coach.text import ts
from cogs.admin import days_autocomplete, timezone_autocomplete
from cogs.board import guild_tz
from cogs.common import ConfirmButton, confirm_view, confirmable, member_name, reply

if TYPE_CHECKING:
    from bot import BounceBot


confirmable("fg", cog="Me", method="confirm_forget", yes="Delete my data", no="Keep it",
            style=discord.ButtonStyle.danger)


class Me(commands.Cog):
    me = app_commands.Group(name="me", description="Your own Bounce settings and data in this server.",
                            guild_only=True)

    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(ConfirmButton)

    @me.command(name="announce", description="Whether public posts (celebrations, weekly recap) may name you.")
    @app_commands.describe(switch="on: celebrate and name you in the channel; off: count you, never name you")
    @app_commands.choices(switch=[app_commands.Choice(name="on", value="on"),
                                  app_commands.Choice(name="off", value="off")])
    async def announce(self, interaction: discord.Interaction, switch: app_commands.Choice[str]) -> None:
        assert interaction.guild_id is not None
        on = switch.value == "on"
        await self.bot.storage.touch_member(interaction.guild_id, interaction.user.id, member_name(interaction.user),
                                            self.bot.clock.now())
        await self.bot.storage.set_announce(interaction.guild_id, interaction.user.id, on)
        await reply(interaction, "Done: your finished projects are celebrated in the check-in channel, and the "
                                 "weekly recap names you and them." if on else
                    "Done: you stay out of public posts. Finished projects aren't celebrated in the channel, and "
                    "the weekly recap counts your check-ins and finishes without naming you. You still get "
                    "every point.")

    @me.command(name="public", description="Show or hide your name on this server's public page.")
    @app_commands.describe(switch="on: you may appear on the page; off: keep you off it")
    @app_commands.choices(switch=[app_commands.Choice(name="on", value="on"),
                                  app_commands.Choice(name="off", value="off")])
    async def public(self, interaction: discord.Interaction, switch: app_commands.Choice[str]) -> None:
        await self.bot.get_cog("Web").me_public(interaction, switch.value == "on")  # type: ignore[union-attr]

    @me.command(name="dm", description="Get the check-in by DM at your own time, or see your DM setting.")
    @app_commands.describe(switch="on: DM me the check-in; off: stop; leave empty to see your setting",
                           time="Your local time in 24-hour HH:MM, e.g. 20:00",
                           timezone="Your time zone, e.g. Europe/Berlin", days="every day, weekdays, or mon,wed,fri")
    @app_commands.choices(switch=[app_commands.Choice(name="on", value="on"),
                                  app_commands.Choice(name="off", value="off")])
    @app_commands.autocomplete(timezone=timezone_autocomplete, days=days_autocomplete)
    async def dm(self, interaction: discord.Interaction, switch: app_commands.Choice[str] | None = None,
                 time: app_commands.Range[str, 1, 20] | None = None,
                 timezone: app_commands.Range[str, 1, 64] | None = None,
                 days: app_commands.Range[str, 1, 100] | None = None) -> None:
        # DM check-ins live in cogs/dm.py; this is only the /me entry point.
        await self.bot.get_cog("DMs").handle_me_dm(interaction, switch.value if switch else None,  # type: ignore[union-attr]
                                                   time, timezone, days)

    @me.command(name="nudge", description="One DM before the round closes if you haven't checked in, or your setting.")
    @app_commands.describe(switch="on: nudge me; off: stop; leave empty to see your setting",
                           hours_before="How many hours before the round closes (1 to 12, default 3)")
    @app_commands.choices(switch=[app_commands.Choice(name="on", value="on"),
                                  app_commands.Choice(name="off", value="off")])
    async def nudge(self, interaction: discord.Interaction, switch: app_commands.Choice[str] | None = None,
                    hours_before: int | None = None) -> None:
        # Nudges live in cogs/nudges.py; this is only the /me entry point.
        await self.bot.get_cog("Nudges").handle_me_nudge(interaction, switch.value if switch else None,  # type: ignore[union-attr]
                                                         hours_before)

    # ------------------------------------------------------------------ away / back

    @me.command(name="away", description="Mark yourself away: rounds until then neither count nor break your streak.")
    @app_commands.describe(until="The last day you're away, YYYY-MM-DD (up to 60 days ahead)")
    async def away(self, interaction: discord.Interaction, until: app_commands.Range[str, 1, 30]) -> None:
        assert interaction.guild_id is not None
        today = board.local_today(self.bot.clock.now(), await guild_tz(self.bot, interaction.guild_id))
        last = board.parse_away_until(until, today)
        await self.bot.storage.touch_member(interaction.guild_id, interaction.user.id, member_name(interaction.user),
                                            self.bot.clock.now())
        start, end = await self.bot.storage.set_away(interaction.guild_id, interaction.user.id, today.isoformat(),
                                                     last.isoformat())
        await reply(interaction, f"Got it: you're away from **{start}** to **{end}** (inclusive). Rounds in that "
                                 "time won't break your streak, and answering one still counts. Enjoy the break; "
                                 "`/me back` if you return early.")

    @me.command(name="back", description="End your away time today.")
    async def back(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        today = board.local_today(self.bot.clock.now(), await guild_tz(self.bot, interaction.guild_id))
        if not await self.bot.storage.end_away(interaction.guild_id, interaction.user.id, today.isoformat()):
            await reply(interaction, "You're not marked away here, so there's nothing to end. Rounds count as usual.")
            return
        await reply(interaction, "Welcome back. Your away time ends today; from the next round on, every round "
                                 "counts again. What's the first small thing you'll finish?")

    # ------------------------------------------------------------------ export / forget

    @me.command(name="export", description="Get everything Bounce keeps about you in this server, as a file.")
    async def export(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        storage, guild_id, user_id = self.bot.storage, interaction.guild_id, interaction.user.id
        data = await storage.member_data(guild_id, user_id)
        document = {
            "server_id": str(guild_id), "member_id": str(user_id),
            "exported_at": self.bot.clock.now().isoformat(),
            "points": {"checkin_and_finish": await storage.points_total(guild_id, user_id, ["checkin", "finish"]),
                       "adjustments": await storage.points_total(guild_id, user_id, ["adjust"]),
                       "board": await storage.board_points(guild_id, user_id),
                       "depth": await storage.depth_points(guild_id, user_id)},
            "data": data,
        }
        raw = json.dumps(document, indent=2, ensure_ascii=False, default=str).encode("utf-8")
        rows = sum(len(v) for v in data.values())
        await reply(interaction, f"Here's your data in this server: {rows:,} records. Only you can see this.",
                    file=discord.File(io.BytesIO(raw), filename=f"bounce-me-{guild_id}.json"))

    @me.command(name="forget", description="Delete everything Bounce keeps about you in this server.")
    async def forget(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        now = self.bot.clock.now()
        token = await self.bot.storage.put_confirm(interaction.guild_id, interaction.user.id, "forget", None, now)
        view = confirm_view("fg", interaction.guild_id, interaction.user.id, token)
        expires = now + board.CONFIRM_MAX_AGE
        await reply(interaction, "This deletes everything Bounce keeps about you **in this server**: check-ins, "
                                 "projects, points, streak history, reflections, away days, DM check-in and "
                                 "nudge settings. It can't be undone; your data in other servers stays. "
                                 f"(`/me export` first if you want a copy.) This button works until {ts(expires, 't')}.",
                    view=view)

    async def confirm_forget(self, interaction: discord.Interaction, user_id: int, token: int, go: bool) -> None:
        if interaction.user.id != user_id or interaction.guild_id is None:
            raise NotAllowed("Only the member whose data this is can confirm deleting it; nothing was deleted.")
        storage, guild_id, now = self.bot.storage, interaction.guild_id, self.bot.clock.now()
        if not go:
            await storage.drop_confirm(guild_id, user_id, "forget", token)
            await interaction.response.edit_message(content="Kept. Nothing was deleted.", view=None)
            return
        found, _ = await storage.take_confirm(guild_id, user_id, "forget", token,
                                              to_unix(now - board.CONFIRM_MAX_AGE))
        if not found:
            raise Conflict("That confirmation has expired or was already used; nothing was deleted. "
                           "Run `/me forget` again.")
        counts = await storage.forget_member(guild_id, user_id)
        await storage.forget_dm_member(guild_id, user_id)  # their DM channel too, once no other server DMs them
        await interaction.response.edit_message(
            content=f"Done. Deleted {board.forget_summary(counts)}. If you check in again, you start fresh.",
            view=None)


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(Me(bot))
