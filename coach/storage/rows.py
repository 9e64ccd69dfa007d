"""Every row class the storage hands out, in one place: small frozen dataclasses built from a query's columns in
order (`row_as(Cls, row)`), the same on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GuildSettings", "Round", "Project", "Checkin", "Member", "NudgeCheck", "Nudge", "NudgeTake", "LessonSchedule", "LessonPost", "Reflection", "DMSchedule", "DMRound", "BoardScore", "Season", "ExportRow", "FinishedProject", "Recap", "PublicFinished", "Correction", "RoleReward", "RoleChange"]


@dataclass(frozen=True, slots=True)
class GuildSettings:
    guild_id: int
    channel_id: int
    time_local: str
    timezone: str
    days: int
    role_id: int | None
    paused: bool
    next_due: int | None
    last_error: str | None
    last_error_at: int | None
    error_told: bool
    removed_at: int | None


@dataclass(frozen=True, slots=True)
class Round:
    id: int
    guild_id: int
    local_date: str
    scheduled_at: int
    channel_id: int
    message_id: int | None
    prompt_index: int | None
    state: str
    late: bool
    manual: bool
    error: str | None
    posted_at: int | None


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    guild_id: int
    user_id: int
    name: str
    status: str
    deadline: str | None
    created_at: int
    closed_at: int | None
    announced: bool


@dataclass(frozen=True, slots=True)
class Checkin:
    id: int
    guild_id: int
    user_id: int
    local_date: str
    round_id: int | None
    status: str
    project_id: int | None
    note: str | None
    via: str
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class Member:
    guild_id: int
    user_id: int
    display_name: str
    announce: bool
    notice: str | None



@dataclass(frozen=True, slots=True)
class NudgeCheck:
    """What decides one member's nudge in one server, read in one query."""

    guild_id: int
    user_id: int
    enabled: bool
    hours_before: int
    next_due: int | None
    off_reason: str | None
    on_at: int
    paused: bool | None          # None: the server has no check-in set up
    removed: bool
    closes_at: int | None        # the server's next run: when its open round closes
    guild_tz: str | None
    time_local: str | None
    days: int | None
    dm_tz: str | None            # the member's DM check-in zone, while DM check-ins are on here
    round_id: int | None         # the server's open round (its latest posted one)
    round_date: str | None
    round_channel: int | None
    round_message: int | None
    answered: bool
    away: str | None             # away periods not over before the round: 'start end,start end'


@dataclass(frozen=True, slots=True)
class Nudge:
    id: int
    guild_id: int
    user_id: int
    round_id: int
    scheduled_at: int
    closes_at: int
    state: str
    content: str | None
    pause: bool
    channel_id: int | None
    message_id: int | None
    error: str | None
    sent_at: int | None


@dataclass(frozen=True, slots=True)
class NudgeTake:
    """One due nudge schedule taken: advance it from `expected_due` (compare-and-set) and, when `round_id`
    is set, insert the nudge for that round and its outbox row."""

    guild_id: int
    user_id: int
    expected_due: int
    round_id: int | None = None   # None: only advance (no nudge this round)
    scheduled_at: int = 0
    closes_at: int = 0
    expires_at: int = 0


@dataclass(frozen=True, slots=True)
class LessonSchedule:
    guild_id: int
    channel_id: int
    weekday: int            # Monday = 0
    time_local: str
    timezone: str
    next_due: int | None
    last_error: str | None
    last_error_at: int | None
    error_told: bool


@dataclass(frozen=True, slots=True)
class LessonPost:
    id: int
    guild_id: int
    local_date: str
    lesson_id: str
    scheduled_at: int
    channel_id: int
    message_id: int | None
    state: str
    late: bool
    error: str | None
    posted_at: int | None


@dataclass(frozen=True, slots=True)
class Reflection:
    guild_id: int
    user_id: int
    lesson_id: str
    body: str
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class DMSchedule:
    guild_id: int
    user_id: int
    enabled: bool
    time_local: str
    timezone: str
    days: int
    next_due: int | None
    off_reason: str | None
    off_at: int | None
    member_checked_at: int | None = None   # when the member was last known to be in the server


@dataclass(frozen=True, slots=True)
class DMRound:
    id: int
    guild_id: int
    user_id: int
    local_date: str
    scheduled_at: int
    closes_at: int
    state: str
    late: bool
    channel_id: int | None
    message_id: int | None
    error: str | None
    sent_at: int | None
    round_id: int | None   # the server round this DM delivers (set when it is sent)


@dataclass(frozen=True, slots=True)
class BoardScore:
    user_id: int
    points: int
    depth: int
    reached_at: int


@dataclass(frozen=True, slots=True)
class Season:
    id: int
    guild_id: int
    name: str
    started_at: int


@dataclass(frozen=True, slots=True)
class ExportRow:
    id: int
    local_date: str
    user_id: int
    display_name: str | None
    status: str
    project: str | None
    note: str | None


@dataclass(frozen=True, slots=True)
class FinishedProject:
    user_id: int
    display_name: str | None
    name: str
    closed_at: int


@dataclass(frozen=True, slots=True)
class Recap:
    id: int
    guild_id: int
    week: str
    state: str
    channel_id: int | None
    message_id: int | None
    round_id: int | None


@dataclass(frozen=True, slots=True)
class PublicFinished:
    """Finished projects in a time range: `total` counts every one; `named` are those whose members may be
    named publicly (oldest first, at most the query's limit)."""
    named: list[FinishedProject]
    total: int


@dataclass(frozen=True, slots=True)
class Correction:
    """An admin's correction: an adjustment of points, or a check-in undone (its point went with it)."""
    id: int
    guild_id: int
    user_id: int
    kind: str            # 'adjust' or 'undo'
    amount: int
    local_date: str | None
    status: str | None
    reason: str | None
    admin_id: int
    created_at: int


@dataclass(frozen=True, slots=True)
class RoleReward:
    id: int
    guild_id: int
    kind: str            # streak, checkins, finished, depth, weekly
    threshold: int       # weekly: top N
    role_id: int
    keep: bool           # streak: the role stays when the streak breaks
    last_error: str | None
    last_error_at: int | None


@dataclass(frozen=True, slots=True)
class RoleChange:
    id: int
    guild_id: int
    user_id: int
    reward_id: int
    role_id: int
    action: str          # add or remove


# The columns each row class is built from, in order.
GUILD_COLS = ("guild_id, channel_id, time_local, timezone, days, role_id, paused, next_due, last_error, "
               "last_error_at, error_told, removed_at")
ROUND_COLS = ("id, guild_id, local_date, scheduled_at, channel_id, message_id, prompt_index, state, late, "
               "manual, error, posted_at")
PROJECT_COLS = "id, guild_id, user_id, name, status, deadline, created_at, closed_at, announced"
CHECKIN_COLS = ("id, guild_id, user_id, local_date, round_id, status, project_id, note, via, created_at, "
                 "updated_at")
