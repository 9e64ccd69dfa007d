"""DM check-ins: 100,000 members with DM schedules, 10,000 of them due in the same minute, against a loopback
Discord enforcing 50 requests/s.

Usage: python bench/bench_dm.py [--members 100000] [--due 10000] [--budget 40] [--in-process] [--repeat N]
Targets: longest event-loop stall <= 100 ms; total time <= 1.1 x the floor set by the send budget
(due DMs / budget seconds); one request per DM (DM channels stored); zero duplicates; zero global 429s.
--repeat N runs it N times in a row (a fresh stand-in and bot each time) and ends with one line of figures per run.

By default the loopback Discord (tests.fakediscord.FakeDiscord(global_rate_limit=50)) runs in a child process,
as Discord runs elsewhere: the stall figure is then the bot's own event loop. With --in-process it shares the
bot's loop and its bookkeeping (every request and message it records) counts towards the stalls too.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
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


# ----------------------------------------------------------------------------- the loopback Discord side


def build_world(fake: FakeDiscord, due: int) -> dict[str, Any]:
    gid = fake.add_guild("Bench Studio")
    cid = fake.add_channel(gid, "check-ins")
    users = [fake.add_member(gid, f"producer{i}") for i in range(due)]
    return {"guild": gid, "channel": cid, "users": users,
            "dm_channels": [int(fake.dm_channel(uid)["id"]) for uid in users],
            "token": fake.token, "api_base": fake.api_base, "gateway_url": fake.gateway_url}


def stats(fake: FakeDiscord, since: int) -> dict[str, Any]:
    requests = fake.requests[since:]
    posts = [r for r in requests if r.method == "POST" and r.route == MESSAGES]
    per_channel = collections.Counter(r.path for r in posts if r.status == 200)
    return {
        "posts": len(posts),
        "delivered": len(per_channel),
        "duplicates": sum(c - 1 for c in per_channel.values() if c > 1),
        "opened": sum(1 for r in requests if r.method == "POST" and r.path.endswith("/users/@me/channels")),
        "global_429s": fake.global_429s,
        "busiest_second": fake.max_per_second(),
        "busiest_window": fake.busiest_window(),
        "violations": len(fake.violations),
    }


# ----------------------------------------------------------------------------- the bot side


async def fill_database(db: Path, world: dict[str, Any], members: int, due: int) -> None:
    """`members` DM schedules for one server; the first `due` fall due in the same minute. DM channels stored."""
    gid, later = world["guild"], to_unix(MINUTE + timedelta(days=1))
    rows, channel_rows = [], []
    for i in range(members):
        if i < due:
            uid, next_due, channel = world["users"][i], to_unix(MINUTE) + i % 60, world["dm_channels"][i]
        else:
            uid, next_due, channel = 10**17 + i, later + i % 86_400, 2 * 10**17 + i
        rows.append((gid, uid, "20:00", "Europe/Berlin", 127, next_due))
        channel_rows.append((uid, channel, 0))
    store = await Storage.open(db)
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT INTO guild_settings (guild_id, channel_id, time_local, timezone, days, paused, next_due, "
            "created_at, updated_at) VALUES (?, ?, '21:00', 'Europe/Berlin', 127, 0, ?, 0, 0)",
            (gid, world["channel"], later))
        # The server's round of the day is open (a DM delivers it).
        await tx.execute(
            "INSERT INTO rounds (guild_id, local_date, scheduled_at, channel_id, message_id, prompt_index, state, "
            "created_at, posted_at) VALUES (?, '2026-03-02', ?, ?, 1, 0, 'posted', 0, 0)",
            (gid, to_unix(MINUTE) - 3600, world["channel"]))
        await tx.executemany(
            "INSERT INTO dm_schedules (guild_id, user_id, enabled, time_local, timezone, days, next_due, created_at, "
            f"updated_at, member_checked_at) VALUES (?, ?, 1, ?, ?, ?, ?, 0, 0, {to_unix(MINUTE) - 86_400})", rows)
        await tx.executemany("INSERT INTO dm_channels (user_id, channel_id, created_at) VALUES (?, ?, ?)",
                                   channel_rows)
    await store.close()


async def main(members: int, due: int, budget: float, in_process: bool) -> tuple[int, str]:
    logging.basicConfig(level=logging.ERROR)
    fake = await launch_fake(in_process, lambda f: build_world(f, due), stats, HERE, "--due", str(due))
    world = fake.world
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite3"
        await fill_database(db, world, members, due)
        gc.collect()
        clock = FixedClock(MINUTE - timedelta(hours=1))  # nothing due while connecting
        bot = await start_bot(fake, db, clock, send_budget_per_second=budget)  # type: ignore[arg-type]
        try:
            elapsed, monitor = await fan_out(bot, clock, MINUTE + timedelta(seconds=60), lambda: fake.call("mark"))
            figures = await fake.call("stats")
            pacer = bot.pacer.take_counts()
            sent = await bot.storage.fetchone("SELECT COUNT(*), COUNT(DISTINCT user_id) FROM dm_rounds "
                                              "WHERE state = 'sent'")
        finally:
            await stop_bot(bot)
            await fake.stop()
    floor = due / budget
    duplicates = figures["duplicates"] + (sent[0] - sent[1])
    per_dm = (figures["posts"] + figures["opened"]) / max(1, figures["delivered"])
    where = "in this process" if in_process else "in its own process"
    print(f"{members:,} members with DM schedules, {due:,} due in the same minute; send budget {budget:g}/s; "
          f"loopback Discord ({where}) limit 50/s")
    print(f"DMs sent: {figures['delivered']:,} of {due:,} (DM rounds marked sent: {sent[0]:,})")
    print(line("longest event-loop stall", monitor.worst * 1000, "ms", "<= 100 ms", monitor.worst <= 0.1))
    print(line("total time", elapsed, "s", f"<= {1.1 * floor:,.1f} s (1.1 x floor {floor:,.1f} s)",
               elapsed <= 1.1 * floor))
    print(f"requests per DM: {per_dm:.2f} (target 1.00)  {'OK' if per_dm == 1 else 'MISSED'}")
    print(line("duplicates", duplicates, "", "0", duplicates == 0))
    print(line("global 429s", figures["global_429s"], "", "0", figures["global_429s"] == 0))
    print(f"busiest sliding second: {figures['busiest_window']} requests (calendar second: "
          f"{figures['busiest_second']}); contract violations: {figures['violations']}")
    print("the bot's pacer counted: " + ", ".join(f"{k} {v:,}" for k, v in sorted(pacer.items())))
    if monitor.stalls:
        print(monitor.describe())
    ok = (monitor.worst <= 0.1 and elapsed <= 1.1 * floor and per_dm == 1 and duplicates == 0
          and figures["global_429s"] == 0 and figures["delivered"] == due and figures["violations"] == 0)
    row = (f"stall {monitor.worst * 1000:.0f} ms (<= 100), time {elapsed:.1f} s (<= {1.1 * floor:.1f}), "
           f"global 429s {figures['global_429s']} (0), duplicates {duplicates} (0), per DM {per_dm:.2f} req (1.00), "
           f"busiest sliding second {figures['busiest_window']} (<= 50)")
    return (0 if ok else 1), row


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=100_000, help="members with a DM schedule")
    parser.add_argument("--due", type=int, default=10_000, help="how many of them are due in the same minute")
    parser.add_argument("--budget", type=float, default=40.0, help="send budget per second (SEND_BUDGET_PER_SECOND)")
    parser.add_argument("--in-process", action="store_true", help="run the loopback Discord in the bot's loop")
    parser.add_argument("--repeat", type=int, default=1, help="run N times in a row, then one summary line per run")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        asyncio.run(serve_fake(lambda fake: build_world(fake, args.due), stats))
        raise SystemExit(0)
    if not 0 < args.due <= args.members:
        parser.error("--due must be between 1 and --members")
    if args.budget <= 0 or args.repeat < 1:
        parser.error("--budget must be positive and --repeat at least 1")
    raise SystemExit(run_repeated(lambda: main(args.members, args.due, args.budget, args.in_process), args.repeat))
