"""DM check-ins: when a member's own DM is due, which DM round a reply is for, and recording the answer.

A member switches DMs on per server with their own wall-clock time, IANA zone and weekdays. Like the
channel round, the wall-clock time holds across daylight-saving changes. A DM round is one row per
(server, member, member-local date), for sending it exactly once; an answer to it is the member's check-in for
the server's open round, exactly as a channel answer is (one calendar: the server's; +1 point only when new).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from coach import checkins
from coach.checkins import (
    STATUS_LABELS,
    AnswerOutcome,
)
from coach.clock import from_unix, to_unix
from coach.errors import BadInput, Conflict, NotAllowed, NotFound
from coach.outbox import Take, TakeReport, catch_up, take_in_chunks
from coach.prompts import Prompts
from coach.schedule import format_days, next_occurrence, parse_days, parse_time, parse_timezone
from coach.storage import DMRound, DMSchedule, Round, Storage
from coach.text import ts
from coach.textparse import ParsedReply

log = logging.getLogger("bounce.dm")
DMSchedule = DMSchedule
DMRound = DMRound

PENDING_SECONDS = 15 * 60      # how long the note of an unclear reply waits for the member's button
MAX_PICK_SERVERS = 5           # "which server?" with unclear status: one row of three buttons per server
MAX_PICK_BUTTONS = 25          # "which server?" with a clear status: one button per server


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class DMSetting:
    time_local: str
    timezone: str
    days: int
    next_due: datetime


def parse_setting(time: str | None, timezone: str | None, days: str | None, now: datetime) -> DMSetting:
    """Validate `/me dm switch:on` input all at once, before anything is written."""
    missing = [name for name, value in (("time", time), ("timezone", timezone)) if not (value or "").strip()]
    if missing:
        raise BadInput(
            f"To switch DM check-ins on I need your {' and '.join(f'`{m}`' for m in missing)}: e.g. "
            "`/me dm switch:on time:20:00 timezone:Europe/Berlin` (days are optional, every day by default)."
        )
    at = parse_time(time or "")
    tz = parse_timezone(timezone or "")
    mask = parse_days(days)
    due = next_occurrence(now, at, tz, mask).due_utc
    return DMSetting(f"{at.hour:02d}:{at.minute:02d}", tz.key, mask, due)


def describe_schedule(time_local: str, timezone: str, days: int) -> str:
    return f"**{time_local}** ({timezone}), {format_days(days)}"


def check_switch(switch: str | None, time: str | None, timezone: str | None, days: str | None) -> str | None:
    """`/me dm`: 'on', 'off' or None (show the setting); options that don't fit the switch are refused."""
    chosen = (switch or "").strip().lower() or None
    given = bool(time or timezone or days)
    if chosen is None and given:
        raise BadInput("Add `switch:on` to set your DM time; without a switch I only show your setting.")
    if chosen == "off" and given:
        raise BadInput("`switch:off` takes no time, time zone or days. Run `/me dm switch:off` on its own.")
    if chosen not in (None, "on", "off"):
        raise BadInput("Use `switch:on` or `switch:off`.")
    return chosen


def setting_text(schedule: DMSchedule | None) -> str:
    """What `/me dm` shows: the member's setting in this server and the next DM."""
    if schedule is not None and schedule.enabled and schedule.next_due is not None:
        due = from_unix(schedule.next_due)
        return (f"DM check-ins are on here: {describe_schedule(schedule.time_local, schedule.timezone, schedule.days)}.\n"
                f"Next DM: {ts(due)} ({ts(due, 'R')}). `/me dm switch:off` stops them.")
    if schedule is not None and schedule.off_reason == "dms_closed":
        return ("DM check-ins are off here because Discord wouldn't let me DM you (your DMs are closed to me). "
                "Allow direct messages from this server's members, then `/me dm switch:on` starts them again.")
    return ("DM check-ins are off here. Switch them on with your own time: "
            "`/me dm switch:on time:20:00 timezone:Europe/Berlin days:weekdays`.")


def on_text(server: str, setting: DMSetting) -> str:
    due = setting.next_due
    return (f"DM check-ins are on for **{server}**: "
            f"{describe_schedule(setting.time_local, setting.timezone, setting.days)}.\n"
            f"First DM: {ts(due)} ({ts(due, 'R')}). Answer with the buttons or just reply in plain words, like "
            "\"finished the bassline\" or \"didn't get to it\".")


OFF_TEXT = ("Done: no more DM check-ins from this server. The check-in in the channel is still there for you, "
            "and `/me dm switch:on` brings the DMs back.")
ALREADY_OFF_TEXT = "DM check-ins were already off here. `/me dm switch:on` with a time and time zone starts them."
NO_CHECKIN_TEXT = ("This server hasn't set up its Accountability Check yet, so there's nothing to DM you. "
                   "An admin can start one with `/coach setup`.")
CLOSED_NOTICE = ("I couldn't DM you your check-in: Discord says your DMs are closed to me, so I switched DM "
                 "check-ins off. Allow direct messages from this server's members, then `/me dm switch:on` "
                 "turns them back on.")
NOT_SET_UP_TEXT = ("Thanks for the message! I only read replies to a DM check-in, and you don't get those yet. "
                   "Run `/me dm switch:on` in your server to get the check-in here at your own time.")
TROUBLE_TEXT = ("Something went wrong on my side and nothing was logged. Try the buttons on my last check-in, "
                "or `/checkin` in the server.")


def nothing_open_text(next_due: int, server: str) -> str:
    due = from_unix(next_due)
    return (f"Thanks! There's no check-in open right now, so nothing was logged. Your next one comes {ts(due)} "
            f"({ts(due, 'R')}) from **{server}**; reply to that one.")


def ask_status_text(server: str, local_date: str, guess: str | None) -> str:
    hint = f" It sounds like **{STATUS_LABELS[guess]}**, but I'd rather ask." if guess else ""
    return (f"I want to log this right for **{server}** ({day_label(local_date)}).{hint} How did it go? "
            "Tap one; your words go in as the note, and you can edit them.")


def which_server_text(status: str | None) -> str:
    if status is not None:
        return f"You have check-ins open for several servers. Which one is this **{STATUS_LABELS[status]}** for?"
    return "You have check-ins open for several servers. Which one is this for, and how did it go?"


def next_due_of(schedule: DMSchedule, after: datetime) -> datetime:
    return next_occurrence(after, parse_time(schedule.time_local), ZoneInfo(schedule.timezone),
                           schedule.days).due_utc


# ---------------------------------------------------------------- scheduling


def take_for(schedule: DMSchedule, now: datetime, grace: timedelta) -> tuple[Take, int]:
    """The take of one due DM schedule (raises when it can't be computed) and how many DMs it skips.

    After an outage of any length the latest DM still inside `grace` goes out once; the schedule moves to
    its first occurrence after `now`. What the DM delivers is decided when it is sent: the server's open
    round, unless the member already answered it.
    """
    assert schedule.next_due is not None
    tz, at = ZoneInfo(schedule.timezone), parse_time(schedule.time_local)

    def following(t: datetime) -> datetime:
        return next_occurrence(t, at, tz, schedule.days).due_utc

    plan = catch_up(from_unix(schedule.next_due), now, grace, following)
    take = Take(guild_id=schedule.guild_id, user_id=schedule.user_id, expected_due=schedule.next_due,
                next_due=to_unix(plan.next_due))
    if plan.scheduled is not None:
        take = Take(guild_id=schedule.guild_id, user_id=schedule.user_id, expected_due=schedule.next_due,
                    next_due=to_unix(plan.next_due), local_date=plan.scheduled.astimezone(tz).date().isoformat(),
                    scheduled_at=to_unix(plan.scheduled), late=plan.late,
                    expires_at=to_unix(plan.scheduled + grace), closes_at=to_unix(following(plan.scheduled)))
    if plan.missed:
        log.warning("DM check-in for user %s in guild %s: %d missed by more than the grace window, skipped",
                    schedule.user_id, schedule.guild_id, len(plan.missed))
    return take, len(plan.missed)


async def take_due(storage: Storage, now: datetime, grace: timedelta, limit: int = 50) -> TakeReport:
    """Take every due DM schedule into the outbox, a chunk per transaction."""
    async def broken(schedule: DMSchedule, exc: Exception) -> None:
        log.error("DM schedule of user %s in guild %s can't be computed (%s); switched off",
                  schedule.user_id, schedule.guild_id, exc)
        await storage.break_schedule("dm", schedule.guild_id, schedule.user_id, "broken_schedule", now)

    return await take_in_chunks(storage, "dm", now, limit, storage.due_dm_schedules,
                                lambda schedule: take_for(schedule, now, grace), broken)


def day_label(local_date: str) -> str:
    day = date.fromisoformat(local_date)
    return f"{day:%A} {day.day} {day:%B}"


def round_text(prompt: str, server: str, local_date: str, late: bool) -> str:
    """The DM itself: which server and day, the coach's question, how to answer."""
    lines = [f"**{server}** · {day_label(local_date)}", prompt]
    if late:
        lines.append("_This comes a little late: I was offline when it was due._")
    lines.append("-# Tap a button or just reply here. `/me dm switch:off` in the server stops these DMs.")
    return "\n".join(lines)


# ---------------------------------------------------------------- which round a reply is for


@dataclass(frozen=True)
class OpenRound:
    round: DMRound
    answered: bool


@dataclass(frozen=True)
class Target:
    """Where a plain-text reply goes: one round, or a question about which one (`choices`)."""

    round: DMRound | None
    choices: tuple[DMRound, ...] = ()


def pick_target(open_rounds: list[OpenRound]) -> Target:
    """The open DM round a reply is for.

    Unanswered rounds come first: exactly one is the answer; several are a question. When every open
    round is already answered, a reply edits the only one, or asks which when there are several.
    """
    if not open_rounds:
        return Target(None)
    unanswered = [o.round for o in open_rounds if not o.answered]
    pool = unanswered or [o.round for o in open_rounds]
    if len(pool) == 1:
        return Target(pool[0])
    return Target(None, tuple(sorted(pool, key=lambda r: (-r.scheduled_at, r.id))))


def confident_status(parsed: ParsedReply) -> str | None:
    return parsed.status if parsed.status is not None and parsed.confident else None


def check_open(dm_round: DMRound | None, user_id: int, now: datetime) -> DMRound:
    """The DM round a button or reply names, if it is this member's and still open."""
    if dm_round is None or dm_round.state not in ("sent",):
        raise NotFound("I can't find that check-in any more. Your next DM check-in will have fresh buttons.")
    if dm_round.user_id != user_id:
        raise NotAllowed("That check-in belongs to someone else.")
    if to_unix(now) >= dm_round.closes_at:
        raise Conflict("That check-in has closed: a newer one is due by now. Nothing was logged for the old "
                       "one; answer the latest DM instead.")
    return dm_round


# ---------------------------------------------------------------- answering


def server_round(dm_round: DMRound, latest: Round | None, server: str, *, names_round: bool) -> Round:
    """The server's round a DM answer counts for: the one open now (its latest posted round), whatever the
    member's own date. Like the channel: a DM's buttons name the round the DM was sent for (`names_round`), and
    if a newer round opened since, that one has closed; a plain-text reply, like `/checkin`, names no round and
    answers the open one."""
    if latest is None:
        raise NotFound(no_round_text(server))
    stale = (latest.id != dm_round.round_id if dm_round.round_id is not None else  # the round it delivered
             dm_round.sent_at is not None and latest.posted_at is not None and latest.posted_at > dm_round.sent_at)
    if names_round and stale:
        raise Conflict("That check-in has closed: a newer one is open now. Nothing was logged for the old one; "
                       "answer the latest round instead (the buttons in the server, or `/checkin`).")
    return latest


def no_round_text(server: str) -> str:
    return (f"Thanks for answering! **{server}** has no check-in open right now, so nothing was logged. "
            "Your next DM comes once its next round is up; answer that one.")


async def answer(
    storage: Storage, prompts: Prompts, rng: random.Random, *, dm_round: DMRound, member_name: str,
    server_name: str, status: str, project_name: str | None, note: str | None, via: str, now: datetime,
    names_round: bool = True,
) -> AnswerOutcome:
    """Record (or edit) the member's answer to the server's open round, and choose the reply.

    One calendar: a DM answer is dated by the server's round it answers (its latest posted round), exactly as
    the channel buttons and `/checkin` are, so it is the same checkins row, +1 point only when new, and the
    same streak. Nothing is logged when the server has no open round, or when the answer names the DM's round
    (its buttons: `names_round`) and a newer one opened after the DM was sent.
    """
    status, note = checkins.validate_answer(status, note)
    round_ = server_round(dm_round, await storage.latest_round(dm_round.guild_id), server_name,
                          names_round=names_round)
    return await checkins.record(
        storage, prompts, rng, guild_id=round_.guild_id, user_id=dm_round.user_id, local_date=round_.local_date,
        round_id=round_.id, member_name=member_name, server_name=server_name, status=status,
        project_name=project_name, note=note, via=via, now=now, name_from_server=False,
    )


def logged_line(outcome: AnswerOutcome, server: str) -> str:
    what = checkins.describe(outcome.checkin, outcome.project)
    tail = " (+1 point)" if outcome.created else " Your earlier answer was updated; no extra points."
    return f"Logged {what} for **{server}**, {day_label(outcome.checkin.local_date)}.{tail}"


def status_label(status: str) -> str:
    return STATUS_LABELS[status]
