"""Shared benchmark plumbing: a loopback Discord, a real BounceBot against it, an event-loop stall monitor."""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

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


async def start_bot(fake: FakeDiscord, db: Path, clock: FixedClock, **settings: object) -> BounceBot:
    values: dict[str, object] = {"discord_token": fake.token, "database_url": f"sqlite:///{db}",
                                 "discord_api_base": fake.api_base, "discord_gateway_url": fake.gateway_url,
                                 "log_level": "WARNING"}
    values.update(settings)
    bot = BounceBot(Settings(_env_file=None, **values), clock=clock, rng=random.Random(1),  # type: ignore[call-arg]
                    run_scheduler=False, guild_ready_timeout=0.05)
    bot._bench_task = await run_client(fake, bot, timeout=600)  # type: ignore[attr-defined]
    if bot.catch_up_task is not None:
        await bot.catch_up_task
    return bot


async def stop_bot(bot: BounceBot) -> None:
    await stop_client(bot, bot._bench_task)  # type: ignore[attr-defined]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def line(name: str, value: float, unit: str, target: str, ok: bool) -> str:
    return f"{name}: {value:,.1f} {unit} (target {target})  {verdict(ok)}"


__all__ = ["ROOT", "FakeDiscord", "FixedClock", "StallMonitor", "line", "percentile", "start_bot", "statistics",
           "stop_bot", "time"]
