"""DM check-ins and nudges: schedules, DM rounds, DM channels."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from coach.clock import to_unix
from coach.outbox import crashpoint
from coach.storage.base import Base, row_as
from coach.storage.rows import ROUND_COLS, DMRound, DMSchedule, Nudge, NudgeCheck, NudgeTake, Round

log = logging.getLogger(__name__)


class DMs(Base):
    # ------------------------------------------------------------ nudges
    # Row classes live in this section (NudgeCheck, Nudge); coach/nudges.py re-exports them.
    # A member's nudge schedule follows the server's next run by a trigger (migration 010).

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
               (SELECT {away_list} FROM away_periods a
                    WHERE a.guild_id = n.guild_id AND a.user_id = n.user_id
                    AND a.end_date >= COALESCE(r.local_date, ''))
        FROM nudge_settings n
        LEFT JOIN guild_settings g ON g.guild_id = n.guild_id
        LEFT JOIN rounds r ON r.id = (SELECT id FROM rounds WHERE guild_id = n.guild_id AND state = 'posted'
                                      ORDER BY local_date DESC LIMIT 1)
    """

    def _nudge_check_sql(self) -> str:
        return self._NUDGE_CHECK_SQL.format(away_list=self.db.group_concat("a.start_date || ' ' || a.end_date", ","))

    async def nudge_check(self, guild_id: int, user_id: int) -> NudgeCheck | None:
        """The member's nudge setting in this server with everything that decides a nudge; None: never set."""
        row = await self.fetchone(self._nudge_check_sql() + " WHERE n.guild_id = ? AND n.user_id = ?",
                                  (guild_id, user_id))
        return row_as(NudgeCheck, row)

    async def due_nudges(self, until: int, limit: int) -> list[NudgeCheck]:
        """Members whose nudge is due, oldest first, each with what decides it."""
        rows = await self.fetchall(
            self._nudge_check_sql() + f" WHERE n.next_due IS NOT NULL AND n.next_due <= ?{self.mine('n.guild_id')} "
            "ORDER BY n.next_due LIMIT ?",
            (until, limit))
        return [NudgeCheck(*r) for r in rows]

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
        return row_as(Nudge, await self.fetchone(f"SELECT {self._NUDGE_COLS} FROM nudges WHERE id = ?",
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

    # ------------------------------------------------------------ DM check-ins (rows: DMSchedule, DMRound)

    _DM_SCHEDULE_COLS = ("guild_id, user_id, enabled, time_local, timezone, days, next_due, off_reason, off_at, "
                         "member_checked_at")
    _DMROUND_COLS = ("id, guild_id, user_id, local_date, scheduled_at, closes_at, state, late, channel_id, "
                      "message_id, error, sent_at, round_id")

    async def get_dm_schedule(self, guild_id: int, user_id: int) -> DMSchedule | None:
        row = await self.fetchone(f"SELECT {self._DM_SCHEDULE_COLS} FROM dm_schedules WHERE guild_id = ? AND user_id = ?",
                                  (guild_id, user_id))
        return row_as(DMSchedule, row)

    async def dm_schedules_of(self, user_id: int) -> list[DMSchedule]:
        rows = await self.fetchall(f"SELECT {self._DM_SCHEDULE_COLS} FROM dm_schedules WHERE user_id = ?", (user_id,))
        return [DMSchedule(*r) for r in rows]

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
            f"{self.mine()} ORDER BY next_due LIMIT ?",
            (until, limit),
        )
        return [DMSchedule(*r) for r in rows]

    async def get_dm_round(self, dm_round_id: int) -> DMRound | None:
        return row_as(DMRound, await self.fetchone(f"SELECT {self._DMROUND_COLS} FROM dm_rounds WHERE id = ?",
                                                 (dm_round_id,)))

    async def dm_round_on(self, guild_id: int, user_id: int, local_date: str) -> DMRound | None:
        row = await self.fetchone(
            f"SELECT {self._DMROUND_COLS} FROM dm_rounds WHERE guild_id = ? AND user_id = ? AND local_date = ?",
            (guild_id, user_id, local_date),
        )
        return row_as(DMRound, row)

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
            f"SELECT {ROUND_COLS} FROM rounds WHERE guild_id = ? AND state IN ('posted', 'claimed') "
            "ORDER BY local_date DESC LIMIT 1", (dm_round.guild_id,))
        open_round = row_as(Round, row)
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
            f"""SELECT {', '.join('d.' + c.strip() for c in self._DMROUND_COLS.split(','))},
                       EXISTS (SELECT 1 FROM checkins c WHERE c.guild_id = d.guild_id AND c.user_id = d.user_id
                               AND c.local_date = (SELECT MAX(r.local_date) FROM rounds r
                                                   WHERE r.guild_id = d.guild_id AND r.state = 'posted'))
                FROM dm_rounds d WHERE d.user_id = ? AND d.state = 'sent' AND d.closes_at > ?
                AND d.local_date = (SELECT MAX(local_date) FROM dm_rounds e WHERE e.user_id = d.user_id
                                    AND e.guild_id = d.guild_id AND e.state = 'sent')
                ORDER BY d.scheduled_at DESC, d.id DESC""",
            (user_id, now),
        )
        return [(DMRound(*r[:-1]), bool(r[-1])) for r in rows]

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
