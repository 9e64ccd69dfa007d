"""Rounds: when a server's Accountability Check is due, and taking due rounds into the outbox."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from coach.clock import from_unix, to_unix
from coach.outbox import Take, TakeReport, catch_up, take_in_chunks
from coach.schedule import next_occurrence, parse_time
from coach.storage import GuildSettings, Storage

log = logging.getLogger("bounce.rounds")
CHUNK = 25  # schedules per take transaction: short, so members' writes never wait long behind one


def next_due_for(guild_time: str, timezone: str, days: int, after: datetime) -> datetime:
    return next_occurrence(after, parse_time(guild_time), ZoneInfo(timezone), days).due_utc


def take_for(guild: GuildSettings, now: datetime, grace: timedelta) -> tuple[Take, int]:
    """The take of one due server schedule (raises when the schedule can't be computed), and how many
    occurrences it skips."""
    assert guild.next_due is not None
    tz, at = ZoneInfo(guild.timezone), parse_time(guild.time_local)
    plan = catch_up(from_unix(guild.next_due), now, grace,
                    lambda t: next_occurrence(t, at, tz, guild.days).due_utc)
    take = Take(guild_id=guild.guild_id, expected_due=guild.next_due, next_due=to_unix(plan.next_due))
    if plan.scheduled is not None:
        local_date = plan.scheduled.astimezone(tz).date()
        take = Take(guild_id=guild.guild_id, expected_due=guild.next_due, next_due=to_unix(plan.next_due),
                    local_date=local_date.isoformat(), scheduled_at=to_unix(plan.scheduled), late=plan.late,
                    expires_at=to_unix(plan.scheduled + grace), channel_id=guild.channel_id)
    if plan.missed:
        log.warning("guild %s: %d round(s) missed by more than the grace window, skipped (oldest %s)",
                    guild.guild_id, len(plan.missed), plan.missed[0].astimezone(tz).date())
    return take, len(plan.missed)


async def take_due(storage: Storage, now: datetime, grace: timedelta, limit: int = CHUNK) -> TakeReport:
    """Take every due server schedule into the outbox, a chunk per transaction."""
    async def broken(guild: GuildSettings, exc: Exception) -> None:
        log.error("guild %s: its schedule can't be computed (%s %s: %s); paused until /coach setup",
                  guild.guild_id, guild.time_local, guild.timezone, exc)
        await storage.break_schedule("round", guild.guild_id, None, "broken_schedule", now)

    return await take_in_chunks(storage, "round", now, limit, storage.due_guilds,
                                lambda guild: take_for(guild, now, grace), broken)


def manual_take(guild: GuildSettings, today: date, now: datetime, grace: timedelta) -> Take:
    """/coach post-now: today's round, due now (the schedule is not touched)."""
    return Take(guild_id=guild.guild_id, expected_due=0, next_due=0, local_date=today.isoformat(),
                scheduled_at=to_unix(now), expires_at=to_unix(now + grace), channel_id=guild.channel_id)


def nonce_for(kind: str, row_id: int) -> str:
    """Deterministic message nonce (<= 25 chars) so a retried post is recognisable as the same post."""
    return f"bounce-{kind}-{row_id}"[:25]
