"""Members are answered during a fan-out: /checkin round trips while 10,000 rounds are being posted.

Usage: python bench/bench_answers.py [--servers 10000] [--count 1000] [--rate 10]
Target: /checkin round trip (INTERACTION_CREATE sent -> callback received, timed on Discord's side) p99 <= 50 ms
while the outbox posts 10,000 rounds at the send budget; the longest event-loop stall is printed beside it.

The loopback Discord runs in a child process and enforces 50 requests/s; each /checkin writes the member's
answer, so answers and the fan-out's writes share the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import FakeDiscord, FixedClock, StallMonitor, launch_fake, line, serve_fake, start_bot, stop_bot
from bench_rounds import MINUTE, fill_database
from bench_rounds import build_world as rounds_world
from bench_rounds import stats as round_stats

from coach.clock import to_unix
from coach.storage import Storage

HERE = str(Path(__file__).resolve())


def build_world(fake: FakeDiscord, servers: int) -> dict[str, Any]:
    """bench_rounds' servers, plus the server whose members answer meanwhile."""
    world = rounds_world(fake, servers)
    probe = fake.add_guild("Answer Studio")
    probe_channel = fake.add_channel(probe, "check-ins")
    users = [fake.add_member(probe, f"producer {i}") for i in range(50)]
    return {**world, "probe": probe, "probe_channel": probe_channel, "users": users}


async def open_probe_round(db: Path, world: dict[str, Any]) -> None:
    """The answering server's round of the day is open; its next one is tomorrow."""
    store = await Storage.open(db)
    await store.execute(
        "INSERT INTO guild_settings (guild_id, channel_id, time_local, timezone, days, paused, next_due, "
        "created_at, updated_at) VALUES (?, ?, '18:00', 'Europe/Berlin', 127, 0, ?, 0, 0)",
        (world["probe"], world["probe_channel"], to_unix(MINUTE + timedelta(hours=23))))
    await store.execute(
        "INSERT INTO rounds (guild_id, local_date, scheduled_at, channel_id, message_id, prompt_index, state, "
        "created_at, posted_at) VALUES (?, '2026-03-02', ?, ?, 1, 0, 'posted', 0, 0)",
        (world["probe"], to_unix(MINUTE) - 3600, world["probe_channel"]))
    await store.close()


async def main(servers: int, count: int, rate: float) -> int:
    logging.basicConfig(level=logging.ERROR)
    fake = await launch_fake(False, lambda f: build_world(f, servers), round_stats, HERE, "--servers", str(servers))
    world = fake.world
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite3"
        await fill_database(db, world["channels"])
        await open_probe_round(db, world)
        clock = FixedClock(MINUTE - timedelta(hours=1))
        bot = await start_bot(fake, db, clock)
        monitor = StallMonitor()
        try:
            clock.set(MINUTE + timedelta(seconds=60))
            await fake.call("mark")
            monitor.start()
            await bot.tick(wait=False)  # the fan-out runs in the background, as under the scheduler
            spec = {"guild": world["probe"], "channel": world["probe_channel"], "users": world["users"],
                    "command": "checkin", "options": {"status": "finished", "note": "bounced the chorus"},
                    "count": count, "rate": rate}
            figures = await fake.call("probe " + json.dumps(spec))
            monitor.stop()
            answers = await bot.storage.fetchone("SELECT COUNT(*) FROM checkins WHERE guild_id = ?",
                                                 (world["probe"],))
        finally:
            await stop_bot(bot)
            await fake.stop()
    print(f"{count:,} /checkin answers at {rate:g}/s while {servers:,} servers' rounds are posted "
          "(loopback Discord in its own process, limit 50/s)")
    print(f"rounds posted meanwhile: {figures['posts']:,}; members answered: {answers[0]}")
    print(line("/checkin p50", figures["p50"], "ms", "informational", True))
    print(line("/checkin p99", figures["p99"], "ms", "<= 50 ms", figures["p99"] <= 50))
    print(line("slowest answer", figures["max"], "ms", "informational", True))
    if figures.get("slow"):
        print("answers over 50 ms (index: ms): " + ", ".join(f"{i}: {ms}" for i, ms in figures["slow"]))
    print(line("longest event-loop stall", monitor.worst * 1000, "ms", "<= 100 ms", monitor.worst <= 0.1))
    return 0 if figures["p99"] <= 50 and figures["n"] == count else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        asyncio.run(serve_fake(lambda fake: build_world(fake, args.servers), round_stats))
        raise SystemExit(0)
    raise SystemExit(asyncio.run(main(args.servers, args.count, args.rate)))
