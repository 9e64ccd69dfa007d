"""Lesson posts and reflections: when a server's weekly lesson is due, and the rules of a reflection."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from coach.clock import from_unix, to_unix
from coach.errors import BadInput
from coach.journey import tell_unlocks
from coach.lessons import LessonLibrary
from coach.outbox import Take, TakeReport, catch_up, take_in_chunks
from coach.schedule import next_occurrence, parse_time
from coach.storage import LessonSchedule, Storage

DEFAULT_WEEKDAY = 0  # Monday
DEFAULT_TIME = "10:00"
REFLECTION_MAX = 1500
DEPTH_POINTS = 2
log = logging.getLogger("bounce.lessons")


def next_lesson_at(after: datetime, at: time, tz: ZoneInfo, weekday: int) -> datetime:
    """The first lesson time strictly after `after`: wall-clock `at` on `weekday` (Monday = 0) in `tz`."""
    if not 0 <= weekday <= 6:
        raise BadInput("Pick a weekday from the list, Monday to Sunday.")
    return next_occurrence(after, at, tz, 1 << weekday).due_utc


def take_for(schedule: LessonSchedule, now: datetime, grace: timedelta, lesson_id: str) -> tuple[Take, int]:
    """The take of one due lesson schedule (raises when it can't be computed) and how many posts it skips:
    after an outage of any length, the latest lesson time still inside `grace` posts once."""
    assert schedule.next_due is not None
    tz, at = ZoneInfo(schedule.timezone), parse_time(schedule.time_local)
    plan = catch_up(from_unix(schedule.next_due), now, grace,
                    lambda t: next_lesson_at(t, at, tz, schedule.weekday))
    take = Take(guild_id=schedule.guild_id, expected_due=schedule.next_due, next_due=to_unix(plan.next_due))
    if plan.scheduled is not None:
        take = Take(guild_id=schedule.guild_id, expected_due=schedule.next_due, next_due=to_unix(plan.next_due),
                    local_date=plan.scheduled.astimezone(tz).date().isoformat(),
                    scheduled_at=to_unix(plan.scheduled), late=plan.late,
                    expires_at=to_unix(plan.scheduled + grace), channel_id=schedule.channel_id, lesson_id=lesson_id)
    if plan.missed:
        log.warning("guild %s: %d lesson post(s) missed by more than the grace window, skipped",
                    schedule.guild_id, len(plan.missed))
    return take, len(plan.missed)


async def take_due(storage: Storage, now: datetime, grace: timedelta,
                   next_lesson: Callable[[int], Awaitable[str]], limit: int = 25) -> TakeReport:
    """Take every due lesson schedule into the outbox; `next_lesson(guild_id)` names the lesson it posts."""
    lessons: dict[int, str | Exception] = {}

    async def due(until: int, count: int) -> list[LessonSchedule]:
        schedules = await storage.due_lesson_schedules(until, count)
        for schedule in schedules:  # read before the chunk's transaction
            try:
                lessons[schedule.guild_id] = await next_lesson(schedule.guild_id)
            except Exception as exc:  # noqa: BLE001 - that server's take fails alone
                lessons[schedule.guild_id] = exc
        return schedules

    def plan(schedule: LessonSchedule) -> tuple[Take, int]:
        lesson = lessons[schedule.guild_id]
        if isinstance(lesson, Exception):
            raise lesson
        return take_for(schedule, now, grace, lesson)

    async def broken(schedule: LessonSchedule, exc: Exception) -> None:
        log.error("guild %s: its lesson schedule can't be computed (%s); stopped until /coach lessons",
                  schedule.guild_id, exc)
        await storage.break_schedule("lesson", schedule.guild_id, None, "broken_schedule", now)

    return await take_in_chunks(storage, "lesson", now, limit, due, plan, broken)


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
