"""Opt-in nudges: one DM a few hours before the server's open round closes, for a member who hasn't answered it.

A round stays open until the server's next one opens (its next run), so a member's nudge is due `hours_before`
that. The schedule follows the server's next run by itself (a trigger, migration 010). Taking a due nudge
advances the member's schedule and writes one nudge row per (server, member, round) with its outbox row, in one
transaction; just before sending, the member's answer is looked for again. No nudge on away days, while the
server is paused, or between 22:00 and 08:00 in the member's zone (their DM check-in zone while DM check-ins are
on in that server, else the server's). After three nudges in a row that no answer followed, nudges pause, and
the third one says so and how to switch them back on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from coach.clock import from_unix, to_unix
from coach.errors import BadInput
from coach.outbox import LATE_AFTER, TakeReport
from coach.schedule import next_occurrence, parse_time
from coach.storage import Nudge, NudgeCheck, NudgeTake, Storage
from coach.text import ts

log = logging.getLogger("bounce.nudges")
NudgeCheck = NudgeCheck
Nudge = Nudge
NudgeTake = NudgeTake

HOURS_DEFAULT = 3
HOURS_MIN, HOURS_MAX = 1, 12       # at most half a day: with daily rounds, never before the round opens
QUIET_FROM, QUIET_UNTIL = 22, 8    # local hours without nudges: 22:00 to 08:00
PAUSE_AFTER = 3                    # nudges in a row that no answer followed: then they pause
LOOK_AHEAD = 21                    # rounds looked at for "the next nudge could come"


# ---------------------------------------------------------------- the rules


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ValueError, KeyError):  # a zone a tzdata update retired: UTC rather than no answer at all
        return ZoneInfo("UTC")


def member_zone(check: NudgeCheck) -> ZoneInfo:
    """The member's DM check-in zone while DM check-ins are on in that server, else the server's."""
    return zone(check.dm_tz or check.guild_tz)


def is_quiet(moment: datetime, tz: ZoneInfo) -> bool:
    hour = moment.astimezone(tz).hour
    return hour >= QUIET_FROM or hour < QUIET_UNTIL


def away_on(away: str | None, *days: date) -> bool:
    """Whether any of `days` lies in one of the away periods ('start end,start end', ISO dates)."""
    for period in (away or "").split(","):
        if not period.strip():
            continue
        start, end = period.split()
        if any(start <= day.isoformat() <= end for day in days):
            return True
    return False


def why_not(check: NudgeCheck, now: datetime, round_id: int | None = None) -> str | None:
    """Why no nudge goes out now (a reason), or None. `round_id`: the round a taken nudge is for."""
    if not check.enabled:
        return "switched_off"
    if check.paused is None:
        return "no_checkin"
    if check.removed:
        return "server_removed"
    if check.paused or check.closes_at is None:
        return "server_paused"
    if check.round_id is None:
        return "no_round"
    if (round_id is not None and check.round_id != round_id) or to_unix(now) >= check.closes_at:
        return "round_closed"
    if not closes_open_round(check):
        return "stays_open"
    if check.answered:
        return "answered"
    today = now.astimezone(zone(check.guild_tz)).date()
    if away_on(check.away, date.fromisoformat(check.round_date or today.isoformat()), today):
        return "away"
    if is_quiet(now, member_zone(check)):
        return "quiet_hours"
    return None


def closes_open_round(check: NudgeCheck) -> bool:
    """Whether the server's next run opens a new round. Not when it falls on the open round's own date (a round
    posted early with /coach post-now): the open round then stays open until the run after it."""
    if check.closes_at is None or check.round_date is None:
        return True
    return from_unix(check.closes_at).astimezone(zone(check.guild_tz)).date().isoformat() != check.round_date


def first_due(closes_at: int | None, hours: int, now: datetime) -> int | None:
    """A schedule just switched on: the open round's nudge, unless its time has passed (then the trigger sets
    the next one when the next round opens) or the server is paused."""
    if closes_at is None:
        return None
    due = closes_at - hours * 3600
    return due if due > to_unix(now) else None


def following_of(check: NudgeCheck) -> Callable[[datetime], datetime] | None:
    if check.time_local is None or check.days is None:
        return None
    at, tz, days = parse_time(check.time_local), zone(check.guild_tz), check.days
    return lambda t: next_occurrence(t, at, tz, days).due_utc


def next_nudge_at(check: NudgeCheck, now: datetime) -> datetime | None:
    """When the member's next nudge could come (if they haven't answered by then): the first round close whose
    nudge time isn't in quiet hours or on an away day. None while off or paused, or none in the next rounds."""
    following = following_of(check)
    if not check.enabled or check.paused or check.removed or check.closes_at is None or following is None:
        return None
    guild_tz, tz = zone(check.guild_tz), member_zone(check)
    close, opened = from_unix(check.closes_at), None
    for index in range(LOOK_AHEAD):
        if index > 0:
            opened, close = close, following(close)
        at = close - timedelta(hours=check.hours_before)
        if index == 0 and (check.next_due is None or check.answered or not closes_open_round(check)):
            continue  # this round's nudge was taken (or its time passed when switched on), it's answered, or
            # the round doesn't close at the next run
        at = max(at, now)
        round_day = (opened.astimezone(guild_tz).date() if opened is not None else
                     date.fromisoformat(check.round_date) if check.round_date else at.astimezone(guild_tz).date())
        if is_quiet(at, tz) or away_on(check.away, round_day, at.astimezone(guild_tz).date()):
            continue
        return at
    return None


def take_for(check: NudgeCheck, now: datetime) -> NudgeTake:
    """The take of one due nudge schedule: the nudge for the open round, or only the advance (no nudge)."""
    assert check.next_due is not None
    plain = NudgeTake(check.guild_id, check.user_id, check.next_due)
    if why_not(check, now) is not None:
        return plain
    assert check.round_id is not None and check.closes_at is not None
    return NudgeTake(check.guild_id, check.user_id, check.next_due, round_id=check.round_id,
                     scheduled_at=check.next_due, closes_at=check.closes_at, expires_at=check.closes_at)


async def take_due(storage: Storage, now: datetime, limit: int = 50) -> TakeReport:
    """Take every due nudge into the outbox, a chunk per transaction."""
    report = TakeReport()
    while True:
        due = await storage.due_nudges(to_unix(now), limit)
        takes = [take_for(check, now) for check in due]
        report.due += len(due)
        report.late += sum(1 for t in takes if t.round_id is not None and
                           now - from_unix(t.scheduled_at) > LATE_AFTER)
        report.queued += len(await storage.take_nudges(takes, now))
        if len(due) < limit:
            return report


def pauses_now(ignored_before: int) -> bool:
    """This nudge is the third in a row that no answer followed: it says nudges pause."""
    return ignored_before + 1 >= PAUSE_AFTER


# ---------------------------------------------------------------- /me nudge


def check_input(switch: str | None, hours: int | None) -> tuple[str | None, int]:
    """`/me nudge`: ('on', hours), ('off', _) or (None, _) to show the setting; bad input refused."""
    chosen = (switch or "").strip().lower() or None
    if chosen not in (None, "on", "off"):
        raise BadInput("Use `switch:on` or `switch:off`, or leave it empty to see your setting.")
    if chosen is None and hours is not None:
        raise BadInput("Add `switch:on` to set the hours, e.g. `/me nudge switch:on hours_before:3`; without a "
                       "switch I only show your setting. Nothing was changed.")
    if chosen == "off" and hours is not None:
        raise BadInput("`switch:off` takes no hours. Run `/me nudge switch:off` on its own. Nothing was changed.")
    value = HOURS_DEFAULT if hours is None else hours
    if chosen == "on" and not HOURS_MIN <= value <= HOURS_MAX:
        raise BadInput(f"`hours_before` is how many hours before the round closes, from {HOURS_MIN} to "
                       f"{HOURS_MAX}; you gave {value}. Try `/me nudge switch:on hours_before:3`. "
                       "Nothing was changed.")
    return chosen, value


def _hours(n: int) -> str:
    return f"{n} hour" if n == 1 else f"{n} hours"


def _when(check: NudgeCheck, now: datetime) -> str:
    at = next_nudge_at(check, now)
    if at is None:
        if check.paused or check.closes_at is None:
            return "The check-in here is paused, so no nudges until it resumes."
        return "No nudge could come in the next few rounds (quiet hours or away days)."
    return f"Next one could come {ts(at)} ({ts(at, 'R')}), only if you haven't checked in by then."


def setting_text(check: NudgeCheck | None, now: datetime) -> str:
    """What `/me nudge` shows: the setting here and when the next nudge could come."""
    if check is not None and check.enabled:
        tz = member_zone(check)
        return (f"Nudges are on here: if you haven't checked in **{_hours(check.hours_before)}** before the round "
                f"closes, I send you one short DM. {_when(check, now)}\n"
                f"Never between {QUIET_FROM}:00 and {QUIET_UNTIL:02d}:00 ({tz.key}), never on away days. "
                "`/me nudge switch:off` stops them.")
    if check is not None and check.off_reason == "ignored":
        return (f"Nudges are paused here: the last {PAUSE_AFTER} went by without a check-in, so I stopped asking. "
                "`/me nudge switch:on` brings them back whenever they help.")
    if check is not None and check.off_reason == "dms_closed":
        return ("Nudges are off here because Discord wouldn't let me DM you. Allow direct messages from this "
                "server's members, then `/me nudge switch:on` starts them again.")
    return (f"Nudges are off here. With `/me nudge switch:on` I DM you once, {_hours(HOURS_DEFAULT)} before the "
            f"round closes, if you haven't checked in yet (`hours_before` from {HOURS_MIN} to {HOURS_MAX}).")


def on_text(server: str, check: NudgeCheck, now: datetime) -> str:
    tz = member_zone(check)
    return (f"Nudges are on for **{server}**: one DM {_hours(check.hours_before)} before the round closes, only "
            f"if you haven't checked in. {_when(check, now)}\n"
            f"None between {QUIET_FROM}:00 and {QUIET_UNTIL:02d}:00 ({tz.key}) and none on away days; after "
            f"{PAUSE_AFTER} in a row without a check-in they pause by themselves.")


OFF_TEXT = "Done: no more nudges from this server. `/me nudge switch:on` brings them back."
ALREADY_OFF_TEXT = "Nudges were already off here. `/me nudge switch:on` starts them."
NO_CHECKIN_TEXT = ("This server hasn't set up its Accountability Check yet, so there's nothing to nudge you "
                   "about. An admin can start one with `/coach setup`.")
CLOSED_NOTICE = ("I couldn't send you a nudge: Discord says your DMs are closed to me, so I switched nudges off. "
                 "Allow direct messages from this server's members, then `/me nudge switch:on` turns them back on.")


def round_link(guild_id: int, channel_id: int | None, message_id: int | None) -> str | None:
    if channel_id is None or message_id is None:
        return None
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def dm_text(line: str, server: str, closes_at: datetime, link: str | None, pause_line: str | None) -> str:
    """The nudge DM: which server, the coach's line, when the round closes and where to answer."""
    where = f"[the round](<{link}>)" if link else "the check-in channel"
    lines = [f"**{server}** · {line}",
             f"The round closes {ts(closes_at, 't')} ({ts(closes_at, 'R')}): answer on {where} or with "
             "`/checkin` in the server."]
    if pause_line:
        lines.append(pause_line)
        lines.append("-# Nudges are paused now. `/me nudge switch:on` in the server switches them back on.")
    else:
        lines.append("-# `/me nudge switch:off` in the server stops these nudges.")
    return "\n".join(lines)

