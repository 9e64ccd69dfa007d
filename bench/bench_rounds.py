"""10,000 servers due in the same minute, against a loopback Discord enforcing 50 requests/s.

Usage: python bench/bench_rounds.py [--servers 10000] [--budget 40]
Targets: longest event-loop stall <= 100 ms; total time <= 1.1 x the floor set by the send budget
(servers / budget seconds); zero duplicate rounds; zero 429s from the global limit.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import FakeDiscord, FixedClock, StallMonitor, line, start_bot, stop_bot

from coach.clock import to_unix
from coach.storage import Storage


async def main(servers: int, budget: float) -> int:
    logging.basicConfig(level=logging.ERROR)
    fake = FakeDiscord(global_rate_limit=50)
    await fake.start()
    channels = {}
    for i in range(servers):
        gid = fake.add_guild(f"Studio {i}")
        channels[gid] = fake.add_channel(gid, "check-ins")
    now = datetime(2026, 3, 2, 19, 0, 10, tzinfo=UTC)
    due = to_unix(datetime(2026, 3, 2, 19, 0, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite3"
        store = await Storage.open(db)
        await store.db.executemany(
            "INSERT INTO guild_settings (guild_id, channel_id, time_local, timezone, days, paused, next_due, "
            "created_at, updated_at) VALUES (?, ?, '20:00', 'Europe/Berlin', 127, 0, ?, 0, 0)",
            [(gid, cid, due) for gid, cid in channels.items()],
        )
        await store.close()
        clock = FixedClock(datetime(2026, 3, 2, 18, 0, tzinfo=UTC))  # nothing due while connecting
        bot = await start_bot(fake, db, clock, send_budget_per_second=budget)
        monitor = StallMonitor()
        try:
            clock.set(now)
            posts_before = len(fake.requests_to("/channels/{channel_id}/messages", "POST"))
            monitor.start()
            started = time.perf_counter()
            await bot.tick()
            elapsed = time.perf_counter() - started
            monitor.stop()
            await bot.tick()  # a second pass must post nothing
            posts = fake.requests_to("/channels/{channel_id}/messages", "POST")[posts_before:]
            per_channel = collections.Counter(r.path for r in posts if r.status == 200)
            rows = await bot.storage.fetchone("SELECT COUNT(*), COUNT(DISTINCT guild_id) FROM rounds "
                                              "WHERE state = 'posted'")
        finally:
            await stop_bot(bot)
            await fake.stop()
    floor = servers / budget
    duplicates = sum(c - 1 for c in per_channel.values() if c > 1) + (rows[0] - rows[1])
    print(f"{servers:,} servers due in the same minute; send budget {budget:g}/s; Discord limit 50/s")
    print(f"rounds posted: {len(per_channel):,} of {servers:,}")
    print(line("longest event-loop stall", monitor.worst * 1000, "ms", "<= 100 ms", monitor.worst <= 0.1))
    print(line("total time", elapsed, "s", f"<= {1.1 * floor:,.1f} s (1.1 x floor {floor:,.1f} s)",
               elapsed <= 1.1 * floor))
    print(line("duplicates", duplicates, "", "0", duplicates == 0))
    print(line("global 429s", fake.global_429s, "", "0", fake.global_429s == 0))
    print(f"busiest second: {fake.max_per_second()} requests")
    if monitor.stalls:
        worst = sorted(monitor.stalls, key=lambda s: -s[1])[:5]
        print("longest stalls (at s: ms): " + ", ".join(f"{at:.1f}: {ms * 1000:.0f}" for at, ms in worst))
    ok = (monitor.worst <= 0.1 and elapsed <= 1.1 * floor and duplicates == 0 and fake.global_429s == 0
          and len(per_channel) == servers)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--budget", type=float, default=40.0)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.servers, args.budget)))
