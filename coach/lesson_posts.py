"""Lesson posts and reflections: when a server's weekly lesson is due, and the rules of a reflection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from coach.clock import from_unix
from coach.errors import BadInput
from coach.journey import tell_unlocks
from coach.lessons import LessonLibrary
from coach.schedule import next_occurrence, parse_time
from coach.storage import Storage

DEFAULT_WEEKDAY = 0  # Monday
DEFAULT_TIME = "10:00"
REFLECTION_MAX = 1500
DEPTH_POINTS = 2
LATE_AFTER = timedelta(minutes=2)


def next_lesson_at(after: datetime, at: time, tz: ZoneInfo, weekday: int) -> datetime:
    """The first lesson time strictly after `after`: wall-clock `at` on `weekday` (Monday = 0) in `tz`."""
    if not 0 <= weekday <= 6:
        raise BadInput("Pick a weekday from the list, Monday to Sunday.")
    return next_occurrence(after, at, tz, 1 << weekday).due_utc


@dataclass(frozen=True)
class LessonDue:
    local_date: date
    scheduled_at: datetime
    next_due: datetime
    post: bool  # False: missed by more than the grace window, skipped and logged
    late: bool


def lesson_due(schedule: Storage.LessonSchedule, now: datetime, grace: timedelta) -> LessonDue:
    """What to do with a lesson schedule whose next_due has passed."""
    assert schedule.next_due is not None
    tz = ZoneInfo(schedule.timezone)
    scheduled = from_unix(schedule.next_due)
    following = next_lesson_at(now, parse_time(schedule.time_local), tz, schedule.weekday)
    overdue = now - scheduled
    post = overdue <= grace
    return LessonDue(scheduled.astimezone(tz).date(), scheduled, following, post, post and overdue > LATE_AFTER)


def clean_reflection(text: str | None) -> str:
    """What a member wrote, trimmed; BadInput when it is empty or too long (nothing is saved then)."""
    body = (text or "").strip()
    if not body:
        raise BadInput("Your reflection was empty, so nothing was saved. A sentence or two in your own words "
                       "is plenty; try again whenever you're ready.")
    if len(body) > REFLECTION_MAX:
        raise BadInput(f"That reflection is {len(body):,} characters; the limit is {REFLECTION_MAX:,}. "
                       "Nothing was saved. Trim it to the heart of it and send it again.")
    return body


@dataclass(frozen=True)
class Reflected:
    created: bool       # a first reflection on this lesson (False: an edit)
    awarded: bool       # the +2 depth points were earned now
    depth_points: int   # the member's depth points in this server, after this


async def reflect(storage: Storage, *, guild_id: int, user_id: int, display_name: str, lesson_id: str,
                  text: str | None, now: datetime, library: LessonLibrary | None = None) -> Reflected:
    """Save a member's private reflection; the first one on a lesson earns +2 depth points, edits nothing.

    The award is asked for every time and the ledger grants it once per (member, lesson), so a reflection
    saved just before a crash still earns its points with the next edit.
    """
    body = clean_reflection(text)
    await storage.touch_member(guild_id, user_id, display_name, now)
    created = await storage.save_reflection(guild_id, user_id, lesson_id, body, now)
    awarded = await storage.award(guild_id, user_id, "reflection", DEPTH_POINTS, lesson_id, now)
    depth = await storage.depth_points(guild_id, user_id)
    if library is not None:  # a track reached with these points is told once (coach/journey.py)
        await tell_unlocks(storage, library, guild_id, user_id, depth, now)
    return Reflected(created, awarded, depth)
