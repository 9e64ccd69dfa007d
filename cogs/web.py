"""The web server's bot side: starts it when WEB_PORT is set, answers `/coach web` and `/me public`, and times
interaction answers for /metrics. The server itself is coach/web.py."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands
from discord.webhook.async_ import AsyncWebhookAdapter

from coach import metrics, webpage
from coach.errors import NotFound
from coach.web import Shard, WebServer
from cogs.common import member_name, reply

if TYPE_CHECKING:
    from bot import BounceBot

log = logging.getLogger("bounce.web")

NOT_RUNNING = ("The bot's operator hasn't switched its web server on (the `WEB_PORT` setting), so there's no page "
               "to show yet. Nothing changed.")


def time_interaction_answers(bot: commands.Bot) -> None:
    """Note when each interaction arrives (before discord.py hands it to a command or button) and when its first
    answer goes out, for the latency histogram. Answers go through discord.py's webhook adapter, not the bot's
    HTTP client, so that is where they are seen."""
    parsers = bot._connection.parsers
    parse = parsers["INTERACTION_CREATE"]
    if getattr(parse, "__bounce_timed__", False):
        return

    def timed(data: Any) -> None:
        metrics.interaction_received(int(data["id"]))
        parse(data)

    timed.__bounce_timed__ = True  # type: ignore[attr-defined]
    parsers["INTERACTION_CREATE"] = timed
    original = AsyncWebhookAdapter.create_interaction_response
    if getattr(original, "__bounce_timed__", False):
        return

    def create_interaction_response(self: AsyncWebhookAdapter, interaction_id: int, *args: Any, **kwargs: Any) -> Any:
        metrics.interaction_answered(interaction_id)
        return original(self, interaction_id, *args, **kwargs)

    create_interaction_response.__bounce_timed__ = True  # type: ignore[attr-defined]
    AsyncWebhookAdapter.create_interaction_response = create_interaction_response  # type: ignore[method-assign]


class Web(commands.Cog):
    def __init__(self, bot: BounceBot) -> None:
        self.bot = bot
        self.server: WebServer | None = None
        self.started_at = time.monotonic()

    # ------------------------------------------------------------------ what the web server asks (coach.web.Host)

    @property
    def storage(self):  # noqa: ANN201
        return self.bot.storage

    @property
    def clock(self):  # noqa: ANN201
        return self.bot.clock

    @property
    def tick_seconds(self) -> float:
        return self.bot.settings.tick_seconds

    def shards(self) -> Mapping[int, Shard]:
        info = getattr(self.bot, "shards", None)
        if isinstance(info, dict):  # AutoShardedBot: every shard this process runs
            return {sid: Shard(not s.is_closed(), s.latency) for sid, s in info.items()}
        ws = self.bot.ws
        if ws is None:
            return {}
        return {self.bot.shard_id or 0: Shard(bool(ws.open), ws.latency)}

    def server_count(self) -> int:
        return len(self.bot.guilds)

    def server_name(self, guild_id: int) -> str | None:
        guild = self.bot.get_guild(guild_id)
        return guild.name if guild is not None else None

    def last_tick_at(self) -> float | None:
        return getattr(self.bot, "last_tick_at", None)

    # ------------------------------------------------------------------ lifecycle

    async def cog_load(self) -> None:
        time_interaction_answers(self.bot)
        settings = self.bot.settings
        if settings.web_port is None:
            return
        server = WebServer(self, bind=settings.web_host, port=settings.web_port)
        try:
            await server.start()
        except OSError as exc:  # the bot keeps coaching; the operator's health check notices the missing server
            log.error("web server could not listen on %s:%s (%s); running without it", settings.web_host,
                      settings.web_port, exc.strerror or exc)
            await server.stop()
            return
        self.server = server

    async def cog_unload(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    @property
    def base_url(self) -> str:
        settings = self.bot.settings
        if settings.web_base_url:
            return settings.web_base_url
        port = self.server.port if self.server else settings.web_port
        host = f"[{settings.web_host}]" if ":" in settings.web_host else settings.web_host
        return f"http://{host}:{port}"

    def page_url(self, token: str) -> str:
        return f"{self.base_url}/s/{token}"

    def forget_page(self, guild_id: int) -> None:
        if self.server is not None:
            self.server.forget(guild_id)

    # ------------------------------------------------------------------ /coach web (from cogs/admin.py)

    async def coach_web(self, interaction: discord.Interaction, action: str | None) -> None:
        assert interaction.guild_id is not None
        guild_id, storage = interaction.guild_id, self.storage
        current = await storage.web_page_token(guild_id)
        if action is None:
            if current is None:
                await reply(interaction, "This server's page is off. `/coach web action:on` makes one: a leaderboard, "
                                         "current streaks, a check-in heatmap and a wall of finished tracks.")
            else:
                await reply(interaction, f"This server's page is on: {self.page_url(current)}")
            return
        if action == "off":
            if not await storage.drop_web_page(guild_id):
                await reply(interaction, "The page is already off; there's nothing to take down.")
                return
            self.forget_page(guild_id)
            await reply(interaction, "Done: the page is down, and its address now leads nowhere. "
                                     "`/coach web action:on` brings it back with a fresh link.")
            return
        if self.server is None:
            raise NotFound(NOT_RUNNING)
        if action == "on" and current is not None:
            await reply(interaction, f"The page is already on: {self.page_url(current)}\n"
                                     "`/coach web action:new-link` replaces that address if it went too far.")
            return
        token = webpage.new_token()
        await storage.set_web_page(guild_id, token, self.bot.clock.now())
        self.forget_page(guild_id)
        url = self.page_url(token)
        if action == "new-link" and current is not None:
            text = f"New address: {url}\nThe old link no longer works."
        else:
            text = (f"The page is up: {url}\nAnyone with the link can see the leaderboard, current streaks, the "
                    "check-in heatmap and finished tracks. Members can stay off it with `/me public off`.")
        await reply(interaction, text)

    # ------------------------------------------------------------------ /me public (from cogs/me.py)

    async def me_public(self, interaction: discord.Interaction, on: bool) -> None:
        assert interaction.guild_id is not None
        guild_id, user_id = interaction.guild_id, interaction.user.id
        await self.storage.touch_member(guild_id, user_id, member_name(interaction.user), self.bot.clock.now())
        await self.storage.set_public(guild_id, user_id, on)
        self.forget_page(guild_id)
        await reply(interaction, "Done: you can appear on this server's page again: leaderboard, streaks and, "
                                 "if you celebrate them, your finished tracks." if on else
                    "Done: you're off this server's page: no name on the leaderboard, streaks or finished-tracks "
                    "wall. Your points, streak and Discord leaderboard place stay as they are.")


async def setup(bot: BounceBot) -> None:
    await bot.add_cog(Web(bot))
