"""Answering a round: one answer per member per round, coaching reply chosen by situation."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime

from coach import metrics, projects, voice
from coach.errors import BadInput, Conflict
from coach.prompts import Prompts
from coach.storage import Checkin, Project, Round, Storage
from coach.streaks import (
    RoundDay,
    StreakResult,
    compute_streak,
    member_days,
)
from coach.text import NOTE_MAX, safe_name, safe_title

STATUSES = ("finished", "unfinished", "skipped")
STATUS_LABELS = {"finished": "Finished", "unfinished": "Unfinished", "skipped": "Skipped"}


def clean_note(raw: str | None) -> str | None:
    if raw is None:
        return None
    note = raw.strip()
    if not note:
        return None
    if len(note) > NOTE_MAX:
        raise BadInput(
            f"Your note is {len(note):,} characters; keep it to {NOTE_MAX:,} or fewer. "
            "The one thing that got in the way and your next step are plenty."
        )
    return note


def check_status(raw: str) -> str:
    status = (raw or "").strip().lower()
    if status not in STATUSES:
        raise BadInput("Answer with `finished`, `unfinished` or `skipped`.")
    return status


@dataclass(frozen=True)
class AnswerOutcome:
    checkin: Checkin
    created: bool
    project: Project | None
    project_created: bool
    streak: StreakResult
    situation: str
    reply: str
    freeze_note: str | None = None   # said once, in the first reply after rounds a streak freeze covered


@dataclass
class History:
    """What a member's streak is made of in one server, read once: the posted rounds' dates, their answers by
    date, and their away periods. The streak is `coach.streaks.member_streak`, the one rule."""

    dates: set[str]
    answers: dict[str, str]
    away: list[tuple[str, str]]
    freezes: bool = True   # the server's /coach freezes setting

    def days(self) -> list[RoundDay]:
        return member_days(self.dates, self.answers, self.away)

    def streak(self) -> StreakResult:
        return compute_streak(self.days(), self.freezes)

    def recent(self, count: int = 10) -> list[str]:
        """The member's latest answers, newest first."""
        return [self.answers[d] for d in sorted(self.answers, reverse=True)[:count]]


async def load_history(storage: Storage, guild_id: int, user_id: int) -> History:
    dates = set(await storage.posted_round_dates(guild_id))
    answers = {c.local_date: c.status for c in await storage.member_checkins(guild_id, user_id)}
    return History(dates, answers, await storage.away_periods(guild_id, user_id),
                   await storage.freezes_on(guild_id))


async def member_streak(storage: Storage, guild_id: int, user_id: int) -> StreakResult:
    """The member's streak over the rounds actually held in this server (what /stats shows)."""
    return (await load_history(storage, guild_id, user_id)).streak()


async def resolve_project(storage: Storage, guild_id: int, user_id: int, raw: str | None,
                          now: datetime) -> tuple[Project | None, bool]:
    """The member's active project by name; a new name starts a new project."""
    if raw is None or not raw.strip():
        return None, False
    return await storage.create_or_get_project(guild_id, user_id, projects.clean_name(raw), None, now)


def validate_answer(status: str, note: str | None) -> tuple[str, str | None]:
    return check_status(status), clean_note(note)


async def answer(
    storage: Storage, prompts: Prompts, rng: random.Random, *, round_: Round, latest: Round | None,
    guild_id: int, user_id: int, member_name: str, server_name: str, status: str,
    project_name: str | None, note: str | None, via: str, now: datetime,
) -> AnswerOutcome:
    """Record (or edit) the member's answer to `round_` and choose the coaching reply. `member_name` is the raw
    display name (stored as is, made safe for the reply)."""
    status, note = validate_answer(status, note)
    if latest is not None and latest.id != round_.id and latest.local_date > round_.local_date:
        raise Conflict(
            "That check-in has closed: a newer one is open now. Answer today's round instead; "
            "nothing was logged for the old one."
        )
    return await record(storage, prompts, rng, guild_id=guild_id, user_id=user_id, local_date=round_.local_date,
                        round_id=round_.id, member_name=member_name, server_name=server_name, status=status,
                        project_name=project_name, note=note, via=via, now=now)


async def record(
    storage: Storage, prompts: Prompts, rng: random.Random, *, guild_id: int, user_id: int, local_date: str,
    round_id: int | None, member_name: str, server_name: str, status: str, project_name: str | None,
    note: str | None, via: str, now: datetime, name_from_server: bool = True,
) -> AnswerOutcome:
    """Write a validated answer for (server, member, local date), from a channel round or a DM round alike, and
    choose the coaching reply. The member's history is read once; the streak before and after come from it.
    `name_from_server=False` (a DM answer) never replaces the name stored from the server (its nickname)."""
    if project_name and project_name.strip():
        projects.clean_name(project_name)  # validate before anything is written
    await storage.touch_member(guild_id, user_id, member_name, now, from_server=name_from_server)
    if not name_from_server:  # the coach addresses them by their name in that server, as everywhere else
        stored = await storage.get_member(guild_id, user_id)
        member_name = stored.display_name if stored and stored.display_name else member_name
    history = await load_history(storage, guild_id, user_id)
    before = history.streak()
    first_ever = not history.answers
    project, project_created = await resolve_project(storage, guild_id, user_id, project_name, now)
    checkin, created = await storage.upsert_checkin(
        guild_id=guild_id, user_id=user_id, local_date=local_date, round_id=round_id, status=status,
        project_id=project.id if project else None, note=note, via=via, now=now,
    )
    metrics.answered(via)
    previous = max((d for d in history.answers if d < local_date), default=None)
    history.answers[local_date] = checkin.status
    after = history.streak()
    situation = await voice.situation_for(
        storage, history, guild_id=guild_id, user_id=user_id, local_date=local_date, created=created,
        first_ever=first_ever, status=status, before=before.current, after=after.current,
    )
    reply = await voice.say(storage, prompts, rng, situation, guild_id=guild_id, user_id=user_id,
                            member=safe_name(member_name), project=safe_title(project.name) if project else "",
                            streak=after.current, server=server_name)
    covered = after.frozen_after(date.fromisoformat(previous) if previous else None) if created else []
    return AnswerOutcome(checkin, created, project, project_created, after, situation, reply,
                         freeze_note(covered, after) if covered else None)


def freeze_note(covered: list[date], streak: StreakResult) -> str:
    """The line that tells a member, once, that streak freezes kept their streak alive."""
    days = ", ".join(f"{d:%a} {d.day} {d:%b}" for d in covered)
    used = "a streak freeze" if len(covered) == 1 else f"{len(covered)} streak freezes"
    return (f"🧊 You missed {days}, so {used} kept your streak alive: it's **{streak.current}** now "
            f"({streak.freezes} freeze{'s' if streak.freezes != 1 else ''} left).")


def describe(checkin: Checkin, project: Project | None) -> str:
    """One line that repeats back what was logged."""
    parts = [f"**{STATUS_LABELS[checkin.status]}**"]
    if project:
        parts.append(f"on **{safe_title(project.name)}**")
    return " ".join(parts)
