"""The database layer: one connection (SQLite) or a pool (PostgreSQL), transactions, migrations, and the few
places where the two dialects differ. The aggregate modules write one SQL for both: `?` placeholders (or `?1`,
`?2` for a value used twice), `ON CONFLICT`, `RETURNING`, `COALESCE`, CTEs, integers 0/1 for booleans, epoch
seconds for times. Rows come back as plain tuples on both."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiosqlite

from coach.members import may_name_publicly

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
PG_MIGRATIONS_DIR = MIGRATIONS_DIR / "postgres"
_MIGRATION_RE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_READ_ONLY = re.compile(r"\s*SELECT\b", re.IGNORECASE)  # statements SQLite's read connection may take
_RETURNS_ROWS = re.compile(r"^\s*(SELECT|WITH|VALUES)\b|\bRETURNING\b", re.IGNORECASE)
PG_LOCK_KEY = 0x626F756E6365  # "bounce": the advisory lock that lets one process migrate while others wait

Row = tuple[Any, ...]


class StorageError(Exception):
    pass


class DatabaseTooNew(StorageError):
    pass


def migrations(directory: Path = MIGRATIONS_DIR, *, baseline: bool = False) -> list[tuple[int, str, str]]:
    """The numbered migrations in `directory`, in order; gaps are refused. With `baseline`, the first file may
    start later than 001: it then stands for every version up to its own (a dialect added after those)."""
    found = []
    for path in sorted(directory.iterdir()):
        m = _MIGRATION_RE.match(path.name)
        if m:
            found.append((int(m.group(1)), path.name, path.read_text(encoding="utf-8")))
    versions = [v for v, _, _ in found]
    first = versions[0] if baseline and versions else 1
    if versions != list(range(first, first + len(versions))):
        raise StorageError(f"migrations must be numbered 001, 002, ... without gaps; found {versions}")
    return found


def is_postgres_url(target: object) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


class Cursor:
    """What one statement gave back: its rows (read at once) and the rows it changed."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    async def fetchone(self) -> Row | None:
        return self.rows[0] if self.rows else None

    async def fetchall(self) -> list[Row]:
        return self.rows


class _Pending:
    """`await tx.execute(...)` and `async with tx.execute(...) as cur:` both work, as with aiosqlite."""

    __slots__ = ("_coro",)

    def __init__(self, coro: Awaitable[Cursor]) -> None:
        self._coro = coro

    def __await__(self) -> Generator[Any, None, Cursor]:
        return self._coro.__await__()

    async def __aenter__(self) -> Cursor:
        return await self._coro

    async def __aexit__(self, *exc: object) -> None:
        return None


class Tx:
    """A transaction's connection, the same calls on both dialects."""

    def __init__(self, run: Callable[[str, Sequence[Any]], Awaitable[Cursor]],
                 many: Callable[[str, Iterable[Sequence[Any]]], Awaitable[None]]) -> None:
        self._run = run
        self._many = many

    def execute(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> _Pending:
        return _Pending(self._run(sql, params if isinstance(params, dict) else tuple(params)))

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> None:
        await self._many(sql, seq)


class Database:
    """What the aggregate modules see. Single statements outside `transaction()` never land inside one."""

    dialect = ""
    row_locator = ""  # a hidden column that names one row, for chunked deletes
    skip_locked = ""  # ends a claim's SELECT: skip rows another transaction holds (PostgreSQL)

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        raise NotImplementedError

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        raise NotImplementedError

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        raise NotImplementedError

    def transaction(self) -> Any:  # an async context manager yielding a Tx
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return row[0] if row else 0

    async def tables(self) -> list[str]:
        raise NotImplementedError

    async def columns(self, table: str) -> list[str]:
        raise NotImplementedError

    def group_concat(self, expr: str, sep: str) -> str:
        raise NotImplementedError

    def position(self, text: str, part: str) -> str:
        """SQL for where `part` starts in `text` (1-based; 0 when absent)."""
        return f"instr({text}, {part})"

    async def ping(self) -> None:
        await self.fetchone("SELECT COUNT(*) FROM schema_migrations")

    @staticmethod
    def _too_new(current: int, known: Sequence[tuple[int, str, str]]) -> None:
        newest = known[-1][0] if known else 0
        if current > newest:
            raise DatabaseTooNew(
                f"the database is at schema version {current} but this Bounce knows only up to {newest}; "
                "run a newer Bounce or restore a backup"
            )


# ---------------------------------------------------------------------------------------------------- SQLite


async def _wal(db: aiosqlite.Connection) -> None:
    """WAL mode. Switching takes a lock without waiting on SQLite's busy handler, so when another process is
    opening (and migrating) the same file at that moment, wait here, up to the busy timeout."""
    for attempt in range(50):
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            await asyncio.sleep(0.1)


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class SQLiteDatabase(Database):
    """One aiosqlite writer connection (a transaction at a time, IMMEDIATE) plus a read-only connection: in WAL
    mode reads see the last commit without waiting for a write in progress, so members' answers never queue
    behind a fan-out's transactions. (In memory: the one.)"""

    dialect = "sqlite"
    row_locator = "rowid"

    def __init__(self, db: aiosqlite.Connection, path: Path | None) -> None:
        self.db = db
        self.path = path
        self.reader: aiosqlite.Connection | None = None
        self._tx_lock = asyncio.Lock()
        self._identity = _file_identity(path) if path is not None else None

    @classmethod
    async def open(cls, path: Path | str, migrations_dir: Path | None) -> SQLiteDatabase:
        target = Path(path) if str(path) != ":memory:" else None
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), isolation_level=None)
        store: SQLiteDatabase | None = None
        try:
            await db.execute("PRAGMA busy_timeout=5000")  # first: another process may be opening it right now
            await _wal(db)
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA synchronous=NORMAL")
            # The one rule for naming a member in public (coach.members), callable from SQL under the same name.
            await db.create_function("may_name_publicly", 1, may_name_publicly, deterministic=True)
            store = cls(db, target)
            await store._migrate(migrations(migrations_dir or MIGRATIONS_DIR))
            if target is not None:
                store.reader = await aiosqlite.connect(f"file:{target}?mode=ro", uri=True, isolation_level=None)
                await store.reader.execute("PRAGMA busy_timeout=5000")
                await store.reader.create_function("may_name_publicly", 1, may_name_publicly, deterministic=True)
        except BaseException:
            if store is not None and store.reader is not None:
                await store.reader.close()
            await db.close()
            raise
        return store

    async def close(self) -> None:
        if self.reader is not None:
            await self.reader.close()
        await self.db.close()

    async def _migrate(self, known: Sequence[tuple[int, str, str]]) -> None:
        """Apply the migrations this database lacks, each in its own IMMEDIATE transaction.

        Safe when several processes start together: a migration's first statement records its version, so
        whoever comes second hits the primary key, rolls back untouched, and moves on to the next one.
        """
        await self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')))"
        )
        current = await self.schema_version()
        self._too_new(current, known)
        for version, name, sql in known:
            if version <= current:
                continue
            try:
                await self.db.executescript(
                    f"BEGIN IMMEDIATE;\nINSERT INTO schema_migrations (version, name) VALUES ({version}, '{name}');"
                    f"\n{sql}\nCOMMIT;")
            except sqlite3.IntegrityError:
                await self.db.execute("ROLLBACK")
                if await self.schema_version() < version:
                    raise  # the migration itself broke a constraint: not a race
                log.info("migration %s was applied by another process", name)
                continue
            except BaseException:
                if self.db.in_transaction:
                    await self.db.execute("ROLLBACK")
                raise
            log.info("applied migration %s", name)

    async def _run(self, sql: str, params: Any) -> Cursor:
        async with self.db.execute(sql, params) as cur:
            rows = list(await cur.fetchall()) if cur.description else []
            return Cursor(rows, cur.rowcount)

    async def _many(self, sql: str, seq: Iterable[Sequence[Any]]) -> None:
        await self.db.executemany(sql, seq)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._tx_lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(self._run, self._many)
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            else:
                await self.db.execute("COMMIT")

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        if self.reader is not None and _READ_ONLY.match(sql):
            async with self.reader.execute(sql, tuple(params)) as cur:
                return await cur.fetchone()
        async with self._tx_lock, self.db.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        if self.reader is not None and _READ_ONLY.match(sql):
            async with self.reader.execute(sql, tuple(params)) as cur:
                return list(await cur.fetchall())
        async with self._tx_lock, self.db.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        async with self._tx_lock, self.db.execute(sql, tuple(params)) as cur:
            return cur.rowcount

    async def tables(self) -> list[str]:
        rows = await self.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        return [r[0] for r in rows]

    async def columns(self, table: str) -> list[str]:
        return [r[1] for r in await self.fetchall(f'PRAGMA table_info("{table}")')]

    def group_concat(self, expr: str, sep: str) -> str:
        return f"group_concat({expr}, '{sep}')"

    async def ping(self) -> None:
        """Raise unless the database answers and the file it was opened from is still in place."""
        await super().ping()
        if self.path is not None:
            current = _file_identity(self.path)
            if current is None or current != self._identity:
                raise StorageError(f"the database file {self.path} is gone or was replaced")


# ---------------------------------------------------------------------------------------------------- PostgreSQL


@lru_cache(maxsize=2048)
def pg_sql(sql: str) -> tuple[str, tuple[str, ...]]:
    """The one rewrite from the shared SQL to PostgreSQL's: `?` → `$1, $2, …`, `?N` → `$N` and `:name` → `$N`
    (returning the names in order, for a dict of parameters), outside string literals; SQLite's index hints
    dropped (PostgreSQL's planner takes none)."""
    out: list[str] = []
    names: list[str] = []
    n = 0
    i = 0
    quoted = False
    while i < len(sql):
        ch = sql[i]
        if ch == "'":
            quoted = not quoted
        elif ch == "?" and not quoted:
            j = i + 1
            while j < len(sql) and sql[j].isdigit():
                j += 1
            if j > i + 1:
                out.append("$" + sql[i + 1:j])
            else:
                n += 1
                out.append(f"${n}")
            i = j
            continue
        elif (ch == ":" and not quoted and i + 1 < len(sql) and (sql[i + 1].isalpha() or sql[i + 1] == "_")
              and sql[i - 1] != ":"):
            j = i + 1
            while j < len(sql) and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            name = sql[i + 1:j]
            if name not in names:
                names.append(name)
            out.append(f"${names.index(name) + 1}")
            i = j
            continue
        out.append(ch)
        i += 1
    return re.sub(r"\s+INDEXED BY\s+\w+", "", "".join(out)), tuple(names)


def _args(sql: str, params: Any) -> tuple[str, Sequence[Any]]:
    query, names = pg_sql(sql)
    if isinstance(params, dict):
        return query, [params[name] for name in names]
    return query, tuple(params)


def baseline_names(version: int) -> list[tuple[int, str]]:
    """What a PostgreSQL baseline numbered `version` stands for: the SQLite migrations 001..version, recorded
    under their own names (so both dialects' schema_migrations read alike)."""
    names = {v: name for v, name, _ in migrations(MIGRATIONS_DIR) if v <= version}
    return [(v, names.get(v, f"{v:03d}_baseline")) for v in range(1, version + 1)]


async def migrate_postgres(conn: Any, known: Sequence[tuple[int, str, str]]) -> int:
    """Apply what the database lacks, on this asyncpg connection, under an advisory lock: one process migrates,
    the others wait and then find nothing to do. A first file numbered above 001 is a baseline standing for
    every version up to its own (PostgreSQL came after those). Returns how many migrations it applied."""
    applied = 0
    await conn.execute("SELECT pg_advisory_lock($1)", PG_LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))")
        current = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        Database._too_new(current, known)
        for index, (version, name, sql) in enumerate(known):
            if version <= current:
                continue
            records = baseline_names(version) if index == 0 and current == 0 else [(version, name)]
            async with conn.transaction():
                await conn.execute(sql)
                await conn.executemany("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", records)
            applied += 1
            log.info("applied migration %s", name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", PG_LOCK_KEY)
    return applied


def _plain(record: Any) -> Row:
    # SUM over BIGINT is NUMERIC in PostgreSQL: hand back ints, as SQLite does.
    return tuple(int(v) if type(v) is Decimal else v for v in record)


def _changed(status: str) -> int:
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresDatabase(Database):
    """An asyncpg pool. Writes that belong together run in one READ COMMITTED transaction; races between
    processes are settled by unique constraints, `ON CONFLICT`, compare-and-set updates and
    `FOR UPDATE SKIP LOCKED` claims, never by a check before a write. Within one process, transactions still
    run one at a time (as on SQLite), so a process never deadlocks with itself."""

    dialect = "postgres"
    row_locator = "ctid"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, pool: Any, url: str) -> None:
        self.pool = pool
        self.url = url
        self._tx_lock = asyncio.Lock()

    @classmethod
    async def open(cls, url: str, migrations_dir: Path | None, *, pool_size: int = 10) -> PostgresDatabase:
        import asyncpg  # only needed with a postgresql:// DATABASE_URL

        try:
            # Custom plans always: a prepared statement's generic plan cannot know that one server holds a tenth
            # of all check-ins (measured: the leaderboard's streak query 15.6 ms generic, 7.6 ms custom).
            pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size, command_timeout=60,
                                             server_settings={"plan_cache_mode": "force_custom_plan"})
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise StorageError(f"cannot connect: {exc}") from exc
        store = cls(pool, url)
        try:
            await store._migrate(migrations(migrations_dir or PG_MIGRATIONS_DIR, baseline=True))
        except asyncpg.PostgresError as exc:
            await pool.close()
            raise StorageError(f"migrating failed: {exc}") from exc
        except BaseException:
            await pool.close()
            raise
        return store

    async def close(self) -> None:
        await self.pool.close()

    async def _migrate(self, known: Sequence[tuple[int, str, str]]) -> None:
        async with self.pool.acquire() as conn:
            await migrate_postgres(conn, known)

    @staticmethod
    async def _run_on(conn: Any, sql: str, params: Any) -> Cursor:
        query, args = _args(sql, params)
        if _RETURNS_ROWS.search(sql):
            records = await conn.fetch(query, *args)
            return Cursor([_plain(r) for r in records], len(records))
        return Cursor([], _changed(await conn.execute(query, *args)))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._tx_lock, self.pool.acquire() as conn, conn.transaction():
            async def run(sql: str, params: Sequence[Any]) -> Cursor:
                return await self._run_on(conn, sql, params)

            async def many(sql: str, seq: Iterable[Sequence[Any]]) -> None:
                await conn.executemany(pg_sql(sql)[0], list(seq))

            yield Tx(run, many)

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        async with self.pool.acquire() as conn:
            query, args = _args(sql, params)
            record = await conn.fetchrow(query, *args)
        return None if record is None else _plain(record)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        async with self.pool.acquire() as conn:
            query, args = _args(sql, params)
            return [_plain(r) for r in await conn.fetch(query, *args)]

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        async with self.pool.acquire() as conn:
            return (await self._run_on(conn, sql, params)).rowcount

    async def tables(self) -> list[str]:
        rows = await self.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE' ORDER BY table_name")
        return [r[0] for r in rows]

    async def columns(self, table: str) -> list[str]:
        rows = await self.fetchall(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ? ORDER BY ordinal_position", (table,))
        return [r[0] for r in rows]

    def group_concat(self, expr: str, sep: str) -> str:
        return f"string_agg({expr}, '{sep}')"

    def position(self, text: str, part: str) -> str:
        return f"strpos({text}, {part})"



async def open_database(target: Path | str, migrations_dir: Path | None = None) -> Database:
    """A SQLite file (a path or `sqlite:///path`) or a PostgreSQL database (`postgresql://…`), migrated."""
    if is_postgres_url(target):
        return await PostgresDatabase.open(str(target), migrations_dir)
    raw = str(target)
    if raw.startswith("sqlite:///"):
        raw = raw.removeprefix("sqlite:///")
    return await SQLiteDatabase.open(raw, migrations_dir)
