"""A server's public page: what it shows (leaderboard tabs, current streaks, check-in heatmap, finished-tracks
wall) and its HTML, rendered on the server with Jinja2. No discord import, no Discord ids in the output.

Who appears: every member with points, except those who chose `/me public off`; the wall names only members
the naming rule allows (`Storage.may_name_publicly`: announcements on and not off the pages). Counts in the
heatmap are the whole server's, with no names.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from coach import board
from coach.heatmap import MONTHS, grid_start
from coach.storage import Storage
from coach.text import cut

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
PAGE_ROWS = 25           # members on the leaderboard
STREAK_ROWS = 10         # members in the current streaks list
WALL_ROWS = 10           # finished tracks on the wall (the newest)
WALL_SCAN = 200          # newest finished projects looked at to fill the wall after the naming rule
HEATMAP_WEEKS = board.HEATMAP_WEEKS
NAME_MAX = 40
PROJECT_MAX = 80
TAB_LABELS = {"week": "Week", "month": "Month", "season": "Season", "all": "All time"}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
UNNAMED = "A producer"

# SVG geometry of the heatmap (user units; the picture scales to the page's width).
CELL, GAP, LEFT, TOP, RIGHT = 11, 3, 30, 16, 14


def new_token() -> str:
    """An unguessable page address part: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


def looks_like_token(text: str) -> bool:
    return 16 <= len(text) <= 64 and all(c.isalnum() or c in "-_" for c in text)


# ---------------------------------------------------------------- what the page holds


@dataclass(frozen=True)
class Tab:
    period: str
    label: str
    current: bool


@dataclass(frozen=True)
class BoardRow:
    rank: int
    name: str
    points: int
    streak: int
    depth: int


@dataclass(frozen=True)
class StreakRow:
    name: str
    streak: int


@dataclass(frozen=True)
class WallItem:
    project: str
    name: str
    day: str         # e.g. "2 Mar 2026"
    iso: str         # for <time datetime>


@dataclass(frozen=True)
class Cell:
    x: int
    y: int
    level: int       # 0 (nobody) .. 4 (the busiest days)
    title: str


@dataclass(frozen=True)
class Heatmap:
    cells: tuple[Cell, ...]
    months: tuple[tuple[int, str], ...]
    weekdays: tuple[tuple[int, str], ...]
    weeks: int
    width: int
    height: int
    total: int
    days: int
    busiest: int


@dataclass(frozen=True)
class Page:
    server: str
    period: str
    tabs: tuple[Tab, ...]
    window_label: str
    note: str | None
    rows: tuple[BoardRow, ...]
    ranked: int
    streaks: tuple[StreakRow, ...]
    heatmap: Heatmap
    wall: tuple[WallItem, ...]
    today: str


def long_day(day: date) -> str:
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def shown(stored: str | None, limit: int = NAME_MAX) -> str:
    """A stored name for the page: cut with a visible mark; escaping is the template's job."""
    return cut(stored, limit) if stored and stored.strip() else UNNAMED


# ---------------------------------------------------------------- heatmap


def heatmap(counts: dict[str, int], today: date, weeks: int = HEATMAP_WEEKS) -> Heatmap:
    """Weeks as columns (oldest left), Monday on top; each day's shade from its share of the busiest day."""
    first = grid_start(today, weeks)
    in_range = {d: n for d, n in counts.items() if first.isoformat() <= d <= today.isoformat()}
    busiest = max(in_range.values(), default=0)
    cells, months, last_month = [], [], None
    for col in range(weeks):
        monday = first + timedelta(weeks=col)
        if monday.month != last_month and (monday.day <= 7 or col == 0):
            months.append((LEFT + col * (CELL + GAP), MONTHS[monday.month - 1]))
        last_month = monday.month
        for row in range(7):
            day = monday + timedelta(days=row)
            if day > today:
                break
            n = in_range.get(day.isoformat(), 0)
            level = 0 if n == 0 or busiest == 0 else max(1, min(4, -(-4 * n // busiest)))
            what = "no check-ins" if n == 0 else f"{n} check-in{'s' if n != 1 else ''}"
            cells.append(Cell(LEFT + col * (CELL + GAP), TOP + row * (CELL + GAP), level,
                              f"{WEEKDAYS[row]} {long_day(day)}: {what}"))
    if len(months) > 1 and months[1][0] - months[0][0] < 3 * (CELL + GAP):
        months.pop(0)  # a first label squeezed against the next one
    weekdays = tuple((TOP + row * (CELL + GAP) + CELL - 2, WEEKDAYS[row]) for row in (0, 2, 4))
    return Heatmap(tuple(cells), tuple(months), weekdays, weeks, LEFT + weeks * (CELL + GAP) + RIGHT, TOP + 7 * (CELL + GAP),
                   sum(in_range.values()), sum(1 for n in in_range.values() if n), busiest)


# ---------------------------------------------------------------- gathering


async def build_page(storage: Storage, *, guild_id: int, server_name: str | None, period: str,
                     now: datetime) -> Page:
    """Everything the page shows for `period` (week, month, season or all; anything else: the default)."""
    settings = await storage.get_guild(guild_id)
    tz = settings.timezone if settings else "UTC"
    today = board.local_today(now, tz)
    if period not in board.PERIODS:
        period = "season"
    season = await storage.current_season(guild_id, now)
    season_key = (season.id, season.name, season.started_at) if season else None
    window = board.window_for(period, now, tz, season_key if period == "season" else None)
    note = None
    if period == "season" and season is None:
        note = "No season has started here yet, so this shows all time."
    if window.period == "season":
        period_id = await storage.season_period(window.season_id) or 0  # type: ignore[arg-type]
    elif window.period in ("week", "month"):
        period_id = await storage.window_period(guild_id, window.period, window.start)
    else:
        period_id = 0

    hidden = await storage.off_page_members(guild_id)
    top_rows, total = await storage.board_top(guild_id, period_id, PAGE_ROWS)
    scores = [board.Score(r.user_id, r.points, r.depth, r.reached_at) for r in top_rows]
    recent = await storage.posted_round_dates(guild_id, 2)
    open_date = recent[-1] if recent else None
    since = recent[0] if len(recent) == 2 else "0000-00-00"
    candidates = await storage.streak_candidates(guild_id, since) - hidden
    streaks = {u: s for u, s in (await storage.current_streaks(guild_id, candidates, open_date)).items() if s > 0}
    ranked = board.rank(scores, streaks)
    top = ranked[:PAGE_ROWS]
    longest = sorted(streaks.items(), key=lambda item: (-item[1], item[0]))[:STREAK_ROWS]

    finished = await storage.recent_finished_projects(guild_id, WALL_SCAN)
    named = await storage.nameable_members(guild_id, {p.user_id for p in finished}, on_page=True)
    wall = [p for p in finished if p.user_id in named][:WALL_ROWS]

    names = await storage.display_names(guild_id, [r.score.user_id for r in top] + [u for u, _ in longest])
    zone = ZoneInfo(tz)
    counts = await storage.checkins_per_day(guild_id, grid_start(today, HEATMAP_WEEKS).isoformat())
    return Page(
        server=cut(server_name, 80) if server_name else "This server",
        period=period,
        tabs=tuple(Tab(p, TAB_LABELS[p], p == period) for p in board.PERIODS),
        window_label=window.label,
        note=note,
        rows=tuple(BoardRow(r.rank, shown(names.get(r.score.user_id)), r.score.points, r.streak, r.score.depth)
                   for r in top),
        ranked=total,
        streaks=tuple(StreakRow(shown(names.get(u)), s) for u, s in longest),
        heatmap=heatmap(counts, today),
        wall=tuple(WallItem(cut(p.name, PROJECT_MAX), shown(p.display_name),
                            long_day(datetime.fromtimestamp(p.closed_at, UTC).astimezone(zone).date()),
                            datetime.fromtimestamp(p.closed_at, UTC).astimezone(zone).date().isoformat())
                   for p in wall),
        today=long_day(today),
    )


# ---------------------------------------------------------------- HTML


_ENV = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
# Compiled once, at import (start-up): compiling on the first request would stall the event loop (~60 ms).
_ENV.get_template("base.html")  # kept in the environment's cache for the pages that extend it
_PAGE = _ENV.get_template("page.html")
_NOT_FOUND = _ENV.get_template("not_found.html")


def render_page(page: Page) -> str:
    return _PAGE.render(page=page)


def render_not_found() -> str:
    return _NOT_FOUND.render()
