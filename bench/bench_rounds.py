"""10,000 servers due in the same minute, against a loopback Discord enforcing 50 requests/s.

Usage: python bench/bench_rounds.py [--servers 10000] [--budget 40] [--in-process] [--repeat N]
Targets: longest event-loop stall <= 100 ms; total time <= 1.1 x the floor set by the send budget
(servers / budget seconds); zero duplicate rounds; zero 429s from the global limit. --repeat N runs it N times in
a row (a fresh stand-in and bot each time) and ends with one line of figures per run.

By default the loopback Discord runs in a child process, as Discord runs elsewhere; with --in-process it shares
the bot's event loop and its bookkeeping counts towards the stalls too.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import (
    FakeDiscord,
    FixedClock,
    fan_out,
    launch_fake,
    line,
    run_repeated,
    serve_fake,
    start_bot,
    stop_bot,
)

from coach.clock import to_unix
from coach.storage import Storage

MESSAGES = "/channels/{channel_id}/messages"
MINUTE = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)  # 20:00 in Berlin
HERE = str(Path(__file__).resolve())


def build_world(fake: FakeDiscord, servers: int) -> dict[str, Any]:
    channels = []
    for i in range(servers):
        gid = fake.add_guild(f"Studio {i}")
        channels.append((gid, fake.add_channel(gid, "check-ins")))
    return {"channels": channels, "token": fake.token, "api_base": fake.api_base, "gateway_url": fake.gateway_url}


def stats(fake: FakeDiscord, since: int) -> dict[str, Any]:
    posts = [r for r in fake.requests[since:] if r.method == "POST" and r.route == MESSAGES]
    per_channel = collections.Counter(r.path for r in posts if r.status == 200)
    return {"delivered": len(per_channel), "duplicates": sum(c - 1 for c in per_channel.values() if c > 1),
            "global_429s": fake.global_429s, "busiest_second": fake.max_per_second(),
            "busiest_window": fake.busiest_window(),
            "violations": len(fake.violations)}


async def fill_database(db: Path, channels: list[list[int]]) -> None:
    store = await Storage.open(db)
    async with store.transaction() as tx:
        await tx.executemany(
            "INSERT INTO guild_settings (guild_id, channel_id, time_local, timezone, days, paused, next_due, "
            "created_at, updated_at) VALUES (?, ?, '20:00', 'Europe/Berlin', 127, 0, ?, 0, 0)",
            [(gid, cid, to_unix(MINUTE) + i % 60) for i, (gid, cid) in enumerate(channels)],
        )
    await store.close()


async def main(servers: int, budget: float, in_process: bool) -> tuple[int, str]:
    logging.basicConfig(level=logging.ERROR)
    fake = await launch_fake(in_process, lambda f: build_world(f, servers), stats, HERE, "--servers", str(servers))
    world = fake.world
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite3"
        await fill_database(db, world["channels"])
        clock = FixedClock(MINUTE - timedelta(hours=1))  # nothing due while connecting
        bot = await start_bot(fake, db, clock, send_budget_per_second=budget)  # type: ignore[arg-type]
        try:
            elapsed, monitor = await fan_out(bot, clock, MINUTE + timedelta(seconds=60), lambda: fake.call("mark"))
            figures = await fake.call("stats")
            pacer = bot.pacer.take_counts()
            rows = await bot.storage.fetchone("SELECT COUNT(*), COUNT(DISTINCT guild_id) FROM rounds "
                                              "WHERE state = 'posted'")
        finally:
            await stop_bot(bot)
            await fake.stop()
    floor = servers / budget
    duplicates = figures["duplicates"] + (rows[0] - rows[1])
    where = "in this process" if in_process else "in its own process"
    print(f"{servers:,} servers due in the same minute; send budget {budget:g}/s; "
          f"loopback Discord ({where}) limit 50/s")
    print(f"rounds posted: {figures['delivered']:,} of {servers:,}")
    print(line("longest event-loop stall", monitor.worst * 1000, "ms", "<= 100 ms", monitor.worst <= 0.1))
    print(line("total time", elapsed, "s", f"<= {1.1 * floor:,.1f} s (1.1 x floor {floor:,.1f} s)",
               elapsed <= 1.1 * floor))
    print(line("duplicates", duplicates, "", "0", duplicates == 0))
    print(line("global 429s", figures["global_429s"], "", "0", figures["global_429s"] == 0))
    print(f"busiest sliding second: {figures['busiest_window']} requests (calendar second: "
          f"{figures['busiest_second']}); contract violations: {figures['violations']}")
    print("the bot's pacer counted: " + ", ".join(f"{k} {v:,}" for k, v in sorted(pacer.items())))
    if monitor.stalls:
        print(monitor.describe())
    ok = (monitor.worst <= 0.1 and elapsed <= 1.1 * floor and duplicates == 0 and figures["global_429s"] == 0
          and figures["delivered"] == servers and figures["violations"] == 0)
    row = (f"stall {monitor.worst * 1000:.0f} ms (<= 100), time {elapsed:.1f} s (<= {1.1 * floor:.1f}), "
           f"global 429s {figures['global_429s']} (0), duplicates {duplicates} (0), "
           f"busiest sliding second {figures['busiest_window']} (<= 50)")
    return (0 if ok else 1), row


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--budget", type=float, default=40.0)
    parser.add_argument("--in-process", action="store_true", help="run the loopback Discord in the bot's loop")
    parser.add_argument("--repeat", type=int, default=1, help="run N times in a row, then one summary line per run")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        asyncio.run(serve_fake(lambda fake: build_world(fake, args.servers), stats))
        raise SystemExit(0)
    if args.budget <= 0 or args.repeat < 1:
        parser.error("--budget must be positive and --repeat at least 1")
    raise SystemExit(run_repeated(lambda: main(args.servers, args.budget, args.in_process), args.repeat))
