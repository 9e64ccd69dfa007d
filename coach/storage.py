"""All SQL lives here. aiosqlite in WAL mode, numbered migrations, rows as small typed classes."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from coach.clock import to_unix

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
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


class Storage:
    """One aiosqlite connection; writes that belong together run in one IMMEDIATE transaction."""

    def __init__(self, db: aiosqlite.Connection, path: Path | None) -> None:
        self.db = db
        self.path = path
        self._tx_lock = asyncio.Lock()  # one transaction at a time on the shared connection

    # ------------------------------------------------------------ lifecycle

    @classmethod
    async def open(cls, path: Path | str, *, migrations_dir: Path = MIGRATIONS_DIR) -> Storage:
        target = Path(path) if str(path) != ":memory:" else None
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), isolation_level=None)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA busy_timeout=5000")
            store = cls(db, target)
            await store._migrate(migrations(migrations_dir))
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        await self.db.close()

    async def _migrate(self, known: Sequence[tuple[int, str, str]]) -> None:
        await self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')))"
        )
        async with self.db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as cur:
            current = (await cur.fetchone())[0]
        newest = known[-1][0] if known else 0
        if current > newest:
            raise DatabaseTooNew(
                f"the database is at schema version {current} but this Bounce knows only up to {newest}; "
                "run a newer Bounce or restore a backup"
            )
        for version, name, sql in known:
            if version <= current:
                continue
            log.info("applying migration %s", name)
            await self.db.executescript(f"BEGIN IMMEDIATE;\n{sql}\nINSERT INTO schema_migrations (version, name) "
                                        f"VALUES ({version}, '{name}');\nCOMMIT;")

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

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        async with self.db.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        async with self.db.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        async with self.db.execute(sql, tuple(params)) as cur:
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

    async def advance_guild(self, guild_id: int, expected_due: int, next_due: int) -> bool:
        """Compare-and-set the next run: only one process wins a due schedule."""
        changed = await self.execute(
            "UPDATE guild_settings SET next_due = ? WHERE guild_id = ? AND next_due = ?",
            (next_due, guild_id, expected_due),
        )
        return changed == 1

    async def record_guild_error(self, guild_id: int, error: str | None, now: datetime) -> None:
        await self.execute(
            "UPDATE guild_settings SET last_error = ?, last_error_at = ?, error_told = 0 WHERE guild_id = ?",
            (error, to_unix(now) if error else None, guild_id),
        )

    async def take_guild_error(self, guild_id: int) -> str | None:
        """The last posting error not yet told to an admin; marks it told."""
        row = await self.fetchone(
            "UPDATE guild_settings SET error_told = 1 WHERE guild_id = ? AND last_error IS NOT NULL "
            "AND error_told = 0 RETURNING last_error",
            (guild_id,),
        )
        return row[0] if row else None

    async def mark_guild_removed(self, guild_id: int, removed_at: int | None) -> None:
        await self.execute("UPDATE guild_settings SET removed_at = ? WHERE guild_id = ?", (removed_at, guild_id))

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

    async def unfinished_claims(self, since: int) -> list[Round]:
        """Rounds claimed but never confirmed posted (a crash mid-post), newer than `since`."""
        rows = await self.fetchall(
            f"SELECT {_ROUND_COLS} FROM rounds WHERE state = 'claimed' AND scheduled_at >= ? ORDER BY scheduled_at",
            (since,),
        )
        return [Round(*r) for r in rows]

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

    # ------------------------------------------------------------ members

    async def touch_member(self, guild_id: int, user_id: int, display_name: str, now: datetime) -> None:
        await self.execute(
            """INSERT INTO members (guild_id, user_id, display_name, first_seen) VALUES (?, ?, ?, ?)
               ON CONFLICT (guild_id, user_id) DO UPDATE SET display_name = excluded.display_name
               WHERE members.display_name != excluded.display_name""",
            (guild_id, user_id, display_name[:100], to_unix(now)),
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
        """Write the member's answer for that date. Returns (checkin, created); +1 point only when created."""
        ts = to_unix(now)
        async with self.transaction() as db:
            async with db.execute(
                "SELECT id FROM checkins WHERE guild_id = ? AND user_id = ? AND local_date = ?",
                (guild_id, user_id, local_date),
            ) as cur:
                existing = await cur.fetchone()
            if existing:
                await db.execute(
                    "UPDATE checkins SET status = ?, project_id = ?, note = ?, via = ?, updated_at = ?, "
                    "round_id = COALESCE(round_id, ?) WHERE id = ?",
                    (status, project_id, note, via, ts, round_id, existing[0]),
                )
                created = False
            else:
                await db.execute(
                    "INSERT INTO checkins (guild_id, user_id, local_date, round_id, status, project_id, note, via, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (guild_id, user_id, local_date, round_id, status, project_id, note, via, ts, ts),
                )
                await db.execute(
                    "INSERT OR IGNORE INTO points (guild_id, user_id, kind, amount, ref, created_at) "
                    "VALUES (?, ?, 'checkin', 1, ?, ?)",
                    (guild_id, user_id, local_date, ts),
                )
                created = True
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

    # ============================================================ DM check-ins (section: DM feature)

    # ============================================================ leaderboard, stats, seasons, export (section: board)
