"""Interaction round trip: slash command in (INTERACTION_CREATE), callback out, over the loopback Discord.

Usage: python bench/bench_interactions.py [--count 1000]
Target: p99 <= 25 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import FakeDiscord, FixedClock, line, percentile, start_bot, stop_bot


async def main(count: int) -> int:
    logging.basicConfig(level=logging.WARNING)
    fake = FakeDiscord()
    await fake.start()
    guild = fake.add_guild("Bench Studio")
    channel = fake.add_channel(guild, "check-ins")
    admin = fake.add_member(guild, "admin", admin=True)
    member = fake.add_member(guild, "producer")
    with tempfile.TemporaryDirectory() as tmp:
        bot = await start_bot(fake, Path(tmp) / "bench.sqlite3", FixedClock(datetime(2026, 3, 2, 12, tzinfo=UTC)))
        try:
            h = await fake.slash(guild, channel, admin, "coach setup",
                                 {"channel": channel, "time": "20:00", "timezone": "Europe/Berlin"})
            await h.response()
            await bot.storage.create_project(guild, member, "Night Drive EP", None, bot.clock.now())
            samples = []
            for i in range(count + 50):
                start = time.perf_counter()
                handle = await fake.slash(guild, channel, member, "project list")
                await handle.response()
                if i >= 50:  # warm-up
                    samples.append((time.perf_counter() - start) * 1000)
        finally:
            await stop_bot(bot)
            await fake.stop()
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    print(f"interaction round trip over {count:,} /project list commands")
    print(line("p50", p50, "ms", "informational", True))
    print(line("p99", p99, "ms", "<= 25 ms", p99 <= 25))
    if fake.violations:
        print("contract violations:", fake.violations)
        return 1
    return 0 if p99 <= 25 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    raise SystemExit(asyncio.run(main(parser.parse_args().count)))
