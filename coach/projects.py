"""Projects: a member's named piece of work, active -> finished or dropped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from coach.errors import BadInput, Conflict, NotFound
from coach.members import may_name_publicly
from coach.storage import Project, Storage
from coach.text import PROJECT_NAME_MAX, cut

FINISH_POINTS = 5


def clean_name(raw: str | None) -> str:
    name = " ".join((raw or "").split())
    if not name:
        raise BadInput("Give the project a name, e.g. `Night Drive EP` or `bassline study`.")
    if len(name) > PROJECT_NAME_MAX:
        raise BadInput(
            f"That name is {len(name):,} characters; keep project names to {PROJECT_NAME_MAX} or fewer."
        )
    return name


def parse_deadline(raw: str | None, today: date) -> str | None:
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BadInput(
            f"`{cut(text, 20)}` is not a date; use `YYYY-MM-DD`, e.g. `{today.replace(day=28).isoformat()}`."
        ) from None
    if len(text) != 10:
        raise BadInput(f"`{cut(text, 20)}` is not a date; use `YYYY-MM-DD`.")
    if day < today:
        raise BadInput(f"`{text}` is already behind us; pick today or a later date for the deadline.")
    return day.isoformat()


async def start(storage: Storage, guild_id: int, user_id: int, raw_name: str, deadline: str | None,
                now: datetime) -> Project:
    name = clean_name(raw_name)
    project, created = await storage.create_or_get_project(guild_id, user_id, name, deadline, now)
    if not created:
        raise Conflict(f"You already have an active project called **{cut(name, 80)}**. Pick another name, "
                       "or finish or drop that one first.")
    return project


async def own_active(storage: Storage, guild_id: int, user_id: int, raw_name: str) -> Project:
    name = clean_name(raw_name)
    project = await storage.find_active_project(guild_id, user_id, name)
    if project:
        return project
    others = [p for p in await storage.find_project_any_owner(guild_id, name) if p.user_id != user_id]
    if others:
        raise NotFound("That project belongs to another member; you can only finish or drop your own.")
    raise NotFound(f"You have no active project called **{cut(name, 80)}**. `/project list` shows yours.")


@dataclass(frozen=True)
class FinishOutcome:
    project: Project
    points: int
    announce: bool


async def finish(storage: Storage, guild_id: int, user_id: int, raw_name: str, now: datetime) -> FinishOutcome:
    project = await own_active(storage, guild_id, user_id, raw_name)
    closed, awarded = await storage.finish_project(project, FINISH_POINTS, now)
    if not closed:
        raise Conflict("That project was just closed elsewhere; `/project list` shows where it stands.")
    member = await storage.get_member(guild_id, user_id)
    announce = may_name_publicly(member.announce if member else None) and await storage.mark_announced(project.id)
    return FinishOutcome(project, FINISH_POINTS if awarded else 0, announce)


async def drop(storage: Storage, guild_id: int, user_id: int, raw_name: str, now: datetime) -> Project:
    project = await own_active(storage, guild_id, user_id, raw_name)
    await storage.close_project(project.id, "dropped", now)
    return project
