"""DM check-ins: 100,000 members with DM schedules, 10,000 of them due in the same minute, against a loopback
Discord enforcing 50 requests/s.

Usage: python bench/bench_dm.py [--members 100000] [--due 10000] [--budget 40]
Targets: longest event-loop stall <= 100 ms; total time <= 1.1 x the floor set by the send budget
(due DMs / budget seconds); one request per DM (DM channels stored); zero duplicates; zero global 429s.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import logging
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import FakeDiscord, FixedClock, StallMonitor, line, start_bot, stop_bot

from coach.clock import to_unix
from coach.storage import Storage

MESSAGES = "/channels/{channel_id}/messages"


async def main(members: int, due: int, budget: float) -> int:
    logging.basicConfig(level=logging.ERROR)
    fake = FakeDiscord(global_rate_limit=50)
    await fake.start()
    gid = fake.add_guild("Bench Studio")
    cid = fake.add_channel(gid, "check-ins")
    due_users = [fake.add_member(gid, f"producer{i}") for i in range(due)]
    dm_channels = {uid: int(fake.dm_channel(uid)["id"]) for uid in due_users}
    minute = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)           # 20:00 in Berlin
    later = to_unix(minute + timedelta(days=1))
    rows, channel_rows = [], []
    for i in range(members):
        if i < due:
            uid, next_due = due_users[i], to_unix(minute) + i % 60   # spread over the same minute
            channel_rows.append((uid, dm_channels[uid], 0))
        else:
            uid, next_due = 10**17 + i, later + i % 86_400            # due some other time
            channel_rows.append((uid, 10**17 + members + i, 0))
        rows.append((gid, uid, "20:00", "Europe/Berlin", 127, next_due))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite3"
        store = await Storage.open(db)
        await store.db.execute("BEGIN")
        await store.db.execute(
            "INSERT INTO guild_settings (guild_id, channel_id, time_local, timezone, days, paused, next_due, "
            "created_at, updated_at) VALUES (?, ?, '21:00', 'Europe/Berlin', 127, 0, ?, 0, 0)",
            (gid, cid, later),
        )
        await store.db.executemany(
            "INSERT INTO dm_schedules (guild_id, user_id, enabled, time_local, timezone, days, next_due, created_at, "
            "updated_at) VALUES (?, ?, 1, ?, ?, ?, ?, 0, 0)", rows)
        await store.db.executemany("INSERT INTO dm_channels (user_id, channel_id, created_at) VALUES (?, ?, ?)",
                                   channel_rows)
        await store.db.execute("COMMIT")
        await store.close()
        del rows, channel_rows  # the benchmark's own setup data is not the bot's to carry
        gc.collect()
        clock = FixedClock(minute - timedelta(hours=1))  # nothing due while connecting
        bot = await start_bot(fake, db, clock, send_budget_per_second=budget)
        dms = bot.get_cog("DMs")
        monitor = StallMonitor()
        try:
            clock.set(minute + timedelta(seconds=60))
            before = len(fake.requests)
            monitor.start()
            started = time.perf_counter()
            await bot.tick()
            await dms.drain()  # type: ignore[union-attr]
            elapsed = time.perf_counter() - started
            monitor.stop()
            await bot.tick()  # a second pass must send nothing
            await dms.drain()  # type: ignore[union-attr]
            requests = fake.requests[before:]
            posts = [r for r in requests if r.method == "POST" and r.route == MESSAGES]
            opened = [r for r in requests if r.method == "POST" and r.path.endswith("/users/@me/channels")]
            per_channel = collections.Counter(r.path for r in posts if r.status == 200)
            sent = await bot.storage.fetchone("SELECT COUNT(*), COUNT(DISTINCT user_id) FROM dm_rounds "
                                              "WHERE state = 'sent'")
        finally:
            await stop_bot(bot)
            await fake.stop()
    floor = due / budget
    duplicates = sum(c - 1 for c in per_channel.values() if c > 1) + (sent[0] - sent[1])
    per_dm = (len(posts) + len(opened)) / max(1, len(per_channel))
    print(f"{members:,} members with DM schedules, {due:,} due in the same minute; "
          f"send budget {budget:g}/s; Discord limit 50/s")
    print(f"DMs sent: {len(per_channel):,} of {due:,} (DM rounds marked sent: {sent[0]:,})")
    print(line("longest event-loop stall", monitor.worst * 1000, "ms", "<= 100 ms", monitor.worst <= 0.1))
    print(line("total time", elapsed, "s", f"<= {1.1 * floor:,.1f} s (1.1 x floor {floor:,.1f} s)",
               elapsed <= 1.1 * floor))
    print(f"requests per DM: {per_dm:.2f} (target 1.00)  {'OK' if per_dm == 1 else 'MISSED'}")
    print(line("duplicates", duplicates, "", "0", duplicates == 0))
    print(line("global 429s", fake.global_429s, "", "0", fake.global_429s == 0))
    print(f"busiest second: {fake.max_per_second()} requests")
    ok = (monitor.worst <= 0.1 and elapsed <= 1.1 * floor and per_dm == 1 and duplicates == 0
          and fake.global_429s == 0 and len(per_channel) == due)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000, help="members with a DM schedule")
    parser.add_argument("--due", type=int, default=10_000, help="how many of them are due in the same minute")
    parser.add_argument("--budget", type=float, default=40.0, help="send budget per second (SEND_BUDGET_PER_SECOND)")
    args = parser.parse_args()
    if not 0 < args.due <= args.members:
        parser.error("--due must be between 1 and --members")
    raise SystemExit(asyncio.run(main(args.members, args.due, args.budget)))
