"""Copy a community's SQLite database into an empty PostgreSQL one, then check that nothing was lost.

    python -m coach.copydb data/bounce.db postgresql://user:password@host:5432/bounce

The target must hold no Bounce rows: either a fresh database (the PostgreSQL baseline schema is applied) or one
a Bounce has migrated but never used (its ``meta`` rows, the bot's own bookkeeping, are replaced by the
source's). Both databases must be at the same schema version: start this Bounce once on the SQLite file first
(it migrates on start). Stop the bot while copying.

Every table is copied verbatim, parents before children, in one transaction, with the target's triggers off
(the trigger-kept tables - board totals, check-in days, role marks - are copied as they are, not rebuilt); the
identity sequences then continue after the largest copied id. Then it compares the row count of every table and
the totals (ledger points per server, board totals, check-ins per server) and prints one line per table and a
verdict. Exit 0: copied and verified; 1: copied but something differs; 2: refused, nothing written.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg

from coach.storage.db import PG_MIGRATIONS_DIR, baseline_names, migrate_postgres, migrations

BASELINE_VERSION = 11
BATCH = 5000
#: Database collations that sort text as SQLite does (by code point).
CODE_POINT_ORDER = ("C", "POSIX", "C.UTF-8", "C.utf8")
#: Tables that belong to the database itself rather than to a community.
NOT_COMMUNITY = ("schema_migrations", "meta")

#: The totals compared after the copy: (what, SQL run on both databases, giving key columns then one number).
TOTALS: tuple[tuple[str, str], ...] = (
    ("ledger points per server",
     "SELECT guild_id, SUM(amount) FROM points GROUP BY guild_id ORDER BY guild_id"),
    ("board totals per server and period",
     "SELECT guild_id, period_id, SUM(points), SUM(depth), MAX(reached_at) FROM board_totals "
     "GROUP BY guild_id, period_id ORDER BY guild_id, period_id"),
    ("check-ins per server",
     "SELECT guild_id, COUNT(*) FROM checkins GROUP BY guild_id ORDER BY guild_id"),
    ("check-in days per server",
     "SELECT guild_id, SUM(answers) FROM checkin_days GROUP BY guild_id ORDER BY guild_id"),
)


class Refused(Exception):
    """The copy cannot start; nothing was written. The message says why and what to do."""


# ---------------------------------------------------------------- the PostgreSQL schema


def baseline_migrations() -> list[tuple[int, str]]:
    """The versions and names the baseline stands for: the SQLite migrations 001..011."""
    return baseline_names(BASELINE_VERSION)


async def apply_baseline(conn: asyncpg.Connection) -> bool:
    """Create the whole schema on a database that has none (the storage layer's own migration, under its
    advisory lock). Returns False (and changes nothing) when another process already did."""
    return await migrate_postgres(conn, migrations(PG_MIGRATIONS_DIR, baseline=True)) > 0


# ---------------------------------------------------------------- reading both sides


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...]       # PostgreSQL data types, as information_schema names them
    identity: str | None         # the identity column, if any


async def target_tables(conn: asyncpg.Connection) -> list[Table]:
    """The target's tables, parents before children (foreign keys)."""
    rows = await conn.fetch(
        """SELECT c.table_name, c.column_name, c.data_type, c.is_identity
           FROM information_schema.columns c
           JOIN information_schema.tables t USING (table_schema, table_name)
           WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
           ORDER BY c.table_name, c.ordinal_position""")
    cols: dict[str, list[tuple[str, str, bool]]] = {}
    for r in rows:
        cols.setdefault(r["table_name"], []).append((r["column_name"], r["data_type"], r["is_identity"] == "YES"))
    deps: dict[str, set[str]] = {name: set() for name in cols}
    for r in await conn.fetch(
            """SELECT c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent
               FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
               WHERE c.contype = 'f' AND n.nspname = current_schema()"""):
        if r["child"] in deps and r["parent"] != r["child"]:
            deps[r["child"]].add(r["parent"])
    ordered: list[str] = []
    while len(ordered) < len(deps):
        ready = sorted(n for n in deps if n not in ordered and deps[n] <= set(ordered))
        if not ready:
            raise RuntimeError(f"foreign keys go round in a circle among {sorted(set(deps) - set(ordered))}")
        ordered.extend(ready)
    return [Table(n, tuple(c for c, _, _ in cols[n]), tuple(t for _, t, _ in cols[n]),
                  next((c for c, _, ident in cols[n] if ident), None)) for n in ordered]


def sqlite_path(source: str) -> Path:
    """A file path, or an SQLite URL: sqlite:///relative.db, sqlite:////absolute.db."""
    if source.startswith("sqlite:"):
        rest = source.removeprefix("sqlite:")
        if not rest.startswith("///"):
            raise Refused(f"{source}: write an SQLite URL as sqlite:///relative/path.db or sqlite:////abs/path.db")
        source = rest[3:]
    path = Path(source)
    if not path.is_file():
        raise Refused(f"{path}: no such SQLite file")
    return path


async def sqlite_columns(src: aiosqlite.Connection) -> dict[str, tuple[str, ...]]:
    async with src.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'") as cur:
        names = [r[0] for r in await cur.fetchall()]
    found = {}
    for name in names:
        async with src.execute(f'PRAGMA table_info("{name}")') as cur:
            found[name] = tuple(r[1] for r in await cur.fetchall())
    return found


def converter(pg_type: str) -> Callable[[Any], Any]:
    """SQLite keeps whatever it was given; COPY wants exactly the column's type."""
    if pg_type in ("bigint", "integer", "smallint"):
        def to_int(v: Any) -> Any:
            if v is None or type(v) is int:
                return v
            if isinstance(v, float) and v.is_integer():
                return int(v)
            if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
                return int(v)
            raise ValueError(f"{v!r} is not a whole number")
        return to_int
    if pg_type == "text":
        def to_text(v: Any) -> Any:
            if v is None or type(v) is str:
                return v
            if isinstance(v, bytes):
                return v.decode("utf-8")
            return str(v)
        return to_text
    return lambda v: v


# ---------------------------------------------------------------- the copy


@dataclass(slots=True)
class Report:
    lines: list[str]
    ok: bool


async def _target_state(conn: asyncpg.Connection) -> int:
    """Apply the baseline to a database without a schema; refuse one with Bounce rows. Returns its version."""
    has_migrations = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not has_migrations:
        others = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        if others:
            raise Refused("the target has tables but no schema_migrations: it is not an empty Bounce database "
                          f"({', '.join(sorted(r['table_name'] for r in others)[:5])} ...)")
        await apply_baseline(conn)
    version = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    if version == 0:
        await apply_baseline(conn)
        version = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    busy = []
    for table in await target_tables(conn):
        if table.name in NOT_COMMUNITY:
            continue
        if await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{table.name}")'):
            busy.append(table.name)
    if busy:
        raise Refused(f"the target already holds Bounce rows (in {', '.join(busy)}): copy only into an empty "
                      "database")
    return version


async def copy(source: str, target_url: str, *, batch: int = BATCH,
               out: Callable[[str], None] = print) -> bool:
    """Copy, verify, print what happened. True when every count and total matches. Raises Refused."""
    path = sqlite_path(source)
    try:
        conn = await asyncpg.connect(target_url)
    except (OSError, asyncpg.PostgresError) as e:
        raise Refused(f"cannot connect to the target: {e}") from e
    try:
        async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None) as src:
            await src.execute("PRAGMA busy_timeout=5000")
            return await _copy(src, conn, batch=batch, out=out)
    finally:
        await conn.close()


async def _copy(src: aiosqlite.Connection, conn: asyncpg.Connection, *, batch: int,
                out: Callable[[str], None]) -> bool:
    version = await _target_state(conn)
    collation = await conn.fetchval(
        "SELECT CASE WHEN datlocprovider = 'i' THEN 'ICU ' || daticulocale ELSE datcollate END "
        "FROM pg_database WHERE datname = current_database()")
    if collation not in CODE_POINT_ORDER:
        out(f"note: this database sorts text by {collation}, SQLite by code point, so names may list in another "
            "order; for the same order create the database with LOCALE 'C.UTF-8' TEMPLATE template0")
    src_cols = await sqlite_columns(src)
    if "schema_migrations" not in src_cols:
        raise Refused("the source is not a Bounce database (no schema_migrations)")
    await src.execute("BEGIN")  # one snapshot of the source for the copy and the counts
    try:
        async with src.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as cur:
            src_version = (await cur.fetchone())[0]
        if src_version != version:
            raise Refused(f"the source is at schema version {src_version}, the target at {version}: start this "
                          "Bounce once on the SQLite file (it migrates on start), or use the Bounce that matches")
        tables = await target_tables(conn)
        missing = sorted(set(src_cols) - {t.name for t in tables})
        if missing:
            raise Refused(f"the target has no table for {', '.join(missing)}")
        for t in tables:
            if t.name not in src_cols:
                raise Refused(f"the source has no table {t.name}")
            if set(src_cols[t.name]) != set(t.columns):
                raise Refused(f"{t.name}: the columns differ (source {src_cols[t.name]}, target {t.columns})")

        copied: dict[str, int] = {}
        async with conn.transaction():
            # The copy is the state the triggers kept in SQLite: they must not count it again here. (Disabling
            # user triggers needs only ownership of the tables; foreign keys stay checked.)
            for t in tables:
                await conn.execute(f'ALTER TABLE "{t.name}" DISABLE TRIGGER USER')
            await conn.execute("DELETE FROM meta")
            for t in tables:
                if t.name == "schema_migrations":
                    copied[t.name] = 0
                    continue
                copied[t.name] = await _copy_table(src, conn, t, batch)
                if t.identity:
                    await conn.execute(
                        f"SELECT setval(pg_get_serial_sequence('\"{t.name}\"', '{t.identity}'), "
                        f'GREATEST(COALESCE(MAX("{t.identity}"), 0), 1), MAX("{t.identity}") IS NOT NULL) '
                        f'FROM "{t.name}"')
            for t in tables:
                await conn.execute(f'ALTER TABLE "{t.name}" ENABLE TRIGGER USER')

        report = await _verify(src, conn, tables, copied)
    finally:
        await src.execute("ROLLBACK")
    for line in report.lines:
        out(line)
    return report.ok


async def _copy_table(src: aiosqlite.Connection, conn: asyncpg.Connection, t: Table, batch: int) -> int:
    cols = ", ".join(f'"{c}"' for c in t.columns)
    convert = [converter(ty) for ty in t.types]
    n = 0
    async with src.execute(f'SELECT {cols} FROM "{t.name}"') as cur:
        while rows := await cur.fetchmany(batch):
            try:
                records = [tuple(f(v) for f, v in zip(convert, row, strict=True)) for row in rows]
            except (ValueError, UnicodeDecodeError) as e:
                raise RuntimeError(f"{t.name}: a value does not fit its column: {e}") from e
            await conn.copy_records_to_table(t.name, records=records, columns=list(t.columns))
            n += len(records)
    return n


async def _verify(src: aiosqlite.Connection, conn: asyncpg.Connection, tables: Sequence[Table],
                  copied: dict[str, int]) -> Report:
    lines, ok = [], True
    width = max(len(t.name) for t in tables)
    total = 0
    for t in tables:
        async with src.execute(f'SELECT COUNT(*) FROM "{t.name}"') as cur:
            want = (await cur.fetchone())[0]
        got = await conn.fetchval(f'SELECT COUNT(*) FROM "{t.name}"')
        if t.name == "schema_migrations":
            same = got == want
            lines.append(f"{t.name:<{width}}  {got:>10,} versions (already recorded)"
                         + ("" if same else f"  MISMATCH: the source has {want:,}"))
        else:
            same = got == want == copied[t.name]
            total += got
            lines.append(f"{t.name:<{width}}  {got:>10,} {'row' if got == 1 else 'rows'}"
                         + ("" if same else f"  MISMATCH: the source has {want:,}, copied {copied[t.name]:,}"))
        ok = ok and same
    for what, sql in TOTALS:
        async with src.execute(sql) as cur:
            want_rows = [tuple(r) for r in await cur.fetchall()]
        got_rows = [tuple(r) for r in await conn.fetch(sql)]
        if want_rows == got_rows:
            lines.append(f"totals: {what} equal ({len(got_rows):,} rows)")
        else:
            ok = False
            diff = sorted(set(want_rows) ^ set(got_rows))[:5]
            lines.append(f"totals: {what} DIFFER, e.g. {diff}")
    if ok:
        lines.append(f"OK: copied {total:,} rows in {len(tables)} tables; every count and total matches.")
    else:
        lines.append("FAILED: the copy differs from the source (above). Do not switch over; drop the target "
                     "database and copy again.")
    return Report(lines, ok)


# ---------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coach.copydb",
        description="Copy a SQLite Bounce database into an empty PostgreSQL one and verify it.")
    parser.add_argument("source", help="the SQLite file (or sqlite:///path URL)")
    parser.add_argument("target", help="postgresql://user:password@host:5432/db, an empty database")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"rows per COPY (default {BATCH})")
    args = parser.parse_args(argv)
    if not args.target.startswith(("postgresql://", "postgres://")):
        print("copydb: the target must be a postgresql:// URL", file=sys.stderr)
        return 2
    try:
        ok = asyncio.run(copy(args.source, args.target, batch=max(1, args.batch)))
    except Refused as e:
        print(f"copydb: refused, no rows written: {e}", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
