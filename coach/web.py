"""The web server inside the bot process (aiohttp): /healthz, /metrics, and each server's page.

No discord import: what only the bot knows (gateway state, servers, the last scheduler pass) comes through
the small `Host` protocol, which cogs/web.py implements.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from coach import metrics, webpage
from coach.clock import Clock, to_unix
from coach.storage import Storage

log = logging.getLogger("bounce.web")
DB_TIMEOUT = 2.0          # seconds the database gets to answer a health check
PAGE_CACHE_SECONDS = 30.0  # a page is rebuilt at most this often per server and tab
PAGE_CACHE_MAX = 512
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class Shard:
    connected: bool
    latency: float | None  # seconds; None before the first heartbeat


class Host(Protocol):
    """What the web server asks the bot."""

    storage: Storage
    clock: Clock
    tick_seconds: float
    started_at: float                    # time.monotonic() when the bot started

    def shards(self) -> Mapping[int, Shard]: ...
    def server_count(self) -> int: ...
    def server_name(self, guild_id: int) -> str | None: ...
    def last_tick_at(self) -> float | None: ...  # time.monotonic() at the end of the last scheduler pass


async def health(host: Host) -> tuple[bool, dict[str, object]]:
    """(healthy, report). Healthy: every shard's gateway connected, the database answering, and a scheduler pass
    within the last 2 × TICK_SECONDS."""
    problems: list[str] = []
    shards = host.shards()
    if not shards:
        problems.append("gateway: not connected yet")
    for shard_id, shard in sorted(shards.items()):
        if not shard.connected:
            problems.append(f"gateway: shard {shard_id} is disconnected")
    database = "ok"
    try:
        await asyncio.wait_for(host.storage.ping(), DB_TIMEOUT)
    except TimeoutError:
        database = f"no answer within {DB_TIMEOUT:g} s"
    except Exception as exc:  # what is wrong, in one line
        database = str(exc) or type(exc).__name__
    if database != "ok":
        problems.append(f"database: {database}")
    limit = 2 * host.tick_seconds
    last = host.last_tick_at()
    now = time.monotonic()
    age = None if last is None else now - last
    if age is None:
        if now - host.started_at >= limit:
            problems.append(f"scheduler: no pass since start ({now - host.started_at:.0f} s ago)")
    elif age >= limit:
        problems.append(f"scheduler: last pass {age:.1f} s ago (limit {limit:g} s)")
    report: dict[str, object] = {
        "status": "ok" if not problems else "unhealthy",
        "gateway": {str(k): "connected" if v.connected else "disconnected" for k, v in sorted(shards.items())},
        "database": database,
        "last_tick_seconds_ago": None if age is None else round(age, 1),
        "servers": host.server_count(),
    }
    if problems:
        report["problems"] = problems
    return not problems, report


async def refresh_gauges(host: Host) -> None:
    """Set the gauges that describe the live process, just before a scrape."""
    metrics.SERVERS.set(host.server_count())
    for shard_id, shard in host.shards().items():
        metrics.GATEWAY_CONNECTED.labels(str(shard_id)).set(1 if shard.connected else 0)
        if shard.latency is not None and shard.latency == shard.latency and shard.latency != float("inf"):
            metrics.GATEWAY_LATENCY.labels(str(shard_id)).set(shard.latency)
    last = host.last_tick_at()
    metrics.LAST_TICK_AGE.set(-1 if last is None else time.monotonic() - last)
    now = to_unix(host.clock.now())
    try:
        oldest = await asyncio.wait_for(host.storage.overdue_since(now), DB_TIMEOUT)
    except Exception:  # the database is down: /healthz says so; keep the last figure
        return
    metrics.SCHEDULER_LAG.set(0 if oldest is None else max(0, now - oldest))


class WebServer:
    """The aiohttp application and its runner. `start()` binds, `stop()` closes."""

    def __init__(self, host: Host, *, bind: str, port: int) -> None:
        self.host, self.bind, self.port = host, bind, port
        self._runner: web.AppRunner | None = None
        self._cache: dict[tuple[int, str], tuple[float, str]] = {}
        self.cache_seconds = PAGE_CACHE_SECONDS
        self.app = web.Application(middlewares=[_security_headers])
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/metrics", self.metrics)
        self.app.router.add_get("/s/{token}", self.page)
        self.app.router.add_get("/static/page.css", self.stylesheet)
        self._css = (webpage.STATIC_DIR / "page.css").read_bytes()

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, self.port)
        await site.start()
        if self._runner.addresses:  # the real port when 0 was asked for
            self.port = self._runner.addresses[0][1]
        log.info("web server listening on %s:%d", self.bind, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def forget(self, guild_id: int) -> None:
        """Drop a server's cached page (its page was switched off or got a new link)."""
        for key in [k for k in self._cache if k[0] == guild_id]:
            del self._cache[key]

    # ------------------------------------------------------------------ handlers

    async def healthz(self, request: web.Request) -> web.Response:
        ok, report = await health(self.host)
        return web.Response(status=200 if ok else 503, text=json.dumps(report), content_type="application/json",
                            headers={"Cache-Control": "no-store"})

    async def metrics(self, request: web.Request) -> web.Response:
        await refresh_gauges(self.host)
        return web.Response(body=metrics.render(), headers={"Content-Type": metrics.CONTENT_TYPE,
                                                            "Cache-Control": "no-store"})

    async def stylesheet(self, request: web.Request) -> web.Response:
        return web.Response(body=self._css, content_type="text/css", charset="utf-8",
                            headers={"Cache-Control": "public, max-age=3600"})

    async def page(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        guild_id = await self.host.storage.web_page_guild(token) if webpage.looks_like_token(token) else None
        if guild_id is None:
            return web.Response(status=404, text=webpage.render_not_found(), content_type="text/html",
                                charset="utf-8", headers={"Cache-Control": "no-store"})
        period = request.query.get("period", "season")
        period = period if period in webpage.TAB_LABELS else "season"
        html = await self.page_html(guild_id, period)
        metrics.PAGE_VIEWS.inc()
        return web.Response(text=html, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    async def page_html(self, guild_id: int, period: str) -> str:
        """The page's HTML, from the cache when it is fresh (the database is shared with the bot's work)."""
        key = (guild_id, period)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        page = await webpage.build_page(self.host.storage, guild_id=guild_id,
                                        server_name=self.host.server_name(guild_id), period=period,
                                        now=self.host.clock.now())
        html = webpage.render_page(page)
        if self.cache_seconds > 0:
            if len(self._cache) >= PAGE_CACHE_MAX:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                if len(self._cache) >= PAGE_CACHE_MAX:
                    self._cache.clear()
            self._cache[key] = (now + self.cache_seconds, html)
        return html


@web.middleware
async def _security_headers(request: web.Request, handler):  # noqa: ANN001, ANN202
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # aiohttp's own 404/405 for unknown paths: plain, no framework text
        response = web.Response(status=exc.status, text=f"{exc.status} {exc.reason}\n")
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
