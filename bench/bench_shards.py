"""10,000 servers due in the same minute over 4 shards in 2 processes sharing one database, against a loopback
Discord enforcing 50 requests/s for the whole bot.

Usage: python bench/bench_shards.py [--servers 10000] [--shards 4] [--processes 2] [--budget 40]
                                    [--db postgres|sqlite|both] [--postgres ADMIN_URL]
Targets, for each database: completion <= 1.1 x the floor set by the send budget (servers / budget seconds:
the budget is the bot's, each process paces at its shards' share); zero duplicate rounds; zero 429s from the
global limit; the longest event-loop stall <= 100 ms in each process.

The loopback Discord runs in a child process (as Discord runs elsewhere); each bot process is a child too,
a real BounceBot over its shards (SHARD_COUNT / SHARD_IDS) with its own stall monitor. PostgreSQL is a
throwaway server started with scripts/pg.sh, unless --postgres gives an admin URL (a fresh database is made
there and dropped afterwards). With --db both, SQLite (one file shared by the processes) runs first.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    FakeDiscord,
    FixedClock,
    RemoteFake,
    fan_out,
    line,
    postgres_database,
    serve_fake,
    start_bot,
    stop_bot,
)
from bench_rounds import MINUTE, stats  # the same minute and the same count of what Discord received

from coach.clock import to_unix
from coach.shards import format_shard_ids
from coach.storage import Storage

HERE = str(Path(__file__).resolve())


def build_world(fake: FakeDiscord, servers: int, shards: int) -> dict[str, Any]:
    channels = []
    for i in range(servers):
        gid = fake.add_guild(f"Studio {i}", shard=(i % shards, shards))
        channels.append((gid, fake.add_channel(gid, "check-ins")))
    return {"channels": channels, "token": fake.token, "api_base": fake.api_base, "gateway_url": fake.gateway_url}


# ---------------------------------------------------------------------------------------------------- a bot process


async def worker(world: dict[str, Any], database_url: str, count: int, ids: str, budget: float) -> None:
    """One bot process: connect its shards, say READY, wait for GO, post what is due, report one JSON line."""

    class Handle:  # what run_client needs of the stand-in (it runs in another process): it then waits on the bot
        token, api_base, gateway_url = world["token"], world["api_base"], world["gateway_url"]
        _reads = itertools.count()

        def __init__(self) -> None:
            self.ready = asyncio.Event()
            self.ready.set()

        @property
        def identify_count(self) -> int:
            return next(self._reads)

    clock = FixedClock(MINUTE - timedelta(hours=1))  # nothing due while connecting
    bot = await start_bot(Handle(), Path("unused"), clock, database_url=database_url,  # type: ignore[arg-type]
                          send_budget_per_second=budget, shard_count=count, shard_ids=ids,
                          instance_id=f"bench-{ids}")
    try:
        print("READY", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # GO
        elapsed, monitor = await fan_out(bot, clock, MINUTE + timedelta(seconds=60))
        stalls = monitor.longest(3)
        print(json.dumps({"ids": ids, "elapsed": elapsed, "stall": monitor.worst, "stalls": stalls,
                          "budget": bot.pacer.budget if hasattr(bot.pacer, "budget") else None,
                          "pacer": bot.pacer.take_counts()}), flush=True)
    finally:
        await stop_bot(bot)


# ---------------------------------------------------------------------------------------------------- the run


def split(count: int, processes: int) -> list[str]:
    """Shard ids per process: 4 over 2 -> '0-1', '2-3'."""
    per = count // processes
    return [format_shard_ids(tuple(range(p * per, count if p == processes - 1 else (p + 1) * per)))
            for p in range(processes)]


async def fill(url: str, channels: list[list[int]]) -> None:
    store = await Storage.open(url)
    try:
        async with store.transaction() as tx:
            await tx.executemany(
                "INSERT INTO guild_settings (guild_id, channel_id, time_local, timezone, days, paused, next_due, "
                "created_at, updated_at) VALUES (?, ?, '20:00', 'Europe/Berlin', 127, 0, ?, 0, 0)",
                [(gid, cid, to_unix(MINUTE) + i % 60) for i, (gid, cid) in enumerate(channels)])
        posted = await store.fetchone("SELECT COUNT(*) FROM rounds")
        assert posted == (0,)
    finally:
        await store.close()


async def run_once(kind: str, url: str, servers: int, count: int, processes: int, budget: float,
                   tmp: Path) -> dict[str, Any]:
    fake = await RemoteFake.start(HERE, "--servers", str(servers), "--shards", str(count))
    world_file = tmp / f"world-{kind}.json"
    world_file.write_text(json.dumps(fake.world))
    await fill(url, fake.world["channels"])
    procs = []
    try:
        for ids in split(count, processes):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, HERE, "--worker", str(world_file), "--url", url, "--shards", str(count),
                "--ids", ids, "--budget", str(budget), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, cwd=str(ROOT))
            procs.append(proc)
        for proc in procs:
            line_ = (await asyncio.wait_for(proc.stdout.readline(), 600)).decode().strip()  # type: ignore[union-attr]
            if line_ != "READY":
                raise SystemExit(f"a bot process did not start: {line_!r}")
        await fake.ready.wait()  # the stand-in's own "ready" answer is in (its pipe is ours again)
        await fake.call("mark")
        for proc in procs:
            proc.stdin.write(b"GO\n")  # type: ignore[union-attr]
            await proc.stdin.drain()  # type: ignore[union-attr]
        reports = [json.loads(await proc.stdout.readline()) for proc in procs]  # type: ignore[union-attr]
        figures = await fake.call("stats")
    finally:
        for proc in procs:
            if proc.returncode is None:
                try:
                    await asyncio.wait_for(proc.wait(), 60)
                except TimeoutError:
                    proc.kill()
        await fake.stop()
    store = await Storage.open(url)
    try:
        rows = await store.fetchone("SELECT COUNT(*), COUNT(DISTINCT guild_id) FROM rounds WHERE state = 'posted'")
    finally:
        await store.close()
    return {"reports": reports, "figures": figures, "rows": rows,
            "elapsed": max(r["elapsed"] for r in reports), "stall": max(r["stall"] for r in reports)}


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.ERROR)
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for kind in kinds:
            if kind == "sqlite":
                results[kind] = await run_once(kind, f"sqlite:///{tmp / 'bench.sqlite3'}", args.servers, args.shards,
                                               args.processes, args.budget, tmp)
                continue
            async with postgres_database(args.postgres, []) as url:
                results[kind] = await run_once(kind, url, args.servers, args.shards, args.processes, args.budget, tmp)
    floor = args.servers / args.budget
    print(f"{args.servers:,} servers due in the same minute over {args.shards} shards in {args.processes} processes; "
          f"send budget {args.budget:g}/s for the bot (each process its share); loopback Discord limit 50/s")
    ok = True
    for kind, r in results.items():
        f = r["figures"]
        duplicates = f["duplicates"] + (r["rows"][0] - r["rows"][1])
        print(f"\n{'PostgreSQL' if kind == 'postgres' else 'SQLite (one file)'}: rounds posted "
              f"{f['delivered']:,} of {args.servers:,}")
        print(line("completion", r["elapsed"], "s", f"<= {1.1 * floor:,.1f} s (1.1 x floor {floor:,.1f} s)",
                   r["elapsed"] <= 1.1 * floor))
        print(line("duplicates", duplicates, "", "0", duplicates == 0))
        print(line("global 429s", f["global_429s"], "", "0", f["global_429s"] == 0))
        for rep in r["reports"]:
            print(line(f"longest stall, process of shards {rep['ids']}", rep["stall"] * 1000, "ms", "<= 100 ms",
                       rep["stall"] <= 0.1) + f"   (its part done in {rep['elapsed']:.1f} s)")
        print(f"busiest sliding second: {f['busiest_window']} requests; contract violations: {f['violations']}")
        ok = ok and (r["elapsed"] <= 1.1 * floor and duplicates == 0 and f["global_429s"] == 0
                     and r["stall"] <= 0.1 and f["delivered"] == args.servers and f["violations"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--budget", type=float, default=40.0)
    parser.add_argument("--db", choices=("postgres", "sqlite", "both"), default="postgres")
    parser.add_argument("--postgres", help="an admin URL of a PostgreSQL server (default: a throwaway one)")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        asyncio.run(serve_fake(lambda fake: build_world(fake, args.servers, args.shards), stats))
        raise SystemExit(0)
    if args.worker:
        asyncio.run(worker(json.loads(Path(args.worker).read_text()), args.url, args.shards, args.ids, args.budget))
        raise SystemExit(0)
    if args.shards % args.processes or args.budget <= 0:
        parser.error("--shards must divide evenly over --processes, and --budget must be positive")
    raise SystemExit(asyncio.run(main(args)))
