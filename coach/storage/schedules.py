"""Server schedules: settings, rounds and the meta table."""

from __future__ import annotations

import logging
from datetime import datetime

from coach.clock import to_unix
from coach.storage.base import Base, row_as
from coach.storage.rows import GUILD_COLS, ROUND_COLS, GuildSettings, Round

log = logging.getLogger(__name__)


class Schedules(Base):
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
        row = await self.fetchone(f"SELECT {GUILD_COLS} FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return row_as(GuildSettings, row)

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
                   next_due = CASE WHEN guild_settings.paused = 1 THEN NULL ELSE excluded.next_due END,
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
            f"SELECT {GUILD_COLS} FROM guild_settings WHERE next_due IS NOT NULL AND next_due <= ? "
            f"AND removed_at IS NULL{self.mine()} ORDER BY next_due LIMIT ?",
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
               RETURNING {ROUND_COLS}""",
            (guild_id, local_date, scheduled_at, channel_id, prompt_index, int(late), int(manual), to_unix(now)),
        )
        return row_as(Round, row)

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
        return row_as(Round, await self.fetchone(f"SELECT {ROUND_COLS} FROM rounds WHERE id = ?", (round_id,)))

    async def round_on(self, guild_id: int, local_date: str) -> Round | None:
        row = await self.fetchone(
            f"SELECT {ROUND_COLS} FROM rounds WHERE guild_id = ? AND local_date = ?", (guild_id, local_date)
        )
        return row_as(Round, row)

    async def latest_round(self, guild_id: int) -> Round | None:
        """The newest round that reached the channel: the one answers count for."""
        row = await self.fetchone(
            f"SELECT {ROUND_COLS} FROM rounds WHERE guild_id = ? AND state = 'posted' "
            "ORDER BY local_date DESC LIMIT 1",
            (guild_id,),
        )
        return row_as(Round, row)

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
