"""The PostgreSQL baseline is the SQLite schema: the same tables and columns, keys and indexes, and triggers that
leave the same rows behind after the same statements."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from coach.copydb import apply_baseline, baseline_migrations
from coach.members import may_name_publicly
from coach.storage import Storage
from tests.pg_support import dollar_params, fresh_database, needs_pg

pytestmark = needs_pg

G, H = 1001, 1002          # two servers
A, B, C = 11, 12, 13       # three members
T = 1_772_000_000          # epoch seconds


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[sqlite3.Connection]:
    """The SQLite schema as Storage.open leaves it, on a plain connection (as Storage sets it up)."""
    path = tmp_path / "bounce.sqlite3"
    await (await Storage.open(path)).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA foreign_keys=ON")
    db.create_function("may_name_publicly", 1, may_name_publicly, deterministic=True)
    yield db
    db.close()


@pytest.fixture
async def pg() -> AsyncIterator[Any]:
    import asyncpg

    async with fresh_database() as url:
        conn = await asyncpg.connect(url)
        try:
            assert await apply_baseline(conn)
            yield conn
        finally:
            await conn.close()


# ---------------------------------------------------------------- structure


def lite_tables(db: sqlite3.Connection) -> list[str]:
    return [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]


async def test_same_tables_and_columns_in_the_same_order(lite: sqlite3.Connection, pg: Any) -> None:
    want = {t: [(r[1], bool(r[3]), r[4] is not None) for r in db_info(lite, t)] for t in lite_tables(lite)}
    rows = await pg.fetch(
        """SELECT table_name, column_name, is_nullable = 'NO' AS notnull,
                  column_default IS NOT NULL AND is_identity = 'NO' AS has_default
           FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position""")
    got: dict[str, list[tuple[str, bool, bool]]] = {}
    for r in rows:
        got.setdefault(r["table_name"], []).append((r["column_name"], r["notnull"], r["has_default"]))
    # SQLite's INTEGER PRIMARY KEY may be NULL on paper (it assigns the id); PostgreSQL's key is NOT NULL.
    for table, cols in want.items():
        pks = {r[1] for r in db_info(lite, table) if r[5]}
        want[table] = [(name, notnull or name in pks, default) for name, notnull, default in cols]
    assert got == want


def db_info(db: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    return db.execute(f'PRAGMA table_info("{table}")').fetchall()


async def test_same_keys_indexes_and_foreign_keys(lite: sqlite3.Connection, pg: Any) -> None:
    want_idx: set[tuple[str, tuple[str, ...], bool]] = set()
    want_named: set[str] = set()
    want_fk: set[tuple[str, str, str, str, str]] = set()
    for t in lite_tables(lite):
        pk = tuple(r[1] for r in sorted((r for r in db_info(lite, t) if r[5]), key=lambda r: r[5]))
        if pk:
            want_idx.add((t, pk, True))
        for _, name, unique, origin, _partial in lite.execute(f'PRAGMA index_list("{t}")'):
            cols = tuple(r[2] for r in lite.execute(f'PRAGMA index_info("{name}")'))
            want_idx.add((t, cols, bool(unique)))
            if origin == "c":
                want_named.add(name)
        for r in lite.execute(f'PRAGMA foreign_key_list("{t}")'):
            want_fk.add((t, r[3], r[2], r[4], r[6]))

    rows = await pg.fetch(
        """SELECT t.relname AS tbl, i.relname AS idx, x.indisunique AS uniq,
                  EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) AS constraint_index,
                  ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
                        JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
                        ORDER BY k.n) AS cols
           FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
           JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public'""")
    assert {(r["tbl"], tuple(r["cols"]), r["uniq"]) for r in rows} == want_idx
    assert {r["idx"] for r in rows if not r["constraint_index"]} == want_named

    actions = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
    fks = await pg.fetch(
        """SELECT c.conrelid::regclass::text AS tbl, c.confrelid::regclass::text AS parent, c.confdeltype::text AS confdeltype,
                  (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.conrelid AND a.attnum = c.conkey[1]) AS col,
                  (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.confrelid AND a.attnum = c.confkey[1]) AS ref
           FROM pg_constraint c WHERE c.contype = 'f'""")
    assert {(r["tbl"], r["col"], r["parent"], r["ref"], actions[r["confdeltype"]]) for r in fks} == want_fk


async def test_same_triggers_and_checks(lite: sqlite3.Connection, pg: Any) -> None:
    want = {(r[0], r[1]) for r in lite.execute("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'")}
    got = await pg.fetch(
        """SELECT c.relname AS tbl, t.tgname AS name FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
           WHERE NOT t.tgisinternal""")
    assert {(r["tbl"], r["name"]) for r in got} == want
    # Every CHECK in SQLite's CREATE TABLE text has one in PostgreSQL on the same table.
    checks = await pg.fetch(
        "SELECT conrelid::regclass::text AS tbl, COUNT(*) AS n FROM pg_constraint "
        "WHERE contype = 'c' AND connamespace = 'public'::regnamespace GROUP BY 1")
    want_checks = {}
    for name, sql in lite.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"):
        if sql and "CHECK" in sql:
            want_checks[name] = sql.count("CHECK")
    assert {r["tbl"]: r["n"] for r in checks} == want_checks


async def test_baseline_records_versions_one_to_eleven_once(pg: Any) -> None:
    rows = await pg.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [tuple(r) for r in rows] == baseline_migrations()
    assert [v for v, _ in baseline_migrations()] == list(range(1, 12))
    assert not await apply_baseline(pg)  # a second process finds it done and changes nothing
    assert await pg.fetchval("SELECT COUNT(*) FROM schema_migrations") == 11


# ---------------------------------------------------------------- triggers, row for row


def script() -> Iterator[tuple[str, tuple[Any, ...]]]:
    """One sequence of writes that touches every trigger, plus a few reads; run on both databases."""
    day = 86_400
    gs = ("INSERT INTO guild_settings (guild_id, channel_id, time_local, timezone, days, next_due, created_at, "
          "updated_at) VALUES (?, ?, '09:00', 'Europe/Berlin', 127, ?, ?, ?)")
    yield gs, (G, 500, T + day, T, T)
    yield gs, (H, 600, None, T, T)
    yield ("INSERT INTO members (guild_id, user_id, display_name, announce, first_seen) "
           "VALUES (?, ?, 'Ann', 1, ?), (?, ?, 'Bo', 0, ?)", (G, A, T, G, B, T))

    # Nudges follow their server's next run: only enabled ones, only when next_due really changes.
    ns = ("INSERT INTO nudge_settings (guild_id, user_id, enabled, hours_before, next_due, on_at, created_at, "
          "updated_at) VALUES (?, ?, ?, ?, NULL, ?, ?, ?)")
    yield ns, (G, A, 1, 3, T, T, T)
    yield ns, (G, B, 0, 2, T, T, T)
    yield ns, (H, A, 1, 4, T, T, T)
    yield "UPDATE guild_settings SET next_due = ? WHERE guild_id = ?", (T + 2 * day, G)
    yield "UPDATE nudge_settings SET next_due = NULL WHERE guild_id = ? AND user_id = ?", (G, A)  # nudge taken
    yield "UPDATE guild_settings SET next_due = next_due, updated_at = ? WHERE guild_id = ?", (T + 1, G)  # same
    yield "SELECT guild_id, user_id, next_due FROM nudge_settings ORDER BY guild_id, user_id", ()
    yield "UPDATE nudge_settings SET next_due = 42 WHERE guild_id = ? AND user_id = ?", (G, A)
    yield "UPDATE guild_settings SET paused = 1 WHERE guild_id = ?", (G,)  # next_due not set: nothing follows
    yield "UPDATE guild_settings SET next_due = ? WHERE guild_id = ?", (T + 3 * day, H)
    yield "UPDATE guild_settings SET next_due = NULL WHERE guild_id = ?", (H,)
    yield "SELECT guild_id, user_id, next_due FROM nudge_settings ORDER BY guild_id, user_id", ()
    yield "UPDATE guild_settings SET next_due = ? WHERE guild_id IN (?, ?)", (T + 4 * day, G, H)

    # Check-ins and their days: a multi-row insert, upserts, moves, a delete; the foreign keys' SET NULL.
    rd = ("INSERT INTO rounds (guild_id, local_date, scheduled_at, channel_id, state, created_at) "
          "VALUES (?, ?, ?, 500, 'posted', ?)")
    yield rd, (G, "2026-03-02", T, T)
    yield rd, (G, "2026-03-03", T + day, T + day)
    yield ("INSERT INTO projects (guild_id, user_id, name, name_key, created_at) VALUES (?, ?, 'Song', 'song', ?)",
           (G, A, T))
    ci = "INSERT INTO checkins (guild_id, user_id, local_date, round_id, status, project_id, created_at, updated_at) "
    yield ci + "VALUES (?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?)", (
        G, A, "2026-03-02", 1, "finished", 1, T, T,
        G, B, "2026-03-02", 1, "unfinished", None, T, T,
        G, C, "2026-03-03", 2, "skipped", None, T, T)
    yield ci + "VALUES (?, ?, ?, NULL, 'finished', NULL, ?, ?)", (H, A, "2026-03-02", T, T)
    yield (ci + "VALUES (?, ?, ?, 1, 'unfinished', NULL, ?, ?) ON CONFLICT (guild_id, user_id, local_date) "
           "DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at", (G, A, "2026-03-02", T + 5, T + 5))
    yield (ci + "VALUES (?, ?, ?, 1, 'finished', NULL, ?, ?) ON CONFLICT (guild_id, user_id, local_date) "
           "DO UPDATE SET local_date = excluded.local_date, status = excluded.status",
           (G, A, "2026-03-02", T + 6, T + 6))
    yield "UPDATE checkins SET local_date = ? WHERE guild_id = ? AND user_id = ?", ("2026-03-03", G, B)
    yield "UPDATE checkins SET guild_id = ? WHERE guild_id = ? AND user_id = ?", (H, G, C)
    yield "UPDATE checkins SET note = 'x', local_date = local_date WHERE guild_id = ?", (G,)
    yield "DELETE FROM checkins WHERE guild_id = ? AND user_id = ? AND local_date = ?", (H, A, "2026-03-02")
    yield "DELETE FROM projects WHERE id = 1", ()
    yield "DELETE FROM rounds WHERE id = 2", ()

    # Board totals: periods of each kind, points of each kind before and after them, an ignored duplicate.
    yield "INSERT INTO seasons (guild_id, name, started_at) VALUES (?, 'S1', ?)", (G, T + 100)
    yield ("INSERT INTO board_periods (guild_id, kind, starts_at, season_id) "
           "VALUES (?, 'season', ?, 1), (?, 'week', ?, NULL), (?, 'month', ?, NULL)",
           (G, T + 100, G, T + 300, G, T + 200))
    pt = "INSERT INTO points (guild_id, user_id, kind, amount, ref, created_at) VALUES (?, ?, ?, ?, ?, ?)"
    for row in [(G, A, "checkin", 1, "2026-03-01", T + 50), (G, A, "checkin", 1, "2026-03-02", T + 150),
                (G, A, "finish", 5, "p1", T + 250), (G, A, "reflection", 2, "l1", T + 350),
                (G, A, "exercise", 1, "l1", T + 360), (G, A, "adjust", -3, "c1", T + 370),
                (G, B, "checkin", 1, "2026-03-02", T + 400), (H, A, "checkin", 1, "2026-03-02", T + 400)]:
        yield pt, row
    yield "INSERT INTO board_periods (guild_id, kind, starts_at) VALUES (?, 'week', ?)", (G, T + 1000)
    yield pt, (G, B, "finish", 5, "p2", T + 1100)
    yield ("INSERT INTO points (guild_id, user_id, kind, amount, ref, created_at) "
           "SELECT guild_id, user_id, 'checkin', 1, 'bulk-' || local_date, ? FROM checkins ORDER BY id",
           (T + 1150,))

    # Role marks: only in a server with a threshold reward (a weekly one does not count).
    rr = "INSERT INTO role_rewards (guild_id, kind, threshold, role_id, created_at) VALUES (?, ?, ?, ?, ?)"
    yield rr, (G, "weekly", 3, 900, T)
    yield pt, (G, C, "checkin", 1, "d1", T + 1200)
    yield "SELECT guild_id, user_id, seq FROM role_dirty ORDER BY 1, 2", ()
    yield rr, (G, "streak", 7, 901, T)
    yield pt, (G, C, "checkin", 1, "d2", T + 1300)
    yield pt, (G, C, "checkin", 1, "d3", T + 1310)
    yield pt, (H, C, "checkin", 1, "d3", T + 1310)
    # Ignored: no totals, no mark. (Last of the inserts: PostgreSQL spends an id on it, SQLite does not.)
    yield pt + " ON CONFLICT DO NOTHING", (G, C, "checkin", 7, "d2", T + 999)
    yield "SELECT guild_id, period_id, user_id, points, depth, reached_at FROM board_totals ORDER BY 1, 2, 3", ()

    # Deletes from the ledger: the latest counting point, then several at once.
    yield "DELETE FROM points WHERE guild_id = ? AND user_id = ? AND kind = 'adjust'", (G, A)
    yield "DELETE FROM points WHERE guild_id = ? AND user_id = ? AND kind IN ('reflection', 'checkin')", (G, A)
    yield "DELETE FROM points WHERE guild_id = ? AND user_id = ?", (G, B)

    yield ("INSERT INTO away_periods (guild_id, user_id, start_date, end_date) VALUES (?, ?, ?, ?)",
           (G, A, "2026-03-04", "2026-03-10"))
    # The naming rule, as SQL on both (a member without a row may be named).
    yield ("SELECT c.id, c.user_id, may_name_publicly(m.announce) FROM checkins c LEFT JOIN members m "
           "ON m.guild_id = c.guild_id AND m.user_id = c.user_id ORDER BY c.id", ())
    yield "SELECT user_id FROM members WHERE may_name_publicly(announce) = 1 ORDER BY user_id", ()


async def test_triggers_leave_the_same_rows_on_both(lite: sqlite3.Connection, pg: Any) -> None:
    reads = 0
    for sql, params in script():
        want = [tuple(r) for r in lite.execute(sql, params).fetchall()]
        if sql.startswith("SELECT"):
            got = [tuple(r) for r in await pg.fetch(dollar_params(sql), *params)]
            assert got == want, sql
            reads += 1
        else:
            await pg.execute(dollar_params(sql), *params)

    compared = 0
    for table in lite_tables(lite):
        if table == "schema_migrations":
            continue
        cols = [r[1] for r in db_info(lite, table)]
        order = ", ".join(str(i + 1) for i in range(len(cols)))
        sql = f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}"
        want = [tuple(r) for r in lite.execute(sql)]
        got = [tuple(r) for r in await pg.fetch(sql)]
        assert got == want, table
        compared += len(want)
    # The script reached what it is about.
    totals = lite.execute("SELECT COUNT(*) FROM board_totals WHERE period_id <> 0").fetchone()[0]
    assert totals >= 4 and compared > 40 and reads == 6
    assert lite.execute("SELECT seq FROM role_dirty WHERE user_id = ?", (C,)).fetchone()[0] > 1
    assert lite.execute("SELECT COUNT(*) FROM role_dirty").fetchone()[0] == 1
