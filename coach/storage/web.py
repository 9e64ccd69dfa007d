"""The public page: its token, who is on it, its board and heatmap."""

from __future__ import annotations

import logging
from datetime import datetime

from coach.clock import to_unix
from coach.storage.base import Base
from coach.storage.rows import BoardScore, FinishedProject

log = logging.getLogger(__name__)


class WebPages(Base):
    # ------------------------------------------------------------ the server's page, /me public, health

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
        return [BoardScore(*r) for r in rows], total

    async def recent_finished_projects(self, guild_id: int, limit: int) -> list[FinishedProject]:
        """The server's finished projects, newest first (names unfiltered: the caller applies the rule)."""
        rows = await self.fetchall(
            """SELECT p.user_id, m.display_name, p.name, p.closed_at FROM projects p
               LEFT JOIN members m ON m.guild_id = p.guild_id AND m.user_id = p.user_id
               WHERE p.guild_id = ? AND p.status = 'finished' AND p.closed_at IS NOT NULL
               ORDER BY p.closed_at DESC, p.id DESC LIMIT ?""",
            (guild_id, limit),
        )
        return [FinishedProject(*r) for r in rows]

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

    async def overdue_since(self, now: int) -> int | None:
        """The oldest due time of anything scheduled and not yet posted: a schedule still waiting to be taken
        (round, DM round, lesson) or a post waiting in the outbox (including one backing off after a failure)."""
        row = await self.fetchone(
            f"""SELECT MIN(t) FROM (
                   SELECT MIN(next_due) AS t FROM guild_settings WHERE next_due IS NOT NULL AND next_due <= ?1
                   AND removed_at IS NULL{self.mine()}
                   UNION ALL SELECT MIN(next_due) FROM dm_schedules WHERE next_due IS NOT NULL AND next_due <= ?1{self.mine()}
                   UNION ALL SELECT MIN(next_due) FROM lesson_settings WHERE next_due IS NOT NULL AND next_due <= ?1{self.mine()}
                   UNION ALL SELECT MIN(due_at) FROM outbox WHERE state = 'pending' AND due_at <= ?1{self.mine()}) AS due""",
            (now,),
        )
        return row[0] if row else None
