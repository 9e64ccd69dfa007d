"""One error handler for every application command."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from cogs.common import report_error


async def on_app_command_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
    await report_error(interaction, error)


async def setup(bot: commands.Bot) -> None:
    bot.tree.on_error = on_app_command_error  # type: ignore[method-assign]
