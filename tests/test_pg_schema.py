"""The PostgreSQL baseline is the SQLite schema: the same tables and columns, keys and indexes, and triggers that
leave the same rows behind after the same statements."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from coach.copydb import apply_baseline, baseline_migrations
from coach.members import may_name_publicly
from coach.storage import Storage, migrations
from tests.pg_support import PG_URL, SKIP_REASON, C, dollar_params, fresh_database, script

if not PG_URL:
    pytest.skip(SKIP_REASON, allow_module_level=True)



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
    # The baseline stands for 001..011; later migrations carry the SQLite ones' numbers and names.
    rows = await pg.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [tuple(r) for r in rows] == [(v, name) for v, name, _ in migrations()]
    assert [tuple(r) for r in rows][:11] == baseline_migrations()
    assert [v for v, _ in baseline_migrations()] == list(range(1, 12))
    assert not await apply_baseline(pg)  # a second process finds it done and changes nothing
    assert await pg.fetchval("SELECT COUNT(*) FROM schema_migrations") == len(migrations())


# ---------------------------------------------------------------- triggers, row for row


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
    assert totals >= 4 and compared > 40 and reads == 8
    assert lite.execute("SELECT seq FROM role_dirty WHERE user_id = ?", (C,)).fetchone()[0] > 1
    assert lite.execute("SELECT COUNT(*) FROM role_dirty").fetchone()[0] == 1
