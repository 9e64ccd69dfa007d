"""Shared benchmark plumbing: a loopback Discord, a real BounceBot against it, an event-loop stall monitor."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot import BounceBot  # noqa: E402
from coach.clock import FixedClock  # noqa: E402
from coach.settings import Settings  # noqa: E402
from tests.fakediscord.fixtures import run_client, stop_client  # noqa: E402
from tests.fakediscord.server import FakeDiscord  # noqa: E402


class StallMonitor:
    """Sleeps `interval` in a loop and records how late it wakes up: the longest event-loop stall."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.worst = 0.0
        self.stalls: list[tuple[float, float]] = []  # (seconds since start, stall) for stalls > 50 ms
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            stall = loop.time() - before - self.interval
            self.worst = max(self.worst, stall)
            if stall > 0.05:
                self.stalls.append((before - t0, stall))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def stop(self) -> None:
        if self._task:
            self._task.cancel()

    def longest(self, count: int = 5) -> list[tuple[float, float]]:
        """The `count` longest stalls over 50 ms: (seconds since start, stall)."""
        return sorted(self.stalls, key=lambda s: -s[1])[:count]

    def describe(self) -> str:
        return "longest stalls (at s: ms): " + ", ".join(f"{at:.1f}: {ms * 1000:.0f}" for at, ms in self.longest())


async def fan_out(bot: BounceBot, clock: FixedClock, at: Any,
                  before: Callable[[], Any] | None = None) -> tuple[float, StallMonitor]:
    """The measured part of a fan-out benchmark: move the clock to `at`, (await `before()`, e.g. the stand-in's
    mark), then one tick to its end (everything due sent) under a stall monitor, then a second tick, which must
    send nothing. Returns the first tick's seconds and the monitor."""
    monitor = StallMonitor()
    clock.set(at)
    if before is not None:
        await before()
    monitor.start()
    started = time.perf_counter()
    await bot.tick()
    elapsed = time.perf_counter() - started
    monitor.stop()
    await bot.tick()
    return elapsed, monitor


async def recommended_shards(fake: FakeDiscord) -> int:
    """Discord's recommended shard count (GET /gateway/bot: one per 1,000 servers)."""
    async with aiohttp.ClientSession() as http, http.get(
            f"{fake.api_base}/gateway/bot", headers={"Authorization": f"Bot {fake.token}"}) as answer:
        return int((await answer.json())["shards"])


async def start_bot(fake: FakeDiscord, db: Path, clock: FixedClock, **settings: object) -> BounceBot:
    """A bot over every shard the stand-in recommends (Discord refuses more than 2,500 servers on one)."""
    values: dict[str, object] = {"discord_token": fake.token, "database_url": f"sqlite:///{db}",
                                 "discord_api_base": fake.api_base, "discord_gateway_url": fake.gateway_url,
                                 "log_level": "WARNING"}
    values.update(settings)
    if "shard_count" not in values:
        values["shard_count"] = await recommended_shards(fake)
    bot = BounceBot(Settings(_env_file=None, **values), clock=clock, rng=random.Random(1),  # type: ignore[call-arg]
                    run_scheduler=False, guild_ready_timeout=0.05, identify_spacing=0)
    bot._bench_task = await run_client(fake, bot, timeout=600)  # type: ignore[attr-defined]
    if bot.catch_up_task is not None:
        await bot.catch_up_task
    return bot


async def stop_bot(bot: BounceBot) -> None:
    await stop_client(bot, bot._bench_task)  # type: ignore[attr-defined]


async def serve_fake(build_world: Callable[[FakeDiscord], dict[str, Any]],
                     stats: Callable[[FakeDiscord, int], dict[str, Any]]) -> None:
    """Child process: run the loopback Discord; answer one-line commands on stdin with one JSON line.

    Discord runs elsewhere in real life: with the stand-in in its own process, the stall figure is the bot's own
    event loop, not the stand-in's bookkeeping of every request and message.
    """
    fake = FakeDiscord(global_rate_limit=50)
    await fake.start()
    world = build_world(fake)
    gc.freeze()  # the stand-in's own GC pauses would bunch requests up and count them as a burst
    print(json.dumps(world), flush=True)
    mark = 0
    while True:
        command = (await asyncio.to_thread(sys.stdin.readline)).strip()
        answer: dict[str, Any] = {}
        if command == "ready":
            await fake.ready.wait()
        elif command == "mark":
            mark = len(fake.requests)
        elif command == "stats":
            answer = stats(fake, mark)
        elif command.startswith("probe "):
            answer = await probe(fake, **json.loads(command.removeprefix("probe ")))
        else:  # "stop" or the parent went away
            await fake.stop()
            return
        print(json.dumps(answer), flush=True)


async def probe(fake: FakeDiscord, guild: int, channel: int, users: list[int], command: str, options: dict[str, Any],
                count: int, rate: float) -> dict[str, Any]:
    """Members use a slash command `count` times at `rate` per second, as Discord users would; each round trip
    (INTERACTION_CREATE sent -> the bot's callback received) is timed here, on Discord's side."""
    samples: list[float] = []
    interval = 1.0 / rate
    for i in range(count):
        start = time.perf_counter()
        handle = await fake.slash(guild, channel, users[i % len(users)], command, options)
        await handle.response()
        samples.append((time.perf_counter() - start) * 1000)
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - start)))
    return {"n": len(samples), "p50": percentile(samples, 50), "p99": percentile(samples, 99),
            "max": max(samples), "slow": [(i, round(v)) for i, v in enumerate(samples) if v > 50][:20], "posts": sum(1 for r in fake.requests if r.method == "POST"
                                             and r.route == "/channels/{channel_id}/messages")}


class RemoteFake:
    """The parent's handle on the child's loopback Discord: what run_client needs, plus commands."""

    def __init__(self, proc: asyncio.subprocess.Process, world: dict[str, Any]) -> None:
        self.proc, self.world = proc, world
        self.token, self.api_base, self.gateway_url = world["token"], world["api_base"], world["gateway_url"]
        self.ready = asyncio.Event()
        self._ready_task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, script: str, *args: str) -> RemoteFake:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, script, "--serve-fake", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT), limit=2**26)
        world = json.loads(await proc.stdout.readline())  # type: ignore[union-attr]
        fake = cls(proc, world)
        fake._ready_task = asyncio.create_task(fake._wait_ready())
        return fake

    async def _wait_ready(self) -> None:
        await self.call("ready")
        self.ready.set()

    async def call(self, command: str) -> dict[str, Any]:
        self.proc.stdin.write(f"{command}\n".encode())  # type: ignore[union-attr]
        await self.proc.stdin.drain()  # type: ignore[union-attr]
        return json.loads(await self.proc.stdout.readline())  # type: ignore[union-attr]

    async def stop(self) -> None:
        self.proc.stdin.write(b"stop\n")  # type: ignore[union-attr]
        await self.proc.stdin.drain()  # type: ignore[union-attr]
        await self.proc.wait()


class LocalFake:
    """The same handle as RemoteFake for a stand-in running in this process (`--in-process`)."""

    def __init__(self, fake: FakeDiscord, world: dict[str, Any],
                 stats: Callable[[FakeDiscord, int], dict[str, Any]]) -> None:
        self.fake, self.world, self._stats, self._mark = fake, world, stats, 0

    def __getattr__(self, name: str) -> Any:  # token, api_base, gateway_url, ready… for run_client
        return getattr(self.fake, name)

    async def call(self, command: str) -> dict[str, Any]:
        if command == "mark":
            self._mark = len(self.fake.requests)
            return {}
        return self._stats(self.fake, self._mark)

    async def stop(self) -> None:
        await self.fake.stop()


async def launch_fake(in_process: bool, build_world: Callable[[FakeDiscord], dict[str, Any]],
                      stats: Callable[[FakeDiscord, int], dict[str, Any]], script: str,
                      *args: str) -> LocalFake | RemoteFake:
    """The loopback Discord for a fan-out benchmark: in a child process (default, as Discord runs elsewhere)
    or in this one. Either answers `call("mark")`, `call("stats")` and `stop()`."""
    if not in_process:
        return await RemoteFake.start(script, *args)
    fake = FakeDiscord(global_rate_limit=50)
    await fake.start()
    return LocalFake(fake, build_world(fake), stats)


def run_repeated(run: Callable[[], Any], times: int) -> int:
    """Run a benchmark `times` times in a row, each from a fresh stand-in and bot. `run()` returns a coroutine
    giving (exit status, one-line summary); each run prints its own figures, then every run's summary line."""
    rows, worst = [], 0
    for i in range(times):
        if times > 1:
            print(f"=== run {i + 1} of {times}", flush=True)
        code, row = asyncio.run(run())
        rows.append(f"run {i + 1}: {row}  {verdict(code == 0)}")
        worst = max(worst, code)
    if times > 1:
        print(f"=== {times} runs", flush=True)
        print("\n".join(rows), flush=True)
    return worst


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def line(name: str, value: float, unit: str, target: str, ok: bool) -> str:
    return f"{name}: {value:,.1f} {unit} (target {target})  {verdict(ok)}"


__all__ = ["ROOT", "FakeDiscord", "FixedClock", "LocalFake", "RemoteFake", "StallMonitor", "launch_fake", "line",
           "percentile", "run_repeated", "serve_fake", "start_bot", "statistics", "stop_bot", "time"]


PG_SH = ROOT / "scripts" / "pg.sh"


@contextlib.asynccontextmanager
async def postgres_database(admin_url: str | None, settings: list[str]) -> AsyncIterator[str]:
    """A fresh, empty database on the server of `admin_url` (or on a throwaway server from scripts/pg.sh when
    None), with these `name=value` settings for its sessions (ALTER DATABASE … SET), dropped afterwards; yields
    its URL."""
    import asyncpg  # only with --pg / --postgres

    state, env = None, dict(os.environ)
    if admin_url is None:
        state = tempfile.mkdtemp(prefix="bounce-bench-pg-")
        env["BOUNCE_PG_DIR"] = state
        started = await asyncio.to_thread(subprocess.run, ["bash", str(PG_SH), "start"], env=env, check=True,
                                          stdout=subprocess.PIPE, text=True)
        admin_url = started.stdout.strip()
    try:
        name = f"bounce_bench_{secrets.token_hex(4)}"
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
            for setting in settings:
                key, _, value = setting.partition("=")
                await conn.execute(f'ALTER DATABASE "{name}" SET {key.strip()} = {quote(value.strip())}')
        finally:
            await conn.close()
        try:
            yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
        finally:
            conn = await asyncpg.connect(admin_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()
    finally:
        if state is not None:
            await asyncio.to_thread(subprocess.run, ["bash", str(PG_SH), "stop"], env=env, check=False)
            shutil.rmtree(state, ignore_errors=True)


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
