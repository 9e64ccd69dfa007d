"""Admin corrections, streak freezes and role rewards: the rules, with no discord import.

Corrections (/coach adjust, /coach undo) are recorded in the points ledger and in `corrections`, so the board's
totals stay the ledger's sums and both exports show them.
"""

from __future__ import annotations

from datetime import date, timedelta

from coach.errors import BadInput

ADJUST_MAX = 100          # points one correction may add or take
REASON_MAX = 200          # characters


def check_adjustment(points: int, reason: str, total: int) -> tuple[int, str]:
    """The points and reason of /coach adjust, or a BadInput saying what to fix. `total` is the member's board
    points now: a correction never takes them below zero."""
    reason = " ".join((reason or "").split())
    if points == 0:
        raise BadInput("An adjustment of 0 points changes nothing. Give a number like `2` to add or `-1` to take "
                       "away.")
    if abs(points) > ADJUST_MAX:
        raise BadInput(f"{points:+,} points is more than one correction may change. Keep it between "
                       f"-{ADJUST_MAX} and {ADJUST_MAX}; nothing was changed.")
    if not reason:
        raise BadInput("Add a reason: the member sees it in their export, so say what the correction is for.")
    reason = check_reason(reason)
    if total + points < 0:
        raise BadInput(f"They have {total:,} point{'s' if total != 1 else ''} on the board, so taking "
                       f"{-points:,} would leave them below zero. Nothing was changed.")
    return points, reason


def parse_day(raw: str, today: date) -> date:
    """A check-in date for /coach undo: YYYY-MM-DD, `today` or `yesterday` (the server's local dates)."""
    text = (raw or "").strip().lower()
    if text == "today":
        return today
    if text == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"I couldn't read `{raw[:40]}` as a date. Use the check-in's date as YYYY-MM-DD, e.g. "
                       f"{today.isoformat()}, or `today` / `yesterday`.") from None


def check_reason(reason: str) -> str:
    reason = " ".join((reason or "").split())
    if len(reason) > REASON_MAX:
        raise BadInput(f"The reason is {len(reason):,} characters; keep it to {REASON_MAX} or fewer. "
                       "Nothing was changed.")
    return reason
