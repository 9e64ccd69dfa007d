"""Rounds: when a server's Accountability Check is due, and what to do about a due one."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from coach.clock import from_unix
from coach.schedule import next_occurrence, parse_time
from coach.storage import GuildSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DueDecision:
    guild: GuildSettings
    local_date: date
    scheduled_at: datetime
    next_due: datetime
    post: bool          # False: missed beyond the grace window, skipped and logged
    late: bool


def next_due_for(guild_time: str, timezone: str, days: int, after: datetime) -> datetime:
    return next_occurrence(after, parse_time(guild_time), ZoneInfo(timezone), days).due_utc


def decide(guild: GuildSettings, now: datetime, grace: timedelta) -> DueDecision:
    """What to do with a schedule whose next_due has passed."""
    assert guild.next_due is not None
    tz = ZoneInfo(guild.timezone)
    scheduled = from_unix(guild.next_due)
    local_date = scheduled.astimezone(tz).date()
    following = next_occurrence(now, parse_time(guild.time_local), tz, guild.days).due_utc
    overdue = now - scheduled
    post = overdue <= grace
    late = overdue > timedelta(minutes=2)
    return DueDecision(guild, local_date, scheduled, following, post, late and post)


def nonce_for(kind: str, row_id: int) -> str:
    """Deterministic message nonce (<= 25 chars) so a retried post is recognisable as the same post."""
    return f"bounce-{kind}-{row_id}"[:25]
