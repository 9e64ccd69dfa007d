"""All SQL lives here. aiosqlite in WAL mode, numbered migrations, rows as small typed classes."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from coach.board import local_midnight, recap_week
from coach.clock import to_unix
from coach.members import may_name_publicly
from coach.outbox import Job, Sent, Take, crashpoint
from coach.streaks import FREEZE_EVERY, FREEZE_MAX

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Ledger kinds that are depth points: a reflection (+2) and a Your Turn exercise marked done (+1).
DEPTH_KINDS = "('reflection', 'exercise')"
_MIGRATION_RE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class StorageError(Exception):
    pass


class DatabaseTooNew(StorageError):
    pass


def migrations(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, str, str]]:
    found = []
    for path in sorted(directory.iterdir()):
        m = _MIGRATION_RE.match(path.name)
        if m:
            found.append((int(m.group(1)), path.name, path.read_text(encoding="utf-8")))
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise StorageError(f"migrations must be numbered 001, 002, ... without gaps; found {versions}")
    return found


# ---------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class GuildSettings:
    guild_id: int
    channel_id: int
    time_local: str
    timezone: str
    days: int
    role_id: int | None
    paused: bool
    next_due: int | None
    last_error: str | None
    last_error_at: int | None
    error_told: bool
    removed_at: int | None


@dataclass(frozen=True, slots=True)
class Round:
    id: int
    guild_id: int
    local_date: str
    scheduled_at: int
    channel_id: int
    message_id: int | None
    prompt_index: int | None
    state: str
    late: bool
    manual: bool
    error: str | None
    posted_at: int | None


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    guild_id: int
    user_id: int
    name: str
    status: str
    deadline: str | None
    created_at: int
    closed_at: int | None
    announced: bool


@dataclass(frozen=True, slots=True)
class Checkin:
    id: int
    guild_id: int
    user_id: int
    local_date: str
    round_id: int | None
    status: str
    project_id: int | None
    note: str | None
    via: str
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class Member:
    guild_id: int
    user_id: int
    display_name: str
    announce: bool
    notice: str | None


def _row(cls: type, row: sqlite3.Row | None) -> Any:
    if row is None:
        return None
    return cls(*row)


_GUILD_COLS = ("guild_id, channel_id, time_local, timezone, days, role_id, paused, next_due, last_error, "
               "last_error_at, error_told, removed_at")
_ROUND_COLS = ("id, guild_id, local_date, scheduled_at, channel_id, message_id, prompt_index, state, late, "
               "manual, error, posted_at")
_PROJECT_COLS = "id, guild_id, user_id, name, status, deadline, created_at, closed_at, announced"
_CHECKIN_COLS = ("id, guild_id, user_id, local_date, round_id, status, project_id, note, via, created_at, "
                 "updated_at")


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


_READ_ONLY = re.compile(r"\s*SELECT\b", re.IGNORECASE)  # statements the read connection may take


class Storage:
    """One aiosqlite connection; writes that belong together run in one IMMEDIATE transaction."""

    def __init__(self, db: aiosqlite.Connection, path: Path | None) -> None:
        self.db = db
        self.path = path
        self._tx_lock = asyncio.Lock()  # one transaction at a time on the shared connection
        # Reads go to a second connection: in WAL mode they see the last commit without waiting for a write in
        # progress, so members' answers never queue behind a fan-out's transactions. (In memory: the one.)
        self.reader: aiosqlite.Connection | None = None

    # ------------------------------------------------------------ lifecycle

    @classmethod
    async def open(cls, path: Path | str, *, migrations_dir: Path = MIGRATIONS_DIR) -> Storage:
        target = Path(path) if str(path) != ":memory:" else None
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), isolation_level=None)
        reader: aiosqlite.Connection | None = None
        try:
            await db.execute("PRAGMA busy_timeout=5000")  # first: another process may be opening it right now
            await _wal(db)
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA synchronous=NORMAL")
            # The one rule for naming a member in public (coach.members), callable from SQL under the same name.
            await db.create_function("may_name_publicly", 1, may_name_publicly, deterministic=True)
            store = cls(db, target)
            await store._migrate(migrations(migrations_dir))
            if target is not None:
                reader = await aiosqlite.connect(f"file:{target}?mode=ro", uri=True, isolation_level=None)
                store.reader = reader
                await reader.execute("PRAGMA busy_timeout=5000")
                await reader.create_function("may_name_publicly", 1, may_name_publicly, deterministic=True)
        except BaseException:
            if reader is not None:
                await reader.close()
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
        newest = known[-1][0] if known else 0
        if current > newest:
            raise DatabaseTooNew(
                f"the database is at schema version {current} but this Bounce knows only up to {newest}; "
                "run a newer Bounce or restore a backup"
            )
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

    async def schema_version(self) -> int:
        async with self.db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as cur:
            return (await cur.fetchone())[0]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._tx_lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            else:
                await self.db.execute("COMMIT")

    # Single statements wait while another task holds a transaction on the shared connection, so they can never
    # land inside it (and be rolled back with it). Never call these inside `transaction()`: use its `db`.

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        if self.reader is not None and _READ_ONLY.match(sql):
            async with self.reader.execute(sql, tuple(params)) as cur:
                return await cur.fetchone()
        async with self._tx_lock, self.db.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        if self.reader is not None and _READ_ONLY.match(sql):
            async with self.reader.execute(sql, tuple(params)) as cur:
                return list(await cur.fetchall())
        async with self._tx_lock, self.db.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        async with self._tx_lock, self.db.execute(sql, tuple(params)) as cur:
            return cur.rowcount

    # ------------------------------------------------------------ meta

    async def get_meta(self, key: str) -> str | None:
        row = await self.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0] if row else None

    async def set_meta(self, key: str, value: str) -> None:
        await self.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # ------------------------------------------------------------ guild settings

    async def get_guild(self, guild_id: int) -> GuildSettings | None:
        row = await self.fetchone(f"SELECT {_GUILD_COLS} FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return _row(GuildSettings, row)

    async def upsert_guild(
        self, *, guild_id: int, channel_id: int, time_local: str, timezone: str, days: int,
        role_id: int | None, next_due: int | None, now: datetime,
    ) -> None:
        ts = to_unix(now)
        await self.execute(
            """INSERT INTO guild_settings (guild_id, channel_id, time_local, timezone, days, role_id, paused,
                   next_due, created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)
               ON CONFLICT (guild_id) DO UPDATE SET channel_id = excluded.channel_id,
                   time_local = excluded.time_local, timezone = excluded.timezone, days = excluded.days,
                   role_id = excluded.role_id,
                   next_due = CASE WHEN guild_settings.paused THEN NULL ELSE excluded.next_due END,
                   last_error = NULL, last_error_at = NULL, error_told = 0, removed_at = NULL,
                   updated_at = excluded.updated_at""",
            (guild_id, channel_id, time_local, timezone, days, role_id, next_due, ts, ts),
        )

    async def set_paused(self, guild_id: int, paused: bool, next_due: int | None, now: datetime) -> None:
        await self.execute(
            "UPDATE guild_settings SET paused = ?, next_due = ?, updated_at = ? WHERE guild_id = ?",
            (int(paused), next_due, to_unix(now), guild_id),
        )

    async def due_guilds(self, until: int, limit: int) -> list[GuildSettings]:
        rows = await self.fetchall(
            f"SELECT {_GUILD_COLS} FROM guild_settings WHERE next_due IS NOT NULL AND next_due <= ? "
            "AND removed_at IS NULL ORDER BY next_due LIMIT ?",
            (until, limit),
        )
        return [GuildSettings(*r) for r in rows]

    async def take_guild_error(self, guild_id: int) -> str | None:
        """The last posting error not yet told to an admin; marks it told."""
        row = await self.fetchone(
            "UPDATE guild_settings SET error_told = 1 WHERE guild_id = ? AND last_error IS NOT NULL "
            "AND error_told = 0 RETURNING last_error",
            (guild_id,),
        )
        return row[0] if row else None

    # ------------------------------------------------------------ rounds

    async def claim_round(
        self, *, guild_id: int, local_date: str, scheduled_at: int, channel_id: int, prompt_index: int,
        late: bool, manual: bool, now: datetime,
    ) -> Round | None:
        """Insert the round's unique row; None when the round for that date already exists."""
        row = await self.fetchone(
            f"""INSERT INTO rounds (guild_id, local_date, scheduled_at, channel_id, prompt_index, state, late,
                   manual, created_at)
               VALUES (?, ?, ?, ?, ?, 'claimed', ?, ?, ?)
               ON CONFLICT (guild_id, local_date) DO NOTHING
               RETURNING {_ROUND_COLS}""",
            (guild_id, local_date, scheduled_at, channel_id, prompt_index, int(late), int(manual), to_unix(now)),
        )
        return _row(Round, row)

    async def mark_round_posted(self, round_id: int, message_id: int, now: datetime) -> None:
        await self.execute(
            "UPDATE rounds SET state = 'posted', message_id = ?, posted_at = ?, error = NULL WHERE id = ?",
            (message_id, to_unix(now), round_id),
        )

    async def set_round_prompt(self, round_id: int, prompt_index: int) -> Round:
        """The round's prompt, chosen once: a retry keeps the first choice."""
        await self.execute("UPDATE rounds SET prompt_index = ? WHERE id = ? AND prompt_index IS NULL",
                           (prompt_index, round_id))
        return await self.get_round(round_id)  # type: ignore[return-value]

    async def mark_round_failed(self, round_id: int, error: str) -> None:
        await self.execute("UPDATE rounds SET state = 'failed', error = ? WHERE id = ?", (error, round_id))

    async def get_round(self, round_id: int) -> Round | None:
        return _row(Round, await self.fetchone(f"SELECT {_ROUND_COLS} FROM rounds WHERE id = ?", (round_id,)))

    async def round_on(self, guild_id: int, local_date: str) -> Round | None:
        row = await self.fetchone(
            f"SELECT {_ROUND_COLS} FROM rounds WHERE guild_id = ? AND local_date = ?", (guild_id, local_date)
        )
        return _row(Round, row)

    async def latest_round(self, guild_id: int) -> Round | None:
        """The newest round that reached the channel: the one answers count for."""
        row = await self.fetchone(
            f"SELECT {_ROUND_COLS} FROM rounds WHERE guild_id = ? AND state = 'posted' "
            "ORDER BY local_date DESC LIMIT 1",
            (guild_id,),
        )
        return _row(Round, row)

    async def recent_prompt_indices(self, guild_id: int, count: int) -> list[int]:
        rows = await self.fetchall(
            "SELECT prompt_index FROM rounds WHERE guild_id = ? AND prompt_index IS NOT NULL "
            "ORDER BY local_date DESC LIMIT ?",
            (guild_id, count),
        )
        return [r[0] for r in rows]

    async def posted_round_dates(self, guild_id: int, limit: int | None = None) -> list[str]:
        rows = await self.fetchall(
            "SELECT local_date FROM rounds WHERE guild_id = ? AND state = 'posted' ORDER BY local_date DESC "
            + ("LIMIT ?" if limit else ""),
            (guild_id, limit) if limit else (guild_id,),
        )
        return [r[0] for r in reversed(rows)]

    async def tally(self, round_id: int) -> dict[str, int]:
        rows = await self.fetchall(
            "SELECT status, COUNT(*) FROM checkins WHERE round_id = ? GROUP BY status", (round_id,)
        )
        counts = {"finished": 0, "unfinished": 0, "skipped": 0}
        counts.update({r[0]: r[1] for r in rows})
        return counts

    # ------------------------------------------------------------ outbox (coach/outbox.py)

    _JOB_COLS = "id, kind, ref_id, guild_id, due_at, expires_at, attempts, first_try_at, lease_until, error"

    async def take_due(self, kind: str, takes: Sequence[Take], now: datetime) -> list[int]:
        """Advance each due schedule (compare-and-set) and insert what it posts with its outbox row, all in
        one transaction: a crash before COMMIT leaves the schedules due; after it, the outbox has the rows.
        Returns the new outbox ids. A schedule another process advanced first is left alone."""
        created: list[int] = []
        ts = to_unix(now)
        async with self.transaction() as db:
            for take in takes:
                if not await self._advance(db, kind, take):
                    continue
                if take.local_date is None:
                    continue
                ref = await self._insert_ref(db, kind, take, ts)
                if ref is None:
                    continue
                created.append(await self._insert_job(db, kind, ref, take.guild_id, take.scheduled_at,
                                                      take.expires_at, ts))
            if created:
                crashpoint("in_take")  # the crash tests: killed before COMMIT, nothing of this was taken
        return created

    async def take_manual_round(self, take: Take, now: datetime) -> int | None:
        """/coach post-now: today's round and its outbox row (no schedule moves). None if today's exists."""
        ts = to_unix(now)
        async with self.transaction() as db:
            ref = await self._insert_ref(db, "round", take, ts, manual=True)
            if ref is None:
                return None
            return await self._insert_job(db, "round", ref, take.guild_id, take.scheduled_at, take.expires_at,
                                          ts)

    @staticmethod
    async def _advance(db: aiosqlite.Connection, kind: str, take: Take) -> bool:
        if kind == "round":
            sql, args = ("UPDATE guild_settings SET next_due = ? WHERE guild_id = ? AND next_due = ?",
                         (take.next_due, take.guild_id, take.expected_due))
        elif kind == "lesson":
            sql, args = ("UPDATE lesson_settings SET next_due = ? WHERE guild_id = ? AND next_due = ?",
                         (take.next_due, take.guild_id, take.expected_due))
        elif kind == "dm":
            sql, args = ("UPDATE dm_schedules SET next_due = ? WHERE guild_id = ? AND user_id = ? AND next_due = ?",
                         (take.next_due, take.guild_id, take.user_id, take.expected_due))
        else:
            raise ValueError(kind)
        async with db.execute(sql, args) as cur:
            return cur.rowcount == 1

    @staticmethod
    async def _insert_ref(db: aiosqlite.Connection, kind: str, take: Take, ts: int, *,
                          manual: bool = False) -> int | None:
        if kind == "round":
            sql = ("INSERT INTO rounds (guild_id, local_date, scheduled_at, channel_id, state, late, manual, "
                   "created_at) VALUES (?, ?, ?, ?, 'claimed', ?, ?, ?) "
                   "ON CONFLICT (guild_id, local_date) DO NOTHING RETURNING id")
            args: tuple = (take.guild_id, take.local_date, take.scheduled_at, take.channel_id, int(take.late),
                           int(manual), ts)
        elif kind == "lesson":
            sql = ("INSERT INTO lesson_posts (guild_id, local_date, lesson_id, scheduled_at, channel_id, late, "
                   "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, local_date) DO NOTHING "
                   "RETURNING id")
            args = (take.guild_id, take.local_date, take.lesson_id, take.scheduled_at, take.channel_id,
                    int(take.late), ts)
        elif kind == "dm":
            sql = ("INSERT INTO dm_rounds (guild_id, user_id, local_date, scheduled_at, closes_at, late, "
                   "created_at, claimed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (guild_id, user_id, local_date) DO NOTHING RETURNING id")
            args = (take.guild_id, take.user_id, take.local_date, take.scheduled_at, take.closes_at,
                    int(take.late), ts, ts)
        else:
            raise ValueError(kind)
        async with db.execute(sql, args) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    @staticmethod
    async def _insert_job(db: aiosqlite.Connection, kind: str, ref_id: int, guild_id: int, due_at: int,
                          expires_at: int, ts: int) -> int:
        async with db.execute(
            "INSERT INTO outbox (kind, ref_id, guild_id, due_at, expires_at, next_try_at, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (kind, ref_id, guild_id, due_at, expires_at, due_at, ts),
        ) as cur:
            return (await cur.fetchone())[0]

    async def lease_jobs(self, kind: str, owner: str, now: datetime, lease: int, limit: int,
                         job_id: int | None = None) -> list[Job]:
        """Lease up to `limit` ready rows of a kind, oldest due first: pending, not waiting out a backoff,
        and not leased by anyone (or leased by someone whose lease ran out)."""
        ts = to_unix(now)
        pick = ("SELECT id FROM outbox WHERE id = ?4 AND state = 'pending' AND lease_until < ?1 LIMIT ?5" if job_id else
                "SELECT id FROM outbox WHERE kind = ?4 AND state = 'pending' AND next_try_at <= ?1 "
                "AND lease_until < ?1 ORDER BY due_at, id LIMIT ?5")
        rows = await self.fetchall(
            f"""UPDATE outbox SET lease_owner = ?2, lease_until = ?3, attempts = attempts + 1,
                    first_try_at = COALESCE(first_try_at, ?1)
                WHERE id IN ({pick}) AND state = 'pending' AND lease_until < ?1
                RETURNING {self._JOB_COLS}""",
            (ts, owner, ts + lease, job_id if job_id else kind, limit),
        )
        return sorted((Job(*r) for r in rows), key=lambda j: (j.due_at, j.id))

    async def release_leases(self, owner: str) -> int:
        """At start: rows this instance leased in its previous life (killed mid-post) are ready again."""
        return await self.execute(
            "UPDATE outbox SET lease_until = 0 WHERE lease_owner = ? AND state = 'pending' AND lease_until > 0",
            (owner,))

    async def retry_job(self, job: Job, next_try_at: int, reason: str) -> None:
        await self.execute(
            "UPDATE outbox SET next_try_at = ?, lease_until = 0, error = ? WHERE id = ? AND state = 'pending'",
            (next_try_at, reason, job.id))

    _FINISH_SQL: dict[tuple[str, str], tuple[str, ...]] = {
        ("round", "done"): (
            "UPDATE rounds SET state = 'posted', message_id = :message_id, posted_at = :now, error = NULL "
            "WHERE id = :ref",
            "UPDATE guild_settings SET last_error = NULL, last_error_at = NULL, error_told = 0 "
            "WHERE guild_id = :guild AND last_error IS NOT NULL",
        ),
        ("round", "failed"): (
            "UPDATE rounds SET state = CASE WHEN :reason = 'missed' THEN 'missed' ELSE 'failed' END, "
            "error = :reason WHERE id = :ref",
            "UPDATE guild_settings SET last_error = :reason, last_error_at = :now, error_told = 0 "
            "WHERE guild_id = :guild AND :reason != 'missed'",
        ),
        ("dm", "done"): (
            "UPDATE dm_rounds SET state = 'sent', channel_id = :channel_id, message_id = :message_id, "
            "sent_at = :now, error = NULL WHERE id = :ref",
        ),
        ("dm", "skipped"): (
            "UPDATE dm_rounds SET state = CASE WHEN :reason = 'answered' THEN 'answered' ELSE 'cancelled' END, "
            "error = :reason WHERE id = :ref",
        ),
        ("dm", "failed"): ("UPDATE dm_rounds SET state = 'failed', error = :reason WHERE id = :ref",),
        ("lesson", "done"): (
            "UPDATE lesson_posts SET state = 'posted', message_id = :message_id, posted_at = :now, error = NULL "
            "WHERE id = :ref",
            "UPDATE lesson_settings SET last_error = NULL, last_error_at = NULL, error_told = 0 "
            "WHERE guild_id = :guild AND last_error IS NOT NULL",
        ),
        ("lesson", "failed"): (
            "UPDATE lesson_posts SET state = 'failed', error = :reason WHERE id = :ref",
            "UPDATE lesson_settings SET last_error = :reason, last_error_at = :now, error_told = 0 "
            "WHERE guild_id = :guild AND :reason != 'missed'",
        ),
        ("recap", "done"): (
            "UPDATE recaps SET state = 'posted', channel_id = COALESCE(:channel_id, channel_id), "
            "message_id = :message_id, error = NULL WHERE id = :ref",
        ),
        ("recap", "skipped"): ("UPDATE recaps SET state = 'empty', error = :reason WHERE id = :ref",),
        ("recap", "failed"): ("UPDATE recaps SET state = 'failed', error = :reason WHERE id = :ref",),
        ("role", "done"): (
            "UPDATE role_changes SET state = 'done', error = NULL WHERE id = :ref",
            # The first change of a reward after its failure (permission removed, role moved) went through:
            # members who earned a role meanwhile are looked at again.
            "INSERT INTO role_dirty (guild_id, user_id, seq) SELECT DISTINCT guild_id, user_id, 0 FROM checkins "
            "WHERE guild_id = :guild AND EXISTS (SELECT 1 FROM role_rewards WHERE last_error IS NOT NULL "
            "AND id = (SELECT reward_id FROM role_changes WHERE id = :ref)) ON CONFLICT DO NOTHING",
            "UPDATE role_rewards SET last_error = NULL, last_error_at = NULL "
            "WHERE id = (SELECT reward_id FROM role_changes WHERE id = :ref) AND last_error IS NOT NULL",
        ),
        ("role", "skipped"): ("UPDATE role_changes SET state = 'skipped', error = :reason WHERE id = :ref",),
        ("role", "failed"): (
            "UPDATE role_changes SET state = 'failed', error = :reason WHERE id = :ref",
            # A role that could not be given is not held: the member gets it with a later change.
            "DELETE FROM role_holders WHERE (guild_id, reward_id, user_id) = "
            "(SELECT guild_id, reward_id, user_id FROM role_changes WHERE id = :ref AND action = 'add')",
            "UPDATE role_rewards SET last_error = :reason, last_error_at = :now "
            "WHERE id = (SELECT reward_id FROM role_changes WHERE id = :ref) "
            "AND :reason IN ('role_deleted', 'missing_permission', 'role_too_high')",
        ),
    }

    async def finish_job(self, job: Job, state: str, now: datetime, *, sent: Sent | None = None,
                         reason: str | None = None) -> int | None:
        """Record the outcome on the outbox row and on the kind's own row, in one transaction. Returns how many
        follow-up rows it queued (a round's weekly recap, a recap's weekly roles), or None when the row was
        finished already (another process took over and finished it)."""
        values = {"ref": job.ref_id, "guild": job.guild_id, "now": to_unix(now), "reason": reason,
                  "message_id": sent.message_id if sent else None, "channel_id": sent.channel_id if sent else None}
        async with self.transaction() as db:
            async with db.execute(
                "UPDATE outbox SET state = ?, error = ?, finished_at = ?, lease_until = 0 "
                "WHERE id = ? AND state = 'pending'",
                (state, reason, values["now"], job.id),
            ) as cur:
                if cur.rowcount != 1:
                    return None
            for sql in self._FINISH_SQL.get((job.kind, state), ()):
                await db.execute(sql, values)
            queued = 0
            if job.kind == "round" and state == "done":
                queued += await self._queue_recap(db, job, values["now"])
            if job.kind == "recap" and state == "done":
                queued += await self._queue_weekly_roles(db, job, values["now"])
        return queued

    async def _queue_recap(self, db: aiosqlite.Connection, job: Job, ts: int) -> int:
        """With the first round posted in a week, the recap of the week before: queued in the transaction that
        records the round, so it is neither lost nor doubled, and always comes after the round."""
        async with db.execute("SELECT local_date, channel_id FROM rounds WHERE id = ?", (job.ref_id,)) as cur:
            local_date, channel_id = await cur.fetchone()
        week = recap_week(date.fromisoformat(local_date)).isoformat()
        async with db.execute(
            "INSERT INTO recaps (guild_id, week, state, channel_id, round_id, created_at) "
            "VALUES (?, ?, 'claimed', ?, ?, ?) ON CONFLICT (guild_id, week) DO NOTHING RETURNING id",
            (job.guild_id, week, channel_id, job.ref_id, ts),
        ) as cur:
            recap = await cur.fetchone()
        if recap is None:
            return 0
        await self._insert_job(db, "recap", recap[0], job.guild_id, ts, max(job.expires_at, ts + 3600), ts)
        return 1

    async def get_job(self, job_id: int) -> tuple[str, str | None] | None:
        """(state, error) of an outbox row."""
        row = await self.fetchone("SELECT state, error FROM outbox WHERE id = ?", (job_id,))
        return (row[0], row[1]) if row else None

    async def break_schedule(self, kind: str, guild_id: int, user_id: int | None, reason: str,
                             now: datetime) -> None:
        """A schedule that cannot be computed (e.g. a time zone a tzdata update removed): stop it, say why."""
        ts = to_unix(now)
        if kind == "round":
            await self.execute("UPDATE guild_settings SET next_due = NULL, paused = 1, last_error = ?, "
                               "last_error_at = ?, error_told = 0 WHERE guild_id = ?", (reason, ts, guild_id))
        elif kind == "lesson":
            await self.execute("UPDATE lesson_settings SET next_due = NULL, last_error = ?, last_error_at = ?, "
                               "error_told = 0 WHERE guild_id = ?", (reason, ts, guild_id))
        elif kind == "dm":
            await self.dm_off(guild_id, user_id or 0, reason, now)

    # ------------------------------------------------------------ members

    async def touch_member(self, guild_id: int, user_id: int, display_name: str, now: datetime, *,
                           from_server: bool = True) -> None:
        """Store the member's name in this server (coach.members.display_name). A name seen outside the server
        (`from_server=False`, a DM: no nickname there) only fills an empty name, never replaces the server's."""
        await self.execute(
            """INSERT INTO members (guild_id, user_id, display_name, first_seen) VALUES (?, ?, ?, ?)
               ON CONFLICT (guild_id, user_id) DO UPDATE SET display_name = excluded.display_name
               WHERE members.display_name != excluded.display_name AND (? OR members.display_name = '')""",
            (guild_id, user_id, display_name[:100], to_unix(now), int(from_server)),
        )

    async def get_member(self, guild_id: int, user_id: int) -> Member | None:
        row = await self.fetchone(
            "SELECT guild_id, user_id, display_name, announce, notice FROM members WHERE guild_id = ? AND user_id = ?",
            (guild_id, user_id),
        )
        return _row(Member, row)

    async def set_announce(self, guild_id: int, user_id: int, on: bool) -> None:
        await self.execute(
            "UPDATE members SET announce = ? WHERE guild_id = ? AND user_id = ?", (int(on), guild_id, user_id)
        )

    async def set_notice(self, guild_id: int, user_id: int, notice: str | None) -> None:
        await self.execute(
            "UPDATE members SET notice = ? WHERE guild_id = ? AND user_id = ?", (notice, guild_id, user_id)
        )

    async def take_notice(self, guild_id: int, user_id: int) -> str | None:
        async with self.transaction() as db:
            async with db.execute(
                "SELECT notice FROM members WHERE guild_id = ? AND user_id = ? AND notice IS NOT NULL",
                (guild_id, user_id),
            ) as cur:
                row = await cur.fetchone()
            if row:
                await db.execute("UPDATE members SET notice = NULL WHERE guild_id = ? AND user_id = ?",
                                 (guild_id, user_id))
        return row[0] if row else None

    # ------------------------------------------------------------ voice: what the coach said

    async def voice_memory(self, guild_id: int, user_id: int, key: str) -> str | None:
        """The coach's memory for (server, member, key): a rotation's used line ids or a marker; None if unset."""
        row = await self.fetchone("SELECT value FROM voice_memory WHERE guild_id = ? AND user_id = ? AND key = ?",
                                  (guild_id, user_id, key))
        return row[0] if row else None

    async def swap_voice_memory(self, guild_id: int, user_id: int, key: str, expected: str | None,
                                value: str) -> bool:
        """Set the memory to `value` only if it still is `expected` (None: no row yet). False when another
        process or task changed it first: read it again and choose again."""
        if expected is None:
            sql = ("INSERT INTO voice_memory (guild_id, user_id, key, value) VALUES (?, ?, ?, ?) "
                   "ON CONFLICT (guild_id, user_id, key) DO NOTHING")
            return await self.execute(sql, (guild_id, user_id, key, value)) == 1
        return await self.execute(
            "UPDATE voice_memory SET value = ? WHERE guild_id = ? AND user_id = ? AND key = ? AND value = ?",
            (value, guild_id, user_id, key, expected)) == 1

    # ------------------------------------------------------------ nudges
    # Row classes live in this section (Storage.NudgeCheck, Storage.Nudge); coach/nudges.py re-exports them.
    # A member's nudge schedule follows the server's next run by a trigger (migration 010).

    @dataclass(frozen=True, slots=True)
    class NudgeCheck:
        """What decides one member's nudge in one server, read in one query."""

        guild_id: int
        user_id: int
        enabled: bool
        hours_before: int
        next_due: int | None
        off_reason: str | None
        on_at: int
        paused: bool | None          # None: the server has no check-in set up
        removed: bool
        closes_at: int | None        # the server's next run: when its open round closes
        guild_tz: str | None
        time_local: str | None
        days: int | None
        dm_tz: str | None            # the member's DM check-in zone, while DM check-ins are on here
        round_id: int | None         # the server's open round (its latest posted one)
        round_date: str | None
        round_channel: int | None
        round_message: int | None
        answered: bool
        away: str | None             # away periods not over before the round: 'start end,start end'

    @dataclass(frozen=True, slots=True)
    class Nudge:
        id: int
        guild_id: int
        user_id: int
        round_id: int
        scheduled_at: int
        closes_at: int
        state: str
        content: str | None
        pause: bool
        channel_id: int | None
        message_id: int | None
        error: str | None
        sent_at: int | None

    @dataclass(frozen=True, slots=True)
    class NudgeTake:
        """One due nudge schedule taken: advance it from `expected_due` (compare-and-set) and, when `round_id`
        is set, insert the nudge for that round and its outbox row."""

        guild_id: int
        user_id: int
        expected_due: int
        round_id: int | None = None   # None: only advance (no nudge this round)
        scheduled_at: int = 0
        closes_at: int = 0
        expires_at: int = 0

    _NUDGE_COLS = ("id, guild_id, user_id, round_id, scheduled_at, closes_at, state, content, pause, channel_id, "
                   "message_id, error, sent_at")
    _NUDGE_CHECK_SQL = """
        SELECT n.guild_id, n.user_id, n.enabled, n.hours_before, n.next_due, n.off_reason, n.on_at,
               g.paused, g.removed_at IS NOT NULL, g.next_due, g.timezone, g.time_local, g.days,
               (SELECT d.timezone FROM dm_schedules d WHERE d.guild_id = n.guild_id AND d.user_id = n.user_id
                    AND d.enabled = 1),
               r.id, r.local_date, r.channel_id, r.message_id,
               r.id IS NOT NULL AND EXISTS (SELECT 1 FROM checkins c WHERE c.guild_id = n.guild_id
                    AND c.user_id = n.user_id AND c.local_date = r.local_date),
               (SELECT group_concat(a.start_date || ' ' || a.end_date, ',') FROM away_periods a
                    WHERE a.guild_id = n.guild_id AND a.user_id = n.user_id
                    AND a.end_date >= COALESCE(r.local_date, ''))
        FROM nudge_settings n
        LEFT JOIN guild_settings g ON g.guild_id = n.guild_id
        LEFT JOIN rounds r ON r.id = (SELECT id FROM rounds WHERE guild_id = n.guild_id AND state = 'posted'
                                      ORDER BY local_date DESC LIMIT 1)
    """

    async def nudge_check(self, guild_id: int, user_id: int) -> NudgeCheck | None:
        """The member's nudge setting in this server with everything that decides a nudge; None: never set."""
        row = await self.fetchone(self._NUDGE_CHECK_SQL + " WHERE n.guild_id = ? AND n.user_id = ?",
                                  (guild_id, user_id))
        return _row(self.NudgeCheck, row)

    async def due_nudges(self, until: int, limit: int) -> list[NudgeCheck]:
        """Members whose nudge is due, oldest first, each with what decides it."""
        rows = await self.fetchall(
            self._NUDGE_CHECK_SQL + " WHERE n.next_due IS NOT NULL AND n.next_due <= ? ORDER BY n.next_due LIMIT ?",
            (until, limit))
        return [self.NudgeCheck(*r) for r in rows]

    async def set_nudge(self, guild_id: int, user_id: int, hours_before: int, next_due: int | None,
                        now: datetime) -> None:
        """Switch nudges on (or change the hours): counting ignored nudges starts again."""
        ts = to_unix(now)
        await self.execute(
            """INSERT INTO nudge_settings (guild_id, user_id, enabled, hours_before, next_due, on_at, created_at,
                   updated_at) VALUES (?, ?, 1, ?, ?, ?, ?, ?)
               ON CONFLICT (guild_id, user_id) DO UPDATE SET enabled = 1, hours_before = excluded.hours_before,
                   next_due = excluded.next_due, on_at = excluded.on_at, off_reason = NULL, off_at = NULL,
                   updated_at = excluded.updated_at""",
            (guild_id, user_id, hours_before, next_due, ts, ts, ts))

    async def nudge_off(self, guild_id: int, user_id: int, reason: str, now: datetime) -> bool:
        """Switch nudges off in one server; True when they were on."""
        ts = to_unix(now)
        return await self.execute(
            "UPDATE nudge_settings SET enabled = 0, next_due = NULL, off_reason = ?, off_at = ?, updated_at = ? "
            "WHERE guild_id = ? AND user_id = ? AND enabled = 1", (reason, ts, ts, guild_id, user_id)) == 1

    async def nudges_off_everywhere(self, user_id: int, reason: str, now: datetime) -> list[int]:
        """Switch a member's nudges off in every server (their DMs are closed); the servers switched off."""
        ts = to_unix(now)
        rows = await self.fetchall(
            "UPDATE nudge_settings SET enabled = 0, next_due = NULL, off_reason = ?, off_at = ?, updated_at = ? "
            "WHERE user_id = ? AND enabled = 1 RETURNING guild_id", (reason, ts, ts, user_id))
        return sorted(r[0] for r in rows)

    async def take_nudges(self, takes: Sequence[NudgeTake], now: datetime) -> list[int]:
        """Like take_due: advance each member's nudge schedule (compare-and-set), and for a nudge that goes out
        insert its unique row (one per member and round) and its outbox row, all in one transaction."""
        created: list[int] = []
        ts = to_unix(now)
        async with self.transaction() as db:
            for take in takes:
                async with db.execute(
                    "UPDATE nudge_settings SET next_due = NULL WHERE guild_id = ? AND user_id = ? AND next_due = ?",
                    (take.guild_id, take.user_id, take.expected_due),
                ) as cur:
                    if cur.rowcount != 1 or take.round_id is None:
                        continue
                async with db.execute(
                    "INSERT INTO nudges (guild_id, user_id, round_id, scheduled_at, closes_at, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, user_id, round_id) DO NOTHING RETURNING id",
                    (take.guild_id, take.user_id, take.round_id, take.scheduled_at, take.closes_at, ts),
                ) as cur:
                    ref = await cur.fetchone()
                if ref is not None:
                    created.append(await self._insert_job(db, "nudge", ref[0], take.guild_id, take.scheduled_at,
                                                          take.expires_at, ts))
            if created:
                crashpoint("in_take")
        return created

    async def get_nudge(self, nudge_id: int) -> Nudge | None:
        return _row(self.Nudge, await self.fetchone(f"SELECT {self._NUDGE_COLS} FROM nudges WHERE id = ?",
                                                    (nudge_id,)))

    async def set_nudge_content(self, nudge_id: int, content: str, pause: bool) -> None:
        """The DM as it is first sent (a retry sends, and looks for, the same), and whether it pauses nudges."""
        await self.execute("UPDATE nudges SET content = ?, pause = ? WHERE id = ? AND state = 'claimed'",
                           (content, int(pause), nudge_id))

    async def nudges_ignored(self, guild_id: int, user_id: int, since: int) -> int:
        """Nudges sent since `since` (nudges last switched on) and since the member's last answer here."""
        row = await self.fetchone(
            """SELECT COUNT(*) FROM nudges WHERE guild_id = ?1 AND user_id = ?2 AND state = 'sent'
                   AND sent_at >= ?3 AND sent_at > COALESCE((SELECT MAX(updated_at) FROM checkins
                                                           WHERE guild_id = ?1 AND user_id = ?2), 0)""",
            (guild_id, user_id, since))
        return row[0]

    # A sent nudge that says nudges pause (the third ignored one) pauses them in the transaction that records it.
    _FINISH_SQL[("nudge", "done")] = (
        "UPDATE nudges SET state = 'sent', channel_id = :channel_id, message_id = :message_id, sent_at = :now, "
        "error = NULL WHERE id = :ref",
        "UPDATE nudge_settings SET enabled = 0, next_due = NULL, off_reason = 'ignored', off_at = :now, "
        "updated_at = :now WHERE enabled = 1 AND (guild_id, user_id) IN "
        "(SELECT guild_id, user_id FROM nudges WHERE id = :ref AND pause = 1)",
    )
    _FINISH_SQL[("nudge", "skipped")] = ("UPDATE nudges SET state = 'skipped', error = :reason WHERE id = :ref",)
    _FINISH_SQL[("nudge", "failed")] = ("UPDATE nudges SET state = 'failed', error = :reason WHERE id = :ref",)

    # ------------------------------------------------------------ projects

    async def get_project(self, project_id: int) -> Project | None:
        row = await self.fetchone(f"SELECT {_PROJECT_COLS} FROM projects WHERE id = ?", (project_id,))
        return _row(Project, row)

    async def find_active_project(self, guild_id: int, user_id: int, name: str) -> Project | None:
        row = await self.fetchone(
            f"SELECT {_PROJECT_COLS} FROM projects WHERE guild_id = ? AND user_id = ? AND name_key = ? "
            "AND status = 'active'",
            (guild_id, user_id, name.casefold()),
        )
        return _row(Project, row)

    async def find_project_any_owner(self, guild_id: int, name: str) -> list[Project]:
        rows = await self.fetchall(
            f"SELECT {_PROJECT_COLS} FROM projects WHERE guild_id = ? AND name_key = ? ORDER BY id DESC LIMIT 5",
            (guild_id, name.casefold()),
        )
        return [Project(*r) for r in rows]

    async def create_project(
        self, guild_id: int, user_id: int, name: str, deadline: str | None, now: datetime
    ) -> Project:
        row = await self.fetchone(
            f"""INSERT INTO projects (guild_id, user_id, name, name_key, deadline, created_at)
               VALUES (?, ?, ?, ?, ?, ?) RETURNING {_PROJECT_COLS}""",
            (guild_id, user_id, name, name.casefold(), deadline, to_unix(now)),
        )
        return Project(*row)

    async def close_project(self, project_id: int, status: str, now: datetime) -> bool:
        changed = await self.execute(
            "UPDATE projects SET status = ?, closed_at = ? WHERE id = ? AND status = 'active'",
            (status, to_unix(now), project_id),
        )
        return changed == 1

    async def mark_announced(self, project_id: int) -> bool:
        return await self.execute(
            "UPDATE projects SET announced = 1 WHERE id = ? AND announced = 0", (project_id,)
        ) == 1

    async def list_projects(
        self, guild_id: int, user_id: int, *, status: str | None = None, limit: int = 25, offset: int = 0
    ) -> list[Project]:
        where = "guild_id = ? AND user_id = ?" + (" AND status = ?" if status else "")
        params: list[Any] = [guild_id, user_id] + ([status] if status else [])
        rows = await self.fetchall(
            f"SELECT {_PROJECT_COLS} FROM projects WHERE {where} "
            "ORDER BY status = 'active' DESC, COALESCE(closed_at, created_at) DESC, id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [Project(*r) for r in rows]

    async def count_projects(self, guild_id: int, user_id: int) -> dict[str, int]:
        rows = await self.fetchall(
            "SELECT status, COUNT(*) FROM projects WHERE guild_id = ? AND user_id = ? GROUP BY status",
            (guild_id, user_id),
        )
        counts = {"active": 0, "finished": 0, "dropped": 0}
        counts.update({r[0]: r[1] for r in rows})
        return counts

    async def latest_active_project(self, guild_id: int, user_id: int) -> Project | None:
        row = await self.fetchone(
            f"""SELECT {_PROJECT_COLS} FROM projects p WHERE guild_id = ? AND user_id = ? AND status = 'active'
                ORDER BY COALESCE((SELECT MAX(c.updated_at) FROM checkins c WHERE c.project_id = p.id),
                                  p.created_at) DESC, id DESC LIMIT 1""",
            (guild_id, user_id),
        )
        return _row(Project, row)

    async def search_active_projects(self, guild_id: int, user_id: int, text: str, limit: int = 25) -> list[str]:
        rows = await self.fetchall(
            "SELECT name FROM projects WHERE guild_id = ? AND user_id = ? AND status = 'active' "
            "AND instr(name_key, ?) > 0 ORDER BY instr(name_key, ?) , name_key LIMIT ?",
            (guild_id, user_id, text.casefold(), text.casefold(), limit),
        )
        return [r[0] for r in rows]

    # ------------------------------------------------------------ check-ins and points

    async def get_checkin(self, guild_id: int, user_id: int, local_date: str) -> Checkin | None:
        row = await self.fetchone(
            f"SELECT {_CHECKIN_COLS} FROM checkins WHERE guild_id = ? AND user_id = ? AND local_date = ?",
            (guild_id, user_id, local_date),
        )
        return _row(Checkin, row)

    async def count_checkins(self, guild_id: int, user_id: int) -> int:
        row = await self.fetchone(
            "SELECT COUNT(*) FROM checkins WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return row[0]

    async def member_checkins(self, guild_id: int, user_id: int, since: str | None = None) -> list[Checkin]:
        rows = await self.fetchall(
            f"SELECT {_CHECKIN_COLS} FROM checkins WHERE guild_id = ? AND user_id = ? AND local_date >= ? "
            "ORDER BY local_date",
            (guild_id, user_id, since or "0000-00-00"),
        )
        return [Checkin(*r) for r in rows]

    async def upsert_checkin(
        self, *, guild_id: int, user_id: int, local_date: str, round_id: int | None, status: str,
        project_id: int | None, note: str | None, via: str, now: datetime,
    ) -> tuple[Checkin, bool]:
        """Write the member's answer for that date. Returns (checkin, created); +1 point only when created.
        Insert first, update on conflict (no check-then-insert): a double submit edits, it never raises."""
        ts = to_unix(now)
        async with self.transaction() as db:
            async with db.execute(
                "INSERT INTO checkins (guild_id, user_id, local_date, round_id, status, project_id, note, via, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (guild_id, user_id, local_date) DO NOTHING RETURNING id",
                (guild_id, user_id, local_date, round_id, status, project_id, note, via, ts, ts),
            ) as cur:
                created = await cur.fetchone() is not None
            if created:
                await db.execute(
                    "INSERT OR IGNORE INTO points (guild_id, user_id, kind, amount, ref, created_at) "
                    "VALUES (?, ?, 'checkin', 1, ?, ?)",
                    (guild_id, user_id, local_date, ts),
                )
            else:
                await db.execute(
                    "UPDATE checkins SET status = ?, project_id = ?, note = ?, via = ?, updated_at = ?, "
                    "round_id = COALESCE(round_id, ?) WHERE guild_id = ? AND user_id = ? AND local_date = ?",
                    (status, project_id, note, via, ts, round_id, guild_id, user_id, local_date),
                )
            async with db.execute(
                f"SELECT {_CHECKIN_COLS} FROM checkins WHERE guild_id = ? AND user_id = ? AND local_date = ?",
                (guild_id, user_id, local_date),
            ) as cur:
                row = await cur.fetchone()
        return Checkin(*row), created

    async def award(self, guild_id: int, user_id: int, kind: str, amount: int, ref: str, now: datetime) -> bool:
        """Append to the ledger once per (member, kind, ref). True when newly awarded."""
        changed = await self.execute(
            "INSERT OR IGNORE INTO points (guild_id, user_id, kind, amount, ref, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (guild_id, user_id, kind, amount, ref, to_unix(now)),
        )
        return changed == 1

    async def points_total(self, guild_id: int, user_id: int, kinds: Sequence[str], since: int = 0) -> int:
        marks = ",".join("?" * len(kinds))
        row = await self.fetchone(
            f"SELECT COALESCE(SUM(amount), 0) FROM points WHERE guild_id = ? AND created_at >= ? AND user_id = ? "
            f"AND kind IN ({marks})",
            (guild_id, since, user_id, *kinds),
        )
        return row[0]

    # ------------------------------------------------------------ away

    async def away_periods(self, guild_id: int, user_id: int) -> list[tuple[str, str]]:
        rows = await self.fetchall(
            "SELECT start_date, end_date FROM away_periods WHERE guild_id = ? AND user_id = ? ORDER BY start_date",
            (guild_id, user_id),
        )
        return [(r[0], r[1]) for r in rows]

    # ============================================================ lessons (section: lessons feature)
    # Row classes live in this section (Storage.LessonSchedule, Storage.LessonPost, Storage.Reflection).

    @dataclass(frozen=True, slots=True)
    class LessonSchedule:
        guild_id: int
        channel_id: int
        weekday: int            # Monday = 0
        time_local: str
        timezone: str
        next_due: int | None
        last_error: str | None
        last_error_at: int | None
        error_told: bool

    @dataclass(frozen=True, slots=True)
    class LessonPost:
        id: int
        guild_id: int
        local_date: str
        lesson_id: str
        scheduled_at: int
        channel_id: int
        message_id: int | None
        state: str
        late: bool
        error: str | None
        posted_at: int | None

    @dataclass(frozen=True, slots=True)
    class Reflection:
        guild_id: int
        user_id: int
        lesson_id: str
        body: str
        created_at: int
        updated_at: int

    _LESSON_SCHEDULE_COLS = ("guild_id, channel_id, weekday, time_local, timezone, next_due, last_error, "
                             "last_error_at, error_told")
    _LESSON_POST_COLS = ("id, guild_id, local_date, lesson_id, scheduled_at, channel_id, message_id, state, late, "
                         "error, posted_at")
    _REFLECTION_COLS = "guild_id, user_id, lesson_id, body, created_at, updated_at"

    async def get_lesson_schedule(self, guild_id: int) -> LessonSchedule | None:
        row = await self.fetchone(
            f"SELECT {self._LESSON_SCHEDULE_COLS} FROM lesson_settings WHERE guild_id = ?", (guild_id,)
        )
        return _row(self.LessonSchedule, row)

    async def set_lesson_schedule(self, *, guild_id: int, channel_id: int, weekday: int, time_local: str,
                                  timezone: str, next_due: int, now: datetime) -> bool:
        """Create or change a server's lesson schedule (one statement). True when it was new."""
        ts = to_unix(now)
        async with self.transaction() as db:
            async with db.execute("SELECT 1 FROM lesson_settings WHERE guild_id = ?", (guild_id,)) as cur:
                existed = await cur.fetchone() is not None
            await db.execute(
                """INSERT INTO lesson_settings (guild_id, channel_id, weekday, time_local, timezone, next_due,
                       created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (guild_id) DO UPDATE SET channel_id = excluded.channel_id,
                       weekday = excluded.weekday, time_local = excluded.time_local, timezone = excluded.timezone,
                       next_due = excluded.next_due, last_error = NULL, last_error_at = NULL, error_told = 0,
                       updated_at = excluded.updated_at""",
                (guild_id, channel_id, weekday, time_local, timezone, next_due, ts, ts),
            )
        return not existed

    async def due_lesson_schedules(self, until: int, limit: int) -> list[LessonSchedule]:
        """Lesson schedules due by `until`, oldest first; servers that paused or removed the bot wait."""
        cols = ", ".join("l." + c.strip() for c in self._LESSON_SCHEDULE_COLS.split(","))
        rows = await self.fetchall(
            f"""SELECT {cols} FROM lesson_settings l LEFT JOIN guild_settings g ON g.guild_id = l.guild_id
                WHERE l.next_due IS NOT NULL AND l.next_due <= ?
                AND COALESCE(g.paused, 0) = 0 AND g.removed_at IS NULL
                ORDER BY l.next_due LIMIT ?""",
            (until, limit),
        )
        return [self.LessonSchedule(*r) for r in rows]

    async def claim_lesson_post(
        self, *, guild_id: int, local_date: str, lesson_id: str, scheduled_at: int, channel_id: int, late: bool,
        now: datetime,
    ) -> LessonPost | None:
        """Insert the post's unique (guild, local date) row; None when it exists already (seeding history in
        tests; scheduled posts are taken through the outbox, `take_due`)."""
        row = await self.fetchone(
            f"""INSERT INTO lesson_posts (guild_id, local_date, lesson_id, scheduled_at, channel_id, late,
                    created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (guild_id, local_date) DO NOTHING
                RETURNING {self._LESSON_POST_COLS}""",
            (guild_id, local_date, lesson_id, scheduled_at, channel_id, int(late), to_unix(now)),
        )
        return _row(self.LessonPost, row)

    async def mark_lesson_posted(self, post_id: int, message_id: int, now: datetime) -> None:
        """The post reached the channel: record it and clear the server's lesson error."""
        async with self.transaction() as db:
            async with db.execute(
                "UPDATE lesson_posts SET state = 'posted', message_id = ?, posted_at = ?, error = NULL "
                "WHERE id = ? RETURNING guild_id",
                (message_id, to_unix(now), post_id),
            ) as cur:
                row = await cur.fetchone()
            if row is not None:
                await db.execute(
                    "UPDATE lesson_settings SET last_error = NULL, last_error_at = NULL, error_told = 0 "
                    "WHERE guild_id = ? AND last_error IS NOT NULL",
                    (row[0],),
                )

    async def take_lesson_error(self, guild_id: int) -> tuple[str, int] | None:
        """The last lesson posting error not yet told to an admin, with the lesson channel; marks it told."""
        row = await self.fetchone(
            "UPDATE lesson_settings SET error_told = 1 WHERE guild_id = ? AND last_error IS NOT NULL "
            "AND error_told = 0 RETURNING last_error, channel_id",
            (guild_id,),
        )
        return (row[0], row[1]) if row else None

    async def get_lesson_post(self, post_id: int) -> LessonPost | None:
        row = await self.fetchone(f"SELECT {self._LESSON_POST_COLS} FROM lesson_posts WHERE id = ?", (post_id,))
        return _row(self.LessonPost, row)

    async def latest_lesson_post(self, guild_id: int) -> LessonPost | None:
        """The newest lesson post that reached the server's channel."""
        row = await self.fetchone(
            f"SELECT {self._LESSON_POST_COLS} FROM lesson_posts WHERE guild_id = ? AND state = 'posted' "
            "ORDER BY local_date DESC, id DESC LIMIT 1",
            (guild_id,),
        )
        return _row(self.LessonPost, row)

    async def lesson_posts_of(self, guild_id: int) -> list[LessonPost]:
        rows = await self.fetchall(
            f"SELECT {self._LESSON_POST_COLS} FROM lesson_posts WHERE guild_id = ? ORDER BY local_date, id",
            (guild_id,),
        )
        return [self.LessonPost(*r) for r in rows]

    async def get_reflection(self, guild_id: int, user_id: int, lesson_id: str) -> Reflection | None:
        row = await self.fetchone(
            f"SELECT {self._REFLECTION_COLS} FROM reflections WHERE guild_id = ? AND user_id = ? AND lesson_id = ?",
            (guild_id, user_id, lesson_id),
        )
        return _row(self.Reflection, row)

    async def save_reflection(self, guild_id: int, user_id: int, lesson_id: str, body: str, now: datetime) -> bool:
        """Write the member's reflection on a lesson (writing again edits it). True when it is new."""
        ts = to_unix(now)
        async with self.transaction() as db:
            async with db.execute(
                "UPDATE reflections SET body = ?, updated_at = ? WHERE guild_id = ? AND user_id = ? AND lesson_id = ?",
                (body, ts, guild_id, user_id, lesson_id),
            ) as cur:
                if cur.rowcount == 1:
                    return False
            await db.execute(
                "INSERT INTO reflections (guild_id, user_id, lesson_id, body, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (guild_id, user_id, lesson_id, body, ts, ts),
            )
        return True

    async def reflected_lesson_ids(self, guild_id: int, user_id: int) -> set[str]:
        rows = await self.fetchall(
            "SELECT lesson_id FROM reflections WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return {r[0] for r in rows}

    async def depth_points(self, guild_id: int, user_id: int) -> int:
        """A member's depth points in a server: their 'reflection' and 'exercise' entries in the ledger."""
        row = await self.fetchone(
            f"SELECT COALESCE(SUM(amount), 0) FROM points WHERE guild_id = ? AND user_id = ? AND kind IN {DEPTH_KINDS}",
            (guild_id, user_id),
        )
        return row[0]

    # ------------------------------------------------------------ lesson journey (exercises done, reads, unlocks)

    async def done_lesson_ids(self, guild_id: int, user_id: int) -> set[str]:
        """Lessons whose Your Turn exercise the member marked done (their 'exercise' entries in the ledger)."""
        rows = await self.fetchall(
            "SELECT ref FROM points WHERE guild_id = ? AND user_id = ? AND kind = 'exercise'", (guild_id, user_id)
        )
        return {r[0] for r in rows}

    async def mark_lesson_read(self, guild_id: int, user_id: int, lesson_id: str, now: datetime) -> None:
        await self.execute(
            "INSERT OR IGNORE INTO lesson_reads (guild_id, user_id, lesson_id, read_at) VALUES (?, ?, ?, ?)",
            (guild_id, user_id, lesson_id, to_unix(now)),
        )

    async def read_lesson_ids(self, guild_id: int, user_id: int) -> set[str]:
        rows = await self.fetchall(
            "SELECT lesson_id FROM lesson_reads WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return {r[0] for r in rows}

    async def unlocked_tracks(self, guild_id: int, user_id: int) -> set[str]:
        """Tracks the member has been told they unlocked."""
        rows = await self.fetchall(
            "SELECT track FROM lesson_unlocks WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return {r[0] for r in rows}

    async def record_unlocks(self, guild_id: int, user_id: int, tracks: Sequence[str], notice: str,
                             now: datetime) -> list[str]:
        """Record newly unlocked tracks and, in the same transaction, add `notice` to the member's waiting
        notice (shown once, with their next private reply here). Returns the tracks that were new; the notice
        is added only when some were, so a member is told once."""
        new: list[str] = []
        async with self.transaction() as db:
            for track in tracks:
                async with db.execute(
                    "INSERT OR IGNORE INTO lesson_unlocks (guild_id, user_id, track, unlocked_at) VALUES (?, ?, ?, ?)",
                    (guild_id, user_id, track, to_unix(now)),
                ) as cur:
                    if cur.rowcount == 1:
                        new.append(track)
            if new:
                await db.execute(
                    "UPDATE members SET notice = CASE WHEN notice IS NULL OR notice = '' THEN ?1 "
                    "ELSE notice || char(10) || '📌 ' || ?1 END WHERE guild_id = ?2 AND user_id = ?3",
                    (notice, guild_id, user_id),
                )
        return new

    async def posted_lesson_ids(self, guild_id: int, limit: int = 200) -> list[str]:
        """The lessons posted in the server, newest first (a lesson posted twice appears twice)."""
        rows = await self.fetchall(
            "SELECT lesson_id FROM lesson_posts WHERE guild_id = ? AND state = 'posted' "
            "ORDER BY local_date DESC, id DESC LIMIT ?",
            (guild_id, limit),
        )
        return [r[0] for r in rows]

    async def get_next_track(self, guild_id: int) -> str | None:
        row = await self.fetchone("SELECT track FROM lesson_next_track WHERE guild_id = ?", (guild_id,))
        return row[0] if row else None

    async def set_next_track(self, guild_id: int, track: str | None, now: datetime) -> None:
        """The track the server reads after its current one ends; None: the default (Core again)."""
        if track is None:
            await self.execute("DELETE FROM lesson_next_track WHERE guild_id = ?", (guild_id,))
            return
        await self.execute(
            "INSERT INTO lesson_next_track (guild_id, track, chosen_at) VALUES (?, ?, ?) "
            "ON CONFLICT (guild_id) DO UPDATE SET track = excluded.track, chosen_at = excluded.chosen_at",
            (guild_id, track, to_unix(now)),
        )

    async def depth_board(self, guild_id: int, period_id: int) -> list[BoardScore]:
        """Everyone with depth points in a period (0 = all time), for /leaderboard rank:depth."""
        rows = await self.fetchall(
            "SELECT user_id, points, depth, reached_at FROM board_totals WHERE guild_id = ? AND period_id = ? "
            "AND depth > 0",
            (guild_id, period_id),
        )
        return [self.BoardScore(*r) for r in rows]

    # ============================================================ DM check-ins (section: DM feature)
    # Row classes live in this section (Storage.DMSchedule, Storage.DMRound) so the whole
    # feature stays inside it; coach/dm.py re-exports them.

    @dataclass(frozen=True, slots=True)
    class DMSchedule:
        guild_id: int
        user_id: int
        enabled: bool
        time_local: str
        timezone: str
        days: int
        next_due: int | None
        off_reason: str | None
        off_at: int | None
        member_checked_at: int | None = None   # when the member was last known to be in the server

    @dataclass(frozen=True, slots=True)
    class DMRound:
        id: int
        guild_id: int
        user_id: int
        local_date: str
        scheduled_at: int
        closes_at: int
        state: str
        late: bool
        channel_id: int | None
        message_id: int | None
        error: str | None
        sent_at: int | None
        round_id: int | None   # the server round this DM delivers (set when it is sent)

    _DM_SCHEDULE_COLS = ("guild_id, user_id, enabled, time_local, timezone, days, next_due, off_reason, off_at, "
                         "member_checked_at")
    _DM_ROUND_COLS = ("id, guild_id, user_id, local_date, scheduled_at, closes_at, state, late, channel_id, "
                      "message_id, error, sent_at, round_id")

    async def get_dm_schedule(self, guild_id: int, user_id: int) -> DMSchedule | None:
        row = await self.fetchone(f"SELECT {self._DM_SCHEDULE_COLS} FROM dm_schedules WHERE guild_id = ? AND user_id = ?",
                                  (guild_id, user_id))
        return _row(self.DMSchedule, row)

    async def dm_schedules_of(self, user_id: int) -> list[DMSchedule]:
        rows = await self.fetchall(f"SELECT {self._DM_SCHEDULE_COLS} FROM dm_schedules WHERE user_id = ?", (user_id,))
        return [self.DMSchedule(*r) for r in rows]

    async def set_dm_schedule(self, *, guild_id: int, user_id: int, time_local: str, timezone: str, days: int,
                              next_due: int, now: datetime) -> None:
        """Switch DMs on (or change the time): one statement, so nothing is half-written."""
        ts = to_unix(now)
        await self.execute(
            """INSERT INTO dm_schedules (guild_id, user_id, enabled, time_local, timezone, days, next_due,
                   created_at, updated_at, member_checked_at)
               VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (guild_id, user_id) DO UPDATE SET enabled = 1, time_local = excluded.time_local,
                   timezone = excluded.timezone, days = excluded.days, next_due = excluded.next_due,
                   off_reason = NULL, off_at = NULL, updated_at = excluded.updated_at,
                   member_checked_at = excluded.member_checked_at""",
            (guild_id, user_id, time_local, timezone, days, next_due, ts, ts, ts),
        )

    async def dm_member_checked(self, guild_id: int, user_id: int, now: datetime) -> None:
        await self.execute("UPDATE dm_schedules SET member_checked_at = ? WHERE guild_id = ? AND user_id = ?",
                           (to_unix(now), guild_id, user_id))

    async def dm_off(self, guild_id: int, user_id: int, reason: str, now: datetime) -> bool:
        """Switch one server's DMs off; True when they were on."""
        return await self.execute(
            "UPDATE dm_schedules SET enabled = 0, next_due = NULL, off_reason = ?, off_at = ?, updated_at = ? "
            "WHERE guild_id = ? AND user_id = ? AND enabled = 1",
            (reason, to_unix(now), to_unix(now), guild_id, user_id),
        ) == 1

    async def dm_off_everywhere(self, user_id: int, reason: str, now: datetime) -> list[int]:
        """Switch a member's DMs off in every server (their DMs are closed); the servers switched off."""
        rows = await self.fetchall(
            "UPDATE dm_schedules SET enabled = 0, next_due = NULL, off_reason = ?, off_at = ?, updated_at = ? "
            "WHERE user_id = ? AND enabled = 1 RETURNING guild_id",
            (reason, to_unix(now), to_unix(now), user_id),
        )
        return sorted(r[0] for r in rows)

    async def due_dm_schedules(self, until: int, limit: int) -> list[DMSchedule]:
        rows = await self.fetchall(
            f"SELECT {self._DM_SCHEDULE_COLS} FROM dm_schedules WHERE next_due IS NOT NULL AND next_due <= ? "
            "ORDER BY next_due LIMIT ?",
            (until, limit),
        )
        return [self.DMSchedule(*r) for r in rows]

    async def get_dm_round(self, dm_round_id: int) -> DMRound | None:
        return _row(self.DMRound, await self.fetchone(f"SELECT {self._DM_ROUND_COLS} FROM dm_rounds WHERE id = ?",
                                                 (dm_round_id,)))

    async def dm_round_on(self, guild_id: int, user_id: int, local_date: str) -> DMRound | None:
        row = await self.fetchone(
            f"SELECT {self._DM_ROUND_COLS} FROM dm_rounds WHERE guild_id = ? AND user_id = ? AND local_date = ?",
            (guild_id, user_id, local_date),
        )
        return _row(self.DMRound, row)

    async def dm_precheck(self, dm_round: DMRound) -> tuple[str | None, Round | None]:
        """Just before sending: the server round the DM delivers, or why it should not go out (a reason).

        A DM delivers the server's open round (its newest posted one), so an answer by DM counts for the same
        date as an answer in the channel. No round open yet, or the member already answered it: no DM.
        """
        row = await self.fetchone(
            """SELECT (SELECT enabled FROM dm_schedules WHERE guild_id = ?1 AND user_id = ?2),
                      (SELECT paused FROM guild_settings WHERE guild_id = ?1),
                      (SELECT removed_at FROM guild_settings WHERE guild_id = ?1),
                      (SELECT state FROM dm_rounds WHERE id = ?3)""",
            (dm_round.guild_id, dm_round.user_id, dm_round.id),
        )
        enabled, paused, removed, state = row
        if state != "claimed":
            return "already_handled", None
        if not enabled:
            return "dms_off", None
        if paused is None:
            return "no_checkin", None
        if removed is not None:
            return "server_removed", None
        if paused:
            return "server_paused", None
        row = await self.fetchone(  # the newest round posted or on its way (taken in the same tick as this DM)
            f"SELECT {_ROUND_COLS} FROM rounds WHERE guild_id = ? AND state IN ('posted', 'claimed') "
            "ORDER BY local_date DESC LIMIT 1", (dm_round.guild_id,))
        open_round = _row(Round, row)
        if open_round is None:
            return "no_round", None
        if await self.get_checkin(dm_round.guild_id, dm_round.user_id, open_round.local_date) is not None:
            return "answered", open_round
        return None, open_round

    async def set_dm_round_target(self, dm_round_id: int, round_id: int) -> None:
        await self.execute("UPDATE dm_rounds SET round_id = ? WHERE id = ?", (round_id, dm_round_id))

    async def open_dm_rounds(self, user_id: int, now: int) -> list[tuple[DMRound, bool]]:
        """The member's DM rounds still open for answers (newest per server), each with `answered`: whether the
        member answered the server's open round (its latest posted round, which a DM answer counts for)."""
        rows = await self.fetchall(
            f"""SELECT {', '.join('d.' + c.strip() for c in self._DM_ROUND_COLS.split(','))},
                       EXISTS (SELECT 1 FROM checkins c WHERE c.guild_id = d.guild_id AND c.user_id = d.user_id
                               AND c.local_date = (SELECT MAX(r.local_date) FROM rounds r
                                                   WHERE r.guild_id = d.guild_id AND r.state = 'posted'))
                FROM dm_rounds d WHERE d.user_id = ? AND d.state = 'sent' AND d.closes_at > ?
                AND d.local_date = (SELECT MAX(local_date) FROM dm_rounds e WHERE e.user_id = d.user_id
                                    AND e.guild_id = d.guild_id AND e.state = 'sent')
                ORDER BY d.scheduled_at DESC, d.id DESC""",
            (user_id, now),
        )
        return [(self.DMRound(*r[:-1]), bool(r[-1])) for r in rows]

    async def get_dm_channel(self, user_id: int) -> int | None:
        row = await self.fetchone("SELECT channel_id FROM dm_channels WHERE user_id = ?", (user_id,))
        return row[0] if row else None

    async def set_dm_channel(self, user_id: int, channel_id: int, now: datetime) -> None:
        await self.execute(
            "INSERT INTO dm_channels (user_id, channel_id, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET channel_id = excluded.channel_id",
            (user_id, channel_id, to_unix(now)),
        )

    async def forget_dm_channel(self, user_id: int) -> None:
        await self.execute("DELETE FROM dm_channels WHERE user_id = ?", (user_id,))

    async def set_dm_pending(self, user_id: int, note: str | None, now: datetime) -> None:
        await self.execute(
            "INSERT INTO dm_pending (user_id, note, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET note = excluded.note, created_at = excluded.created_at",
            (user_id, note, to_unix(now)),
        )

    async def get_dm_pending(self, user_id: int, since: int) -> str | None:
        row = await self.fetchone("SELECT note FROM dm_pending WHERE user_id = ? AND created_at >= ?",
                                  (user_id, since))
        return row[0] if row else None

    async def clear_dm_pending(self, user_id: int) -> None:
        await self.execute("DELETE FROM dm_pending WHERE user_id = ?", (user_id,))

    async def forget_dm_member(self, guild_id: int, user_id: int) -> None:
        """`/me forget`: the member's DM schedule and DM rounds in this server; their DM channel and pending
        reply too once no other server DMs them. (Their check-ins are in the checkins table.)"""
        async with self.transaction() as db:
            await db.execute("DELETE FROM dm_schedules WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))
            await db.execute("DELETE FROM dm_rounds WHERE guild_id = ? AND user_id = ?", (guild_id, user_id))
            await db.execute("DELETE FROM dm_channels WHERE user_id = ?1 AND NOT EXISTS "
                             "(SELECT 1 FROM dm_schedules WHERE user_id = ?1)", (user_id,))
            await db.execute("DELETE FROM dm_pending WHERE user_id = ?1 AND NOT EXISTS "
                             "(SELECT 1 FROM dm_schedules WHERE user_id = ?1)", (user_id,))

    # ============================================================ leaderboard, stats, seasons, export (section: board)
    # Row classes live in this section (Storage.BoardScore, Storage.Season, Storage.ExportRow,
    # Storage.FinishedProject).

    @dataclass(frozen=True, slots=True)
    class BoardScore:
        user_id: int
        points: int
        depth: int
        reached_at: int

    @dataclass(frozen=True, slots=True)
    class Season:
        id: int
        guild_id: int
        name: str
        started_at: int

    @dataclass(frozen=True, slots=True)
    class ExportRow:
        id: int
        local_date: str
        user_id: int
        display_name: str | None
        status: str
        project: str | None
        note: str | None

    @dataclass(frozen=True, slots=True)
    class FinishedProject:
        user_id: int
        display_name: str | None
        name: str
        closed_at: int

    _BOARD_COUNTED = "('checkin', 'finish', 'adjust')"
    _PURGE_CHUNK = 5000

    # ------------------------------------------------------------ board: scores

    # Every (period, ledger row) pair as the triggers assign them: all time (0), and per kind the newest
    # period of the row's server that had started when the row was earned.
    _LEDGER_BUCKETS = """
        WITH rows_ AS (SELECT guild_id, user_id, kind, amount, created_at FROM points p {where}),
        buckets AS (
            SELECT guild_id, 0 AS period_id, user_id, kind, amount, created_at FROM rows_
            UNION ALL
            SELECT r.guild_id, b.id, r.user_id, r.kind, r.amount, r.created_at
            FROM board_periods b JOIN rows_ r ON r.guild_id = b.guild_id AND r.created_at >= b.starts_at
            WHERE NOT EXISTS (SELECT 1 FROM board_periods n WHERE n.guild_id = b.guild_id AND n.kind = b.kind
                              AND n.starts_at <= r.created_at
                              AND (n.starts_at > b.starts_at OR (n.starts_at = b.starts_at AND n.id > b.id))))
        SELECT guild_id, period_id, user_id,
               SUM(CASE WHEN kind IN ('checkin', 'finish', 'adjust') THEN amount ELSE 0 END),
               SUM(CASE WHEN kind IN ('reflection', 'exercise') THEN amount ELSE 0 END),
               COALESCE(MAX(CASE WHEN kind IN ('checkin', 'finish', 'adjust') THEN created_at END), 0)
        FROM buckets GROUP BY guild_id, period_id, user_id"""

    async def board_totals(self, guild_id: int, period_id: int) -> list[BoardScore]:
        """Everyone with check-in/finish points in a period (0 = all time): the running totals."""
        rows = await self.fetchall(
            "SELECT user_id, points, depth, reached_at FROM board_totals WHERE guild_id = ? AND period_id = ? "
            "AND points > 0",
            (guild_id, period_id),
        )
        return [self.BoardScore(*r) for r in rows]

    async def season_period(self, season_id: int) -> int | None:
        row = await self.fetchone("SELECT id FROM board_periods WHERE kind = 'season' AND season_id = ?",
                                  (season_id,))
        return row[0] if row else None

    async def window_period(self, guild_id: int, kind: str, starts_at: int) -> int:
        """The server's running totals for the week or month starting at `starts_at` (UTC).

        The first time a new week or month is asked for, its period is created, filled from the ledger (one
        window sum) and kept up to date by the triggers from then on; the server's other periods of that kind
        are dropped (they are never shown again)."""
        row = await self.fetchone(
            "SELECT id FROM board_periods WHERE guild_id = ? AND kind = ? AND starts_at = ? ORDER BY id DESC LIMIT 1",
            (guild_id, kind, starts_at),
        )
        if row is not None:
            return row[0]
        async with self.transaction() as db:
            async with db.execute(
                "SELECT id FROM board_periods WHERE guild_id = ? AND kind = ? AND starts_at = ?",
                (guild_id, kind, starts_at),
            ) as cur:
                row = await cur.fetchone()
            if row is not None:  # another process made it meanwhile
                return row[0]
            stale = "(SELECT id FROM board_periods WHERE guild_id = ? AND kind = ?)"
            await db.execute(f"DELETE FROM board_totals WHERE guild_id = ? AND period_id IN {stale}",
                             (guild_id, guild_id, kind))
            await db.execute("DELETE FROM board_periods WHERE guild_id = ? AND kind = ?", (guild_id, kind))
            async with db.execute(
                "INSERT INTO board_periods (guild_id, kind, starts_at) VALUES (?, ?, ?) RETURNING id",
                (guild_id, kind, starts_at),
            ) as cur:
                period_id = (await cur.fetchone())[0]
            await db.execute(
                f"""INSERT INTO board_totals (guild_id, period_id, user_id, points, depth, reached_at)
                    SELECT guild_id, ?, user_id, SUM(CASE WHEN kind IN {self._BOARD_COUNTED} THEN amount ELSE 0 END),
                           SUM(CASE WHEN kind IN ('reflection', 'exercise') THEN amount ELSE 0 END),
                           COALESCE(MAX(CASE WHEN kind IN {self._BOARD_COUNTED} THEN created_at END), 0)
                    FROM points INDEXED BY points_board WHERE guild_id = ? AND created_at >= ?
                    GROUP BY guild_id, user_id""",
                (period_id, guild_id, starts_at),
            )
        return period_id

    async def board_totals_from_ledger(self, guild_id: int) -> dict[tuple[int, int], tuple[int, int, int]]:
        """The running totals recomputed from the ledger: {(period_id, user_id): (points, depth, reached_at)}.

        For audits and tests: must equal what board_totals holds (see rebuild_board_totals)."""
        rows = await self.fetchall(self._LEDGER_BUCKETS.format(where="WHERE p.guild_id = ?"), (guild_id,))
        return {(r[1], r[2]): (r[3], r[4], r[5]) for r in rows}

    async def stored_board_totals(self, guild_id: int) -> dict[tuple[int, int], tuple[int, int, int]]:
        rows = await self.fetchall(
            "SELECT period_id, user_id, points, depth, reached_at FROM board_totals WHERE guild_id = ? "
            "AND (points != 0 OR depth != 0)",
            (guild_id,),
        )
        return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}

    async def rebuild_board_totals(self, guild_id: int | None = None) -> None:
        """Recompute running totals from the ledger (the source of truth): one server, or all of them (after a
        bulk import that bypassed the triggers, or to repair)."""
        where, params = ("WHERE p.guild_id = ?", (guild_id,)) if guild_id is not None else ("", ())
        async with self.transaction() as db:
            if guild_id is None:
                await db.execute("DELETE FROM board_totals")
            else:
                await db.execute("DELETE FROM board_totals WHERE guild_id = ?", (guild_id,))
            await db.execute("INSERT INTO board_totals (guild_id, period_id, user_id, points, depth, reached_at) "
                             + self._LEDGER_BUCKETS.format(where=where), params)

    async def current_streaks(self, guild_id: int, user_ids: Iterable[int],
                              open_date: str | None = None) -> dict[int, int]:
        """Current streaks of many members at once, by the rule of coach.streaks.member_streak (streak freezes
        included, unless the server switched them off).

        A member's streak is the number of days they answered after their last hard break. Misses are the
        posted rounds, other than the open one, that they neither answered nor were away for. Only misses
        change the freeze count: the answers between two misses earn floor(answers / 7) freezes (at most 2
        held), and a miss uses one if there is one, else it is a hard break. So the recursive part walks a
        member's misses, not every day. The open round is the latest posted round (`open_date` overrides it,
        for tests of the rule). Rounds never posted don't exist here, so they break nobody.
        """
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        values = ", ".join(f"(?{i})" for i in range(3, len(ids) + 3))
        rows = await self.fetchall(
            f"""WITH RECURSIVE cand(uid) AS (VALUES {values}),
                open_round(d) AS (SELECT COALESCE(?2, (SELECT MAX(local_date) FROM rounds
                                                       WHERE guild_id = ?1 AND state = 'posted'), '')),
                opts(on_) AS (SELECT COALESCE((SELECT freezes FROM reward_settings WHERE guild_id = ?1), 1)),
                miss0(uid, d) AS (
                    SELECT uid, r.local_date FROM cand, rounds r
                    WHERE r.guild_id = ?1 AND r.state = 'posted' AND r.local_date <> (SELECT d FROM open_round)
                    AND NOT EXISTS (SELECT 1 FROM checkins c WHERE c.guild_id = ?1 AND c.user_id = cand.uid
                                    AND c.local_date = r.local_date)
                    AND NOT EXISTS (SELECT 1 FROM away_periods a WHERE a.guild_id = ?1 AND a.user_id = cand.uid
                                    AND r.local_date BETWEEN a.start_date AND a.end_date)),
                miss1(uid, n, d, prev) AS (
                    SELECT uid, ROW_NUMBER() OVER w, d, COALESCE(LAG(d) OVER w, '') FROM miss0
                    WINDOW w AS (PARTITION BY uid ORDER BY d)),
                misses(uid, n, d, earned) AS (
                    SELECT uid, n, d, (SELECT on_ FROM opts) * (
                        SELECT COUNT(*) FROM checkins c WHERE c.guild_id = ?1 AND c.user_id = miss1.uid
                        AND c.local_date > miss1.prev AND c.local_date < miss1.d) / {FREEZE_EVERY}
                    FROM miss1),
                walk(uid, n, held, brk) AS (
                    SELECT uid, 0, 0, '' FROM cand
                    UNION ALL
                    SELECT w.uid, w.n + 1, MAX(MIN({FREEZE_MAX}, w.held + m.earned) - 1, 0),
                           CASE WHEN MIN({FREEZE_MAX}, w.held + m.earned) > 0 THEN w.brk ELSE m.d END
                    FROM walk w JOIN misses m ON m.uid = w.uid AND m.n = w.n + 1),
                last_break(uid, b) AS (SELECT uid, MAX(brk) FROM walk GROUP BY uid)
               SELECT uid, (SELECT COUNT(*) FROM checkins c WHERE c.guild_id = ?1 AND c.user_id = last_break.uid
                            AND c.local_date > last_break.b) FROM last_break""",
            (guild_id, open_date, *ids),
        )
        return {r[0]: r[1] for r in rows}

    async def display_names(self, guild_id: int, user_ids: Iterable[int]) -> dict[int, str]:
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        rows = await self.fetchall(
            "SELECT user_id, display_name FROM members WHERE guild_id = ? "
            f"AND user_id IN ({', '.join('?' * len(ids))}) AND display_name != ''",
            (guild_id, *ids),
        )
        return {r[0]: r[1] for r in rows}

    # ------------------------------------------------------------ exactly once: projects
    # Writes that must never be half-done or raise on a double submit (issue 9, item 6).

    async def create_or_get_project(self, guild_id: int, user_id: int, name: str, deadline: str | None,
                                    now: datetime) -> tuple[Project, bool]:
        """The member's active project of that name, created if there is none: (project, created). Two
        requests racing to create it both get the one row (the unique index decides, no check-then-insert)."""
        async with self.transaction() as db:
            async with db.execute(
                f"""INSERT INTO projects (guild_id, user_id, name, name_key, deadline, created_at)
                    VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (guild_id, user_id, name_key) WHERE status = 'active' DO NOTHING
                    RETURNING {_PROJECT_COLS}""",
                (guild_id, user_id, name, name.casefold(), deadline, to_unix(now)),
            ) as cur:
                row = await cur.fetchone()
            if row is not None:
                return Project(*row), True
            async with db.execute(
                f"SELECT {_PROJECT_COLS} FROM projects WHERE guild_id = ? AND user_id = ? AND name_key = ? "
                "AND status = 'active'",
                (guild_id, user_id, name.casefold()),
            ) as cur:
                return Project(*(await cur.fetchone())), False

    async def finish_project(self, project: Project, points: int, now: datetime) -> tuple[bool, bool]:
        """Close an active project as finished and award its points in one transaction: (closed, awarded).
        Points come once per project (the ledger's unique ref), however often this is called."""
        ts = to_unix(now)
        async with self.transaction() as db:
            async with db.execute(
                "UPDATE projects SET status = 'finished', closed_at = ? WHERE id = ? AND status = 'active'",
                (ts, project.id),
            ) as cur:
                if cur.rowcount != 1:
                    return False, False
            async with db.execute(
                "INSERT OR IGNORE INTO points (guild_id, user_id, kind, amount, ref, created_at) "
                "VALUES (?, ?, 'finish', ?, ?, ?)",
                (project.guild_id, project.user_id, points, str(project.id), ts),
            ) as cur:
                return True, cur.rowcount == 1

    # ------------------------------------------------------------ board: seasons

    async def current_season(self, guild_id: int, now: datetime) -> Season | None:
        row = await self.fetchone(
            "SELECT id, guild_id, name, started_at FROM seasons WHERE guild_id = ? AND started_at <= ? "
            "ORDER BY started_at DESC, id DESC LIMIT 1",
            (guild_id, to_unix(now)),
        )
        return _row(self.Season, row)

    async def get_season(self, season_id: int) -> Season | None:
        row = await self.fetchone("SELECT id, guild_id, name, started_at FROM seasons WHERE id = ?", (season_id,))
        return _row(self.Season, row)

    async def count_seasons(self, guild_id: int) -> int:
        row = await self.fetchone("SELECT COUNT(*) FROM seasons WHERE guild_id = ?", (guild_id,))
        return row[0]

    async def start_season(self, guild_id: int, name: str, now: datetime) -> Season:
        """A new season from `now`, with its leaderboard period. Points earned in the same second before it,
        if any, move into it."""
        ts = to_unix(now)
        async with self.transaction() as db:
            async with db.execute(
                "INSERT INTO seasons (guild_id, name, started_at) VALUES (?, ?, ?) RETURNING id, guild_id, name, "
                "started_at",
                (guild_id, name, ts),
            ) as cur:
                season = self.Season(*(await cur.fetchone()))
            await db.execute("INSERT INTO board_periods (guild_id, kind, starts_at, season_id) VALUES (?, 'season', ?, ?)",
                             (guild_id, ts, season.id))
            async with db.execute("SELECT 1 FROM points WHERE guild_id = ? AND created_at >= ? LIMIT 1",
                                  (guild_id, ts)) as cur:
                moved = await cur.fetchone() is not None
        if moved:
            await self.rebuild_board_totals(guild_id)
        return season

    # ------------------------------------------------------------ board: away

    async def set_away(self, guild_id: int, user_id: int, today: str, until: str) -> tuple[str, str]:
        """Away from `today` to `until` (inclusive). An away period covering today is changed, not duplicated.
        Returns the period as stored (start, end)."""
        async with self.transaction() as db:
            async with db.execute(
                "SELECT id, start_date FROM away_periods WHERE guild_id = ? AND user_id = ? AND start_date <= ? "
                "AND end_date >= ? ORDER BY start_date LIMIT 1",
                (guild_id, user_id, today, today),
            ) as cur:
                current = await cur.fetchone()
            await db.execute(
                "DELETE FROM away_periods WHERE guild_id = ? AND user_id = ? AND start_date > ?",
                (guild_id, user_id, today),
            )
            if current:
                await db.execute("UPDATE away_periods SET end_date = ? WHERE id = ?", (until, current[0]))
                return current[1], until
            await db.execute(
                "INSERT INTO away_periods (guild_id, user_id, start_date, end_date) VALUES (?, ?, ?, ?)",
                (guild_id, user_id, today, until),
            )
        return today, until

    async def end_away(self, guild_id: int, user_id: int, today: str) -> bool:
        """End the member's current (or planned) away period today. False when they were not away."""
        async with self.transaction() as db:
            async with db.execute(
                "DELETE FROM away_periods WHERE guild_id = ? AND user_id = ? AND start_date > ?",
                (guild_id, user_id, today),
            ) as cur:
                planned = cur.rowcount
            async with db.execute(
                "UPDATE away_periods SET end_date = ? WHERE guild_id = ? AND user_id = ? AND start_date <= ? "
                "AND end_date > ?",
                (today, guild_id, user_id, today, today),
            ) as cur:
                ended = cur.rowcount
        return bool(planned or ended)

    async def away_on(self, guild_id: int, user_id: int, day: str) -> tuple[str, str] | None:
        row = await self.fetchone(
            "SELECT start_date, end_date FROM away_periods WHERE guild_id = ? AND user_id = ? AND start_date <= ? "
            "AND end_date >= ? ORDER BY end_date DESC LIMIT 1",
            (guild_id, user_id, day, day),
        )
        return (row[0], row[1]) if row else None

    # ------------------------------------------------------------ board: confirmations

    async def put_confirm(self, guild_id: int, user_id: int, action: str, payload: str | None,
                          now: datetime) -> int:
        """Remember what a member asked to confirm; returns the token their button carries."""
        row = await self.fetchone(
            """INSERT INTO board_confirms (guild_id, user_id, action, token, payload, created_at)
               VALUES (?1, ?2, ?3, ?4, ?5, ?4)
               ON CONFLICT (guild_id, user_id, action) DO UPDATE SET
                   token = MAX(excluded.token, board_confirms.token + 1), payload = excluded.payload,
                   created_at = excluded.created_at
               RETURNING token""",
            (guild_id, user_id, action, to_unix(now), payload),
        )
        return row[0]

    async def take_confirm(self, guild_id: int, user_id: int, action: str, token: int,
                           not_before: int) -> tuple[bool, str | None]:
        """Consume a pending confirmation once: (found, payload). Not found when it was replaced by a newer
        request, already used, or created before `not_before` (expired)."""
        row = await self.fetchone(
            "DELETE FROM board_confirms WHERE guild_id = ? AND user_id = ? AND action = ? AND token = ? "
            "AND created_at >= ? RETURNING payload",
            (guild_id, user_id, action, token, not_before),
        )
        return (row is not None, row[0] if row else None)

    async def drop_confirm(self, guild_id: int, user_id: int, action: str, token: int) -> bool:
        return await self.execute(
            "DELETE FROM board_confirms WHERE guild_id = ? AND user_id = ? AND action = ? AND token = ?",
            (guild_id, user_id, action, token),
        ) == 1

    # ------------------------------------------------------------ board: weekly recap

    @dataclass(frozen=True, slots=True)
    class Recap:
        id: int
        guild_id: int
        week: str
        state: str
        channel_id: int | None
        message_id: int | None
        round_id: int | None

    async def get_recap(self, recap_id: int) -> Recap | None:
        row = await self.fetchone("SELECT id, guild_id, week, state, channel_id, message_id, round_id FROM recaps "
                                  "WHERE id = ?", (recap_id,))
        return _row(self.Recap, row)

    async def has_recap(self, guild_id: int, week: str) -> bool:
        return await self.fetchone("SELECT 1 FROM recaps WHERE guild_id = ? AND week = ?",
                                   (guild_id, week)) is not None

    async def week_checkin_stats(self, guild_id: int, first: str, last: str, active_since: str) -> tuple[int, int, int]:
        """(posted rounds, answers to them, members who answered anything from `active_since` to `last`)."""
        row = await self.fetchone(
            """SELECT (SELECT COUNT(*) FROM rounds WHERE guild_id = ?1 AND state = 'posted'
                       AND local_date BETWEEN ?2 AND ?3),
                      (SELECT COUNT(*) FROM checkins c JOIN rounds r ON r.guild_id = c.guild_id
                       AND r.local_date = c.local_date AND r.state = 'posted'
                       WHERE c.guild_id = ?1 AND c.local_date BETWEEN ?2 AND ?3),
                      (SELECT COUNT(DISTINCT user_id) FROM checkins WHERE guild_id = ?1
                       AND local_date BETWEEN ?4 AND ?3)""",
            (guild_id, first, last, active_since),
        )
        return row[0], row[1], row[2]

    async def checkin_users_since(self, guild_id: int, since: str) -> list[int]:
        rows = await self.fetchall(
            "SELECT DISTINCT user_id FROM checkins WHERE guild_id = ? AND local_date >= ?", (guild_id, since)
        )
        return [r[0] for r in rows]

    # ------------------------------------------------------------ public names (announce off holds everywhere)
    # Every public surface (celebration, weekly recap, a later server page) names members only through
    # may_name_publicly(members.announce), the SQLite function registered from coach.members in `open`.

    @dataclass(frozen=True, slots=True)
    class PublicFinished:
        """Finished projects in a time range: `total` counts every one; `named` are those whose members may be
        named publicly (oldest first, at most the query's limit)."""
        named: list[Storage.FinishedProject]
        total: int

    async def public_finished_projects(self, guild_id: int, start: int, end: int,
                                       limit: int = 50) -> PublicFinished:
        """Projects finished in [start, end) (UTC unix seconds): all counted, only the nameable ones listed."""
        where = "p.guild_id = ? AND p.status = 'finished' AND p.closed_at >= ? AND p.closed_at < ?"
        rows = await self.fetchall(
            f"""SELECT p.user_id, m.display_name, p.name, p.closed_at FROM projects p
               LEFT JOIN members m ON m.guild_id = p.guild_id AND m.user_id = p.user_id
               WHERE {where} AND may_name_publicly(m.announce)
               ORDER BY p.closed_at, p.id LIMIT ?""",
            (guild_id, start, end, limit),
        )
        total = await self.fetchone(f"SELECT COUNT(*) FROM projects p WHERE {where}", (guild_id, start, end))
        return self.PublicFinished([self.FinishedProject(*r) for r in rows], total[0])

    async def nameable_members(self, guild_id: int, user_ids: Iterable[int]) -> set[int]:
        """Those of `user_ids` who may be named publicly in this server (members never stored: the default)."""
        ids = sorted(set(user_ids))
        if not ids:
            return set()
        values = ", ".join("(?)" for _ in ids)
        rows = await self.fetchall(
            f"""WITH cand(uid) AS (VALUES {values})
               SELECT uid FROM cand LEFT JOIN members m ON m.guild_id = ? AND m.user_id = cand.uid
               WHERE may_name_publicly(m.announce)""",
            (*ids, guild_id),
        )
        return {r[0] for r in rows}

    # ------------------------------------------------------------ rewards and corrections

    @dataclass(frozen=True, slots=True)
    class Correction:
        """An admin's correction: an adjustment of points, or a check-in undone (its point went with it)."""
        id: int
        guild_id: int
        user_id: int
        kind: str            # 'adjust' or 'undo'
        amount: int
        local_date: str | None
        status: str | None
        reason: str | None
        admin_id: int
        created_at: int

    _CORRECTION_COLS = "id, guild_id, user_id, kind, amount, local_date, status, reason, admin_id, created_at"

    async def adjust_points(self, guild_id: int, user_id: int, amount: int, reason: str, admin_id: int,
                            now: datetime) -> Correction:
        """Record an admin's correction and its ledger row (kind 'adjust', ref 'c<id>') in one transaction."""
        ts = to_unix(now)
        async with self.transaction() as db:
            async with db.execute(
                f"INSERT INTO corrections (guild_id, user_id, kind, amount, reason, admin_id, created_at) "
                f"VALUES (?, ?, 'adjust', ?, ?, ?, ?) RETURNING {self._CORRECTION_COLS}",
                (guild_id, user_id, amount, reason, admin_id, ts),
            ) as cur:
                row = await cur.fetchone()
            await db.execute(
                "INSERT INTO points (guild_id, user_id, kind, amount, ref, created_at) VALUES (?, ?, 'adjust', ?, ?, ?)",
                (guild_id, user_id, amount, f"c{row[0]}", ts),
            )
        return self.Correction(*row)

    async def undo_checkin(self, guild_id: int, user_id: int, local_date: str, reason: str | None, admin_id: int,
                           now: datetime) -> Correction | None:
        """Remove a member's check-in of that date and its point (the board's totals follow the ledger through
        its delete trigger), and record the correction, in one transaction. None when there was no check-in."""
        async with self.transaction() as db:
            async with db.execute(
                "DELETE FROM checkins WHERE guild_id = ? AND user_id = ? AND local_date = ? RETURNING status",
                (guild_id, user_id, local_date),
            ) as cur:
                gone = await cur.fetchone()
            if gone is None:
                return None
            async with db.execute(
                "DELETE FROM points WHERE guild_id = ? AND user_id = ? AND kind = 'checkin' AND ref = ? "
                "RETURNING amount", (guild_id, user_id, local_date),
            ) as cur:
                point = await cur.fetchone()
            async with db.execute(
                f"INSERT INTO corrections (guild_id, user_id, kind, amount, local_date, status, reason, admin_id, "
                f"created_at) VALUES (?, ?, 'undo', ?, ?, ?, ?, ?, ?) RETURNING {self._CORRECTION_COLS}",
                (guild_id, user_id, -(point[0] if point else 0), local_date, gone[0], reason, admin_id,
                 to_unix(now)),
            ) as cur:
                row = await cur.fetchone()
        return self.Correction(*row)

    async def corrections_of(self, guild_id: int, user_id: int | None = None, after_id: int = 0,
                             limit: int = 1000) -> list[Correction]:
        """A server's corrections (or one member's), oldest first, after `after_id`."""
        rows = await self.fetchall(
            f"SELECT {self._CORRECTION_COLS} FROM corrections WHERE guild_id = ? AND id > ? "
            "AND (?3 IS NULL OR user_id = ?3) ORDER BY id LIMIT ?4",
            (guild_id, after_id, user_id, limit),
        )
        return [self.Correction(*r) for r in rows]

    async def board_points(self, guild_id: int, user_id: int) -> int:
        """A member's all-time board points (check-ins, finishes and adjustments), from the ledger."""
        return await self.points_total(guild_id, user_id, ("checkin", "finish", "adjust"))

    async def freezes_on(self, guild_id: int) -> bool:
        """Streak freezes (/coach freezes): on unless switched off."""
        row = await self.fetchone("SELECT freezes FROM reward_settings WHERE guild_id = ?", (guild_id,))
        return bool(row[0]) if row else True

    async def set_freezes(self, guild_id: int, on: bool, now: datetime) -> None:
        await self.execute(
            "INSERT INTO reward_settings (guild_id, freezes, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (guild_id) DO UPDATE SET freezes = excluded.freezes, updated_at = excluded.updated_at",
            (guild_id, int(on), to_unix(now)),
        )

    @dataclass(frozen=True, slots=True)
    class RoleReward:
        id: int
        guild_id: int
        kind: str            # streak, checkins, finished, depth, weekly
        threshold: int       # weekly: top N
        role_id: int
        keep: bool           # streak: the role stays when the streak breaks
        last_error: str | None
        last_error_at: int | None

    @dataclass(frozen=True, slots=True)
    class RoleChange:
        id: int
        guild_id: int
        user_id: int
        reward_id: int
        role_id: int
        action: str          # add or remove

    _REWARD_COLS = "id, guild_id, kind, threshold, role_id, keep, last_error, last_error_at"
    ROLE_CHANGE_HOURS = 24   # a role change not made within a day (Discord down that long) is given up

    async def add_reward(self, guild_id: int, kind: str, threshold: int, role_id: int, keep: bool,
                         now: datetime) -> RoleReward | None:
        """A new role reward (None: that role is already a reward of that kind here). The server's members with
        check-ins are looked at by the next rewards sweep, so those who already qualify get the role; a weekly
        reward replaces the server's previous one."""
        async with self.transaction() as db:
            if kind == "weekly":
                await db.execute("DELETE FROM role_holders WHERE guild_id = ? AND reward_id IN "
                                 "(SELECT id FROM role_rewards WHERE guild_id = ? AND kind = 'weekly')",
                                 (guild_id, guild_id))
                await db.execute("DELETE FROM role_rewards WHERE guild_id = ? AND kind = 'weekly'", (guild_id,))
            async with db.execute(
                f"INSERT INTO role_rewards (guild_id, kind, threshold, role_id, keep, created_at) "
                f"VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING {self._REWARD_COLS}",
                (guild_id, kind, threshold, role_id, int(keep), to_unix(now)),
            ) as cur:
                row = await cur.fetchone()
            if row is not None and kind != "weekly":
                await db.execute(
                    "INSERT INTO role_dirty (guild_id, user_id, seq) SELECT DISTINCT guild_id, user_id, 0 "
                    "FROM checkins WHERE guild_id = ? ON CONFLICT DO NOTHING", (guild_id,))
        return self.RoleReward(*row) if row else None

    async def rewards_of(self, guild_id: int) -> list[RoleReward]:
        rows = await self.fetchall(f"SELECT {self._REWARD_COLS} FROM role_rewards WHERE guild_id = ? "
                                   "ORDER BY kind = 'weekly', kind, threshold, id", (guild_id,))
        return [self.RoleReward(*r) for r in rows]

    async def remove_reward(self, guild_id: int, reward_id: int) -> RoleReward | None:
        """Stop a reward: nobody gets its role from now on (members who have it keep it)."""
        async with self.transaction() as db:
            async with db.execute(f"DELETE FROM role_rewards WHERE guild_id = ? AND id = ? "
                                  f"RETURNING {self._REWARD_COLS}", (guild_id, reward_id)) as cur:
                row = await cur.fetchone()
            await db.execute("DELETE FROM role_holders WHERE guild_id = ? AND reward_id = ?", (guild_id, reward_id))
        return self.RoleReward(*row) if row else None

    async def mark_role_dirty(self, guild_id: int, user_id: int) -> None:
        """Look at this member's rewards again at the next sweep (e.g. after /coach undo)."""
        await self.execute(
            "INSERT INTO role_dirty (guild_id, user_id, seq) SELECT ?, ?, 0 WHERE EXISTS "
            "(SELECT 1 FROM role_rewards WHERE guild_id = ?1 AND kind != 'weekly') "
            "ON CONFLICT (guild_id, user_id) DO UPDATE SET seq = role_dirty.seq + 1", (guild_id, user_id))

    async def role_dirty(self, limit: int) -> list[tuple[int, int, int]]:
        """Members to look at: (guild_id, user_id, seq), a server's together."""
        rows = await self.fetchall("SELECT guild_id, user_id, seq FROM role_dirty ORDER BY guild_id LIMIT ?",
                                   (limit,))
        return [(r[0], r[1], r[2]) for r in rows]

    async def streak_checks_due(self, limit: int = 100) -> list[tuple[int, str]]:
        """Servers with streak roles that go when a streak breaks, whose latest posted round is newer than the
        one their holders were checked after: (guild_id, that round's date)."""
        rows = await self.fetchall(
            """SELECT g.guild_id, (SELECT MAX(local_date) FROM rounds r WHERE r.guild_id = g.guild_id
                                   AND r.state = 'posted') AS latest
               FROM (SELECT DISTINCT guild_id FROM role_rewards WHERE kind = 'streak' AND keep = 0) g
               LEFT JOIN role_streak_checks c ON c.guild_id = g.guild_id
               WHERE latest IS NOT NULL AND (c.round_date IS NULL OR latest > c.round_date) LIMIT ?""",
            (limit,))
        return [(r[0], r[1]) for r in rows]

    async def role_holders(self, guild_id: int, reward_ids: Sequence[int] | None = None) -> set[tuple[int, int]]:
        """(reward_id, user_id) pairs holding a reward's role as Bounce gave it."""
        rows = await self.fetchall("SELECT reward_id, user_id FROM role_holders WHERE guild_id = ?", (guild_id,))
        wanted = set(reward_ids) if reward_ids is not None else None
        return {(r[0], r[1]) for r in rows if wanted is None or r[0] in wanted}

    async def reward_figures(self, guild_id: int, user_ids: Iterable[int],
                             streaks: bool = True) -> dict[int, dict[str, int]]:
        """Per member: check-ins, finished projects, depth points and (unless `streaks` is False: 0) the current
        streak (the one rule)."""
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        values = ", ".join("(?)" for _ in ids)
        rows = await self.fetchall(
            f"""WITH cand(uid) AS (VALUES {values})
               SELECT uid,
                      (SELECT COUNT(*) FROM checkins c WHERE c.guild_id = ?{len(ids) + 1} AND c.user_id = uid),
                      (SELECT COUNT(*) FROM projects p WHERE p.guild_id = ?{len(ids) + 1} AND p.user_id = uid
                       AND p.status = 'finished'),
                      (SELECT COALESCE(SUM(amount), 0) FROM points q WHERE q.guild_id = ?{len(ids) + 1}
                       AND q.user_id = uid AND q.kind IN {DEPTH_KINDS})
               FROM cand""",
            (*ids, guild_id),
        )
        current = await self.current_streaks(guild_id, ids) if streaks else {}
        return {r[0]: {"checkins": r[1], "finished": r[2], "depth": r[3], "streak": current.get(r[0], 0)}
                for r in rows}

    async def queue_role_changes(self, guild_id: int, add: Iterable[tuple[int, int]],
                                 remove: Iterable[tuple[int, int]], now: datetime, *,
                                 seen: Iterable[tuple[int, int]] = (), streak_round: str | None = None) -> int:
        """Record who gains and who loses a reward's role ((reward_id, user_id) pairs) and queue each change in the
        outbox, in one transaction; a change already made (the holder row already there, or already gone) is not
        queued again. `seen` are the (user_id, seq) marks this sweep looked at (cleared unless marked again
        meanwhile); `streak_round` records the round the server's streak roles were checked after. Returns how
        many changes were queued."""
        async with self.transaction() as db:
            queued = await self._queue_role_changes(db, guild_id, add, remove, to_unix(now))
            for user_id, seq in seen:
                await db.execute("DELETE FROM role_dirty WHERE guild_id = ? AND user_id = ? AND seq = ?",
                                 (guild_id, user_id, seq))
            if streak_round is not None:
                await db.execute(
                    "INSERT INTO role_streak_checks (guild_id, round_date) VALUES (?, ?) "
                    "ON CONFLICT (guild_id) DO UPDATE SET round_date = excluded.round_date", (guild_id, streak_round))
        return queued

    async def _queue_role_changes(self, db: aiosqlite.Connection, guild_id: int, add: Iterable[tuple[int, int]],
                                  remove: Iterable[tuple[int, int]], ts: int) -> int:
        queued = 0
        for action, pairs in (("remove", remove), ("add", add)):
            for reward_id, user_id in pairs:
                sql = ("INSERT INTO role_holders (guild_id, reward_id, user_id, since) SELECT ?, ?, ?, ? "
                       "WHERE EXISTS (SELECT 1 FROM role_rewards WHERE id = ?2) ON CONFLICT DO NOTHING RETURNING 1"
                       if action == "add" else
                       "DELETE FROM role_holders WHERE guild_id = ? AND reward_id = ? AND user_id = ? RETURNING 1")
                params = (guild_id, reward_id, user_id, ts) if action == "add" else (guild_id, reward_id, user_id)
                async with db.execute(sql, params) as cur:
                    if await cur.fetchone() is None:
                        continue
                async with db.execute(
                    "INSERT INTO role_changes (guild_id, user_id, reward_id, role_id, action, created_at) "
                    "SELECT ?, ?, id, role_id, ?, ? FROM role_rewards WHERE id = ? RETURNING id",
                    (guild_id, user_id, action, ts, reward_id),
                ) as cur:
                    row = await cur.fetchone()
                if row is None:  # the reward is gone: nothing to take away in its name
                    continue
                await self._insert_job(db, "role", row[0], guild_id, ts, ts + self.ROLE_CHANGE_HOURS * 3600, ts)
                queued += 1
        return queued

    async def _queue_weekly_roles(self, db: aiosqlite.Connection, job: Job, ts: int) -> int:
        """With the weekly recap posted: the week's top N (check-in, finish and adjusted points; ties go to who got
        there first; only members who may be named publicly) get the weekly role, last week's holders who are not
        among them lose it."""
        async with db.execute(
            "SELECT w.id, w.threshold, r.week, COALESCE(g.timezone, 'UTC') FROM recaps r "
            "JOIN role_rewards w ON w.guild_id = r.guild_id AND w.kind = 'weekly' "
            "LEFT JOIN guild_settings g ON g.guild_id = r.guild_id WHERE r.id = ?", (job.ref_id,),
        ) as cur:
            found = await cur.fetchone()
        if found is None:
            return 0
        reward_id, top, week, tz = found
        monday = date.fromisoformat(week)
        start, end = local_midnight(monday, tz), local_midnight(monday + timedelta(days=7), tz)
        async with db.execute(
            f"""SELECT p.user_id FROM points p LEFT JOIN members m ON m.guild_id = p.guild_id AND m.user_id = p.user_id
               WHERE p.guild_id = ? AND p.kind IN {self._BOARD_COUNTED} AND p.created_at >= ? AND p.created_at < ?
               AND may_name_publicly(m.announce)
               GROUP BY p.user_id HAVING SUM(p.amount) > 0
               ORDER BY SUM(p.amount) DESC, MAX(p.created_at), p.user_id LIMIT ?""",
            (job.guild_id, start, end, top),
        ) as cur:
            winners = {r[0] for r in await cur.fetchall()}
        async with db.execute("SELECT user_id FROM role_holders WHERE guild_id = ? AND reward_id = ?",
                              (job.guild_id, reward_id)) as cur:
            holders = {r[0] for r in await cur.fetchall()}
        return await self._queue_role_changes(db, job.guild_id, [(reward_id, u) for u in sorted(winners - holders)],
                                              [(reward_id, u) for u in sorted(holders - winners)], ts)

    async def get_role_change(self, change_id: int) -> RoleChange | None:
        row = await self.fetchone("SELECT id, guild_id, user_id, reward_id, role_id, action FROM role_changes "
                                  "WHERE id = ?", (change_id,))
        return self.RoleChange(*row) if row else None

    async def holds_reward(self, guild_id: int, reward_id: int, user_id: int) -> bool:
        return await self.fetchone("SELECT 1 FROM role_holders WHERE guild_id = ? AND reward_id = ? AND user_id = ?",
                                   (guild_id, reward_id, user_id)) is not None

    # ------------------------------------------------------------ board: export

    async def export_checkins(self, guild_id: int, after: tuple[str, int] | None, limit: int) -> list[ExportRow]:
        """One batch of the server's check-ins in (date, id) order, after the (date, id) key given."""
        date_key, id_key = after or ("", 0)
        rows = await self.fetchall(
            """SELECT c.id, c.local_date, c.user_id, m.display_name, c.status, p.name, c.note
               FROM checkins c
               LEFT JOIN members m ON m.guild_id = c.guild_id AND m.user_id = c.user_id
               LEFT JOIN projects p ON p.id = c.project_id
               WHERE c.guild_id = ? AND (c.local_date, c.id) > (?, ?)
               ORDER BY c.local_date, c.id LIMIT ?""",
            (guild_id, date_key, id_key, limit),
        )
        return [self.ExportRow(*r) for r in rows]

    async def _tables_with(self, *columns: str) -> list[str]:
        """Tables that have all of `columns`, from the live schema (features add tables in migrations)."""
        tables = await self.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
        found = []
        for (name,) in tables:
            cols = {r[1] for r in await self.fetchall(f'PRAGMA table_info("{name}")')}
            if set(columns) <= cols:
                found.append(name)
        return found

    @staticmethod
    def _deletion_order(tables: Iterable[str]) -> list[str]:
        """Totals before the ledger (its delete trigger then has nothing to update); check-ins before the
        projects and rounds they point at; settings last."""
        first = ["board_totals", "checkin_days", "points", "checkins", "projects", "rounds"]
        last = ["members", "guild_settings", "guild_removals"]
        names = list(tables)
        return ([t for t in first if t in names] + sorted(t for t in names if t not in first and t not in last)
                + [t for t in last if t in names])

    async def member_data(self, guild_id: int, user_id: int) -> dict[str, list[dict[str, Any]]]:
        """Everything stored about one member in one server, by table (for /me export)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for table in await self._tables_with("guild_id", "user_id"):
            if table in ("board_totals", "board_confirms", "role_dirty"):
                continue
            async with self._tx_lock, self.db.execute(
                    f'SELECT * FROM "{table}" WHERE guild_id = ? AND user_id = ?', (guild_id, user_id)) as cur:
                names = [d[0] for d in cur.description]
                out[table] = [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]
        return out

    async def forget_member(self, guild_id: int, user_id: int) -> dict[str, int]:
        """Delete one member's rows in one server, in one transaction; the counts deleted, by table."""
        tables = self._deletion_order(await self._tables_with("guild_id", "user_id"))
        counts: dict[str, int] = {}
        async with self.transaction() as db:
            for table in tables:
                async with db.execute(f'DELETE FROM "{table}" WHERE guild_id = ? AND user_id = ?',
                                      (guild_id, user_id)) as cur:
                    counts[table] = cur.rowcount
        return counts

    # ------------------------------------------------------------ board: servers that removed the bot

    async def mark_removed(self, guild_id: int, now: datetime) -> None:
        ts = to_unix(now)
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO guild_removals (guild_id, removed_at) VALUES (?, ?) ON CONFLICT (guild_id) DO NOTHING",
                (guild_id, ts),
            )
            await db.execute("UPDATE guild_settings SET removed_at = ? WHERE guild_id = ?", (ts, guild_id))

    async def mark_returned(self, guild_id: int) -> bool:
        """The bot is back in the server: nothing will be purged. True when it had been marked removed.
        (Called for every server at start: one cheap statement when there is nothing to clear.)"""
        if await self.fetchone("DELETE FROM guild_removals WHERE guild_id = ? RETURNING guild_id",
                               (guild_id,)) is None:
            return False
        await self.execute("UPDATE guild_settings SET removed_at = NULL WHERE guild_id = ?", (guild_id,))
        return True

    async def present_guild_ids(self) -> set[int]:
        """Servers with a check-in set up and not marked removed."""
        return {r[0] for r in await self.fetchall("SELECT guild_id FROM guild_settings WHERE removed_at IS NULL")}

    async def removed_at(self, guild_id: int) -> int | None:
        row = await self.fetchone("SELECT removed_at FROM guild_removals WHERE guild_id = ?", (guild_id,))
        return row[0] if row else None

    async def due_purges(self, removed_before: int, limit: int) -> list[int]:
        rows = await self.fetchall(
            "SELECT guild_id FROM guild_removals WHERE removed_at <= ? ORDER BY removed_at LIMIT ?",
            (removed_before, limit),
        )
        return [r[0] for r in rows]

    async def purge_guild(self, guild_id: int, removed_before: int) -> dict[str, int] | None:
        """Delete everything stored for a server, if it is still marked removed since before `removed_before`.

        Large tables go in chunks (one short transaction each) so other servers are not held up; the
        removal mark goes last, so a purge cut short is finished by the next run. None when not due
        (the bot was added back meanwhile).
        """
        if await self.fetchone("SELECT 1 FROM guild_removals WHERE guild_id = ? AND removed_at <= ?",
                               (guild_id, removed_before)) is None:
            return None
        tables = self._deletion_order(await self._tables_with("guild_id"))
        rowid_tables = {
            r[0] for r in await self.fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND upper(sql) NOT LIKE '%WITHOUT ROWID%'")
        }
        counts: dict[str, int] = {}
        for table in tables:
            if table == "guild_removals":
                continue
            total = 0
            while True:
                async with self.transaction() as db:
                    # Re-check in every chunk: an add-back (on_guild_join) stops the purge.
                    async with db.execute("SELECT 1 FROM guild_removals WHERE guild_id = ? AND removed_at <= ?",
                                          (guild_id, removed_before)) as cur:
                        if await cur.fetchone() is None:
                            return None
                    if table in rowid_tables:
                        sql = (f'DELETE FROM "{table}" WHERE rowid IN (SELECT rowid FROM "{table}" '
                               f"WHERE guild_id = ? LIMIT {self._PURGE_CHUNK})")
                    else:
                        sql = f'DELETE FROM "{table}" WHERE guild_id = ?'
                    async with db.execute(sql, (guild_id,)) as cur:
                        changed = cur.rowcount
                total += changed
                if table not in rowid_tables or changed < self._PURGE_CHUNK:
                    break
            counts[table] = total
        await self.execute("DELETE FROM guild_removals WHERE guild_id = ? AND removed_at <= ?",
                           (guild_id, removed_before))
        return counts

    # ============================================================ web: the server's page, /me public, health
    # (section: web feature)

    async def web_page_token(self, guild_id: int) -> str | None:
        """The token in the server's page address, or None while its page is off."""
        row = await self.fetchone("SELECT token FROM web_pages WHERE guild_id = ?", (guild_id,))
        return row[0] if row else None

    async def set_web_page(self, guild_id: int, token: str, now: datetime) -> None:
        """Switch the server's page on with this token, or replace the token of a page that is on."""
        await self.execute(
            "INSERT INTO web_pages (guild_id, token, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (guild_id) DO UPDATE SET token = excluded.token, created_at = excluded.created_at",
            (guild_id, token, to_unix(now)),
        )

    async def drop_web_page(self, guild_id: int) -> bool:
        """Switch the server's page off; True when it was on."""
        return await self.execute("DELETE FROM web_pages WHERE guild_id = ?", (guild_id,)) == 1

    async def web_page_guild(self, token: str) -> int | None:
        """The server whose page has this token; None for an unknown token or a server that removed the bot."""
        row = await self.fetchone(
            "SELECT w.guild_id FROM web_pages w WHERE w.token = ? "
            "AND NOT EXISTS (SELECT 1 FROM guild_removals r WHERE r.guild_id = w.guild_id)",
            (token,),
        )
        return row[0] if row else None

    async def set_public(self, guild_id: int, user_id: int, on: bool) -> None:
        """/me public: whether the member may appear on the server's public page (the row exists: touch_member)."""
        await self.execute(
            "UPDATE members SET public = ? WHERE guild_id = ? AND user_id = ?", (int(on), guild_id, user_id)
        )

    async def off_page_members(self, guild_id: int) -> set[int]:
        """Members who asked to stay off every public page (/me public off)."""
        rows = await self.fetchall("SELECT user_id FROM members WHERE guild_id = ? AND public = 0", (guild_id,))
        return {r[0] for r in rows}

    async def board_top(self, guild_id: int, period_id: int, limit: int) -> tuple[list[BoardScore], int]:
        """The top of a period's board for the page, members off the page left out: everyone with at least the
        points of the `limit`-th (so ties at the cut can be ordered by streak), and how many have points."""
        visible = ("guild_id = ?1 AND period_id = ?2 AND points > 0 AND NOT EXISTS (SELECT 1 FROM members m "
                   "WHERE m.guild_id = ?1 AND m.user_id = board_totals.user_id AND m.public = 0)")
        row = await self.fetchone(
            f"SELECT COUNT(*), (SELECT points FROM board_totals WHERE {visible} ORDER BY points DESC "
            f"LIMIT 1 OFFSET ?3) FROM board_totals WHERE {visible}",
            (guild_id, period_id, max(limit - 1, 0)),
        )
        total, cut_points = row[0], row[1] or 1
        rows = await self.fetchall(
            f"SELECT user_id, points, depth, reached_at FROM board_totals WHERE {visible} AND points >= ?3",
            (guild_id, period_id, cut_points),
        )
        return [self.BoardScore(*r) for r in rows], total

    async def may_name_publicly(self, guild_id: int, user_ids: Iterable[int]) -> set[int]:
        """Of `user_ids`, the members whose finished projects the page may name: the one public-naming rule
        (coach.members.may_name_publicly, announcements on) and not off the pages (/me public off)."""
        ids = sorted(set(user_ids))
        if not ids:
            return set()
        values = ", ".join("(?)" for _ in ids)
        rows = await self.fetchall(
            f"""WITH cand(uid) AS (VALUES {values})
               SELECT uid FROM cand LEFT JOIN members m ON m.guild_id = ? AND m.user_id = cand.uid
               WHERE may_name_publicly(m.announce) AND COALESCE(m.public, 1) = 1""",
            (*ids, guild_id),
        )
        return {r[0] for r in rows}

    async def recent_finished_projects(self, guild_id: int, limit: int) -> list[FinishedProject]:
        """The server's finished projects, newest first (names unfiltered: the caller applies the rule)."""
        rows = await self.fetchall(
            """SELECT p.user_id, m.display_name, p.name, p.closed_at FROM projects p
               LEFT JOIN members m ON m.guild_id = p.guild_id AND m.user_id = p.user_id
               WHERE p.guild_id = ? AND p.status = 'finished' AND p.closed_at IS NOT NULL
               ORDER BY p.closed_at DESC, p.id DESC LIMIT ?""",
            (guild_id, limit),
        )
        return [self.FinishedProject(*r) for r in rows]

    async def checkins_per_day(self, guild_id: int, since: str) -> dict[str, int]:
        """How many members answered on each local date from `since` on (the server's heatmap)."""
        rows = await self.fetchall(
            "SELECT local_date, answers FROM checkin_days WHERE guild_id = ? AND local_date >= ? AND answers > 0",
            (guild_id, since),
        )
        return {r[0]: r[1] for r in rows}

    async def checkins_per_day_from_checkins(self, guild_id: int, since: str) -> dict[str, int]:
        """The same counts straight from the check-ins (for audits and tests: must equal checkins_per_day)."""
        rows = await self.fetchall(
            "SELECT local_date, COUNT(*) FROM checkins WHERE guild_id = ? AND local_date >= ? GROUP BY local_date",
            (guild_id, since),
        )
        return {r[0]: r[1] for r in rows}

    async def streak_candidates(self, guild_id: int, since: str) -> set[int]:
        """Members who may have a current streak: an answer on or after `since` (the round before the open one)
        or an away period reaching it. Everyone else's current streak is 0."""
        rows = await self.fetchall(
            "SELECT DISTINCT user_id FROM checkins INDEXED BY checkins_guild_date WHERE guild_id = ? "
            "AND local_date >= ? UNION SELECT user_id FROM away_periods WHERE guild_id = ? AND end_date >= ?",
            (guild_id, since, guild_id, since),
        )
        return {r[0] for r in rows}

    async def ping(self) -> None:
        """Raise unless the database answers and the file it was opened from is still in place."""
        await self.fetchone("SELECT COUNT(*) FROM schema_migrations")
        if self.path is not None:
            current = _file_identity(self.path)
            first = getattr(self, "_identity", None) or current
            self._identity = first
            if current is None or current != first:
                raise StorageError(f"the database file {self.path} is gone or was replaced")

    async def overdue_since(self, now: int) -> int | None:
        """The oldest due time of anything scheduled and not yet posted: a schedule still waiting to be taken
        (round, DM round, lesson) or a post waiting in the outbox (including one backing off after a failure)."""
        row = await self.fetchone(
            """SELECT MIN(t) FROM (
                   SELECT MIN(next_due) AS t FROM guild_settings WHERE next_due IS NOT NULL AND next_due <= ?1
                   AND removed_at IS NULL
                   UNION ALL SELECT MIN(next_due) FROM dm_schedules WHERE next_due IS NOT NULL AND next_due <= ?1
                   UNION ALL SELECT MIN(next_due) FROM lesson_settings WHERE next_due IS NOT NULL AND next_due <= ?1
                   UNION ALL SELECT MIN(due_at) FROM outbox WHERE state = 'pending' AND due_at <= ?1)""",
            (now,),
        )
        return row[0] if row else None


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
