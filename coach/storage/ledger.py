"""The ledger: check-ins, points, board totals, periods, seasons, streaks, the weekly recap."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from coach.clock import to_unix
from coach.storage.base import BOARD_KINDS, Base, id_values, row_as
from coach.storage.rows import CHECKIN_COLS, BoardScore, Checkin, Recap, Season
from coach.streaks import FREEZE_EVERY, FREEZE_MAX

log = logging.getLogger(__name__)


class Ledger(Base):
    # ------------------------------------------------------------ check-ins and points

    async def get_checkin(self, guild_id: int, user_id: int, local_date: str) -> Checkin | None:
        row = await self.fetchone(
            f"SELECT {CHECKIN_COLS} FROM checkins WHERE guild_id = ? AND user_id = ? AND local_date = ?",
            (guild_id, user_id, local_date),
        )
        return row_as(Checkin, row)

    async def count_checkins(self, guild_id: int, user_id: int) -> int:
        row = await self.fetchone(
            "SELECT COUNT(*) FROM checkins WHERE guild_id = ? AND user_id = ?", (guild_id, user_id)
        )
        return row[0]

    async def member_checkins(self, guild_id: int, user_id: int, since: str | None = None) -> list[Checkin]:
        rows = await self.fetchall(
            f"SELECT {CHECKIN_COLS} FROM checkins WHERE guild_id = ? AND user_id = ? AND local_date >= ? "
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
                    "INSERT INTO points (guild_id, user_id, kind, amount, ref, created_at) "
                    "VALUES (?, ?, 'checkin', 1, ?, ?) ON CONFLICT DO NOTHING",
                    (guild_id, user_id, local_date, ts),
                )
            else:
                await db.execute(
                    "UPDATE checkins SET status = ?, project_id = ?, note = ?, via = ?, updated_at = ?, "
                    "round_id = COALESCE(round_id, ?) WHERE guild_id = ? AND user_id = ? AND local_date = ?",
                    (status, project_id, note, via, ts, round_id, guild_id, user_id, local_date),
                )
            async with db.execute(
                f"SELECT {CHECKIN_COLS} FROM checkins WHERE guild_id = ? AND user_id = ? AND local_date = ?",
                (guild_id, user_id, local_date),
            ) as cur:
                row = await cur.fetchone()
        return Checkin(*row), created

    async def award(self, guild_id: int, user_id: int, kind: str, amount: int, ref: str, now: datetime) -> bool:
        """Append to the ledger once per (member, kind, ref). True when newly awarded."""
        changed = await self.execute(
            "INSERT INTO points (guild_id, user_id, kind, amount, ref, created_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
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

    # ------------------------------------------------------------ leaderboard, stats, seasons (rows: BoardScore, Season)


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
        return [BoardScore(*r) for r in rows]

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
                "INSERT INTO board_periods (guild_id, kind, starts_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING "
                "RETURNING id",
                (guild_id, kind, starts_at),
            ) as cur:
                made = await cur.fetchone()
            if made is None:  # another process made it meanwhile (the unique index of migration 012)
                async with db.execute(
                    "SELECT id FROM board_periods WHERE guild_id = ? AND kind = ? AND starts_at = ?",
                    (guild_id, kind, starts_at),
                ) as cur:
                    return (await cur.fetchone())[0]
            period_id = made[0]
            stale = "(SELECT id FROM board_periods WHERE guild_id = ? AND kind = ? AND id <> ?)"
            await db.execute(f"DELETE FROM board_totals WHERE guild_id = ? AND period_id IN {stale}",
                             (guild_id, guild_id, kind, period_id))
            await db.execute("DELETE FROM board_periods WHERE guild_id = ? AND kind = ? AND id <> ?",
                             (guild_id, kind, period_id))
            await db.execute(
                f"""INSERT INTO board_totals (guild_id, period_id, user_id, points, depth, reached_at)
                    SELECT guild_id, ?, user_id, SUM(CASE WHEN kind IN {BOARD_KINDS} THEN amount ELSE 0 END),
                           SUM(CASE WHEN kind IN ('reflection', 'exercise') THEN amount ELSE 0 END),
                           COALESCE(MAX(CASE WHEN kind IN {BOARD_KINDS} THEN created_at END), 0)
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
        held), and a miss uses one if there is one, else it is a hard break. So one query lists every miss with
        the freezes earned before it, the walk over a member's misses runs here (in SQL it was a recursive join
        that PostgreSQL re-read whole at every step), and a second query counts the answers after each member's
        last break. The open round is the latest posted round (`open_date` overrides it, for tests of the rule).
        Rounds never posted don't exist here, so they break nobody.
        """
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        misses = await self.fetchall(
            f"""WITH cand(uid) AS (VALUES {id_values(len(ids), first=3)}),
                open_round(d) AS (SELECT COALESCE(?2, (SELECT MAX(local_date) FROM rounds
                                                       WHERE guild_id = ?1 AND state = 'posted'), '')),
                opts(on_) AS (SELECT COALESCE((SELECT freezes FROM reward_settings WHERE guild_id = ?1), 1)),
                answered(uid, d) AS (
                    SELECT c.user_id, c.local_date FROM cand JOIN checkins c ON c.guild_id = ?1
                    AND c.user_id = cand.uid),
                miss0(uid, d) AS (
                    SELECT uid, r.local_date FROM cand, rounds r
                    WHERE r.guild_id = ?1 AND r.state = 'posted' AND r.local_date <> (SELECT d FROM open_round)
                    AND NOT EXISTS (SELECT 1 FROM answered c WHERE c.uid = cand.uid AND c.d = r.local_date)
                    AND NOT EXISTS (SELECT 1 FROM away_periods a WHERE a.guild_id = ?1 AND a.user_id = cand.uid
                                    AND r.local_date BETWEEN a.start_date AND a.end_date)),
                miss1(uid, d, prev) AS (
                    SELECT uid, d, COALESCE(LAG(d) OVER (PARTITION BY uid ORDER BY d), '') FROM miss0)
               SELECT uid, d, (SELECT on_ FROM opts) * (
                   SELECT COUNT(*) FROM checkins c WHERE c.guild_id = ?1 AND c.user_id = miss1.uid
                   AND c.local_date > miss1.prev AND c.local_date < miss1.d) / {FREEZE_EVERY}
               FROM miss1 ORDER BY uid, d""",
            (guild_id, open_date, *ids),
        )
        held: dict[int, int] = {}
        last_break = dict.fromkeys(ids, "")
        for uid, day, earned in misses:
            freezes = held.get(uid, 0) + earned
            if freezes > 0:
                held[uid] = min(freezes, FREEZE_MAX) - 1
            else:
                held[uid] = 0
                last_break[uid] = day
        values = ", ".join(f"(CAST(?{2 * i + 2} AS BIGINT), CAST(?{2 * i + 3} AS TEXT))" for i in range(len(ids)))
        rows = await self.fetchall(
            f"""WITH brk(uid, b) AS (VALUES {values})
               SELECT uid, (SELECT COUNT(*) FROM checkins c WHERE c.guild_id = ?1 AND c.user_id = brk.uid
                            AND c.local_date > brk.b) FROM brk""",
            (guild_id, *(v for uid in ids for v in (uid, last_break[uid]))),
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

    # ------------------------------------------------------------ board: seasons

    async def current_season(self, guild_id: int, now: datetime) -> Season | None:
        row = await self.fetchone(
            "SELECT id, guild_id, name, started_at FROM seasons WHERE guild_id = ? AND started_at <= ? "
            "ORDER BY started_at DESC, id DESC LIMIT 1",
            (guild_id, to_unix(now)),
        )
        return row_as(Season, row)

    async def get_season(self, season_id: int) -> Season | None:
        row = await self.fetchone("SELECT id, guild_id, name, started_at FROM seasons WHERE id = ?", (season_id,))
        return row_as(Season, row)

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
                season = Season(*(await cur.fetchone()))
            await db.execute("INSERT INTO board_periods (guild_id, kind, starts_at, season_id) VALUES (?, 'season', ?, ?)",
                             (guild_id, ts, season.id))
            async with db.execute("SELECT 1 FROM points WHERE guild_id = ? AND created_at >= ? LIMIT 1",
                                  (guild_id, ts)) as cur:
                moved = await cur.fetchone() is not None
        if moved:
            await self.rebuild_board_totals(guild_id)
        return season

    # ------------------------------------------------------------ board: weekly recap

    async def get_recap(self, recap_id: int) -> Recap | None:
        row = await self.fetchone("SELECT id, guild_id, week, state, channel_id, message_id, round_id FROM recaps "
                                  "WHERE id = ?", (recap_id,))
        return row_as(Recap, row)

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
