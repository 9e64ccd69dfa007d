"""The outbox: taking due schedules, leases, retries, finishing jobs and their follow-ups."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime

from coach.board import recap_week
from coach.clock import to_unix
from coach.outbox import Job, Sent, Take, crashpoint
from coach.storage.base import Base, Tx

log = logging.getLogger(__name__)


class OutboxStore(Base):
    # ------------------------------------------------------------ outbox (coach/outbox.py)

    _JOB_COLS = "id, kind, ref_id, guild_id, due_at, expires_at, attempts, first_try_at, lease_until, error"

    async def take_due(self, kind: str, takes: Sequence[Take], now: datetime) -> list[int]:
        """Advance each due schedule (compare-and-set) and insert what it posts with its outbox row, all in
        one transaction: a crash before COMMIT leaves the schedules due; after it, the outbox has the rows.
        Returns the new outbox ids. A schedule another process advanced first is left alone."""
        created: list[int] = []
        ts = to_unix(now)
        async with self.transaction() as db:
            for take in takes:
                if not await self._advance(db, kind, take):
                    continue
                if take.local_date is None:
                    continue
                ref = await self._insert_ref(db, kind, take, ts)
                if ref is None:
                    continue
                created.append(await self._insert_job(db, kind, ref, take.guild_id, take.scheduled_at,
                                                      take.expires_at, ts))
            if created:
                crashpoint("in_take")  # the crash tests: killed before COMMIT, nothing of this was taken
        return created

    async def take_manual_round(self, take: Take, now: datetime) -> int | None:
        """/coach post-now: today's round and its outbox row (no schedule moves). None if today's exists."""
        ts = to_unix(now)
        async with self.transaction() as db:
            ref = await self._insert_ref(db, "round", take, ts, manual=True)
            if ref is None:
                return None
            return await self._insert_job(db, "round", ref, take.guild_id, take.scheduled_at, take.expires_at,
                                          ts)

    @staticmethod
    async def _advance(db: Tx, kind: str, take: Take) -> bool:
        if kind == "round":
            sql, args = ("UPDATE guild_settings SET next_due = ? WHERE guild_id = ? AND next_due = ?",
                         (take.next_due, take.guild_id, take.expected_due))
        elif kind == "lesson":
            sql, args = ("UPDATE lesson_settings SET next_due = ? WHERE guild_id = ? AND next_due = ?",
                         (take.next_due, take.guild_id, take.expected_due))
        elif kind == "dm":
            sql, args = ("UPDATE dm_schedules SET next_due = ? WHERE guild_id = ? AND user_id = ? AND next_due = ?",
                         (take.next_due, take.guild_id, take.user_id, take.expected_due))
        else:
            raise ValueError(kind)
        async with db.execute(sql, args) as cur:
            return cur.rowcount == 1

    @staticmethod
    async def _insert_ref(db: Tx, kind: str, take: Take, ts: int, *,
                          manual: bool = False) -> int | None:
        if kind == "round":
            sql = ("INSERT INTO rounds (guild_id, local_date, scheduled_at, channel_id, state, late, manual, "
                   "created_at) VALUES (?, ?, ?, ?, 'claimed', ?, ?, ?) "
                   "ON CONFLICT (guild_id, local_date) DO NOTHING RETURNING id")
            args: tuple = (take.guild_id, take.local_date, take.scheduled_at, take.channel_id, int(take.late),
                           int(manual), ts)
        elif kind == "lesson":
            sql = ("INSERT INTO lesson_posts (guild_id, local_date, lesson_id, scheduled_at, channel_id, late, "
                   "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, local_date) DO NOTHING "
                   "RETURNING id")
            args = (take.guild_id, take.local_date, take.lesson_id, take.scheduled_at, take.channel_id,
                    int(take.late), ts)
        elif kind == "dm":
            sql = ("INSERT INTO dm_rounds (guild_id, user_id, local_date, scheduled_at, closes_at, late, "
                   "created_at, claimed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (guild_id, user_id, local_date) DO NOTHING RETURNING id")
            args = (take.guild_id, take.user_id, take.local_date, take.scheduled_at, take.closes_at,
                    int(take.late), ts, ts)
        else:
            raise ValueError(kind)
        async with db.execute(sql, args) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    @staticmethod
    async def _insert_job(db: Tx, kind: str, ref_id: int, guild_id: int, due_at: int,
                          expires_at: int, ts: int) -> int:
        async with db.execute(
            "INSERT INTO outbox (kind, ref_id, guild_id, due_at, expires_at, next_try_at, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (kind, ref_id, guild_id, due_at, expires_at, due_at, ts),
        ) as cur:
            return (await cur.fetchone())[0]

    async def lease_jobs(self, kind: str, owner: str, now: datetime, lease: int, limit: int,
                         job_id: int | None = None) -> list[Job]:
        """Lease up to `limit` ready rows of a kind, oldest due first: pending, not waiting out a backoff,
        and not leased by anyone (or leased by someone whose lease ran out)."""
        ts = to_unix(now)
        # The picked ids are materialized once (PostgreSQL may otherwise run a LIMIT subquery of an UPDATE more
        # than once and lease more than `limit`); there, rows another process is leasing are skipped, not awaited.
        pick = ("SELECT id FROM outbox WHERE id = ?4 AND state = 'pending' AND lease_until < ?1 LIMIT ?5" if job_id else
                "SELECT id FROM outbox WHERE kind = ?4 AND state = 'pending' AND next_try_at <= ?1 "
                f"AND lease_until < ?1{self.mine()} ORDER BY due_at, id LIMIT ?5") + self.db.skip_locked
        rows = await self.fetchall(
            f"""WITH picked AS MATERIALIZED ({pick})
                UPDATE outbox SET lease_owner = ?2, lease_until = ?3, attempts = attempts + 1,
                    first_try_at = COALESCE(first_try_at, ?1)
                WHERE id IN (SELECT id FROM picked) AND state = 'pending' AND lease_until < ?1
                RETURNING {self._JOB_COLS}""",
            (ts, owner, ts + lease, job_id if job_id else kind, limit),
        )
        return sorted((Job(*r) for r in rows), key=lambda j: (j.due_at, j.id))

    async def release_leases(self, owner: str) -> int:
        """At start: rows this instance leased in its previous life (killed mid-post) are ready again."""
        return await self.execute(
            "UPDATE outbox SET lease_until = 0 WHERE lease_owner = ? AND state = 'pending' AND lease_until > 0",
            (owner,))

    async def retry_job(self, job: Job, next_try_at: int, reason: str) -> None:
        await self.execute(
            "UPDATE outbox SET next_try_at = ?, lease_until = 0, error = ? WHERE id = ? AND state = 'pending'",
            (next_try_at, reason, job.id))

    _FINISH_SQL: dict[tuple[str, str], tuple[str, ...]] = {
        ("round", "done"): (
            "UPDATE rounds SET state = 'posted', message_id = :message_id, posted_at = :now, error = NULL "
            "WHERE id = :ref",
            "UPDATE guild_settings SET last_error = NULL, last_error_at = NULL, error_told = 0 "
            "WHERE guild_id = :guild AND last_error IS NOT NULL",
        ),
        ("round", "failed"): (
            "UPDATE rounds SET state = CASE WHEN :reason = 'missed' THEN 'missed' ELSE 'failed' END, "
            "error = :reason WHERE id = :ref",
            "UPDATE guild_settings SET last_error = :reason, last_error_at = :now, error_told = 0 "
            "WHERE guild_id = :guild AND :reason != 'missed'",
        ),
        ("dm", "done"): (
            "UPDATE dm_rounds SET state = 'sent', channel_id = :channel_id, message_id = :message_id, "
            "sent_at = :now, error = NULL WHERE id = :ref",
        ),
        ("dm", "skipped"): (
            "UPDATE dm_rounds SET state = CASE WHEN :reason = 'answered' THEN 'answered' ELSE 'cancelled' END, "
            "error = :reason WHERE id = :ref",
        ),
        ("dm", "failed"): ("UPDATE dm_rounds SET state = 'failed', error = :reason WHERE id = :ref",),
        ("lesson", "done"): (
            "UPDATE lesson_posts SET state = 'posted', message_id = :message_id, posted_at = :now, error = NULL "
            "WHERE id = :ref",
            "UPDATE lesson_settings SET last_error = NULL, last_error_at = NULL, error_told = 0 "
            "WHERE guild_id = :guild AND last_error IS NOT NULL",
        ),
        ("lesson", "failed"): (
            "UPDATE lesson_posts SET state = 'failed', error = :reason WHERE id = :ref",
            "UPDATE lesson_settings SET last_error = :reason, last_error_at = :now, error_told = 0 "
            "WHERE guild_id = :guild AND :reason != 'missed'",
        ),
        ("recap", "done"): (
            "UPDATE recaps SET state = 'posted', channel_id = COALESCE(:channel_id, channel_id), "
            "message_id = :message_id, error = NULL WHERE id = :ref",
        ),
        ("recap", "skipped"): ("UPDATE recaps SET state = 'empty', error = :reason WHERE id = :ref",),
        ("recap", "failed"): ("UPDATE recaps SET state = 'failed', error = :reason WHERE id = :ref",),
        ("role", "done"): (
            "UPDATE role_changes SET state = 'done', error = NULL WHERE id = :ref",
            # The first change of a reward after its failure (permission removed, role moved) went through:
            # members who earned a role meanwhile are looked at again.
            "INSERT INTO role_dirty (guild_id, user_id, seq) SELECT DISTINCT guild_id, user_id, 0 FROM checkins "
            "WHERE guild_id = :guild AND EXISTS (SELECT 1 FROM role_rewards WHERE last_error IS NOT NULL "
            "AND id = (SELECT reward_id FROM role_changes WHERE id = :ref)) ON CONFLICT DO NOTHING",
            "UPDATE role_rewards SET last_error = NULL, last_error_at = NULL "
            "WHERE id = (SELECT reward_id FROM role_changes WHERE id = :ref) AND last_error IS NOT NULL",
        ),
        ("role", "skipped"): ("UPDATE role_changes SET state = 'skipped', error = :reason WHERE id = :ref",),
        ("role", "failed"): (
            "UPDATE role_changes SET state = 'failed', error = :reason WHERE id = :ref",
            # A role that could not be given is not held: the member gets it with a later change.
            "DELETE FROM role_holders WHERE (guild_id, reward_id, user_id) = "
            "(SELECT guild_id, reward_id, user_id FROM role_changes WHERE id = :ref AND action = 'add')",
            "UPDATE role_rewards SET last_error = :reason, last_error_at = :now "
            "WHERE id = (SELECT reward_id FROM role_changes WHERE id = :ref) "
            "AND :reason IN ('role_deleted', 'missing_permission', 'role_too_high')",
        ),
    }
    # A sent nudge that says nudges pause (the third ignored one) pauses them in the transaction that records it.
    _FINISH_SQL[("nudge", "done")] = (
        "UPDATE nudges SET state = 'sent', channel_id = :channel_id, message_id = :message_id, sent_at = :now, "
        "error = NULL WHERE id = :ref",
        "UPDATE nudge_settings SET enabled = 0, next_due = NULL, off_reason = 'ignored', off_at = :now, "
        "updated_at = :now WHERE enabled = 1 AND (guild_id, user_id) IN "
        "(SELECT guild_id, user_id FROM nudges WHERE id = :ref AND pause = 1)",
    )
    _FINISH_SQL[("nudge", "skipped")] = ("UPDATE nudges SET state = 'skipped', error = :reason WHERE id = :ref",)
    _FINISH_SQL[("nudge", "failed")] = ("UPDATE nudges SET state = 'failed', error = :reason WHERE id = :ref",)


    async def finish_job(self, job: Job, state: str, now: datetime, *, sent: Sent | None = None,
                         reason: str | None = None) -> int | None:
        """Record the outcome on the outbox row and on the kind's own row, in one transaction. Returns how many
        follow-up rows it queued (a round's weekly recap, a recap's weekly roles), or None when the row was
        finished already (another process took over and finished it)."""
        values = {"ref": job.ref_id, "guild": job.guild_id, "now": to_unix(now), "reason": reason,
                  "message_id": sent.message_id if sent else None, "channel_id": sent.channel_id if sent else None}
        async with self.transaction() as db:
            async with db.execute(
                "UPDATE outbox SET state = ?, error = ?, finished_at = ?, lease_until = 0 "
                "WHERE id = ? AND state = 'pending'",
                (state, reason, values["now"], job.id),
            ) as cur:
                if cur.rowcount != 1:
                    return None
            for sql in self._FINISH_SQL.get((job.kind, state), ()):
                await db.execute(sql, values)
            queued = 0
            if job.kind == "round" and state == "done":
                queued += await self._queue_recap(db, job, values["now"])
            if job.kind == "recap" and state == "done":
                queued += await self._queue_weekly_roles(db, job, values["now"])
        return queued

    async def _queue_recap(self, db: Tx, job: Job, ts: int) -> int:
        """With the first round posted in a week, the recap of the week before: queued in the transaction that
        records the round, so it is neither lost nor doubled, and always comes after the round."""
        async with db.execute("SELECT local_date, channel_id FROM rounds WHERE id = ?", (job.ref_id,)) as cur:
            local_date, channel_id = await cur.fetchone()
        week = recap_week(date.fromisoformat(local_date)).isoformat()
        async with db.execute(
            "INSERT INTO recaps (guild_id, week, state, channel_id, round_id, created_at) "
            "VALUES (?, ?, 'claimed', ?, ?, ?) ON CONFLICT (guild_id, week) DO NOTHING RETURNING id",
            (job.guild_id, week, channel_id, job.ref_id, ts),
        ) as cur:
            recap = await cur.fetchone()
        if recap is None:
            return 0
        await self._insert_job(db, "recap", recap[0], job.guild_id, ts, max(job.expires_at, ts + 3600), ts)
        return 1

    async def get_job(self, job_id: int) -> tuple[str, str | None] | None:
        """(state, error) of an outbox row."""
        row = await self.fetchone("SELECT state, error FROM outbox WHERE id = ?", (job_id,))
        return (row[0], row[1]) if row else None

    async def break_schedule(self, kind: str, guild_id: int, user_id: int | None, reason: str,
                             now: datetime) -> None:
        """A schedule that cannot be computed (e.g. a time zone a tzdata update removed): stop it, say why."""
        ts = to_unix(now)
        if kind == "round":
            await self.execute("UPDATE guild_settings SET next_due = NULL, paused = 1, last_error = ?, "
                               "last_error_at = ?, error_told = 0 WHERE guild_id = ?", (reason, ts, guild_id))
        elif kind == "lesson":
            await self.execute("UPDATE lesson_settings SET next_due = NULL, last_error = ?, last_error_at = ?, "
                               "error_told = 0 WHERE guild_id = ?", (reason, ts, guild_id))
        elif kind == "dm":
            await self.dm_off(guild_id, user_id or 0, reason, now)
