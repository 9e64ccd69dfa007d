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

    async def advance_lesson_schedule(self, guild_id: int, expected_due: int, next_due: int) -> bool:
        """Compare-and-set the next lesson post: only one process wins a due schedule."""
        return await self.execute(
            "UPDATE lesson_settings SET next_due = ? WHERE guild_id = ? AND next_due = ?",
            (next_due, guild_id, expected_due),
        ) == 1

    async def claim_lesson_post(
        self, *, guild_id: int, local_date: str, lesson_id: str, scheduled_at: int, channel_id: int, late: bool,
        now: datetime, advance: tuple[int, int] | None = None,
    ) -> LessonPost | None:
        """Insert the post's unique (guild, local date) row; None when it exists already.

        With `advance=(expected_due, next_due)` the schedule's compare-and-set runs in the same transaction
        first, and nothing is claimed when another process already advanced it.
        """
        async with self.transaction() as db:
            if advance is not None:
                async with db.execute(
                    "UPDATE lesson_settings SET next_due = ? WHERE guild_id = ? AND next_due = ?",
                    (advance[1], guild_id, advance[0]),
                ) as cur:
                    if cur.rowcount != 1:
                        return None
            async with db.execute(
                f"""INSERT INTO lesson_posts (guild_id, local_date, lesson_id, scheduled_at, channel_id, late,
                        created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (guild_id, local_date) DO NOTHING
                    RETURNING {self._LESSON_POST_COLS}""",
                (guild_id, local_date, lesson_id, scheduled_at, channel_id, int(late), to_unix(now)),
            ) as cur:
                row = await cur.fetchone()
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

    async def mark_lesson_failed(self, post_id: int, error: str, now: datetime) -> None:
        """The post could not be made: record why, on the post and for the server's admins (told once)."""
        async with self.transaction() as db:
            async with db.execute(
                "UPDATE lesson_posts SET state = 'failed', error = ? WHERE id = ? RETURNING guild_id",
                (error, post_id),
            ) as cur:
                row = await cur.fetchone()
            if row is not None:
                await db.execute(
                    "UPDATE lesson_settings SET last_error = ?, last_error_at = ?, error_told = 0 WHERE guild_id = ?",
                    (error, to_unix(now), row[0]),
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

    async def unfinished_lesson_claims(self, since: int) -> list[LessonPost]:
        """Lesson posts claimed but never confirmed posted (the process stopped mid-post), newer than `since`."""
        rows = await self.fetchall(
            f"SELECT {self._LESSON_POST_COLS} FROM lesson_posts WHERE state = 'claimed' AND scheduled_at >= ? "
            "ORDER BY scheduled_at, id",
            (since,),
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
        """A member's depth points in a server: the sum of their 'reflection' entries in the ledger."""
        row = await self.fetchone(
            "SELECT COALESCE(SUM(amount), 0) FROM points WHERE guild_id = ? AND user_id = ? AND kind = 'reflection'",
            (guild_id, user_id),
        )
        return row[0]

    # ============================================================ DM check-ins (section: DM feature)
    # Row classes live in this section (Storage.DMSchedule, Storage.DMRound, Storage.DMClaim) so the whole
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

    @dataclass(frozen=True, slots=True)
    class DMClaim:
        """A due DM schedule, decided: advance it from expected_due to next_due, and send or skip."""
        guild_id: int
        user_id: int
        expected_due: int
        next_due: int
        send: bool
        local_date: str
        scheduled_at: int
        closes_at: int
        late: bool

    _DM_SCHEDULE_COLS = ("guild_id, user_id, enabled, time_local, timezone, days, next_due, off_reason, off_at")
    _DM_ROUND_COLS = ("id, guild_id, user_id, local_date, scheduled_at, closes_at, state, late, channel_id, "
                      "message_id, error, sent_at")

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
                   created_at, updated_at)
               VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (guild_id, user_id) DO UPDATE SET enabled = 1, time_local = excluded.time_local,
                   timezone = excluded.timezone, days = excluded.days, next_due = excluded.next_due,
                   off_reason = NULL, off_at = NULL, updated_at = excluded.updated_at""",
            (guild_id, user_id, time_local, timezone, days, next_due, ts, ts),
        )

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

    async def claim_dm_round(self, claim: Storage.DMClaim, now: datetime) -> Storage.DMRound | None:
        """Take one due DM schedule: insert the DM round's unique row, then compare-and-set the next due.

        No multi-statement transaction (the connection is shared): the row is inserted only while the
        schedule still sits at `expected_due` and nobody else inserted it (UNIQUE); whoever inserted it sends
        it. Then the schedule advances (CAS). A crash between the two leaves a claimed row that is taken over
        later, and a schedule that advances on the next run without a second row. No row when the member
        already answered that server for that date, or for `send=False` (missed beyond the grace window).
        """
        row = None
        if claim.send:
            ts = to_unix(now)
            row = await self.fetchone(
                f"""INSERT INTO dm_rounds (guild_id, user_id, local_date, scheduled_at, closes_at, late, created_at,
                        claimed_at)
                    SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7 FROM dm_schedules s
                    WHERE s.guild_id = ?1 AND s.user_id = ?2 AND s.next_due = ?8
                    AND NOT EXISTS (SELECT 1 FROM checkins c WHERE c.guild_id = ?1 AND c.user_id = ?2
                                    AND c.local_date = ?3)
                    ON CONFLICT (guild_id, user_id, local_date) DO NOTHING
                    RETURNING {self._DM_ROUND_COLS}""",
                (claim.guild_id, claim.user_id, claim.local_date, claim.scheduled_at, claim.closes_at,
                 int(claim.late), ts, claim.expected_due),
            )
        await self.execute(
            "UPDATE dm_schedules SET next_due = ? WHERE guild_id = ? AND user_id = ? AND next_due = ?",
            (claim.next_due, claim.guild_id, claim.user_id, claim.expected_due),
        )
        return _row(self.DMRound, row)

    async def take_stale_dm_claims(self, *, stale_before: int, since: int, now: datetime,
                                   limit: int) -> list[Storage.DMRound]:
        """Claimed DM rounds nobody confirmed sent for a while (a process stopped mid-send), scheduled within
        the grace window: taken over atomically (compare-and-set on claimed_at), oldest due first."""
        rows = await self.fetchall(
            f"""UPDATE dm_rounds SET claimed_at = ?1
                WHERE id IN (SELECT id FROM dm_rounds WHERE state = 'claimed' AND claimed_at < ?2
                             AND scheduled_at >= ?3 ORDER BY scheduled_at, id LIMIT ?4)
                AND state = 'claimed' AND claimed_at < ?2
                RETURNING {self._DM_ROUND_COLS}""",
            (to_unix(now), stale_before, since, limit),
        )
        return sorted((self.DMRound(*r) for r in rows), key=lambda r: (r.scheduled_at, r.id))

    async def expire_dm_claims(self, *, stale_before: int, since: int) -> int:
        """Stale claimed DM rounds scheduled before the grace window: never sent, marked missed."""
        return await self.execute(
            "UPDATE dm_rounds SET state = 'failed', error = 'missed' WHERE state = 'claimed' "
            "AND claimed_at < ? AND scheduled_at < ?",
            (stale_before, since),
        )

    async def get_dm_round(self, dm_round_id: int) -> DMRound | None:
        return _row(self.DMRound, await self.fetchone(f"SELECT {self._DM_ROUND_COLS} FROM dm_rounds WHERE id = ?",
                                                 (dm_round_id,)))

    async def dm_round_on(self, guild_id: int, user_id: int, local_date: str) -> DMRound | None:
        row = await self.fetchone(
            f"SELECT {self._DM_ROUND_COLS} FROM dm_rounds WHERE guild_id = ? AND user_id = ? AND local_date = ?",
            (guild_id, user_id, local_date),
        )
        return _row(self.DMRound, row)

    async def dm_precheck(self, dm_round: DMRound) -> str | None:
        """Just before sending: why this DM should not go out now (None: send it)."""
        row = await self.fetchone(
            """SELECT (SELECT enabled FROM dm_schedules WHERE guild_id = ?1 AND user_id = ?2),
                      (SELECT paused FROM guild_settings WHERE guild_id = ?1),
                      EXISTS (SELECT 1 FROM checkins WHERE guild_id = ?1 AND user_id = ?2 AND local_date = ?3),
                      (SELECT state FROM dm_rounds WHERE id = ?4)""",
            (dm_round.guild_id, dm_round.user_id, dm_round.local_date, dm_round.id),
        )
        enabled, paused, answered, state = row
        if state != "claimed":
            return "already_handled"
        if answered:
            return "answered"
        if not enabled:
            return "dms_off"
        if paused is None:
            return "no_checkin"
        if paused:
            return "server_paused"
        return None

    async def mark_dm_sent(self, dm_round_id: int, channel_id: int, message_id: int, now: datetime) -> None:
        await self.execute(
            "UPDATE dm_rounds SET state = 'sent', channel_id = ?, message_id = ?, sent_at = ?, error = NULL "
            "WHERE id = ?",
            (channel_id, message_id, to_unix(now), dm_round_id),
        )

    async def mark_dm_unsent(self, dm_round_id: int, state: str, error: str | None) -> None:
        """A claimed DM round that did not go out: 'answered', 'cancelled' or 'failed', with why."""
        await self.execute("UPDATE dm_rounds SET state = ?, error = ? WHERE id = ? AND state = 'claimed'",
                           (state, error, dm_round_id))

    async def open_dm_rounds(self, user_id: int, now: int) -> list[tuple[DMRound, bool]]:
        """The member's DM rounds still open for answers (newest per server), each with `answered`."""
        rows = await self.fetchall(
            f"""SELECT {', '.join('d.' + c.strip() for c in self._DM_ROUND_COLS.split(','))},
                       EXISTS (SELECT 1 FROM checkins c WHERE c.guild_id = d.guild_id AND c.user_id = d.user_id
                               AND c.local_date = d.local_date)
                FROM dm_rounds d WHERE d.user_id = ? AND d.state = 'sent' AND d.closes_at > ?
                AND d.local_date = (SELECT MAX(local_date) FROM dm_rounds e WHERE e.user_id = d.user_id
                                    AND e.guild_id = d.guild_id AND e.state = 'sent')
                ORDER BY d.scheduled_at DESC, d.id DESC""",
            (user_id, now),
        )
        return [(self.DMRound(*r[:-1]), bool(r[-1])) for r in rows]

    async def dm_round_dates(self, guild_id: int, user_id: int) -> list[str]:
        """Dates a DM round reached the member: scheduled days for their streak in this server."""
        rows = await self.fetchall(
            "SELECT local_date FROM dm_rounds WHERE guild_id = ? AND user_id = ? AND state = 'sent' "
            "ORDER BY local_date",
            (guild_id, user_id),
        )
        return [r[0] for r in rows]

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
