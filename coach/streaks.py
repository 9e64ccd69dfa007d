"""Streaks, milestones and check-in rate: pure functions over a member's rounds.

This module holds THE streak rule; `/stats`, `/leaderboard` (its SQL in ``Storage.current_streaks`` must
agree, and a property test proves it does), milestone replies and the weekly recap all use it.

The streak days (``member_days``) are the rounds actually posted in the server, plus any day the member
has an answer for (older data only: every answer is dated by the server's round it answers, whichever way it
arrives). A scheduled day on which no round was posted (bot down, schedule changed) is simply absent and
breaks nobody. The latest posted round is the open one.

Rules (see PRODUCT.md, Concepts: Streak):

* a round answered with any status (``skipped`` included: showing up honestly
  counts) adds one to the streak, even on a day marked away;
* an unanswered round on an away day neither counts nor breaks;
* the latest round, still open and unanswered, neither counts nor breaks (yet);
* any other unanswered round resets the current streak to 0, unless a streak freeze covers it.

Streak freezes (on unless the server switched them off with /coach freezes): every ``FREEZE_EVERY`` (7)
answered rounds in a row earn one, and a member holds at most ``FREEZE_MAX`` (2). A missed round uses one
automatically: the streak neither grows nor breaks, and the count of answers in a row starts again. Away days and
the open round leave the count alone. The setting applies to the whole history (switching it recounts).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

__all__ = [
    "MILESTONES",
    "Outcome",
    "RoundDay",
    "Status",
    "StreakDay",
    "StreakResult",
    "checkin_rate",
    "compute_streak",
    "member_days",
    "member_streak",
    "milestone_reached",
    "nonfinished_run",
]

Status = Literal["finished", "unfinished", "skipped"]
Outcome = Literal["counted", "away", "open", "missed", "frozen"]

STATUSES: tuple[str, ...] = ("finished", "unfinished", "skipped")
MILESTONES: tuple[int, ...] = (3, 7, 30, 100)
FREEZE_EVERY = 7   # answered rounds in a row that earn a streak freeze
FREEZE_MAX = 2     # freezes a member can hold


@dataclass(frozen=True)
class RoundDay:
    """One posted round, seen from one member."""

    local_date: date
    status: Status | None  # the member's answer to that round, None if not answered
    away: bool = False  # the member was away (/me away) that day
    open: bool = False  # the round is still open (latest round, answers still possible)


@dataclass(frozen=True)
class StreakDay:
    """How one round affected the streak, for "how was each streak day earned"."""

    local_date: date
    outcome: Outcome
    streak_after: int
    explanation: str


@dataclass(frozen=True)
class StreakResult:
    current: int
    best: int
    days: tuple[StreakDay, ...]
    freezes: int = 0  # streak freezes held after the latest round

    def frozen_after(self, day: date | None) -> list[date]:
        """Rounds a freeze covered after `day` (all of them for None), oldest first."""
        return [d.local_date for d in self.days if d.outcome == "frozen" and (day is None or d.local_date > day)]


def _check_status(status: object) -> None:
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown check-in status: {status!r}")


def _check_order(rounds: Sequence[RoundDay]) -> None:
    for prev, nxt in zip(rounds, rounds[1:], strict=False):
        if nxt.local_date <= prev.local_date:
            raise ValueError(
                f"rounds must be in strictly increasing date order: {prev.local_date} then {nxt.local_date}"
            )


def compute_streak(rounds: Sequence[RoundDay], freezes: bool = True) -> StreakResult:
    """Walk the rounds oldest first and explain what each did to the streak (with streak freezes unless
    `freezes` is False).

    Raises ValueError for an unknown status or rounds not in strictly increasing date order.
    """
    _check_order(rounds)
    current = best = held = run = 0
    days: list[StreakDay] = []
    for r in rounds:
        _check_status(r.status)
        if r.status is not None:
            current += 1
            run += 1
            outcome: Outcome = "counted"
            if r.away:
                explanation = f"answered while away: {r.status} (+1)"
            else:
                explanation = f"answered: {r.status} (+1)"
            if run == FREEZE_EVERY:
                run = 0
                if freezes and held < FREEZE_MAX:
                    held += 1
                    explanation += f", {FREEZE_EVERY} in a row: a streak freeze earned ({held} held)"
        elif r.away:
            outcome = "away"
            explanation = "away: neither counts nor breaks"
        elif r.open:
            outcome = "open"
            explanation = "still open: answer before the next round"
        elif freezes and held:
            held -= 1
            run = 0
            outcome = "frozen"
            explanation = f"missed: a streak freeze kept the streak ({held} left)"
        else:
            outcome = "missed"
            if current:
                explanation = f"missed: streak reset (was {current})"
            else:
                explanation = "missed: streak reset"
            current = run = 0
        best = max(best, current)
        days.append(StreakDay(r.local_date, outcome, current, explanation))
    return StreakResult(current=current, best=best, days=tuple(days), freezes=held)


def member_days(posted: Iterable[str], answers: Mapping[str, str],
                away: Sequence[tuple[str, str]]) -> list[RoundDay]:
    """A member's streak days in one server, oldest first: the posted rounds (ISO dates) plus the days they
    have an answer for, each marked away when inside an away period (inclusive ISO dates). The latest posted
    round is the open one: unanswered, it neither counts nor breaks yet."""
    posted = set(posted)
    open_date = max(posted) if posted else None
    return [RoundDay(date.fromisoformat(d), answers.get(d), away=any(a <= d <= b for a, b in away),  # type: ignore[arg-type]
                     open=d == open_date)
            for d in sorted(posted | set(answers))]


def member_streak(posted: Iterable[str], answers: Mapping[str, str],
                  away: Sequence[tuple[str, str]], freezes: bool = True) -> StreakResult:
    """The reference: a member's current and best streak from the server's posted rounds, their answers by
    date and their away periods, with streak freezes unless the server switched them off."""
    return compute_streak(member_days(posted, answers, away), freezes)


def nonfinished_run(statuses_newest_first: Sequence[Status | None]) -> int:
    """How many consecutive most-recent *answered* rounds were not ``finished``.

    Unanswered rounds (None) are skipped over: they neither extend nor end the run.
    The "valley of despair" reply triggers when this reaches 3.
    """
    run = 0
    for status in statuses_newest_first:
        _check_status(status)
        if status is None:
            continue
        if status == "finished":
            break
        run += 1
    return run


def milestone_reached(previous: int, current: int) -> int | None:
    """The milestone crossed going from ``previous`` to ``current``, else None.

    If several are crossed at once (e.g. a recomputation after an edit), the highest is returned.
    Going down or staying level never reaches a milestone.
    """
    reached = [m for m in MILESTONES if previous < m <= current]
    return reached[-1] if reached else None


def checkin_rate(rounds: Sequence[RoundDay], last: int = 30) -> float:
    """Share (0..1) of the last ``last`` eligible rounds that were answered.

    Eligible: every answered round, plus unanswered rounds that were closed and not away.
    So an unanswered away day and the still-open unanswered round are left out. 0.0 if none.
    """
    if last < 1:
        raise ValueError("last must be at least 1")
    eligible: list[bool] = []
    for r in rounds:
        _check_status(r.status)
        answered = r.status is not None
        if answered or not (r.away or r.open):
            eligible.append(answered)
    window = eligible[-last:]
    if not window:
        return 0.0
    return sum(window) / len(window)
