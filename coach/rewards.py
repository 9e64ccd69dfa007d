"""Admin corrections, streak freezes and role rewards: the rules, with no discord import.

Corrections (/coach adjust, /coach undo) are recorded in the points ledger and in `corrections`, so the board's
totals stay the ledger's sums and both exports show them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

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


# ---------------------------------------------------------------- role rewards

REWARD_KINDS = ("streak", "checkins", "finished", "depth")
KIND_LABELS = {"streak": "day streak", "checkins": "check-ins", "finished": "finished projects",
               "depth": "depth points", "weekly": "top of last week's board"}
THRESHOLD_MAX = 10_000
WEEKLY_TOP_MAX = 25
ROLE_ERRORS = {
    "role_deleted": "its role was deleted. Remove this reward, or add it again with another role.",
    "missing_permission": "I'm missing **Manage Roles**. Give it back to my role, and the next change goes "
                          "through.",
    "role_too_high": "the role is now above my highest role. Drag my role above it in Server Settings → Roles.",
}


def check_threshold(kind: str, threshold: int) -> int:
    if kind not in REWARD_KINDS:
        raise BadInput("Pick a kind: `streak`, `checkins`, `finished` or `depth`.")
    if not 1 <= threshold <= THRESHOLD_MAX:
        raise BadInput(f"The threshold is how many {KIND_LABELS[kind]} earn the role: a number from 1 to "
                       f"{THRESHOLD_MAX:,}. Nothing was stored.")
    return threshold


def check_top(top: int) -> int:
    if not 1 <= top <= WEEKLY_TOP_MAX:
        raise BadInput(f"`top` is how many members get the weekly role: 1 to {WEEKLY_TOP_MAX}. Nothing was stored.")
    return top


def role_changes(rewards: Sequence[Any], figures: Mapping[int, Mapping[str, int]],
                 holders: set[tuple[int, int]], *, gains: bool = True) -> tuple[list[tuple[int, int]],
                                                                                list[tuple[int, int]]]:
    """Who gains and who loses which reward's role, as (reward_id, user_id) pairs: a member at or past a
    threshold gains it (unless `gains` is False: only losses are looked for); a streak role that goes when the
    streak breaks is lost below its threshold. Weekly rewards are decided with the recap, not here."""
    add: list[tuple[int, int]] = []
    remove: list[tuple[int, int]] = []
    for user_id, figure in sorted(figures.items()):
        for reward in rewards:
            if reward.kind not in REWARD_KINDS:
                continue
            held = (reward.id, user_id) in holders
            reached = figure.get(reward.kind, 0) >= reward.threshold
            if reached and not held and gains:
                add.append((reward.id, user_id))
            elif held and not reached and reward.kind == "streak" and not reward.keep:
                remove.append((reward.id, user_id))
    return add, remove


def describe_reward(kind: str, threshold: int, role_id: int, keep: bool) -> str:
    if kind == "weekly":
        return f"<@&{role_id}> for the top {threshold} of last week's board, passed on each week"
    text = f"<@&{role_id}> at {threshold:,} {KIND_LABELS[kind]}"
    if kind == "streak":
        text += " (kept when the streak breaks)" if keep else " (taken back when the streak breaks)"
    return text
