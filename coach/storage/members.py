"""Members: names, announce, notices, the coach's memory, away periods, confirmations."""

from __future__ import annotations

import logging
from datetime import datetime

from coach.clock import to_unix
from coach.storage.base import Base, row_as
from coach.storage.rows import Member

log = logging.getLogger(__name__)


class Members(Base):
    # ------------------------------------------------------------ members

    async def touch_member(self, guild_id: int, user_id: int, display_name: str, now: datetime, *,
                           from_server: bool = True) -> None:
        """Store the member's name in this server (coach.members.display_name). A name seen outside the server
        (`from_server=False`, a DM: no nickname there) only fills an empty name, never replaces the server's."""
        await self.execute(
            """INSERT INTO members (guild_id, user_id, display_name, first_seen) VALUES (?, ?, ?, ?)
               ON CONFLICT (guild_id, user_id) DO UPDATE SET display_name = excluded.display_name
               WHERE members.display_name != excluded.display_name AND (? = 1 OR members.display_name = '')""",
            (guild_id, user_id, display_name[:100], to_unix(now), int(from_server)),
        )

    async def get_member(self, guild_id: int, user_id: int) -> Member | None:
        row = await self.fetchone(
            "SELECT guild_id, user_id, display_name, announce, notice FROM members WHERE guild_id = ? AND user_id = ?",
            (guild_id, user_id),
        )
        return row_as(Member, row)

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

    # ------------------------------------------------------------ away

    async def away_periods(self, guild_id: int, user_id: int) -> list[tuple[str, str]]:
        rows = await self.fetchall(
            "SELECT start_date, end_date FROM away_periods WHERE guild_id = ? AND user_id = ? ORDER BY start_date",
            (guild_id, user_id),
        )
        return [(r[0], r[1]) for r in rows]

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
                   token = CASE WHEN excluded.token > board_confirms.token THEN excluded.token
                                ELSE board_confirms.token + 1 END, payload = excluded.payload,
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
