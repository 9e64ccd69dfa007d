"""Leaderboard, streaks, /stats with its heatmap, seasons, the weekly recap, export, forget and the purge."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from coach import board
from coach.checkins import member_streak
from coach.clock import to_unix
from coach.errors import BadInput
from coach.heatmap import CELL, COLORS, cell_origin, grid_start
from coach.storage import Storage
from coach.streaks import RoundDay
from tests.conftest import Harness, eventually
from tests.databases import database
from tests.fakediscord.server import FakeDiscordError

MON = date(2026, 3, 2)  # the harness clock's Monday


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


async def at(h: Harness, moment: datetime) -> None:
    h.clock.set(moment)
    await h.tick()


def buttons(message: dict) -> dict[str, str]:
    return {c["label"]: c["custom_id"] for row in message.get("components") or [] for c in row["components"]}


async def posted_round(storage: Storage, guild: int, channel: int, day: date):  # noqa: ANN201
    """A round as if posted at 20:00 Berlin that day (fast: no Discord round trip)."""
    r = await storage.claim_round(guild_id=guild, local_date=day.isoformat(), scheduled_at=to_unix(noon(day)),
                                  channel_id=channel, prompt_index=0, late=False, manual=False, now=noon(day))
    await storage.mark_round_posted(r.id, 10_000 + r.id, noon(day))
    return r


async def checkin(storage: Storage, guild: int, user: int, day: date, status: str = "finished",
                  when: datetime | None = None, note: str | None = None, project_id: int | None = None) -> None:
    await storage.upsert_checkin(guild_id=guild, user_id=user, local_date=day.isoformat(), round_id=None,
                                 status=status, project_id=project_id, note=note, via="button",
                                 now=when or noon(day))


async def setup_server(h: Harness, days: str | None = None) -> Storage:
    await h.setup_checkin("20:00", "Europe/Berlin", days)
    return h.bot.storage


async def until(make_coro, timeout: float = 3.0):  # noqa: ANN001, ANN201, ASYNC109
    """Wait until an awaitable made by `make_coro()` gives something truthy (work done after an event)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await make_coro()
        if value:
            return value
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _none(coro) -> bool:  # noqa: ANN001
    return await coro is None


async def count_rows(storage: Storage, table: str, guild: int, user: int | None = None) -> int:
    if user is None:
        row = await storage.fetchone(f"SELECT COUNT(*) FROM {table} WHERE guild_id = ?", (guild,))
    else:
        row = await storage.fetchone(f"SELECT COUNT(*) FROM {table} WHERE guild_id = ? AND user_id = ?",
                                     (guild, user))
    return row[0]


# ============================================================================ pure rules


def test_windows_follow_the_servers_calendar() -> None:
    now = utc(2026, 3, 2, 12)  # Monday, 13:00 in Berlin
    week = board.window_for("week", now, "Europe/Berlin", None)
    assert week.start == to_unix(utc(2026, 3, 1, 23)) and week.period == "week"  # Monday 00:00 Berlin
    month = board.window_for("month", now, "Europe/Berlin", None)
    assert month.start == to_unix(utc(2026, 2, 28, 23)) and month.label == "March 2026"
    # Sunday 23:30 UTC is already Monday in Berlin but still Sunday in UTC.
    late_sunday = utc(2026, 3, 8, 23, 30)
    assert board.window_for("week", late_sunday, "Europe/Berlin", None).start == to_unix(utc(2026, 3, 8, 23))
    assert board.window_for("week", late_sunday, "UTC", None).start == to_unix(utc(2026, 3, 2))
    season = board.window_for("season", now, "UTC", (7, "Spring", to_unix(utc(2026, 2, 20))))
    assert (season.season_id, season.start) == (7, to_unix(utc(2026, 2, 20))) and "Spring" in season.label
    assert board.window_for("season", now, "UTC", None).period == "all"  # no season: all time
    assert board.window_for("all", now, "UTC", None).start == 0
    with pytest.raises(BadInput):
        board.window_for("decade", now, "UTC", None)


def test_ranking_points_then_streak_then_who_got_there_first() -> None:
    scores = [board.Score(1, 5, 0, 500), board.Score(2, 5, 0, 400), board.Score(3, 5, 0, 300),
              board.Score(4, 9, 2, 900), board.Score(5, 5, 0, 400)]
    streaks = {1: 7, 2: 3, 3: 3, 4: 0, 5: 3}
    ranked = board.rank(scores, streaks)
    assert [r.score.user_id for r in ranked] == [4, 1, 3, 2, 5]  # 2 and 5 fully tied: member id decides
    assert [r.rank for r in ranked] == [1, 2, 3, 4, 5] and ranked[1].streak == 7


def test_streaks_are_fetched_only_for_ties_that_matter() -> None:
    scores = [board.Score(i, 30 - i, 0, i) for i in range(25)] + [board.Score(100, 21, 0, 0)]
    # page 0 holds points 30..21: user 9 (21 points) ties with user 100, who falls on page 1
    assert board.streaks_needed(scores, 0, None) == set(range(10)) | {100}
    assert board.streaks_needed(scores, 2, 0) == {19, 20, 21, 22, 23, 24, 0}  # 26 members: page 2 holds 6
    assert board.streaks_needed(scores, 99, None) == {19, 20, 21, 22, 23, 24}  # past the end: the last page
    assert board.streaks_needed([], 0, 1) == set()


def test_names_are_stored_raw_and_made_safe_once_when_shown() -> None:
    from coach.text import safe_name

    long = "Producer With A Really Long Display Name That Goes On"
    assert board.member_label(long, 1).endswith("…") and len(board.member_label(long, 1)) <= 32
    for raw in ("@everyone **Zed**", "DJ_Snake|x", "a\\b", "\\_ghost\\_"):
        assert board.member_label(raw, 1) == safe_name(raw)
    # A name that really contains a backslash keeps it: nothing is un-escaped "defensively" any more.
    assert board.member_label("\\_ghost", 1) == "\\\\\\_ghost"
    assert "@everyone" not in board.member_label("@everyone", 1)
    assert board.member_label("", 42) == board.member_label(None, 42) == "<@42>"


def test_pages_clamp_to_the_last() -> None:
    assert board.clamp_page(0, 0) == (0, 1)
    assert board.clamp_page(5, 25) == (2, 3)
    assert board.clamp_page(-1, 25) == (0, 3)


@pytest.mark.parametrize("raw,message", [
    ("2026-02-28", "already behind us"),
    ("2026-05-02", "more than 60 days ahead"),
    ("next friday", "is not a date"),
    ("2026-02-30", "is not a date"),
    ("2026-3-9", "is not a date"),
    ("", "is not a date"),
])
def test_away_until_bad_input(raw: str, message: str) -> None:
    with pytest.raises(BadInput) as err:
        board.parse_away_until(raw, MON)
    assert message in err.value.message


def test_away_until_bounds() -> None:
    assert board.parse_away_until("2026-03-02", MON) == MON
    assert board.parse_away_until(" 2026-05-01 ", MON) == MON + timedelta(days=60)


def test_heatmap_days_colour_each_round_by_what_it_did() -> None:
    days = [RoundDay(date(2026, 3, 2), "finished"), RoundDay(date(2026, 3, 3), None),
            RoundDay(date(2026, 3, 4), None, away=True), RoundDay(date(2026, 3, 5), "skipped", away=True),
            RoundDay(date(2026, 3, 6), None, open=True), RoundDay(date(2025, 1, 1), "finished")]
    assert board.heatmap_days(days, date(2026, 3, 6)) == {
        date(2026, 3, 2): "finished", date(2026, 3, 3): "missed", date(2026, 3, 5): "skipped"}


def test_csv_parts_cut_under_the_limit_and_defuse_formulas(tmp_path: Path) -> None:
    rows = [board.csv_row(f"2026-03-{d:02d}", 1000 + d, f"=Name {d}", "finished", "+Proj", f"note {d} " * 5)
            for d in range(1, 29)]
    assert rows[0][2] == "'=Name 1" and rows[0][4] == "'+Proj"
    with board.CsvParts("export", limit=600) as parts:
        for row in rows:
            parts.write(row)
        paths = parts.finish()
        assert len(paths) > 2 and paths[0].name == f"export-part{1:0{len(str(len(paths)))}d}-of-{len(paths)}.csv"
        seen = []
        for path in paths:
            data = path.read_bytes()
            assert len(data) <= 600
            got = list(csv.reader(io.StringIO(data.decode())))
            assert tuple(got[0]) == board.CSV_HEADER
            seen += [tuple(r) for r in got[1:]]
        assert seen == rows and parts.rows == len(rows)
    assert not paths[0].exists()  # temporary files are gone afterwards
    with board.CsvParts("empty") as parts:
        (only,) = parts.finish()
        assert only.name == "empty.csv" and only.read_bytes().decode().strip() == ",".join(board.CSV_HEADER)


def test_forget_summary() -> None:
    assert board.forget_summary({"board_totals": 3, "checkins": 12, "projects": 1, "points": 13, "members": 1,
                                 "away_periods": 0}) == \
        "12 check-ins, 1 project, 13 points entries, 1 member profile"
    assert "nothing" in board.forget_summary({"checkins": 0})


# ============================================================================ storage: streaks and totals


async def test_bulk_streaks_match_compute_streak(tmp_path: Path) -> None:
    """The leaderboard's one-query streaks agree with coach.streaks on random histories: missed rounds,
    rounds never posted, away periods, answers on days without a round, the open round."""
    storage = await Storage.open(database(tmp_path / "s.sqlite3"))
    rng = random.Random(7)
    try:
        for trial in range(6):
            guild = 500 + trial
            start = date(2026, 1, 1)
            users = list(range(1, 13))
            for i in range(40):
                day = start + timedelta(days=i)
                if rng.random() < 0.15:
                    continue  # no round that day (weekday not chosen, or the bot was down)
                r = await storage.claim_round(guild_id=guild, local_date=day.isoformat(), scheduled_at=i,
                                              channel_id=1, prompt_index=0, late=False, manual=False, now=noon(day))
                if rng.random() < 0.1:
                    await storage.mark_round_failed(r.id, "missing_permission")  # attempted, never posted
                else:
                    await storage.mark_round_posted(r.id, 1, noon(day))
            for user in users:
                rate = rng.choice([0.5, 0.8, 0.95, 1.0])
                for i in range(40):
                    if rng.random() < rate:
                        await checkin(storage, guild, user, start + timedelta(days=i), rng.choice(["finished", "skipped"]))
                if rng.random() < 0.5:
                    a = rng.randrange(40)
                    await storage.set_away(guild, user, (start + timedelta(days=a)).isoformat(),
                                           (start + timedelta(days=a + rng.randrange(1, 8))).isoformat())
            latest = await storage.latest_round(guild)
            bulk = await storage.current_streaks(guild, users, latest.local_date)
            for user in users:
                expected = await member_streak(storage, guild, user)
                assert bulk[user] == expected.current, (trial, user)
    finally:
        await storage.close()


async def test_running_totals_equal_the_ledger(tmp_path: Path) -> None:
    """All time, seasons, and the lazily made week/month periods: what the triggers keep equals the ledger."""
    storage = await Storage.open(database(tmp_path / "t.sqlite3"))
    try:
        g, other = 42, 43
        for i in range(10):
            await checkin(storage, g, 1 + i % 3, MON + timedelta(days=i))
            await checkin(storage, other, 1, MON + timedelta(days=i))
        await storage.award(g, 2, "finish", 5, "p1", noon(MON + timedelta(days=3)))
        await storage.award(g, 3, "reflection", 2, "l1", noon(MON + timedelta(days=4)))
        season = await storage.start_season(g, "Spring", noon(MON + timedelta(days=5)))
        await storage.award(g, 1, "finish", 5, "p2", noon(MON + timedelta(days=5)))  # same second as the start
        week = await storage.window_period(g, "week", to_unix(utc(2026, 3, 9)))  # filled from the ledger: days 7..9
        assert await storage.window_period(g, "week", to_unix(utc(2026, 3, 9))) == week
        month = await storage.window_period(g, "month", to_unix(utc(2026, 3, 1)))
        assert {s.user_id: s.points for s in await storage.board_totals(g, week)} == {2: 1, 3: 1, 1: 1}
        for i in range(10, 14):
            await checkin(storage, g, 1 + i % 3, MON + timedelta(days=i))
        await storage.execute("DELETE FROM points WHERE guild_id = ? AND ref = ?", (g, (MON + timedelta(days=12)).isoformat()))
        assert await storage.stored_board_totals(g) == await storage.board_totals_from_ledger(g)
        in_season = {s.user_id: s.points for s in await storage.board_totals(g, await storage.season_period(season.id))}
        # Points from noon of day 5 on (days 5..13, minus the deleted day 12) and the finish at the start second
        # belong to the season, even those written before the season was started.
        assert in_season == {1: 2 + 5, 2: 3, 3: 3}
        # Days 7..13 (minus 12) in the week of 9 March; everything in March.
        assert {s.user_id: s.points for s in await storage.board_totals(g, week)} == {1: 1, 2: 3, 3: 2}
        assert sum(s.points for s in await storage.board_totals(g, month)) == 14 - 1 + 10  # check-ins, finishes
        # A new week replaces the old one; the other server is untouched.
        later = await storage.window_period(g, "week", to_unix(utc(2026, 3, 16)))
        assert await storage.board_totals(g, week) == [] and later != week
        assert await storage.stored_board_totals(other) == await storage.board_totals_from_ledger(other)
        assert await storage.stored_board_totals(g) == await storage.board_totals_from_ledger(g)
        await storage.execute("DELETE FROM board_totals")
        await storage.rebuild_board_totals(g)
        assert await storage.stored_board_totals(g) == await storage.board_totals_from_ledger(g)
        await storage.execute("UPDATE board_totals SET points = points + 1")
        await storage.rebuild_board_totals()
        for guild in (g, other):
            assert await storage.stored_board_totals(guild) == await storage.board_totals_from_ledger(guild)
    finally:
        await storage.close()



async def test_two_processes_asking_for_a_new_week_at_once_make_it_once(tmp_path: Path) -> None:
    """Two storages on one database (two processes; on PostgreSQL truly side by side): one period, one fill."""
    path = database(tmp_path / "w.sqlite3")
    one, two = await Storage.open(path), await Storage.open(path)
    try:
        g = 42
        for i in range(10):
            await checkin(one, g, 1 + i % 3, MON + timedelta(days=i))
        old = await one.window_period(g, "week", to_unix(utc(2026, 3, 2)))
        for _ in range(5):  # a few rounds: the race is real
            start = to_unix(utc(2026, 3, 9)) + 7 * 86_400 * _
            made = await asyncio.gather(one.window_period(g, "week", start), two.window_period(g, "week", start))
            assert made[0] == made[1] != old
            weeks = await one.fetchall("SELECT id FROM board_periods WHERE guild_id = ? AND kind = 'week'", (g,))
            assert weeks == [(made[0],)]
            assert await one.stored_board_totals(g) == await one.board_totals_from_ledger(g)
    finally:
        await one.close()
        await two.close()


# ============================================================================ /leaderboard


async def make_board(h: Harness) -> dict[str, int]:
    """Thirteen members; six posted rounds Mon..Sat; known points, streaks and times."""
    storage = await setup_server(h)
    g, fake = h.studio.guild, h.fake
    users = {"Alice": h.studio.alice, "Bob": h.studio.bob}
    for name in ["Cara", "Dev", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kim"]:
        users[name] = fake.add_member(g, name)
    users["@everyone **Zed**"] = fake.add_member(g, "@everyone **Zed**")
    users["Lou"] = fake.add_member(g, "Lou")
    days = [MON + timedelta(days=i) for i in range(6)]
    for d in days:
        await posted_round(storage, g, h.studio.channel, d)
    for name, uid in users.items():
        await storage.touch_member(g, uid, name, noon(MON))

    async def answer(name: str, idx: list[int]) -> None:
        for i in idx:
            await checkin(storage, g, users[name], days[i])

    await answer("Alice", [0, 1, 2, 3, 4])       # 5 points, streak 5 (Saturday's round is still open)
    await answer("Bob", [0, 1, 3, 4, 5])         # 5 points, missed Wednesday: streak 3
    await answer("Cara", [1, 2, 3, 4, 5])        # 5 points, streak 5, but got there after Alice
    await answer("Dev", [5])
    await storage.award(g, users["Dev"], "finish", 5, "1", noon(days[2]))  # 6 points
    await storage.award(g, users["Dev"], "reflection", 2, "lesson-1", noon(days[2]))  # depth 2
    for n, name in enumerate(["Eli", "Fay", "Gus", "Hal", "Ivy", "Jo", "Kim", "@everyone **Zed**"]):
        await answer(name, [4] if n % 2 else [3, 4])  # 1 or 2 points
    await answer("Lou", [5])
    return users


def board_lines(message: dict) -> list[str]:
    return message["embeds"][0]["description"].split("\n")


async def test_leaderboard_ranks_ties_pages_and_survives_a_restart(running: Harness) -> None:
    users = await make_board(running)
    running.clock.set(utc(2026, 3, 7, 21))  # Saturday evening
    handle = await running.slash(users["Lou"], "leaderboard")
    await handle.response()
    assert handle.ephemeral
    message = handle.message
    embed = message["embeds"][0]
    assert embed["title"] == "Leaderboard · All time"
    lines = board_lines(message)
    assert lines[0].startswith("**1.** Dev · **6** pts · 🔥 1 · ✨ 2")
    assert lines[1].startswith("**2.** Alice · **5** pts · 🔥 5")
    assert lines[2].startswith("**3.** Cara · **5** pts · 🔥 5")  # same points and streak: Alice was first
    assert lines[3].startswith("**4.** Bob · **5** pts · 🔥 3")
    assert len(lines) == 10
    # The caller (1 point, last of the single-pointers by id order) is on page 2, yet their line is shown.
    you = embed["fields"][0]
    assert you["name"] == "You · Lou" and you["value"].startswith("**#") and "of 13" in you["value"]
    assert "Page 1/2" in embed["footer"]["text"]
    # Display names are safe: no pings, markdown escaped.
    page2_handle = await running.fake.click(message, buttons(message)["Next"], users["Lou"])
    await page2_handle.response()
    page2 = running.fake.message(int(message["id"]))
    text = "\n".join(board_lines(page2))
    assert "@\u200beveryone \\*\\*Zed\\*\\*" in text and "@everyone" not in text
    assert "Page 2/2" in page2["embeds"][0]["footer"]["text"] and board_lines(page2)[0].startswith("**11.**")
    # After a restart the buttons on the old message still page.
    await running.restart()
    back = await running.fake.click(page2, buttons(page2)["Previous"], users["Lou"])
    await back.response()
    assert board_lines(running.fake.message(int(message["id"])))[0].startswith("**1.** Dev")
    # Someone else's buttons are refused, privately.
    other = await running.fake.click(page2, buttons(page2)["Next"], users["Alice"])
    assert "someone else's list" in await other.wait_text() and other.ephemeral


async def test_leaderboard_page_out_of_range_shows_last_page(running: Harness) -> None:
    users = await make_board(running)
    handle = await running.slash(users["Alice"], "leaderboard", {"page": 99})
    await handle.response()
    embed = handle.message["embeds"][0]
    assert "Page 2/2" in embed["footer"]["text"] and board_lines(handle.message)[0].startswith("**11.**")
    assert embed["fields"][0]["value"].startswith("**#2** of 13")


async def test_leaderboard_empty_and_for_a_member_without_points(running: Harness) -> None:
    handle = await running.slash(running.studio.alice, "leaderboard", {"period": "week"})
    await handle.response()
    embed = handle.message["embeds"][0]
    assert "No points yet" in embed["description"] and "No points in this period yet" in embed["fields"][0]["value"]
    assert not handle.message.get("components")


async def test_week_and_month_follow_local_midnight(running: Harness) -> None:
    storage = await setup_server(running)  # Europe/Berlin; now: Monday 2 March 13:00 local
    g, alice = running.studio.guild, running.studio.alice
    for amount, moment in [(1, utc(2026, 3, 1, 22, 30)),     # Sunday 23:30 Berlin: last week, this month
                           (10, utc(2026, 3, 1, 23, 30)),    # Monday 00:30 Berlin: this week
                           (100, utc(2026, 2, 28, 22, 30)),  # 28 Feb 23:30 Berlin: last month
                           (1000, utc(2026, 2, 28, 23, 30))]:  # 1 March 00:30 Berlin: this month
        await storage.award(g, alice, "finish", amount, str(amount), moment)
    await storage.award(g, alice, "reflection", 2, "lesson-1", utc(2026, 3, 2, 9))
    await storage.award(g, alice, "reflection", 3, "lesson-0", utc(2026, 2, 20, 9))
    expected = {"week": (10, 2), "month": (1011, 2), "all": (1111, 5), "season": (1111, 5)}
    for period, (points, depth) in expected.items():
        handle = await running.slash(alice, "leaderboard", {"period": period})
        await handle.response()
        assert f"**{points:,}** pts · 🔥 0 · ✨ {depth}" in board_lines(handle.message)[0], period
    # The week's running total now follows new points (the triggers), and matches the ledger.
    await storage.award(g, alice, "finish", 5, "new", utc(2026, 3, 2, 12))
    handle = await running.slash(alice, "leaderboard", {"period": "week"})
    await handle.response()
    assert "**15** pts" in board_lines(handle.message)[0]
    assert await storage.stored_board_totals(g) == await storage.board_totals_from_ledger(g)


async def test_new_season_through_buttons_and_its_boundary(running: Harness) -> None:
    storage = await setup_server(running)
    g, s = running.studio.guild, running.studio
    other_admin = running.fake.add_member(g, "Sam", admin=True)
    await storage.touch_member(g, s.alice, "Alice", noon(MON))
    await checkin(storage, g, s.alice, MON - timedelta(days=3))
    await checkin(storage, g, s.bob, MON - timedelta(days=2))
    handle = await running.slash(s.admin, "coach new-season", {"name": "Spring Sprint"})
    prompt = await handle.wait_text()
    assert "Spring Sprint" in prompt and handle.ephemeral
    ids = buttons(handle.message)
    # Another admin's click counts for nothing.
    refused = await running.fake.click(handle.message, ids["Start the new season"], other_admin)
    assert "Only the admin who asked" in await refused.wait_text() and refused.ephemeral
    assert await storage.count_seasons(g) == 0
    started_at = utc(2026, 3, 2, 12, 10)
    running.clock.set(started_at)
    ok = await running.fake.click(handle.message, ids["Start the new season"], s.admin)
    await ok.response()
    assert "Spring Sprint** has started" in running.fake.message(int(handle.message["id"]))["content"]
    assert await storage.count_seasons(g) == 1
    assert not buttons(running.fake.message(int(handle.message["id"])))  # the buttons are gone after confirming
    # The boundary: a point earned at the start second belongs to the new season, one a second before doesn't.
    await storage.award(g, s.bob, "finish", 5, "before", started_at - timedelta(seconds=1))
    await storage.award(g, s.alice, "finish", 5, "at", started_at)
    await checkin(storage, g, s.alice, MON, when=started_at + timedelta(hours=1))
    default = await running.slash(s.bob, "leaderboard")
    await default.response()
    embed = default.message["embeds"][0]
    assert embed["title"].startswith("Leaderboard · Season: Spring Sprint")
    assert board_lines(default.message) == ["**1.** Alice · **6** pts · 🔥 2 · ✨ 0"]
    assert "No points in this period yet" in embed["fields"][0]["value"]
    everything = await running.slash(s.bob, "leaderboard", {"period": "all"})
    await everything.response()
    assert [line.split(" · ")[0] for line in board_lines(everything.message)] == ["**1.** Alice", "**2.** Bob"]
    assert "**6** pts" in board_lines(everything.message)[1]  # Bob's 1 + 5: all history stays
    # Default name: Season 2, and cancelling changes nothing.
    second = await running.slash(s.admin, "coach new-season")
    assert "Season 2" in await second.wait_text() and "closes **Spring Sprint**" in await second.wait_text()
    cancel = await running.fake.click(second.message, buttons(second.message)["Cancel"], s.admin)
    await cancel.response()
    assert await storage.count_seasons(g) == 1


async def test_new_season_is_for_admins(running: Harness) -> None:
    with pytest.raises(FakeDiscordError, match="default_member_permissions"):
        await running.slash(running.studio.alice, "coach new-season")


# ============================================================================ streaks end to end, /stats


async def answer_now(h: Harness, user: int, status: str = "finished") -> str:
    handle = await h.slash(user, "checkin", {"status": status})
    return await handle.wait_text()


async def test_streak_rules_through_the_scheduler(harness: Harness) -> None:
    """Real rounds from the scheduler; a day the bot was down, away days, a missed round, an edited answer
    and a weekday change."""
    await harness.start()
    storage = await setup_server(harness)
    g, alice, bob = harness.studio.guild, harness.studio.alice, harness.studio.bob

    async def round_on(day: date) -> None:
        await at(harness, datetime(day.year, day.month, day.day, 19, 0, 5, tzinfo=UTC))

    async def stats_text(user: int) -> str:
        handle = await harness.slash(user, "stats")
        await handle.wait_text()
        return "\n".join(f"{f['name']}: {f['value']}" for f in handle.message["embeds"][0]["fields"])

    await round_on(MON)
    await answer_now(harness, alice)
    await round_on(MON + timedelta(days=1))
    await answer_now(harness, alice, "skipped")  # showing up honestly counts
    # Wednesday: the bot is down all evening; the round is never posted and breaks nobody.
    await harness.stop()
    harness.clock.set(utc(2026, 3, 5, 12))
    await harness.start()
    storage = harness.bot.storage
    assert await storage.round_on(g, "2026-03-04") is None
    await round_on(MON + timedelta(days=3))
    await answer_now(harness, alice, "unfinished")
    assert "🔥 **3** now" in await stats_text(alice)
    # Friday and Saturday away: unanswered rounds neither count nor break.
    away = await harness.slash(alice, "me away", {"until": "2026-03-07"})
    assert "2026-03-05" in await away.wait_text() and "2026-03-07" in await away.wait_text()
    await round_on(MON + timedelta(days=4))
    await round_on(MON + timedelta(days=5))
    await round_on(MON + timedelta(days=6))  # Sunday: open, not answered yet
    text = await stats_text(alice)
    assert "🔥 **3** now · best **3**" in text
    assert "away: neither counts nor breaks" in text and "still open" in text
    # Editing an answer changes nothing about the streak.
    harness.clock.set(utc(2026, 3, 8, 20))
    assert "(+1 point)" in await answer_now(harness, alice, "finished")
    assert "earlier answer was updated" in await answer_now(harness, alice, "skipped")
    assert "🔥 **4** now · best **4**" in await stats_text(alice)
    # Monday open; Tuesday posted: Monday was missed, the streak resets, the best stays.
    await round_on(MON + timedelta(days=7))
    await round_on(MON + timedelta(days=8))
    text = await stats_text(alice)
    assert "🔥 **0** now · best **4**" in text and "missed: streak reset (was 4)" in text
    # Weekdays change to Mon/Wed/Fri: only posted rounds count, the gaps don't break anything.
    await answer_now(harness, alice)
    await harness.setup_checkin("20:00", "Europe/Berlin", "mon,wed,fri")
    await round_on(MON + timedelta(days=9))   # Wednesday
    await answer_now(harness, alice)
    await round_on(MON + timedelta(days=10))  # Thursday: no round
    await round_on(MON + timedelta(days=11))  # Friday
    await answer_now(harness, alice)
    assert await storage.round_on(g, "2026-03-12") is None
    assert "🔥 **3** now · best **4**" in await stats_text(alice)
    # The leaderboard uses the same streaks.
    latest = await storage.latest_round(g)
    expected = await member_streak(storage, g, alice)
    assert (await storage.current_streaks(g, [alice, bob], latest.local_date)) == {alice: expected.current, bob: 0}
    board_handle = await harness.slash(bob, "leaderboard")
    await board_handle.response()
    assert board_lines(board_handle.message)[0].startswith("**1.** Alice · **7** pts · 🔥 3")
    # /me back ends the away time; a second /me back says there is nothing to end.
    await (await harness.slash(alice, "me away", {"until": "2026-03-20"})).wait_text()
    back = await harness.slash(alice, "me back")
    assert "Welcome back" in await back.wait_text()
    assert await storage.away_periods(g, alice) == [("2026-03-05", "2026-03-07"), ("2026-03-13", "2026-03-13")]
    again = await harness.slash(alice, "me back")
    assert "not marked away" in await again.wait_text() and again.ephemeral


async def test_end_to_end_round_buttons_then_board_and_stats(running: Harness) -> None:
    """Real round, real buttons and forms, then /leaderboard and /stats see the answers."""
    await setup_server(running)
    await at(running, utc(2026, 3, 2, 19, 0, 5))
    (round_message,) = running.round_messages()
    for user, label in ((running.studio.alice, "Finished"), (running.studio.bob, "Skipped")):
        click = await running.fake.click(round_message, buttons(round_message)[label], user)
        await click.response()
        form = click.modal
        fields = {comp["custom_id"]: ("Night Drive EP" if comp["custom_id"] == "project" else "")
                  for row in form["components"] for comp in (row.get("components") or [row.get("component")])}
        submitted = await running.fake.submit_modal(form["custom_id"], fields, user)
        assert "(+1 point)" in await submitted.wait_text()
    handle = await running.slash(running.studio.bob, "leaderboard", {"period": "week"})
    await handle.response()
    assert board_lines(handle.message) == ["**1.** Alice · **1** pts · 🔥 1 · ✨ 0",
                                           "**2.** Bob · **1** pts · 🔥 1 · ✨ 0"]
    assert handle.message["embeds"][0]["fields"][0]["value"].startswith("**#2** of 2")
    stats = await running.slash(running.studio.bob, "stats", {"member": running.studio.alice})
    await stats.wait_text()
    fields = {f["name"].split(",")[0]: f["value"] for f in stats.message["embeds"][0]["fields"]}
    assert fields["Streak"] == "🔥 **1** now · best **1**"
    assert fields["Last 1 round"] == "🔥 Mon 2 Mar · answered: finished (+1) → 1"
    assert "1 started · 0 finished · 0 dropped · 1 active" in fields["Projects"]


@pytest.mark.parametrize("until,expected", [
    ("2026-03-01", "already behind us"),
    ("2026-05-02", "more than 60 days ahead"),
    ("soon", "is not a date"),
])
async def test_me_away_bad_input_changes_nothing(running: Harness, until: str, expected: str) -> None:
    await setup_server(running)
    handle = await running.slash(running.studio.alice, "me away", {"until": until})
    assert expected in await handle.wait_text() and handle.ephemeral
    assert await running.bot.storage.away_periods(running.studio.guild, running.studio.alice) == []


async def test_stats_heatmap_and_round_explanations(running: Harness) -> None:
    storage = await setup_server(running)
    g, alice = running.studio.guild, running.studio.alice
    today = date(2026, 3, 20)  # a Friday
    running.clock.set(utc(2026, 3, 20, 12))
    start = today - timedelta(days=30)
    statuses = {}
    for i in range(31):
        day = start + timedelta(days=i)
        await posted_round(storage, g, running.studio.channel, day)
        if day == today:
            continue  # today's round is still open
        if i % 7 == 3:
            continue  # missed
        statuses[day] = ["finished", "unfinished", "skipped"][i % 3]
        await checkin(storage, g, alice, day, statuses[day])
    await storage.set_away(g, alice, (today - timedelta(days=2)).isoformat(), today.isoformat())
    project = await storage.create_project(g, alice, "Night Drive EP", None, noon(start))
    await storage.close_project(project.id, "finished", noon(start))
    await storage.create_project(g, alice, "B-side", None, noon(start))
    dropped = await storage.create_project(g, alice, "Remix", None, noon(start))
    await storage.close_project(dropped.id, "dropped", noon(start))
    await storage.award(g, alice, "reflection", 2, "lesson-1", noon(start))
    handle = await running.slash(alice, "stats")
    await handle.wait_text()
    assert handle.deferred and handle.ephemeral
    message = handle.message
    embed = message["embeds"][0]
    assert embed["image"]["url"] == "attachment://heatmap.png"
    fields = {f["name"].split(",")[0]: f["value"] for f in embed["fields"]}
    assert "3 started · 1 finished · 1 dropped · 1 active" in fields["Projects"]
    assert "33%" in fields["Projects"] and "✨ **2**" in fields["Depth points"]
    assert fields["Check-in rate"].startswith("**")
    recent = fields["Last 14 rounds"].split("\n")
    assert len(recent) == 14 and recent[-1] == "🌴 Fri 20 Mar · away: neither counts nor breaks → 5"
    assert recent[-2] == "🔥 Thu 19 Mar · answered while away: skipped (+1) → 5"
    missed_day = next(start + timedelta(days=i) for i in range(31) if i % 7 == 3
                      and start + timedelta(days=i) >= today - timedelta(days=13))
    assert any(line.startswith(f"▫️ {missed_day:%a} {missed_day.day} Mar · missed") for line in recent)
    # The picture: decode it and check known days' cells.
    png = message["_files"]["heatmap.png"]
    img = Image.open(io.BytesIO(png)).convert("RGB")
    first = grid_start(today, board.HEATMAP_WEEKS)

    def colour(day: date) -> tuple[int, int, int]:
        x, y = cell_origin((day - first).days // 7, day.weekday())
        return img.getpixel((x + CELL // 2, y + CELL // 2))

    for day, status in statuses.items():
        assert colour(day) == COLORS[status], day
    assert colour(missed_day) == COLORS["missed"]
    assert colour(today) == COLORS["none"]  # open
    assert colour(start - timedelta(days=3)) == COLORS["none"]  # no round


async def test_stats_for_someone_who_never_checked_in(running: Harness) -> None:
    await setup_server(running)
    handle = await running.slash(running.studio.alice, "stats", {"member": running.studio.bob})
    text = await handle.wait_text()
    assert "Bob hasn't checked in here yet" in text and handle.ephemeral
    assert not handle.message.get("_files")
    mine = await running.slash(running.studio.alice, "stats")
    assert "You haven't checked in here yet" in await mine.wait_text()


# ============================================================================ weekly recap


async def test_weekly_recap_once_with_the_first_round_of_the_week(harness: Harness) -> None:
    await harness.start()
    storage = await setup_server(harness)
    g, alice, bob = harness.studio.guild, harness.studio.alice, harness.studio.bob
    carol = harness.fake.add_member(g, "Carol")
    for i in range(7):  # Monday 2 .. Sunday 8 March: seven rounds
        day = MON + timedelta(days=i)
        await at(harness, datetime(day.year, day.month, day.day, 19, 0, 5, tzinfo=UTC))
        await answer_now(harness, alice)
        if i % 2 == 0:
            await answer_now(harness, bob, "unfinished")
        if i == 0:
            await answer_now(harness, carol, "skipped")
        if i == 4:
            await (await harness.slash(bob, "project start", {"name": "@everyone Night **Drive**"})).wait_text()
            done = await harness.slash(bob, "project finish", {"name": "@everyone Night **Drive**"})
            await done.wait_text()
    assert await storage.has_recap(g, "2026-02-23")  # the first round ever: the week before had no rounds
    recaps = lambda: [m for m in harness.fake.messages[harness.studio.channel]  # noqa: E731
                      if m.get("embeds") and m["embeds"][0]["title"].startswith("Weekly recap")]
    assert recaps() == []
    await at(harness, utc(2026, 3, 9, 19, 0, 5))  # Monday: the first round of the new week
    (recap,) = await eventually(recaps)
    embed = recap["embeds"][0]
    assert embed["title"] == "Weekly recap · 2 Mar – 8 Mar 2026"
    intros = [line.format(server="Night Owls Studio") for line in harness.bot.prompts.replies["recap_intro"]]
    assert embed["description"] in intros
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Rounds held"] == "7"
    assert fields["Check-in rate"].startswith("**57%** · 12 check-ins over 7 rounds from 3 active members")
    assert fields["Finished this week (1)"] == "✅ **@\u200beveryone Night \\*\\*Drive\\*\\*** · Bob"
    assert fields["Longest streaks"].split("\n") == ["🔥 **7** · Alice", "🔥 **1** · Bob"]  # Carol: 0
    assert recap["mention_everyone"] is False and recap["mentions"] == []
    assert recap["_allowed_mentions"] == {"parse": []}
    # Exactly once: later rounds that week, a restart, and the next week's recap is about that week.
    await at(harness, utc(2026, 3, 10, 19, 0, 5))
    await harness.restart()
    await at(harness, utc(2026, 3, 11, 19, 0, 5))
    assert len(recaps()) == 1


async def test_no_recap_for_a_week_without_rounds(running: Harness) -> None:
    storage = await setup_server(running)
    g = running.studio.guild
    assert await posted_round(storage, g, running.studio.channel, MON - timedelta(days=14))
    await at(running, utc(2026, 3, 2, 19, 0, 5))  # the first round of the week: the week of 23 Feb had none
    assert len(running.round_messages()) == 1
    assert (await storage.fetchone("SELECT state FROM recaps WHERE guild_id = ?", (g,)))[0] == "empty"
    assert [m for m in running.fake.messages[running.studio.channel]
            if m["embeds"] and m["embeds"][0]["title"].startswith("Weekly recap")] == []


# ============================================================================ export, forget, purge


async def seed_two_servers(h: Harness) -> tuple[int, int]:
    storage = await setup_server(h)
    g, alice, bob = h.studio.guild, h.studio.alice, h.studio.bob
    other = h.fake.add_guild("Other Place")
    h.fake.add_channel(other, "general")
    await h.fake.sync()
    await storage.touch_member(g, alice, "Alice", noon(MON))
    await storage.touch_member(g, bob, "=HYPERLINK(evil)", noon(MON))
    project = await storage.create_project(g, alice, "Night Drive EP", None, noon(MON))
    await checkin(storage, g, alice, MON, "finished", note="Bounced the intro\nnext: drums", project_id=project.id)
    await checkin(storage, g, alice, MON + timedelta(days=1), "skipped", note="=cmd|' /C calc'!A0")
    await checkin(storage, g, bob, MON, "unfinished")
    await storage.set_away(g, alice, "2026-03-10", "2026-03-12")
    await storage.award(g, alice, "reflection", 2, "lesson-1", noon(MON))
    await storage.touch_member(other, alice, "Alice elsewhere", noon(MON))
    await checkin(storage, other, alice, MON, "finished", note="other server")
    await storage.create_project(other, alice, "Other EP", None, noon(MON))
    await storage.set_away(other, alice, "2026-03-10", "2026-03-12")
    for guild in (g, other):
        await storage.execute("INSERT INTO reflections (guild_id, user_id, lesson_id, body, created_at, "
                              "updated_at) VALUES (?, ?, 'lesson-1', 'thoughts', 0, 0)", (guild, alice))
        await storage.execute("INSERT INTO dm_schedules (guild_id, user_id, time_local, timezone, days, "
                              "created_at, updated_at) VALUES (?, ?, '20:00', 'UTC', 127, 0, 0)", (guild, alice))
    return g, other


async def test_admin_export_csv_contents(running: Harness) -> None:
    g, other = await seed_two_servers(running)
    handle = await running.slash(running.studio.admin, "coach export")
    text = await handle.wait_text()
    assert "**3** rows" in text and handle.ephemeral and handle.deferred
    (name, data), = handle.message["_files"].items()
    assert name == f"bounce-checkins-{g}.csv"
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert rows == [
        ["date", "member_id", "name", "status", "project", "note"],
        ["2026-03-02", str(running.studio.alice), "Alice", "finished", "Night Drive EP",
         "Bounced the intro\nnext: drums"],
        ["2026-03-02", str(running.studio.bob), "'=HYPERLINK(evil)", "unfinished", "", ""],
        ["2026-03-03", str(running.studio.alice), "Alice", "skipped", "", "'=cmd|' /C calc'!A0"],
    ]
    assert "other server" not in data.decode()


async def test_admin_export_is_cut_into_files_under_the_limit(running: Harness, monkeypatch) -> None:  # noqa: ANN001
    storage = await setup_server(running)
    g = running.studio.guild
    monkeypatch.setattr(board, "ATTACHMENT_LIMIT", 4096)
    monkeypatch.setattr("cogs.board.EXPORT_BATCH", 50)  # several batches from the database too
    for u in range(12):
        await storage.touch_member(g, 9000 + u, f"Member {u}", noon(MON))
        for i in range(20):
            await checkin(storage, g, 9000 + u, MON - timedelta(days=i), note=f"note {u}-{i} " + "x" * 40)
    handle = await running.slash(running.studio.admin, "coach export")
    first = await handle.wait_text()
    parts = int(first.split("comes in ")[1].split(" files")[0])
    followups = await handle.wait_followups(parts)
    files = {}
    for message in followups:
        files.update(message["_files"])
    assert len(files) >= 5 and all(len(b) <= 4096 for b in files.values())
    assert "comes in" in followups[0]["content"]
    rows = []
    for name in sorted(files):
        got = list(csv.reader(io.StringIO(files[name].decode())))
        assert got[0] == list(board.CSV_HEADER)
        rows += got[1:]
    assert len(rows) == 240 and len({(r[0], r[1]) for r in rows}) == 240
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)


async def test_export_by_a_non_admin_gets_no_data(running: Harness) -> None:
    await seed_two_servers(running)
    before = len(running.fake.requests)
    with pytest.raises(FakeDiscordError, match="default_member_permissions"):
        await running.slash(running.studio.alice, "coach export")
    assert not any(r.files for r in running.fake.requests[before:])


async def test_export_needs_manage_server_even_if_the_command_was_opened_up(running: Harness) -> None:
    """A server may open /coach to everyone in Integrations; everyone's check-ins still need Manage Server."""
    await seed_two_servers(running)
    coach = next(c for c in running.fake.commands[None] if c["name"] == "coach")
    coach["default_member_permissions"] = None  # the server's override, as Discord would apply it
    before = len(running.fake.requests)
    handle = await running.slash(running.studio.alice, "coach export")
    assert "Manage Server" in await handle.wait_text() and handle.ephemeral
    assert not any(r.files for r in running.fake.requests[before:])


async def test_me_export_is_mine_in_this_server_only(running: Harness) -> None:
    g, other = await seed_two_servers(running)
    handle = await running.slash(running.studio.alice, "me export")
    await handle.wait_text()
    assert handle.ephemeral
    (name, raw), = handle.message["_files"].items()
    assert name == f"bounce-me-{g}.json"
    doc = json.loads(raw)
    assert doc["server_id"] == str(g) and doc["member_id"] == str(running.studio.alice)
    assert doc["points"] == {"checkin_and_finish": 2, "adjustments": 0, "board": 2, "depth": 2}
    data = doc["data"]
    assert [c["local_date"] for c in data["checkins"]] == ["2026-03-02", "2026-03-03"]
    assert {c["user_id"] for table in data.values() for c in table} == {running.studio.alice}
    assert {c["guild_id"] for table in data.values() for c in table} == {g}
    assert [p["name"] for p in data["projects"]] == ["Night Drive EP"]
    assert "other server" not in raw.decode()


async def test_me_forget_deletes_exactly_my_rows_here(running: Harness) -> None:
    g, other = await seed_two_servers(running)
    storage = running.bot.storage
    alice, bob = running.studio.alice, running.studio.bob
    tables = ["checkins", "projects", "points", "members", "away_periods", "reflections", "dm_schedules",
              "board_totals"]

    async def snapshot() -> dict[tuple[str, int, int], int]:
        return {(t, gid, uid): await count_rows(storage, t, gid, uid)
                for t in tables for gid in (g, other) for uid in (alice, bob)}

    before = await snapshot()
    handle = await running.slash(alice, "me forget")
    assert "can't be undone" in await handle.wait_text() and handle.ephemeral
    ids = buttons(handle.message)
    refused = await running.fake.click(handle.message, ids["Delete my data"], bob)
    assert "Only the member whose data this is" in await refused.wait_text() and refused.ephemeral
    assert await snapshot() == before
    ok = await running.fake.click(handle.message, ids["Delete my data"], alice)
    await ok.response()
    content = running.fake.message(int(handle.message["id"]))["content"]
    assert "Deleted 2 check-ins, 1 project, 3 points entries, 1 away period" in content
    if "reflections" in tables:
        assert "1 reflection" in content
    after = await snapshot()
    for (table, gid, uid), count in before.items():
        if gid == g and uid == alice:
            assert after[(table, gid, uid)] == 0, table
        else:
            assert after[(table, gid, uid)] == count, (table, gid, uid)
    assert before[("checkins", other, alice)] == 1 and before[("checkins", g, bob)] == 1
    assert await storage.stored_board_totals(g) == await storage.board_totals_from_ledger(g)
    assert not buttons(running.fake.message(int(handle.message["id"])))  # the confirmation is used up


async def test_me_forget_confirm_expires(running: Harness) -> None:
    await seed_two_servers(running)
    handle = await running.slash(running.studio.alice, "me forget")
    await handle.wait_text()
    running.clock.set(running.clock.now() + timedelta(minutes=16))
    late = await running.fake.click(handle.message, buttons(handle.message)["Delete my data"], running.studio.alice)
    assert "expired" in await late.wait_text() and late.ephemeral
    assert await count_rows(running.bot.storage, "checkins", running.studio.guild, running.studio.alice) == 2


async def test_removed_server_is_purged_after_30_days_unless_added_back(running: Harness) -> None:
    g, other = await seed_two_servers(running)
    storage = running.bot.storage
    kept = running.fake.add_guild("Comes Back")
    await running.fake.sync()
    await checkin(storage, kept, running.studio.alice, MON)
    removed = utc(2026, 3, 2, 12)
    await running.fake.remove_guild_live(g)
    await running.fake.remove_guild_live(kept)
    await until(lambda: storage.removed_at(kept))
    assert await storage.removed_at(g) == to_unix(removed)
    assert (await storage.get_guild(g)).removed_at == to_unix(removed)
    await running.fake.add_guild_live("Comes Back", guild_id=kept)
    await until(lambda: _none(storage.removed_at(kept)))
    await at(running, removed + timedelta(days=29, hours=23))
    assert await count_rows(storage, "checkins", g) == 3
    await at(running, removed + timedelta(days=30, minutes=1))
    for table in ("checkins", "projects", "points", "members", "away_periods", "rounds", "guild_settings",
                  "board_totals", "guild_removals"):
        assert await count_rows(storage, table, g) == 0, table
    assert await count_rows(storage, "checkins", other) == 1
    assert await count_rows(storage, "checkins", kept) == 1


async def test_server_removed_while_offline_is_marked_at_next_start(harness: Harness) -> None:
    await harness.start()
    await harness.setup_checkin("20:00", "Europe/Berlin")
    await harness.stop()
    gone = harness.fake.guilds.pop(harness.studio.guild)  # kicked while the bot was down: no event reaches it
    for cid in gone.channels:
        harness.fake.channel_guild.pop(cid, None)
    await harness.start()
    assert await eventually_async(lambda: harness.bot.storage.removed_at(harness.studio.guild))


async def eventually_async(probe, timeout: float = 3.0):  # noqa: ANN001, ANN201, ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if value or loop.time() > deadline:
            return value
        await asyncio.sleep(0.02)
