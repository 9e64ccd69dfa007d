"""The outbox: one exactly-once scheme for everything Bounce posts on a schedule.

Taking due work advances the schedule and writes the kind's unique row (one round per server and local date,
one DM round per member, server and date, ...) together with an outbox row, in one transaction. A sender
leases outbox rows, posts, and records the message and the outcome in one transaction. A lease that runs
out (the process died) is taken over by any process. A retry older than Discord's nonce window first looks
for the message the first attempt may have posted. A row that cannot be decided is marked failed with its
reason and never blocks the rows behind it.

This module is the domain half (no discord import): rows, outcomes, catch-up and backoff rules.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

S = TypeVar("S")
KINDS = ("round", "dm", "lesson", "recap", "nudge", "role")
NONCE_WINDOW = timedelta(minutes=2)   # Discord honours a message nonce for "a few minutes": stay well inside
LATE_AFTER = timedelta(minutes=2)     # posted later than this after its time: marked late
LOOKBACK = timedelta(days=9)          # catch-up looks at most this far back for the latest occurrence
BACKOFF_FIRST = 5                     # seconds before the first retry after a transient failure
BACKOFF_MAX = 300


@dataclass(frozen=True, slots=True)
class Job:
    """One leased outbox row."""

    id: int
    kind: str
    ref_id: int
    guild_id: int
    due_at: int
    expires_at: int
    attempts: int
    first_try_at: int | None
    lease_until: int
    error: str | None = None   # why the last attempt didn't post (a retry's reason)


@dataclass(frozen=True, slots=True)
class Sent:
    message_id: int
    channel_id: int | None = None


class Outcome(Exception):
    """How a delivery ended when it did not post: raised by a kind's deliver()."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Skip(Outcome):
    """Nothing to post any more (answered, switched off, an empty week): done, no retry."""


class Retry(Outcome):
    """Transient (5xx, timeout, network, server unavailable): try again with backoff within the grace window."""


class Fail(Outcome):
    """Permanent (403, 404, a missing lesson, a broken row): marked failed with the reason, never retried."""


def backoff(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s ... at most 5 minutes."""
    return timedelta(seconds=min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MAX))


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What to do with a schedule whose stored next run has passed."""

    scheduled: datetime | None   # the occurrence to post now (the latest one still inside the grace window)
    late: bool
    missed: tuple[datetime, ...]  # older occurrences (or the latest, beyond grace): skipped and logged
    next_due: datetime           # the first occurrence after now


def catch_up(stored_due: datetime, now: datetime, grace: timedelta,
             following: Callable[[datetime], datetime]) -> CatchUp:
    """After an outage of any length, the latest occurrence that is still inside `grace` posts once.

    `following(t)` is the schedule's first occurrence strictly after t. The stored next run and the occurrences
    after it up to now are walked (at most LOOKBACK back); all but the latest are missed, and the latest is
    missed too when it is older than `grace`.
    """
    seen: list[datetime] = [stored_due] if stored_due <= now else []
    cursor = max(stored_due, now - LOOKBACK)
    while True:
        nxt = following(cursor)
        if nxt > now:
            break
        seen.append(nxt)
        cursor = nxt
    next_due = following(now)
    if not seen:
        return CatchUp(None, False, (), next_due)
    latest = seen[-1]
    if now - latest <= grace:
        return CatchUp(latest, now - latest > LATE_AFTER, tuple(seen[:-1]), next_due)
    return CatchUp(None, False, tuple(seen), next_due)


# ---------------------------------------------------------------- crash points (tests only)

_CRASH_COUNTS: dict[str, int] = {}


def crashpoint(name: str) -> None:
    """Kill this process with SIGKILL at a named step, for the crash tests.

    `BOUNCE_CRASHPOINT=after_post:3` kills the process the 3rd time it reaches `after_post`. Unset (always,
    outside the crash tests) this is one dictionary lookup.
    """
    spec = os.environ.get("BOUNCE_CRASHPOINT")
    if not spec:
        return
    target, _, count = spec.partition(":")
    if target != name:
        return
    _CRASH_COUNTS[name] = _CRASH_COUNTS.get(name, 0) + 1
    if _CRASH_COUNTS[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class Take:
    """One due schedule taken: advance it from `expected_due` to `next_due` (compare-and-set) and, when
    `local_date` is set, insert the kind's unique row and its outbox row, all in one transaction."""

    guild_id: int
    expected_due: int
    next_due: int
    user_id: int | None = None        # DM schedules
    local_date: str | None = None     # None: only advance (nothing to post)
    scheduled_at: int = 0
    late: bool = False
    expires_at: int = 0
    channel_id: int | None = None     # rounds and lessons
    closes_at: int = 0                # DM rounds
    lesson_id: str | None = None      # lesson posts


@dataclass
class TakeReport:
    """What one pass over due schedules of a kind did (for the per-tick summary line)."""

    due: int = 0
    queued: int = 0
    late: int = 0
    missed: int = 0
    broken: int = 0

    def add(self, other: TakeReport) -> None:
        self.due += other.due
        self.queued += other.queued
        self.late += other.late
        self.missed += other.missed
        self.broken += other.broken


async def take_in_chunks(storage: Any, kind: str, now: datetime, limit: int,
                         fetch_due: Callable[[int, int], Awaitable[Sequence[S]]],
                         plan: Callable[[S], tuple[Take, int]],
                         broken: Callable[[S, Exception], Awaitable[None]]) -> TakeReport:
    """Take every due schedule of a kind into the outbox, `limit` per transaction (short, so members' writes
    never wait long behind one). `plan(schedule)` gives the take and how many occurrences it skips; a schedule
    it cannot compute goes to `broken` and blocks nobody."""
    report = TakeReport()
    while True:
        due = await fetch_due(int(now.timestamp()), limit)
        takes: list[Take] = []
        for schedule in due:
            try:
                take, missed = plan(schedule)
            except Exception as exc:  # e.g. a zone a tzdata update retired: this schedule stops, nobody else does
                await broken(schedule, exc)
                report.broken += 1
                continue
            report.missed += missed
            report.late += int(take.late)
            takes.append(take)
        report.due += len(due)
        report.queued += len(await storage.take_due(kind, takes, now))
        if len(due) < limit:
            return report
