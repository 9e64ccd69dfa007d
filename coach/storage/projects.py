"""Projects: create, find, finish (exactly once)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from coach.clock import to_unix
from coach.storage.base import Base, row_as
from coach.storage.rows import PROJECT_COLS, Project

log = logging.getLogger(__name__)


class Projects(Base):
    # ------------------------------------------------------------ projects

    async def get_project(self, project_id: int) -> Project | None:
        row = await self.fetchone(f"SELECT {PROJECT_COLS} FROM projects WHERE id = ?", (project_id,))
        return row_as(Project, row)

    async def find_active_project(self, guild_id: int, user_id: int, name: str) -> Project | None:
        row = await self.fetchone(
            f"SELECT {PROJECT_COLS} FROM projects WHERE guild_id = ? AND user_id = ? AND name_key = ? "
            "AND status = 'active'",
            (guild_id, user_id, name.casefold()),
        )
        return row_as(Project, row)

    async def find_project_any_owner(self, guild_id: int, name: str) -> list[Project]:
        rows = await self.fetchall(
            f"SELECT {PROJECT_COLS} FROM projects WHERE guild_id = ? AND name_key = ? ORDER BY id DESC LIMIT 5",
            (guild_id, name.casefold()),
        )
        return [Project(*r) for r in rows]

    async def create_project(
        self, guild_id: int, user_id: int, name: str, deadline: str | None, now: datetime
    ) -> Project:
        row = await self.fetchone(
            f"""INSERT INTO projects (guild_id, user_id, name, name_key, deadline, created_at)
               VALUES (?, ?, ?, ?, ?, ?) RETURNING {PROJECT_COLS}""",
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
            f"SELECT {PROJECT_COLS} FROM projects WHERE {where} "
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
            f"""SELECT {PROJECT_COLS} FROM projects p WHERE guild_id = ? AND user_id = ? AND status = 'active'
                ORDER BY COALESCE((SELECT MAX(c.updated_at) FROM checkins c WHERE c.project_id = p.id),
                                  p.created_at) DESC, id DESC LIMIT 1""",
            (guild_id, user_id),
        )
        return row_as(Project, row)

    async def search_active_projects(self, guild_id: int, user_id: int, text: str, limit: int = 25) -> list[str]:
        rows = await self.fetchall(
            "SELECT name FROM projects WHERE guild_id = ? AND user_id = ? AND status = 'active' "
            f"AND {self.db.position('name_key', '?')} > 0 ORDER BY {self.db.position('name_key', '?')}, name_key "
            "LIMIT ?",
            (guild_id, user_id, text.casefold(), text.casefold(), limit),
        )
        return [r[0] for r in rows]

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
                    RETURNING {PROJECT_COLS}""",
                (guild_id, user_id, name, name.casefold(), deadline, to_unix(now)),
            ) as cur:
                row = await cur.fetchone()
            if row is not None:
                return Project(*row), True
            async with db.execute(
                f"SELECT {PROJECT_COLS} FROM projects WHERE guild_id = ? AND user_id = ? AND name_key = ? "
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
                "INSERT INTO points (guild_id, user_id, kind, amount, ref, created_at) "
                "VALUES (?, ?, 'finish', ?, ?, ?) ON CONFLICT DO NOTHING",
                (project.guild_id, project.user_id, points, str(project.id), ts),
            ) as cur:
                return True, cur.rowcount == 1
