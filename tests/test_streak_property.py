"""One streak rule, proven on random histories (Hypothesis).

Each example is a server and two members in their own time zones, a run of days on which the server's round
was posted, never posted (not scheduled, bot down) or attempted and failed, away periods, and answers arriving
every way there is: the channel button, `/checkin`, a DM button, a DM text reply, a stale button of an older
round, and a DM sent before the current round opened (its buttons are closed, a text reply to it answers the
open round). The test keeps its own model (which server round each
answer must land on, by the one-calendar rule) and checks every figure Bounce shows against the reference rule
(`coach.streaks.compute_streak` over the posted rounds plus the answered days, away days marked, the latest
posted round open):

* the streak in the reply to each answer (what milestone replies are chosen from),
* `/stats`: current and best streak,
* the leaderboard's 🔥 (the SQL in `Storage.current_streaks`),
* the weekly recap's longest streaks,
* streak freezes: examples run with freezes on or off (/coach freezes), and a steady member answers most
  rounds by `/checkin`, so freezes are earned at 7 answers in a row, held (at most 2) and used on misses; the
  freezes held and the rounds they covered agree with the reference too.

All examples share one SQLite file (a new server id per example), so an example costs a few milliseconds.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coach import board, checkins, dm
from coach.checkins import STATUSES
from coach.clock import from_unix, to_unix
from coach.errors import Conflict, NotFound
from coach.prompts import load_prompts
from coach.storage import Round, Storage
from coach.streaks import RoundDay, StreakResult, compute_streak
from tests.databases import database

ZONES = ("UTC", "Europe/Berlin", "America/Los_Angeles", "Asia/Tokyo", "Pacific/Auckland", "America/St_Johns")
STARTS = (date(2026, 3, 4), date(2026, 3, 25), date(2026, 10, 21), date(2026, 12, 27))  # DST and year ends
PATHS = ("button", "checkin", "dm_button", "dm_text", "old_button", "stale_dm", "stale_dm_text")
VIA = {"button": "button", "checkin": "command", "dm_button": "dm_button", "dm_text": "dm_text"}
PROMPTS = load_prompts()
GUILDS = itertools.count(10_000)


@dataclass(frozen=True)
class Event:
    path: str
    status: str
    hours: int   # after the day's round time (20:00 server time)
    who: int     # 0 or 1


@dataclass(frozen=True)
class History:
    server_tz: str
    member_tzs: tuple[str, str]
    start: date
    days: tuple[tuple[str, tuple[Event, ...]], ...]   # (posted | never | failed, answers that day)
    away: tuple[tuple[tuple[int, int], ...], ...]     # per member: (first day, last day) offsets, disjoint
    steady: tuple[bool, ...] = ()                     # member 0 answers that day's round by /checkin
    freezes: bool = True                              # the server's /coach freezes setting


events = st.builds(Event, st.sampled_from(PATHS), st.sampled_from(STATUSES), st.integers(1, 20),
                   st.integers(0, 1))


@st.composite
def away_periods(draw: st.DrawFn) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for first, length in sorted(draw(st.lists(st.tuples(st.integers(0, 13), st.integers(0, 4)), max_size=3))):
        if not out or first > out[-1][1]:
            out.append((first, first + length))
    return tuple(out)


@st.composite
def histories(draw: st.DrawFn) -> History:
    """Short histories, and long ones where a steady member earns, holds and uses streak freezes."""
    # The steady member's pattern: runs of answered rounds (7 earn a freeze) and runs of misses (a freeze each).
    blocks = draw(st.lists(st.tuples(st.integers(3, 15), st.integers(0, 3)), max_size=4))
    steady = tuple(itertools.chain.from_iterable([True] * run + [False] * miss for run, miss in blocks))[:30]
    n = len(steady) if len(steady) >= 2 else draw(st.integers(1, 14))
    days = draw(st.lists(st.tuples(st.sampled_from(("posted", "posted", "posted", "posted", "never", "failed")),
                                   st.lists(events, max_size=3).map(tuple)), min_size=n, max_size=n))
    return History(draw(st.sampled_from(ZONES)), draw(st.tuples(st.sampled_from(ZONES), st.sampled_from(ZONES))),
                   draw(st.sampled_from(STARTS)), tuple(days), draw(st.tuples(away_periods(), away_periods())),
                   steady, draw(st.booleans()))


def reference(posted: list[str], answers: dict[str, str], away: list[tuple[str, str]],
              freezes: bool) -> StreakResult:
    """The rule, spelled out: posted rounds plus answered days; away days marked; the latest posted is open;
    streak freezes when the server has them on."""
    open_date = max(posted) if posted else None
    days = [RoundDay(date.fromisoformat(d), answers.get(d), away=any(a <= d <= b for a, b in away),  # type: ignore[arg-type]
                     open=d == open_date)
            for d in sorted(set(posted) | set(answers))]
    return compute_streak(days, freezes)


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("streaks") / "bounce.sqlite3"

    async def migrate() -> None:
        await (await Storage.open(database(path))).close()

    asyncio.run(migrate())
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories())
def test_every_streak_figure_agrees_with_the_reference(shared_db: Path, history: History) -> None:
    asyncio.run(Play(history, next(GUILDS)).run(shared_db))


class Play:
    def __init__(self, history: History, guild: int) -> None:
        self.h = history
        self.guild = guild
        self.users = (guild * 10 + 1, guild * 10 + 2)
        self.answers: dict[int, dict[str, str]] = {u: {} for u in self.users}
        self.away: dict[int, list[tuple[str, str]]] = {u: [] for u in self.users}
        self.posted: list[Round] = []
        self.rng = random.Random(guild)
        self.freeze_notes = 0

    def day(self, offset: int) -> str:
        return (self.h.start + timedelta(days=offset)).isoformat()

    async def run(self, path: Path) -> None:
        self.storage = await Storage.open(database(path))
        try:
            await self.play()
        finally:
            await self.storage.close()

    async def play(self) -> None:
        storage, guild = self.storage, self.guild
        if not self.h.freezes or self.rng.random() < 0.5:  # no row at all: the default (on)
            await storage.set_freezes(guild, self.h.freezes, datetime(2026, 1, 1, tzinfo=UTC))
        for user, periods in zip(self.users, self.h.away, strict=True):
            for first, last in periods:
                self.away[user].append(await storage.set_away(guild, user, self.day(first), self.day(last)))
            assert await storage.away_periods(guild, user) == self.away[user]
        for i, (kind, todays) in enumerate(self.h.days):
            local = self.h.start + timedelta(days=i)
            due = datetime.combine(local, time(20), ZoneInfo(self.h.server_tz)).astimezone(UTC)
            if kind != "never":
                claimed = await storage.claim_round(guild_id=guild, local_date=local.isoformat(),
                                                    scheduled_at=to_unix(due), channel_id=1, prompt_index=0,
                                                    late=False, manual=False, now=due)
                assert claimed is not None
                if kind == "posted":
                    await storage.mark_round_posted(claimed.id, 1, due)
                    self.posted.append(await storage.get_round(claimed.id))  # type: ignore[arg-type]
                else:
                    await storage.mark_round_failed(claimed.id, "missing_permission")
            if i < len(self.h.steady) and self.h.steady[i]:
                todays = (*todays, Event("checkin", "finished", 1, 0))
            for event in sorted(todays, key=lambda e: e.hours):
                await self.act(event, due + timedelta(hours=event.hours))
            await self.check_figures()

    async def act(self, event: Event, now: datetime) -> None:
        user = self.users[event.who]
        latest = self.posted[-1] if self.posted else None
        common = dict(member_name=f"member {user}", server_name="Studio", status=event.status,
                      project_name=None, note=None, now=now)
        if event.path in ("button", "checkin"):
            if latest is None:
                return  # no round to press, and /checkin says so before anything is recorded
            outcome = await checkins.answer(self.storage, PROMPTS, self.rng, round_=latest, latest=latest,
                                            guild_id=self.guild, user_id=user, via=VIA[event.path], **common)
        elif event.path == "old_button":
            if len(self.posted) < 2:
                return
            with pytest.raises(Conflict):
                await checkins.answer(self.storage, PROMPTS, self.rng, round_=self.posted[-2], latest=latest,
                                      guild_id=self.guild, user_id=user, via="button", **common)
            return
        else:
            sent_before = event.path.startswith("stale_dm") and latest is not None  # before the open round
            sent = from_unix(latest.posted_at) - timedelta(minutes=1) if sent_before else now - timedelta(minutes=30)
            by_button = event.path in ("dm_button", "stale_dm")
            dm_round = dm.DMRound(  # the member's own date: it must not matter
                id=1, guild_id=self.guild, user_id=user,
                local_date=sent.astimezone(ZoneInfo(self.h.member_tzs[event.who])).date().isoformat(),
                scheduled_at=to_unix(sent), closes_at=to_unix(sent) + 86_400, state="sent", late=False,
                channel_id=1, message_id=1, error=None, sent_at=to_unix(sent), round_id=None)
            call = dm.answer(self.storage, PROMPTS, self.rng, dm_round=dm_round, names_round=by_button,
                             via="dm_button" if by_button else "dm_text", **common)
            if latest is None or (sent_before and by_button):  # a DM's buttons name the round it was sent for
                with pytest.raises(NotFound if latest is None else Conflict):
                    await call
                return
            outcome = await call
        assert latest is not None
        answers = self.answers[user]
        assert outcome.created == (latest.local_date not in answers)
        assert (outcome.checkin.local_date, outcome.checkin.round_id) == (latest.local_date, latest.id)
        answers[latest.local_date] = event.status
        expected = reference([r.local_date for r in self.posted], answers, self.away[user], self.h.freezes)
        assert (outcome.streak.current, outcome.streak.best, outcome.streak.freezes) == \
            (expected.current, expected.best, expected.freezes)
        self.freeze_notes += outcome.freeze_note is not None

    async def check_figures(self) -> None:
        storage, guild = self.storage, self.guild
        posted = [r.local_date for r in self.posted]
        expected = {u: reference(posted, self.answers[u], self.away[u], self.h.freezes) for u in self.users}
        board_streaks = await storage.current_streaks(guild, self.users)
        assert board_streaks == {u: expected[u].current for u in self.users}
        for user in self.users:
            stats = await checkins.member_streak(storage, guild, user)
            assert (stats.current, stats.best) == (expected[user].current, expected[user].best)
            assert (stats.freezes, stats.frozen_after(None)) == \
                (expected[user].freezes, expected[user].frozen_after(None))
            stored = {c.local_date: c.status for c in await storage.member_checkins(guild, user)}
            assert stored == self.answers[user]  # every answer on its server round's date, whatever the path
        recap_candidates = await storage.checkin_users_since(guild, "0000-01-01")
        assert board.longest_streaks(await storage.current_streaks(guild, recap_candidates)) == \
            board.longest_streaks({u: expected[u].current for u in self.users})
