"""Leaderboard and /stats on a big database: 1,000,000 check-ins over 1,000 servers, the largest ~130,000.

Usage: python bench/bench_board.py [--count 200] [--keep PATH] [--pg | --postgres ADMIN_URL] [--explain]
                                   [--pg-set NAME=VALUE ...]
Targets (largest server): leaderboard query p95 <= 10 ms; whole /leaderboard interaction p95 <= 30 ms;
/stats with its heatmap picture p95 <= 150 ms. The interactions go through the loopback Discord (in this
process, so its own bookkeeping and contract checks count towards the figures) to a real BounceBot.

The data is written with executemany into a temporary SQLite file migrated by Storage.open, with the points
ledger's triggers set aside for the bulk load and the running totals rebuilt from the ledger afterwards.

On PostgreSQL (`--postgres URL`: an admin URL, where a fresh database is created and dropped afterwards; `--pg`:
a throwaway server from scripts/pg.sh, stopped at the end), that SQLite file is copied over with coach.copydb
(timed, and verified as every copy is), vacuumed and analysed; then SQLite is measured, then PostgreSQL, and one
table shows both. `--explain` prints PostgreSQL's plan (EXPLAIN ANALYZE) of every query one /leaderboard page makes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sqlite3
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import FakeDiscord, FixedClock, line, percentile, postgres_database, start_bot, stop_bot, verdict

from coach import board as rules
from coach import copydb
from coach.storage import Storage
from cogs.board import BoardPager

TOTAL_CHECKINS = 1_000_000
SERVERS = 1_000
BIG_MEMBERS, BIG_DAYS, BIG_CHECKINS = 1_000, 200, 130_000
SMALL_MEMBERS, SMALL_DAYS = 20, 66           # ~871 check-ins each
LAST_DAY = date(2026, 3, 20)                 # a Friday; the bot's clock is that evening
NOW = datetime(2026, 3, 20, 20, 30, tzinfo=UTC)
RATES = (0.3, 0.5, 0.7, 0.85, 0.95)
STATUSES = ("finished", "unfinished", "skipped")


def round_time(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, 19, tzinfo=UTC).timestamp())


def pick(rng: random.Random, users: list[int], days: list[date], quota: int) -> list[tuple[int, date]]:
    """Exactly `quota` (member, day) answers; each member answers at their own rate (weighted sampling)."""
    rate = {u: rng.choice(RATES) for u in users}
    keyed = sorted((rng.random() / rate[u], u, d) for u in users for d in days)
    return sorted(((u, d) for _, u, d in keyed[:quota]), key=lambda p: (p[1], p[0]))


def build(db_path: Path, big_guild: int, big_channel: int, callers: list[int]) -> dict[str, int]:
    """Fill the database; returns row counts. Deterministic (seeded)."""
    rng = random.Random(20260320)
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    # A bulk import: the ledger's triggers are set aside (they would triple the time) and the running totals
    # are rebuilt from the ledger afterwards (Storage.rebuild_board_totals), then the triggers come back.
    triggers = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'points'"
                          ).fetchall()
    for name, _ in triggers:
        db.execute(f'DROP TRIGGER "{name}"')
    counts = {"checkins": 0, "points": 0, "rounds": 0, "projects": 0, "members": 0}
    small = SERVERS - 1
    per_small = [(TOTAL_CHECKINS - BIG_CHECKINS) // small + (1 if i < (TOTAL_CHECKINS - BIG_CHECKINS) % small else 0)
                 for i in range(small)]
    guilds = [(big_guild, big_channel, BIG_MEMBERS, BIG_DAYS, BIG_CHECKINS)]
    guilds += [(10**15 + i, 10**15 + 10_000 + i, SMALL_MEMBERS, SMALL_DAYS, per_small[i - 1])
               for i in range(1, SERVERS)]
    for index, (gid, cid, n_members, n_days, quota) in enumerate(guilds):
        db.execute("INSERT INTO guild_settings (guild_id, channel_id, time_local, timezone, days, paused, next_due, "
                   "created_at, updated_at) VALUES (?, ?, '20:00', 'Europe/Berlin', 127, 0, NULL, 0, 0)", (gid, cid))
        days = [LAST_DAY - timedelta(days=n_days - 1 - i) for i in range(n_days)]
        db.executemany(
            "INSERT INTO rounds (guild_id, local_date, scheduled_at, channel_id, message_id, prompt_index, state, "
            "created_at, posted_at) VALUES (?, ?, ?, ?, 1, 0, 'posted', ?, ?)",
            [(gid, d.isoformat(), round_time(d), cid, round_time(d), round_time(d)) for d in days])
        counts["rounds"] += len(days)
        users = (callers + [2 * 10**15 + u for u in range(n_members - len(callers))]
                 if index == 0 else [3 * 10**15 + index * 100 + u for u in range(n_members)])
        db.executemany("INSERT INTO members (guild_id, user_id, display_name, first_seen) VALUES (?, ?, ?, 0)",
                       [(gid, u, f"producer {i}") for i, u in enumerate(users)])
        counts["members"] += len(users)
        checkins, points, projects = [], [], []
        for u, d in pick(rng, users, days, quota):
            at = round_time(d) + rng.randrange(3 * 3600)
            note = rng.choice((None, None, "bounced the drums", "next: arrangement"))
            checkins.append((gid, u, d.isoformat(), rng.choice(STATUSES), note, at, at))
            points.append((gid, u, "checkin", 1, d.isoformat(), at))
        for u in users:
            if index == 0 or rng.random() < 0.3:
                done_at = round_time(days[rng.randrange(len(days))]) + 60
                projects.append((gid, u, f"Track {u % 97}", f"track {u % 97}", "finished", done_at, done_at))
                points.append((gid, u, "finish", 5, f"p{u}", done_at))
                if rng.random() < 0.3:
                    points.append((gid, u, "reflection", 2, "lesson-1", done_at + 30))
        points.sort(key=lambda p: p[5])  # the ledger grows in time order
        db.executemany(
            "INSERT INTO checkins (guild_id, user_id, local_date, status, note, via, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, 'button', ?, ?)", checkins)
        db.executemany("INSERT INTO points (guild_id, user_id, kind, amount, ref, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)", points)
        db.executemany("INSERT INTO projects (guild_id, user_id, name, name_key, status, created_at, closed_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", projects)
        counts["checkins"] += len(checkins)
        counts["points"] += len(points)
        counts["projects"] += len(projects)
        if index == 0:
            counts["largest"] = len(checkins)
    for _, sql in triggers:
        db.execute(sql)
    db.execute("COMMIT")
    db.close()
    return counts


async def timed(samples: list[float], coro) -> object:  # noqa: ANN001
    start = time.perf_counter()
    result = await coro
    samples.append((time.perf_counter() - start) * 1000)
    return result


#: What is printed, in order: (figure, what it is, target in ms or None when informational).
METRICS: tuple[tuple[str, str, float | None], ...] = (
    ("all", "leaderboard query p95, period all", 10),
    ("season", "leaderboard query p95, period season", 10),
    ("week", "leaderboard query p95, period week", 10),
    ("month", "leaderboard query p95, period month", 10),
    ("first", "  first board of a new week / month (made from the ledger, once per server and period), worst", None),
    ("page", "whole page data p95 (scores + streak tie-breaks + names)", None),
    ("lb", "/leaderboard interaction p95 (loopback round trip)", 30),
    ("stats", "/stats with heatmap interaction p95", 150),
)

#: Shorter names for the side-by-side table.
SHORT = {"first": "first board of a new week / month, worst", "page": "whole page data p95 (scores, streaks, names)",
         "lb": "/leaderboard interaction p95 (round trip)", "stats": "/stats with heatmap p95"}


def figure(samples: list[float], key: str) -> float:
    return max(samples) if key == "first" else percentile(samples, 95)


async def measure(fake: FakeDiscord, guild: int, channel: int, callers: list[int], db_path: Path, database_url: str,
                  count: int, explain: bool) -> dict[str, list[float]]:
    """Every figure of one database, through a real BounceBot on it; the database is changed (a season starts)."""
    bot = await start_bot(fake, db_path, FixedClock(NOW), database_url=database_url)
    try:
        storage = bot.storage
        figures: dict[str, list[float]] = {k: [] for k, _, _ in METRICS}
        # The ranking query, per period (the default is the current season, or all time when there is none):
        # the running totals of the period. A week's or month's totals are made from the ledger the first time
        # that week or month is asked for (once per server and period): timed apart.
        for period in ("all", "week", "month"):
            window = rules.window_for(period, NOW, "Europe/Berlin", None)
            if period != "all":
                start = time.perf_counter()
                await storage.window_period(guild, period, window.start)
                figures["first"].append((time.perf_counter() - start) * 1000)
            for i in range(count + 10):
                samples: list[float] = [] if i < 10 else figures[period]
                start = time.perf_counter()
                period_id = 0 if period == "all" else await storage.window_period(guild, period, window.start)
                await storage.board_totals(guild, period_id)
                samples.append((time.perf_counter() - start) * 1000)
        # The whole page's data for the default period: scores, streak tie-breaks, names.
        pager = BoardPager(bot, guild, "all", callers[2])
        for i in range(count + 10):
            await timed([] if i < 10 else figures["page"], pager.render(0))
        # Through the loopback Discord: /leaderboard and /stats.
        for i in range(count + 10):
            start = time.perf_counter()
            handle = await fake.slash(guild, channel, callers[i % len(callers)], "leaderboard")
            await handle.response()
            if i >= 10:
                figures["lb"].append((time.perf_counter() - start) * 1000)
        assert "Leaderboard" in handle.response_data["embeds"][0]["title"]
        stats_runs = max(20, count // 4)
        for i in range(stats_runs + 5):
            start = time.perf_counter()
            handle = await fake.slash(guild, channel, callers[i % len(callers)], "stats")
            await handle.wait_text()
            if i >= 5:
                figures["stats"].append((time.perf_counter() - start) * 1000)
        assert handle.message["_files"]["heatmap.png"][:4] == b"\x89PNG"
        if explain and storage.dialect == "postgres":
            await explain_page(bot, guild, callers[2])
        # A season started 60 days ago: the default board reads its running totals.
        season = await storage.start_season(guild, "Bench season", NOW - timedelta(days=60))
        await storage.rebuild_board_totals(guild)
        for i in range(count + 10):
            samples = [] if i < 10 else figures["season"]
            start = time.perf_counter()
            await storage.board_totals(guild, await storage.season_period(season.id))
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        await stop_bot(bot)
    return figures


async def explain_page(bot: Any, guild: int, caller: int) -> None:  # noqa: ANN401
    """PostgreSQL's plan, run for real, of every query one leaderboard page makes (all time, then this week)."""
    db = bot.storage.db
    seen: dict[str, tuple[Any, ...]] = {}
    fetchone, fetchall = db.fetchone, db.fetchall

    async def one(sql: str, params: Any = ()) -> Any:  # noqa: ANN401
        seen.setdefault(sql, tuple(params))
        return await fetchone(sql, params)

    async def many(sql: str, params: Any = ()) -> Any:  # noqa: ANN401
        seen.setdefault(sql, tuple(params))
        return await fetchall(sql, params)

    db.fetchone, db.fetchall = one, many
    try:
        for period in ("all", "week"):
            await BoardPager(bot, guild, period, caller).render(0)
    finally:
        del db.fetchone, db.fetchall
    for sql, params in seen.items():
        shown = ", ".join(str(p) for p in params[:4]) + (f", … ({len(params)} in all)" if len(params) > 4 else "")
        print(f"\nEXPLAIN ANALYZE  {' '.join(sql.split())[:300]}\n  parameters: {shown}")
        for row in await fetchall("EXPLAIN (ANALYZE, BUFFERS) " + sql, params):
            print("  " + row[0])



async def fill_postgres(db_path: Path, url: str) -> bool:
    """Copy the SQLite file into the empty PostgreSQL database with coach.copydb (verified), then VACUUM ANALYZE
    it, as autovacuum would soon after such a load. Prints the copy's verdict and times."""
    import asyncpg

    lines: list[str] = []
    started = time.perf_counter()
    ok = await copydb.copy(str(db_path), url, out=lines.append)
    copied = time.perf_counter() - started
    if not ok:
        print("\n".join(lines))
    started = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    print(f"copied into PostgreSQL with coach.copydb in {copied:.1f} s: {lines[-1]}")
    print(f"VACUUM ANALYZE in {time.perf_counter() - started:.1f} s")
    return ok


def table(columns: dict[str, dict[str, list[float]]]) -> tuple[list[str], bool]:
    """One row per figure: metric | one column per database | target. Also whether every target was met."""
    ok = True
    names = list(columns)
    width = max(len(SHORT.get(key, label.strip())) for key, label, _ in METRICS) + 12
    rows = [f"{'metric':<{width}}" + "".join(f" | {n:>18}" for n in names) + " | target",
            "-" * width + "".join(" | " + "-" * 18 for _ in names) + " | " + "-" * 14]
    for key, label, target in METRICS:
        cells = []
        for name in names:
            value = figure(columns[name][key], key)
            met = target is None or value <= target
            ok &= met
            cells.append(f" | {value:>9,.1f} ms {verdict(met) if target is not None else '':>6}")
        label = SHORT.get(key, label.strip())
        if key == "stats":
            label += f" ({len(columns[names[0]][key])} runs)"
        rows.append(f"{label:<{width}}" + "".join(cells) + " | "
                    + (f"<= {target:g} ms" if target is not None else "informational"))
    return rows, ok


async def main(count: int, keep: str | None, postgres: str | None, explain: bool, pg_settings: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING)
    fake = FakeDiscord()
    await fake.start()
    guild = fake.add_guild("Bench Studio")
    channel = fake.add_channel(guild, "check-ins")
    callers = [fake.add_member(guild, f"caller {i}") for i in range(5)]
    ok = True
    columns: dict[str, dict[str, list[float]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db_path = Path(keep) if keep else Path(tmp) / "board.sqlite3"
            if db_path.exists():
                raise SystemExit(f"{db_path} exists; give --keep a new file")
            store = await Storage.open(db_path)  # migrations, triggers
            await store.close()
            started = time.perf_counter()
            counts = build(db_path, guild, channel, callers)
            store = await Storage.open(db_path)
            await store.rebuild_board_totals()
            assert await store.stored_board_totals(guild) == await store.board_totals_from_ledger(guild)
            await store.close()
            built = time.perf_counter() - started
            print(f"built {counts['checkins']:,} check-ins ({counts['points']:,} ledger rows, {counts['rounds']:,} "
                  f"rounds) over {SERVERS:,} servers in {built:.1f} s; largest server: {counts['largest']:,} "
                  f"check-ins, {BIG_MEMBERS:,} members, {BIG_DAYS} rounds", flush=True)
            async with contextlib.AsyncExitStack() as stack:
                pg_url = None
                if postgres is not None:
                    pg_url = await stack.enter_async_context(postgres_database(postgres or None, pg_settings))
                    # Copied before SQLite is measured: the copy is the database as built, not as measured.
                    ok &= await fill_postgres(db_path, pg_url)
                columns["SQLite"] = await measure(fake, guild, channel, callers, db_path, f"sqlite:///{db_path}",
                                                  count, explain)
                if pg_url is not None:
                    columns["PostgreSQL"] = await measure(fake, guild, channel, callers, db_path, pg_url, count,
                                                          explain)
    finally:
        await fake.stop()
    print(f"\n/leaderboard, largest server ({counts['largest']:,} check-ins), {count} runs each")
    if len(columns) == 1:
        figures = columns["SQLite"]
        for key, label, target in METRICS:
            value = figure(figures[key], key)
            if key == "stats":
                label = f"{label} ({len(figures[key])} runs)"
            ok &= target is None or value <= target
            print(line(label, value, "ms", f"<= {target:g} ms" if target is not None else "informational",
                       target is None or value <= target))
    else:
        rows, met = table(columns)
        ok &= met
        print("\n".join(rows))
    if fake.violations:
        print("contract violations:", fake.violations[:5])
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--keep", help="write the SQLite database here and keep it")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--postgres", metavar="ADMIN_URL",
                       help="also measure PostgreSQL: a fresh database is made on this server (the URL's user "
                            "must be allowed to CREATE DATABASE) and dropped afterwards")
    where.add_argument("--pg", action="store_true",
                       help="also measure PostgreSQL on a throwaway server (scripts/pg.sh), stopped afterwards")
    parser.add_argument("--explain", action="store_true",
                        help="with --pg/--postgres: print PostgreSQL's EXPLAIN ANALYZE of a leaderboard page's queries")
    parser.add_argument("--pg-set", action="append", default=[], metavar="NAME=VALUE",
                        help="with --pg/--postgres: a setting for the bench database's sessions (ALTER DATABASE … "
                             "SET), e.g. plan_cache_mode=force_custom_plan; repeatable")
    args = parser.parse_args()
    pg = args.postgres if args.postgres else ("" if args.pg else None)
    raise SystemExit(asyncio.run(main(args.count, args.keep, pg, args.explain, args.pg_set)))
