"""Leaderboard, stats, seasons, recap and export: the pure rules (no discord, no SQL).

* Ranking: points (check-in + finish) in the period, then current streak, then who reached their total
  first (the time of their latest point in the period), then member id so the order is total.
* Periods: the server's local calendar week (Monday first) and month, the current season, or all time.
* Streaks everywhere (/stats, the board's 🔥, the recap's longest streaks) follow ``coach.streaks.member_streak``,
  so a round that was never posted breaks nobody's streak.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from coach.errors import BadInput
from coach.heatmap import grid_start
from coach.schedule import resolve_local
from coach.streaks import RoundDay, StreakDay, StreakResult
from coach.text import EMBED_FIELD_VALUE_MAX, cut, safe_name, safe_title

PERIODS = ("week", "month", "season", "all")
PAGE_SIZE = 10
AWAY_MAX_DAYS = 60
RECENT_ROUNDS = 14
RATE_ROUNDS = 30
HEATMAP_WEEKS = 26
PURGE_AFTER = timedelta(days=30)
CONFIRM_MAX_AGE = timedelta(minutes=15)
#: Discord's default attachment limit (without boosts). Export files are cut to stay under it.
ATTACHMENT_LIMIT = 8 * 1024 * 1024
CSV_HEADER = ("date", "member_id", "name", "status", "project", "note")
STATUS_MARK = {"finished": "✅", "unfinished": "🔸", "skipped": "⏸️"}
OUTCOME_MARK = {"counted": "🔥", "away": "🌴", "open": "⏳", "missed": "▫️", "frozen": "🧊"}


# ---------------------------------------------------------------- periods


@dataclass(frozen=True)
class Window:
    """What a leaderboard counts: points earned at or after `start` (UTC unix seconds) in `period`
    (week, month, season or all); `season_id` for a season."""

    period: str
    start: int
    season_id: int | None
    label: str


def local_today(now: datetime, tz: str) -> date:
    return now.astimezone(ZoneInfo(tz)).date()


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def local_midnight(day: date, tz: str) -> int:
    return int(resolve_local(day, time(0, 0), ZoneInfo(tz)).timestamp())


def window_for(period: str, now: datetime, tz: str, season: tuple[int, str, int] | None) -> Window:
    """The window of `period` at `now`; `season` is the current season as (id, name, started_at)."""
    if period not in PERIODS:
        raise BadInput(f"`{cut(period, 20)}` is not a period; pick week, month, season or all.")
    today = local_today(now, tz)
    if period == "week":
        monday = week_start(today)
        return Window("week", local_midnight(monday, tz), None, f"This week (since {day_month(monday)})")
    if period == "month":
        first = today.replace(day=1)
        return Window("month", local_midnight(first, tz), None, f"{first:%B} {first.year}")
    if period == "season" and season is not None:
        sid, name, started = season
        since = datetime.fromtimestamp(started, UTC).astimezone(ZoneInfo(tz)).date()
        return Window("season", started, sid, f"Season: {cut(name, 60)} (since {day_month(since)} {since.year})")
    return Window("all", 0, None, "All time")


def day_month(day: date) -> str:
    return f"{day.day} {day:%b}"


# ---------------------------------------------------------------- names


def member_label(stored: str | None, user_id: int, limit: int = 32) -> str:
    """A member as a message shows them: their stored name (stored raw, made safe here), or for a member the
    bot has no name for a mention, which an embed renders as their name and which never pings there."""
    return safe_name(stored, limit) if stored else f"<@{user_id}>"


# ---------------------------------------------------------------- ranking


@dataclass(frozen=True)
class Score:
    user_id: int
    points: int
    depth: int
    reached_at: int


@dataclass(frozen=True)
class Ranked:
    rank: int
    score: Score
    streak: int


def clamp_page(page: int, total: int, size: int = PAGE_SIZE) -> tuple[int, int]:
    """(page, pages): a page past the end shows the last page; page numbers start at 0."""
    pages = max(1, -(-total // size))
    return min(max(page, 0), pages - 1), pages


def streaks_needed(scores: Sequence[Score], page: int, caller: int | None, size: int = PAGE_SIZE) -> set[int]:
    """Members whose current streak is needed to order the page and place the caller.

    Only equal points are ordered by streak, so only the groups of equal points that reach into the page
    (or hold the caller) need it; everyone else keeps their place whatever their streak.
    """
    if not scores:
        return set()
    by_points = sorted(scores, key=lambda s: -s.points)
    page, _ = clamp_page(page, len(by_points), size)
    wanted_points = {s.points for s in by_points[page * size:(page + 1) * size]}
    wanted_points |= {s.points for s in by_points if s.user_id == caller}
    return {s.user_id for s in by_points if s.points in wanted_points}


def longest_streaks(streaks: Mapping[int, int], count: int = 3) -> list[tuple[int, int]]:
    """The weekly recap's longest running streaks: (member, streak), longest first, ties by member id."""
    return sorted(((u, n) for u, n in streaks.items() if n > 0), key=lambda s: (-s[1], s[0]))[:count]


def rank(scores: Iterable[Score], streaks: Mapping[int, int]) -> list[Ranked]:
    """Everyone with points, best first; ranks 1, 2, 3... (every tie is broken)."""
    ordered = sorted(scores, key=lambda s: (-s.points, -streaks.get(s.user_id, 0), s.reached_at, s.user_id))
    return [Ranked(i + 1, s, streaks.get(s.user_id, 0)) for i, s in enumerate(ordered)]


def rank_by_depth(scores: Iterable[Score]) -> list[Ranked]:
    """/leaderboard rank:depth: depth points first, then check-in and finish points, then member id."""
    ordered = sorted(scores, key=lambda s: (-s.depth, -s.points, s.user_id))
    return [Ranked(i + 1, s, 0) for i, s in enumerate(ordered)]


# ---------------------------------------------------------------- streak days, stats, heatmap


def heatmap_days(days: Sequence[RoundDay], end: date, weeks: int = HEATMAP_WEEKS) -> dict[date, str]:
    """Colour key per day in the heatmap's range: the answer, or `missed` for a round that broke the streak.

    An unanswered away day or the still-open round is left blank (neither counts nor breaks).
    """
    first = grid_start(end, weeks)
    out: dict[date, str] = {}
    for r in days:
        if r.local_date < first or r.local_date > end:
            continue
        if r.status is not None:
            out[r.local_date] = r.status
        elif not (r.away or r.open):
            out[r.local_date] = "missed"
    return out


def freezes_line(streak: StreakResult) -> str:
    """/stats: streak freezes held, and the latest round one covered."""
    line = f"\n🧊 **{streak.freezes}** streak freeze{'s' if streak.freezes != 1 else ''} held"
    used = streak.frozen_after(None)
    if used:
        line += f" · last used {used[-1]:%a} {day_month(used[-1])}"
    return line


def streak_day_line(day: StreakDay) -> str:
    return f"{OUTCOME_MARK[day.outcome]} {day.local_date:%a} {day_month(day.local_date)} · {day.explanation} → {day.streak_after}"


def finish_rate_text(counts: Mapping[str, int]) -> str:
    started = sum(counts.values())
    finished = counts.get("finished", 0)
    line = (f"{started} started · {finished} finished · {counts.get('dropped', 0)} dropped · "
            f"{counts.get('active', 0)} active")
    if started:
        line += f"\nFinish rate: **{round(100 * finished / started)}%** of projects started"
    return line


def percent(rate: float) -> str:
    return f"{round(100 * rate)}%"


# ---------------------------------------------------------------- away


def parse_away_until(raw: str, today: date) -> date:
    """The last away day, from `YYYY-MM-DD`: today at the earliest, AWAY_MAX_DAYS ahead at the latest."""
    text = (raw or "").strip()
    example = (today + timedelta(days=7)).isoformat()
    try:
        if len(text) != 10:
            raise ValueError
        until = date.fromisoformat(text)
    except ValueError:
        raise BadInput(f"`{cut(text, 20) or '(empty)'}` is not a date; use `YYYY-MM-DD`, e.g. `{example}`.") from None
    if until < today:
        raise BadInput(f"`{text}` is already behind us. Give the last day you'll be away, from today "
                       f"({today.isoformat()}) on.")
    latest = today + timedelta(days=AWAY_MAX_DAYS)
    if until > latest:
        raise BadInput(f"That's more than {AWAY_MAX_DAYS} days ahead. Pick a date up to {latest.isoformat()}; "
                       "you can extend it when you get there.")
    return until


# ---------------------------------------------------------------- recap


@dataclass(frozen=True)
class RecapStats:
    rounds: int
    checkins: int
    active_members: int

    @property
    def rate(self) -> float:
        possible = self.rounds * self.active_members
        return self.checkins / possible if possible else 0.0


def recap_week(round_date: date) -> date:
    """The week a round's recap sums up: the one before the round's week (its Monday)."""
    return week_start(round_date) - timedelta(days=7)


def week_label(monday: date) -> str:
    sunday = monday + timedelta(days=6)
    return f"{day_month(monday)} – {day_month(sunday)} {sunday.year}"


@dataclass(frozen=True)
class Finish:
    """A finished project the recap may name: its title and its member (stored name, id)."""

    title: str
    display_name: str | None
    user_id: int


def recap_finished(named: Sequence[Finish], total: int, limit: int = EMBED_FIELD_VALUE_MAX) -> tuple[str, str]:
    """(field name, value) for the recap's finished projects. `total` counts every project finished in the week;
    `named` are only those whose members may be named publicly (coach.members.may_name_publicly). Lines are
    added while they fit; whatever is not named, by choice or for room, is one line of count without names."""
    title = f"Finished this week ({total})"
    if total == 0:
        return title, "No projects finished this week. One small finished piece next week changes that."
    lines: list[str] = []
    used = 0
    tail_room = 60  # the closing "…and N more" line
    for p in named:
        line = f"✅ **{safe_title(p.title, 60)}** · {member_label(p.display_name, p.user_id)}"
        if used + len(line) + 1 + tail_room > limit:
            break
        lines.append(line)
        used += len(line) + 1
    rest = total - len(lines)
    if not lines:
        lines.append(f"✅ {total} {'project' if total == 1 else 'projects'} finished this week, celebrated quietly.")
    elif rest:
        lines.append(f"…and {rest} more finished this week.")
    return title, "\n".join(lines)


def recap_streaks(top: Sequence[tuple[int, int]], names: Mapping[int, str]) -> str:
    """The recap's streak list: (member id, streak) of members who may be named publicly, longest first. Empty
    can also mean the running streaks belong to members who keep out of public posts, so it says nothing more."""
    if not top:
        return "No streaks to show here yet. The next round can start one."
    return "\n".join(f"🔥 **{streak}** · {member_label(names.get(user_id), user_id)}" for user_id, streak in top)


def recap_rate_line(stats: RecapStats) -> str:
    return (f"**{percent(stats.rate)}** · {stats.checkins} check-ins over {stats.rounds} "
            f"{'round' if stats.rounds == 1 else 'rounds'} from {stats.active_members} active "
            f"{'member' if stats.active_members == 1 else 'members'}")


# ---------------------------------------------------------------- export


def spreadsheet_safe(text: str | None) -> str:
    """Member-written text in a CSV cell: a leading = + - @ would run as a formula in a spreadsheet."""
    value = text or ""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_row(local_date: str, user_id: int, name: str | None, status: str, project: str | None,
            note: str | None) -> tuple[str, ...]:
    return (local_date, str(user_id), spreadsheet_safe(name), status, spreadsheet_safe(project),
            spreadsheet_safe(note))


class CsvParts:
    """Write CSV rows to temporary files, starting a new file (with the header) before one would pass `limit`.

    Only one row is held in memory at a time. Use as a context manager; the files are deleted on exit.
    """

    def __init__(self, prefix: str, limit: int = ATTACHMENT_LIMIT, header: Sequence[str] = CSV_HEADER) -> None:
        self.prefix, self.limit, self.header = prefix, limit, tuple(header)
        self.paths: list[Path] = []
        self.rows = 0
        self._dir = tempfile.TemporaryDirectory(prefix="bounce-export-")
        self._file: io.BufferedWriter | None = None
        self._size = 0
        self._header_bytes = self._encode(self.header)
        if len(self._header_bytes) * 2 > limit:
            raise ValueError("limit too small for the header")

    @staticmethod
    def _encode(row: Sequence[str]) -> bytes:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerow(row)
        return buf.getvalue().encode("utf-8")

    def _open(self) -> None:
        if self._file is not None:
            self._file.close()
        path = Path(self._dir.name) / f"{self.prefix}-part{len(self.paths) + 1}.csv"
        self._file = open(path, "wb")  # closed by the next _open, finish or close
        self.paths.append(path)
        self._file.write(self._header_bytes)
        self._size = len(self._header_bytes)

    def write(self, row: Sequence[str]) -> None:
        data = self._encode(row)
        if len(self._header_bytes) + len(data) > self.limit:
            raise ValueError("one row is larger than the attachment limit")
        if self._file is None or self._size + len(data) > self.limit:
            self._open()
        assert self._file is not None
        self._file.write(data)
        self._size += len(data)
        self.rows += 1

    def finish(self) -> list[Path]:
        if self._file is None:
            self._open()  # header only: an empty server still gets a file
        assert self._file is not None
        self._file.close()
        if len(self.paths) > 1:
            width = len(str(len(self.paths)))
            renamed = []
            for i, path in enumerate(self.paths, 1):
                target = path.with_name(f"{self.prefix}-part{i:0{width}d}-of-{len(self.paths)}.csv")
                os.replace(path, target)
                renamed.append(target)
            self.paths = renamed
        else:
            target = self.paths[0].with_name(f"{self.prefix}.csv")
            os.replace(self.paths[0], target)
            self.paths = [target]
        return self.paths

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._dir.cleanup()

    def __enter__(self) -> CsvParts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


FORGET_LABELS = {
    "checkins": ("check-in", "check-ins"),
    "projects": ("project", "projects"),
    "points": ("points entry", "points entries"),
    "away_periods": ("away period", "away periods"),
    "reflections": ("reflection", "reflections"),
    "lesson_reads": ("lesson opened", "lessons opened"),
    "lesson_unlocks": ("track unlocked", "tracks unlocked"),
    "members": ("member profile", "member profiles"),
    "dm_schedules": ("DM check-in setting", "DM check-in settings"),
    "dm_rounds": ("DM check-in", "DM check-ins"),
    "corrections": ("admin correction", "admin corrections"),
    "role_holders": ("role reward held", "role rewards held"),
    "role_changes": ("role change", "role changes"),
}
#: Derived or bookkeeping rows: deleted too, but not worth listing.
FORGET_QUIET = frozenset({"board_totals", "board_confirms", "role_dirty"})


def forget_summary(counts: Mapping[str, int]) -> str:
    parts = []
    known = [t for t in FORGET_LABELS if t in counts]
    for table, count in [(t, counts[t]) for t in known] + [(t, c) for t, c in counts.items() if t not in known]:
        if not count or table in FORGET_QUIET:
            continue
        one, many = FORGET_LABELS.get(table, (f"{table} row", f"{table} rows"))
        parts.append(f"{count:,} {one if count == 1 else many}")
    return ", ".join(parts) if parts else "nothing (there was no data of yours here)"
