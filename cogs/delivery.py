"""What every scheduled post needs to reach Discord, whatever its kind: the channel it may go to (or why not),
Discord's answer read as transient or permanent, and an earlier attempt's message found in the channel's
history. The outbox (cogs/outbox.py) and each kind's cog use these; they hold no state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import aiohttp
import discord

from coach.outbox import Fail, Outcome, Retry, Sent

if TYPE_CHECKING:
    from bot import BounceBot


class GuildUnavailable(Retry):
    """The server is in an outage (or not in the cache yet): not a deleted channel; try again."""

    def __init__(self) -> None:
        super().__init__("guild_unavailable")


def classify(exc: BaseException) -> Outcome:
    """Discord's answer (or the network's silence) as transient or permanent."""
    if isinstance(exc, Outcome):
        return exc
    if isinstance(exc, discord.Forbidden):
        return Fail({50007: "dms_closed", 50001: "missing_access", 50013: "missing_permission"}
                    .get(exc.code, f"forbidden:{exc.code}"))
    if isinstance(exc, discord.NotFound):
        return Fail({10003: "channel_deleted", 10007: "member_left", 10013: "unknown_user"}
                    .get(exc.code, f"not_found:{exc.code}"))
    if isinstance(exc, discord.DiscordServerError):
        return Retry(f"discord_{exc.status}")
    if isinstance(exc, discord.HTTPException):
        if exc.status == 429:
            return Retry("rate_limited")
        return Fail(f"discord_error:{exc.status}:{exc.code}")
    if isinstance(exc, (TimeoutError, aiohttp.ClientError, OSError, discord.ConnectionClosed)):
        return Retry("network")
    return Fail("internal_error")


def postable_channel(bot: BounceBot, guild_id: int, channel_id: int) -> discord.abc.Messageable:
    """The channel to post in, or why not: an unavailable server is an outage (retried), a channel gone from an
    available server is deleted, and missing permissions are known before asking (no 403 toward Discord's
    invalid-request counter)."""
    from cogs.admin import missing_permissions

    guild = bot.get_guild(guild_id)
    if guild is None or guild.unavailable:
        raise GuildUnavailable()
    channel = guild.get_channel(channel_id)
    if not isinstance(channel, discord.abc.Messageable) or not isinstance(channel, discord.abc.GuildChannel):
        raise Fail("channel_deleted")
    if guild.me is not None and missing_permissions(channel, guild.me):
        raise Fail("missing_permission")
    return channel


async def find_in_history(channel: discord.abc.Messageable, me: int, since: datetime,
                          match: Callable[[discord.Message], bool]) -> Sent | None:
    """The bot's own message matching `match`, posted after `since` (a few minutes of slack), if any."""
    after = discord.Object(discord.utils.time_snowflake(since - timedelta(minutes=5)))
    async for message in channel.history(limit=100, after=after, oldest_first=False):
        if message.author.id == me and match(message):
            return Sent(message.id, message.channel.id)
    return None


def has_custom_id_prefix(message: discord.Message, prefix: str) -> bool:
    for row in message.components:
        for child in getattr(row, "children", ()):
            if (getattr(child, "custom_id", None) or "").startswith(prefix):
                return True
    return False
