"""/me: a member's own settings in this server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs.admin import days_autocomplete, timezone_autocomplete
from cogs.common import member_name, reply

if TYPE_CHECKING:
    from bot import BounceBot


class Me(commands.Cog):
    me = app_commands.Group(name="me", description="Your own Bounce settings and data in this server.",
                            guild_only=True)

    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot

    @me.command(name="announce", description="Turn the public celebration of your finished projects on or off.")
    @app_commands.describe(switch="on: celebrate in the channel; off: keep it quiet")
    @app_commands.choices(switch=[app_commands.Choice(name="on", value="on"),
                                  app_commands.Choice(name="off", value="off")])
    async def announce(self, interaction: discord.Interaction, switch: app_commands.Choice[str]) -> None:
        assert interaction.guild_id is not None
        on = switch.value == "on"
        await self.bot.storage.touch_member(interaction.guild_id, interaction.user.id, member_name(interaction.user),
                                            self.bot.clock.now())
        await self.bot.storage.set_announce(interaction.guild_id, interaction.user.id, on)
        await reply(interaction, "Done: finished projects will be celebrated in the check-in channel." if on else
                    "Done: your finished projects stay quiet. You still get the points.")

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


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(Me(bot))
