"""Lessons: schedules, posts, reflections and the journey (reads, exercises, unlocks)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from coach.clock import to_unix
from coach.storage.base import DEPTH_KINDS, Base, row_as
from coach.storage.rows import BoardScore, LessonPost, LessonSchedule, Reflection

log = logging.getLogger(__name__)


class Lessons(Base):
    # ------------------------------------------------------------ lessons (rows: LessonSchedule, LessonPost, Reflection)

    _LESSON_SCHEDULE_COLS = ("guild_id, channel_id, weekday, time_local, timezone, next_due, last_error, "
                             "last_error_at, error_told")
    _LESSON_POST_COLS = ("id, guild_id, local_date, lesson_id, scheduled_at, channel_id, message_id, state, late, "
                         "error, posted_at")
    _REFLECTION_COLS = "guild_id, user_id, lesson_id, body, created_at, updated_at"

    async def get_lesson_schedule(self, guild_id: int) -> LessonSchedule | None:
        row = await self.fetchone(
            f"SELECT {self._LESSON_SCHEDULE_COLS} FROM lesson_settings WHERE guild_id = ?", (guild_id,)
        )
        return row_as(LessonSchedule, row)

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
                AND COALESCE(g.paused, 0) = 0 AND g.removed_at IS NULL{self.mine('l.guild_id')}
                ORDER BY l.next_due LIMIT ?""",
            (until, limit),
        )
        return [LessonSchedule(*r) for r in rows]

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
        return row_as(LessonPost, row)

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
        return row_as(LessonPost, row)

    async def latest_lesson_post(self, guild_id: int) -> LessonPost | None:
        """The newest lesson post that reached the server's channel."""
        row = await self.fetchone(
            f"SELECT {self._LESSON_POST_COLS} FROM lesson_posts WHERE guild_id = ? AND state = 'posted' "
            "ORDER BY local_date DESC, id DESC LIMIT 1",
            (guild_id,),
        )
        return row_as(LessonPost, row)

    async def lesson_posts_of(self, guild_id: int) -> list[LessonPost]:
        rows = await self.fetchall(
            f"SELECT {self._LESSON_POST_COLS} FROM lesson_posts WHERE guild_id = ? ORDER BY local_date, id",
            (guild_id,),
        )
        return [LessonPost(*r) for r in rows]

    async def get_reflection(self, guild_id: int, user_id: int, lesson_id: str) -> Reflection | None:
        row = await self.fetchone(
            f"SELECT {self._REFLECTION_COLS} FROM reflections WHERE guild_id = ? AND user_id = ? AND lesson_id = ?",
            (guild_id, user_id, lesson_id),
        )
        return row_as(Reflection, row)

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
            "INSERT INTO lesson_reads (guild_id, user_id, lesson_id, read_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
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
                    "INSERT INTO lesson_unlocks (guild_id, user_id, track, unlocked_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (guild_id, user_id, track, to_unix(now)),
                ) as cur:
                    if cur.rowcount == 1:
                        new.append(track)
            if new:
                await db.execute(
                    "UPDATE members SET notice = CASE WHEN notice IS NULL OR notice = '' THEN ?1 "
                    "ELSE notice || ?4 || '📌 ' || ?1 END WHERE guild_id = ?2 AND user_id = ?3",
                    (notice, guild_id, user_id, "\n"),
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
        return [BoardScore(*r) for r in rows]
