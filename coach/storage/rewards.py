"""Corrections, streak freezes and role rewards."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta

from coach.board import local_midnight
from coach.clock import to_unix
from coach.outbox import Job
from coach.storage.base import BOARD_KINDS, DEPTH_KINDS, Base, Tx, id_values
from coach.storage.rows import Correction, RoleChange, RoleReward

log = logging.getLogger(__name__)


class Rewards(Base):
    # ------------------------------------------------------------ rewards and corrections

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
        return Correction(*row)

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
        return Correction(*row)

    async def corrections_of(self, guild_id: int, user_id: int | None = None, after_id: int = 0,
                             limit: int = 1000) -> list[Correction]:
        """A server's corrections (or one member's), oldest first, after `after_id`."""
        rows = await self.fetchall(
            f"SELECT {self._CORRECTION_COLS} FROM corrections WHERE guild_id = ? AND id > ? "
            "AND (CAST(?3 AS BIGINT) IS NULL OR user_id = ?3) ORDER BY id LIMIT ?4",
            (guild_id, after_id, user_id, limit),
        )
        return [Correction(*r) for r in rows]

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
        return RoleReward(*row) if row else None

    async def rewards_of(self, guild_id: int) -> list[RoleReward]:
        rows = await self.fetchall(f"SELECT {self._REWARD_COLS} FROM role_rewards WHERE guild_id = ? "
                                   "ORDER BY kind = 'weekly', kind, threshold, id", (guild_id,))
        return [RoleReward(*r) for r in rows]

    async def remove_reward(self, guild_id: int, reward_id: int) -> RoleReward | None:
        """Stop a reward: nobody gets its role from now on (members who have it keep it)."""
        async with self.transaction() as db:
            async with db.execute(f"DELETE FROM role_rewards WHERE guild_id = ? AND id = ? "
                                  f"RETURNING {self._REWARD_COLS}", (guild_id, reward_id)) as cur:
                row = await cur.fetchone()
            await db.execute("DELETE FROM role_holders WHERE guild_id = ? AND reward_id = ?", (guild_id, reward_id))
        return RoleReward(*row) if row else None

    async def mark_role_dirty(self, guild_id: int, user_id: int) -> None:
        """Look at this member's rewards again at the next sweep (e.g. after /coach undo)."""
        await self.execute(
            "INSERT INTO role_dirty (guild_id, user_id, seq) SELECT ?, ?, 0 WHERE EXISTS "
            "(SELECT 1 FROM role_rewards WHERE guild_id = ?1 AND kind != 'weekly') "
            "ON CONFLICT (guild_id, user_id) DO UPDATE SET seq = role_dirty.seq + 1", (guild_id, user_id))

    async def role_dirty(self, limit: int) -> list[tuple[int, int, int]]:
        """Members to look at: (guild_id, user_id, seq), a server's together."""
        rows = await self.fetchall(
            f"SELECT guild_id, user_id, seq FROM role_dirty WHERE 1 = 1{self.mine()} ORDER BY guild_id LIMIT ?",
            (limit,))
        return [(r[0], r[1], r[2]) for r in rows]

    async def streak_checks_due(self, limit: int = 100) -> list[tuple[int, str]]:
        """Servers with streak roles that go when a streak breaks, whose latest posted round is newer than the
        one their holders were checked after: (guild_id, that round's date)."""
        rows = await self.fetchall(
            f"""SELECT g.guild_id, g.latest FROM (
                   SELECT s.guild_id, (SELECT MAX(local_date) FROM rounds r WHERE r.guild_id = s.guild_id
                                       AND r.state = 'posted') AS latest
                   FROM (SELECT DISTINCT guild_id FROM role_rewards WHERE kind = 'streak' AND keep = 0
                         {self.mine()}) s) g
               LEFT JOIN role_streak_checks c ON c.guild_id = g.guild_id
               WHERE g.latest IS NOT NULL AND (c.round_date IS NULL OR g.latest > c.round_date)
               ORDER BY g.guild_id LIMIT ?""",
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
        values = id_values(len(ids))
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

    async def _queue_role_changes(self, db: Tx, guild_id: int, add: Iterable[tuple[int, int]],
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

    async def _queue_weekly_roles(self, db: Tx, job: Job, ts: int) -> int:
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
               WHERE p.guild_id = ? AND p.kind IN {BOARD_KINDS} AND p.created_at >= ? AND p.created_at < ?
               AND may_name_publicly(m.announce) = 1
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
        return RoleChange(*row) if row else None

    async def holds_reward(self, guild_id: int, reward_id: int, user_id: int) -> bool:
        return await self.fetchone("SELECT 1 FROM role_holders WHERE guild_id = ? AND reward_id = ? AND user_id = ?",
                                   (guild_id, reward_id, user_id)) is not None
