"""Bounce: entry point. Read settings, open storage, build the Bot, load cogs, start the scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import random
import signal
import sqlite3
import sys
import time
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

import aiohttp
import discord
import yarl
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from discord.ext import commands

from coach import metrics
from coach.clock import Clock, SystemClock
from coach.lessons import LessonError, LessonLibrary, load_lessons
from coach.pacer import Pacer, Slot, pacing_kind
from coach.prompts import PromptError, Prompts, load_prompts
from coach.settings import Settings, SettingsError, load_settings
from coach.shards import Shards, shard_of
from coach.storage import DatabaseTooNew, Storage, StorageError
from cogs.outbox import Outbox

log = logging.getLogger("bounce")

COGS = ("cogs.errors", "cogs.admin", "cogs.rounds", "cogs.projects", "cogs.me", "cogs.dm", "cogs.dm_replies",
        "cogs.nudges", "cogs.lessons", "cogs.lesson_buttons", "cogs.lesson_reading", "cogs.board", "cogs.recap",
        "cogs.servers", "cogs.rewards", "cogs.web")
INTENTS = discord.Intents.none()
INTENTS.guilds = True           # channels, roles, the bot's own member: to check where it can post
INTENTS.dm_messages = True      # plain-text check-in replies in DMs (no message-content intent needed there)


class _NoVoiceWarning(logging.Filter):
    """Bounce never joins voice: discord.py's warnings that voice libraries are missing say nothing useful."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "voice will NOT be supported" not in record.getMessage()


NO_VOICE_WARNING = _NoVoiceWarning()
RETRY_MAX_SECONDS = 60.0  # Discord unreachable at start: retries back off up to this far apart
SHARDING_ADVICE = {
    4010: "it does not accept these shards; SHARD_COUNT must be the same in every process, SHARD_IDS below it.",
    4011: "the bot is in too many servers for that many shards (2,500 per shard at most); raise SHARD_COUNT "
          "(Discord recommends one shard per 1,000 servers) and give every process its SHARD_IDS.",
}
IDENTIFY_SPACING = 5.0    # seconds between two IDENTIFYs of one process's shards (Discord's max_concurrency 1)


UNPACED_PATHS = ("/interactions/", "/webhooks/")  # exempt from Discord's global limit
_request_slot: ContextVar[Slot | None] = ContextVar("bounce_request_slot", default=None)


def pacing_trace(pacer: Pacer) -> aiohttp.TraceConfig:
    """Hooks on every HTTP attempt of discord.py's session: a retry (or a bot request that bypassed
    `http.request`) takes its own slot before it goes out; every answer is counted and a 429 backs everyone off."""
    trace = aiohttp.TraceConfig()

    async def on_start(_session: Any, ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
        ctx.slot = None
        if not params.headers.get("Authorization", "").startswith("Bot ") or any(
                p in params.url.path for p in UNPACED_PATHS):
            return
        slot = _request_slot.get()
        if slot is None or not slot.open:  # a retry, or a request made around http.request
            slot = await pacer.acquire(pacing_kind.get(), urgent=slot is not None)
        else:
            await pacer.until_resumed()  # granted before a 429 came back: it waits out the back-off too
        slot.sent = True
        ctx.slot = slot

    async def on_end(_session: Any, ctx: Any, params: aiohttp.TraceRequestEndParams) -> None:
        if params.response.status != 101:  # not the gateway's websocket upgrade
            pacer.observe(params.response.status, params.response.headers)
        if ctx.slot is not None:
            pacer.done(ctx.slot)

    async def on_exception(_session: Any, ctx: Any, _params: aiohttp.TraceRequestExceptionParams) -> None:
        if getattr(ctx, "slot", None) is not None:
            pacer.done(ctx.slot)

    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    trace.on_request_exception.append(on_exception)
    return trace


def apply_endpoints(settings: Settings) -> None:
    """Point discord.py at an operator's REST proxy and gateway proxy (the tests use the same two settings)."""
    if settings.discord_api_base:
        discord.http.Route.BASE = settings.discord_api_base
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


class BounceBot(commands.AutoShardedBot):
    """Runs the shards SHARD_IDS of SHARD_COUNT (all of one shard by default) and answers only their servers.

    `sharding` says which servers this process serves (`coach.shards.Shards`: count, ids, owns); discord.py's
    own `shards` stays what it is (the live connections, ShardInfo by id)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        prompts: Prompts | None = None,
        lessons: LessonLibrary | None = None,
        rng: random.Random | None = None,
        run_scheduler: bool = True,
        identify_spacing: float = IDENTIFY_SPACING,
        **options: Any,
    ) -> None:
        options.setdefault("allowed_mentions", discord.AllowedMentions.none())
        options.setdefault("max_messages", None)  # no message cache: buttons carry their state in custom_ids
        logging.getLogger("discord.client").addFilter(NO_VOICE_WARNING)
        self.sharding: Shards = settings.shards
        # No text commands (see on_message); when_mentioned also keeps discord.py from warning about the
        # message-content intent.
        super().__init__(command_prefix=commands.when_mentioned, intents=INTENTS, help_command=None,
                         shard_count=self.sharding.count, shard_ids=list(self.sharding.ids), **options)
        self.identify_spacing = identify_spacing
        self.unowned_interactions = 0
        self._guard_interactions()
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.prompts = prompts or load_prompts(settings.prompts_dir)
        self.lessons = lessons or load_lessons(settings.lessons_dir)
        self.rng = rng or random.Random()
        self.pacer = Pacer(self.sharding.share(settings.send_budget_per_second))
        self._pace_every_request()
        self.grace = timedelta(hours=settings.grace_hours)
        self.run_scheduler = run_scheduler
        self.scheduler: AsyncIOScheduler | None = None
        self.storage: Storage = None  # type: ignore[assignment]  # opened in setup_hook
        self.synced = False
        self._tick_lock = asyncio.Lock()
        self.catch_up_task: asyncio.Task[None] | None = None
        self.last_tick_at: float | None = None  # time.monotonic() at the end of the last tick (for /healthz)
        self.outbox = Outbox(self)

    def _guard_interactions(self) -> None:
        """Answer only interactions of servers this process serves (a DM: shard 0's). Discord sends each shard
        only its servers' events, so this never fires unless something upstream routes wrongly; answering there
        would race the process that owns the server."""
        parsers = self._connection.parsers
        parse = parsers["INTERACTION_CREATE"]

        def guarded(data: dict[str, Any]) -> None:
            raw = data.get("guild_id")
            guild_id = int(raw) if raw else None
            if self.sharding.owns(guild_id):
                parse(data)
                return
            self.unowned_interactions += 1
            (log.warning if self.unowned_interactions == 1 else log.debug)(
                "ignored an interaction from server %s: it belongs to shard %s, this process runs %s",
                guild_id, shard_of(guild_id or 0, self.sharding.count), self.sharding.describe())

        parsers["INTERACTION_CREATE"] = guarded

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Discord takes one IDENTIFY per 5 s from a bot (max_concurrency 1): every one after the first waits."""
        if not initial and self.identify_spacing > 0:
            await asyncio.sleep(self.identify_spacing)

    def log_budget(self) -> None:
        budget, shards = self.settings.send_budget_per_second, self.sharding
        if not budget:
            log.info("local pacing off (SEND_BUDGET_PER_SECOND=0): a REST proxy at DISCORD_API_BASE paces; %s",
                     shards.describe())
        elif shards.every_shard:
            log.info("sending at most %g requests/s; %s", self.pacer.rate, shards.describe())
        else:
            log.info("sending at most %g requests/s: %s, so %d/%d of SEND_BUDGET_PER_SECOND=%g",
                     self.pacer.rate, shards.describe(), len(shards.ids), shards.count, budget)

    def _pace_every_request(self) -> None:
        """Every bot-authenticated REST request waits for the global send budget: channel posts, DMs, edits,
        start-up calls alike, in the sender's kind (`coach.pacer.paced_as`). The slot is taken before discord.py's
        own bucket and retry handling and given back when the answer is in; each retry takes a new slot. An
        aiohttp trace sees every attempt on the wire: it counts the answers (401/403/429) and makes every sender
        back off on a 429. Interaction callbacks and webhook follow-ups are exempt from Discord's global limit,
        so answering a member is never queued behind a fan-out."""
        pacer, send = self.pacer, self.http.request

        async def paced(route: discord.http.Route, **kwargs: Any) -> Any:
            if route.path.startswith(UNPACED_PATHS):
                return await send(route, **kwargs)
            with metrics.SEND_QUEUE.track_inprogress():
                slot = await pacer.acquire(pacing_kind.get())
            token = _request_slot.set(slot)
            answered = False
            try:
                result = await send(route, **kwargs)
                answered = True
                return result
            except discord.HTTPException:
                answered = True
                raise
            finally:
                _request_slot.reset(token)
                # A no-op once the trace closed it; freed at once if it never went out.
                pacer.done(slot, sent=answered or slot.sent)

        self.http.request = paced  # type: ignore[method-assign]
        self.http.http_trace = pacing_trace(pacer)  # read when discord.py opens its session (login)

    async def setup_hook(self) -> None:
        self.log_budget()
        if self.storage is None:
            self.storage = await Storage.open(self.settings.database)
        # Scheduled work (due schedules, outbox leases, purges) only for the servers of this process's shards.
        self.storage.only_shards(self.sharding.count, self.sharding.ids)
        for name in COGS:
            await self.load_extension(name)
        await self.outbox.start()
        await self.sync_commands_if_changed()
        # Catch up on what fell due while we were down, as soon as the guild cache is filled.
        self.catch_up_task = asyncio.create_task(self.tick(), name="bounce-catch-up")
        if self.run_scheduler:
            self.scheduler = AsyncIOScheduler(timezone="UTC")
            self.scheduler.add_job(self.tick, "interval", seconds=self.settings.tick_seconds, id="tick",
                                   max_instances=1, coalesce=True, kwargs={"wait": False})
            self.scheduler.start()

    async def on_message(self, message: discord.Message, /) -> None:
        """No text commands: a DM such as "@Bounce done" is a check-in reply (cogs/dm_replies.py), never an
        unknown command."""

    async def on_ready(self) -> None:
        # The guild cache is built: move it out of the garbage collector's way, so full collections stay short
        # (measured: a 10,000-server cache made gen-2 collections stall the event loop for several hundred ms).
        gc.freeze()
        log.info("ready as %s in %d servers (%s)", self.user, len(self.guilds), self.sharding.describe())

    def guild_channel(self, guild_id: int, channel_id: int) -> discord.abc.GuildChannel | None:
        """A channel by two dict lookups (Client.get_channel scans every guild: slow with thousands)."""
        guild = self.get_guild(guild_id)
        return guild.get_channel(channel_id) if guild is not None else None

    async def tick(self, *, wait: bool = True) -> None:
        """One pass of the periodic job: due schedules of every kind go into the outbox, whose lanes post them
        in the background; other periodic work (purges) runs. `wait` returns only when every ready post is
        handled (tests, catch-up at start); the scheduler's job never waits, so a long fan-out of one kind
        never delays the next tick of another."""
        await self.wait_until_ready()
        async with self._tick_lock:
            reports = await self.outbox.take_due(self.clock.now())
            self.outbox.wake()
            for cog in list(self.cogs.values()):
                run = getattr(cog, "run_due", None)
                if run is not None:
                    try:
                        await run()
                    except Exception:
                        log.exception("scheduled work in %s failed", type(cog).__name__)
        if wait:
            await self.outbox.drain()
        line = self.outbox.summary(reports)
        sent = self.pacer.take_counts()
        invalid = {k: sent[k] for k in ("invalid", "401", "403", "429", "global_429") if sent.get(k)}
        if invalid:  # Discord bans bots with too many of these (10,000 per 10 minutes): worth a line every time
            line = "; ".join(filter(None, [line, "discord answered " + ", ".join(
                f"{k} {v}" for k, v in invalid.items())]))
        if line:
            log.info("tick: %s", line)
        self.last_tick_at = time.monotonic()

    def command_payload(self) -> tuple[discord.Object | None, list[dict[str, Any]]]:
        guild = discord.Object(self.settings.dev_guild_id) if self.settings.dev_guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        commands_ = self.tree.get_commands(guild=guild)
        return guild, sorted((c.to_dict(self.tree) for c in commands_), key=lambda d: d["name"])

    async def sync_commands_if_changed(self) -> bool:
        """Sync only when the command set changed since the last sync (Discord's daily create quota)."""
        guild, payload = self.command_payload()
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        key = f"command_hash:{guild.id if guild else 'global'}"
        if await self.storage.get_meta(key) == digest:
            log.info("application commands unchanged; not syncing")
            return False
        await self.tree.sync(guild=guild)
        await self.storage.set_meta(key, digest)
        self.synced = True
        log.info("synced %d application commands (%s)", len(payload), f"guild {guild.id}" if guild else "global")
        return True

    async def close(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.catch_up_task is not None and not self.catch_up_task.done():
            self.catch_up_task.cancel()
        await self.outbox.close()
        if not hasattr(self, "_AutoShardedClient__queue"):
            # Closed before login (Discord unreachable at start): AutoShardedClient.close() posts to a queue that
            # only login() creates.
            self._AutoShardedClient__queue: asyncio.PriorityQueue[Any] = asyncio.PriorityQueue()
        try:
            await super().close()
        finally:
            if self.storage is not None:
                await self.storage.close()
                self.storage = None  # type: ignore[assignment]


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("discord").setLevel(max(logging.getLevelName(level), logging.INFO))
    # APScheduler logs every run of the periodic job at INFO ("Running job", "executed successfully") and a
    # WARNING for each run skipped or missed while the previous one still works: per-tick noise (the database,
    # not the scheduler, decides what is due). Its errors still show; Bounce logs what each tick did itself.
    logging.getLogger("apscheduler").setLevel(max(logging.getLevelName(level), logging.ERROR))


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"bounce: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    apply_endpoints(settings)
    try:
        bot = BounceBot(settings)
    except (PromptError, LessonError) as exc:
        print(f"bounce: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_run(bot, settings))


async def _run(bot: BounceBot, settings: Settings) -> int:
    try:  # open and migrate the database before connecting, so a bad database stops us at once
        bot.storage = await Storage.open(settings.database)
    except (DatabaseTooNew, StorageError, OSError, sqlite3.DatabaseError) as exc:
        print(f"bounce: database {settings.database_label}: {exc}", file=sys.stderr)
        return 2
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if not await wait_for_discord(str(discord.http.Route.BASE), stop):
        log.info("shutting down")
        await bot.close()
        return 0
    runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if runner in done and runner.exception() is not None:
        exc = runner.exception()
        if isinstance(exc, discord.LoginFailure):
            print("bounce: DISCORD_TOKEN was refused by Discord; check the token in .env.", file=sys.stderr)
            code = 2
        elif isinstance(exc, (DatabaseTooNew, StorageError)):
            print(f"bounce: {exc}", file=sys.stderr)
            code = 2
        elif isinstance(exc, discord.ConnectionClosed) and exc.code in (4010, 4011):
            print(f"bounce: Discord closed the gateway with {exc.code}: {SHARDING_ADVICE[exc.code]}", file=sys.stderr)
            code = 2
        elif isinstance(exc, (TimeoutError, aiohttp.ClientConnectionError, OSError)):
            log.error("lost Discord while logging in (%s); exiting so the supervisor starts me again",
                      exc.__class__.__name__)
            code = 1
        else:
            log.error("bot stopped", exc_info=exc)
            code = 1
    log.info("shutting down")
    await bot.close()
    waiter.cancel()
    if not runner.done():
        runner.cancel()
    return code


async def wait_for_discord(api_base: str, stop: asyncio.Event) -> bool:
    """Until Discord's API host takes a connection: True then, False if told to stop first.

    An unreachable Discord (network down, a REST proxy still starting) is one clear log line and retries that
    back off up to RETRY_MAX_SECONDS apart, not a traceback and an exit. Only a connection is opened (no
    request), so nothing counts against the bot's request limits."""
    url = yarl.URL(api_base)
    host, port = url.host or "discord.com", url.port or (443 if url.scheme == "https" else 80)
    delay, attempts = 1.0, 0
    while not stop.is_set():
        attempts += 1
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        except (TimeoutError, OSError) as exc:
            if attempts == 1:
                log.warning("cannot reach Discord at %s (%s); retrying, up to every %.0f s, until it answers",
                            api_base, exc.__class__.__name__, RETRY_MAX_SECONDS)
            else:
                log.debug("Discord still unreachable (attempt %d): %s", attempts, exc)
        else:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            if attempts > 1:
                log.info("Discord is reachable again after %d attempts; logging in", attempts)
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, RETRY_MAX_SECONDS)
    return False


if __name__ == "__main__":
    sys.exit(main())
