"""Schedules: parsing what admins type, and computing the next run in UTC.

A schedule is a local wall-clock time in an IANA zone on chosen weekdays. The wall-clock time holds
across daylight-saving changes: a time that does not exist that day runs at the first valid minute
after it, and a repeated hour runs once (the first occurrence).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from coach.errors import BadInput

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_LONG = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
EVERY_DAY = 0b1111111
WEEKDAYS = 0b0011111
WEEKENDS = 0b1100000
_TIME_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")
_DAY_ALIASES = {
    "monday": 0, "mon": 0, "mo": 0,
    "tuesday": 1, "tue": 1, "tues": 1, "tu": 1,
    "wednesday": 2, "wed": 2, "we": 2,
    "thursday": 3, "thu": 3, "thur": 3, "thurs": 3, "th": 3,
    "friday": 4, "fri": 4, "fr": 4,
    "saturday": 5, "sat": 5, "sa": 5,
    "sunday": 6, "sun": 6, "su": 6,
}  # fmt: skip


def parse_time(text: str) -> time:
    """`20:00` -> time(20, 0). Anything else is a BadInput with an example."""
    m = _TIME_RE.match(text or "")
    if m:
        hour, minute = int(m.group(1)), int(m.group(2))
        if hour < 24 and minute < 60:
            return time(hour, minute)
    shown = (text or "").strip()[:20] or "(empty)"
    raise BadInput(f"`{shown}` is not a time; use 24-hour `HH:MM`, e.g. `20:00`.")


def format_time(t: time) -> str:
    return f"{t.hour:02d}:{t.minute:02d}"


def parse_days(text: str | None) -> int:
    """Weekday bitmask (Monday = bit 0) from `every day`, `weekdays`, `weekends` or `mon,wed,fri`."""
    if text is None or not text.strip():
        return EVERY_DAY
    cleaned = text.strip().lower()
    if cleaned in {"every day", "everyday", "daily", "all", "every"}:
        return EVERY_DAY
    if cleaned in {"weekdays", "weekday", "mon-fri"}:
        return WEEKDAYS
    if cleaned in {"weekends", "weekend", "sat,sun"}:
        return WEEKENDS
    mask = 0
    for part in re.split(r"[\s,;/]+", cleaned):
        if not part:
            continue
        if part not in _DAY_ALIASES:
            shown = part[:20]
            raise BadInput(
                f"`{shown}` is not a day. Use `every day`, `weekdays`, `weekends` or a list like `mon,wed,fri`."
            )
        mask |= 1 << _DAY_ALIASES[part]
    if not mask:
        raise BadInput("Pick at least one day: `every day`, `weekdays`, `weekends` or a list like `mon,wed,fri`.")
    return mask


def format_days(mask: int) -> str:
    if mask == EVERY_DAY:
        return "every day"
    if mask == WEEKDAYS:
        return "weekdays"
    if mask == WEEKENDS:
        return "weekends"
    return ", ".join(WEEKDAY_LONG[i] for i in range(7) if mask & (1 << i))


@lru_cache(maxsize=1)
def all_timezones() -> tuple[str, ...]:
    return tuple(sorted(z for z in available_timezones() if "/" in z or z == "UTC"))


def parse_timezone(name: str) -> ZoneInfo:
    cleaned = (name or "").strip()
    try:
        if cleaned and cleaned in _tz_set():
            return ZoneInfo(cleaned)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    shown = cleaned[:40] or "(empty)"
    raise BadInput(
        f"`{shown}` is not a time zone I know. Pick one from the list as you type, "
        "e.g. `Europe/Berlin` or `America/New_York`."
    )


@lru_cache(maxsize=1)
def _tz_set() -> frozenset[str]:
    return frozenset(all_timezones())


def search_timezones(text: str, limit: int = 25) -> list[str]:
    """Autocomplete: names starting with the text first, then names containing it."""
    needle = (text or "").strip().lower().replace(" ", "_")
    zones = all_timezones()
    if not needle:
        popular = ["UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles",
                   "America/Chicago", "America/Sao_Paulo", "Asia/Tokyo", "Australia/Sydney", "Asia/Kolkata"]
        return popular[:limit]
    starts = [z for z in zones if z.lower().startswith(needle) or z.lower().split("/")[-1].startswith(needle)]
    contains = [z for z in zones if needle in z.lower() and z not in starts]
    return (starts + contains)[:limit]


@dataclass(frozen=True)
class Occurrence:
    due_utc: datetime
    local_date: date


def resolve_local(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `at` on `day` in `tz`.

    A wall time skipped by a DST jump moves to the first valid minute after it; a repeated wall time
    resolves to its first occurrence (fold=0), so it runs once.
    """
    local = datetime.combine(day, at, tzinfo=tz)
    utc = local.astimezone(UTC)
    back = utc.astimezone(tz)
    if back.replace(tzinfo=None) != local.replace(tzinfo=None):
        # Nonexistent: walk forward minute by minute until the wall clock exists (gaps are <= 2 h).
        probe = local.replace(tzinfo=None)
        for _ in range(180):
            probe += timedelta(minutes=1)
            candidate = probe.replace(tzinfo=tz)
            cu = candidate.astimezone(UTC)
            if cu.astimezone(tz).replace(tzinfo=None) == probe:
                return cu
    return utc


def next_occurrence(after: datetime, at: time, tz: ZoneInfo, days: int) -> Occurrence:
    """The first scheduled instant strictly after `after` (aware) on an allowed weekday."""
    if not days & EVERY_DAY:
        raise ValueError("empty weekday mask")
    start_day = after.astimezone(tz).date() - timedelta(days=1)
    for offset in range(0, 16):
        day = start_day + timedelta(days=offset)
        if not days & (1 << day.weekday()):
            continue
        due = resolve_local(day, at, tz)
        if due > after:
            return Occurrence(due, day)
    raise AssertionError("unreachable: a week always has an allowed day")
