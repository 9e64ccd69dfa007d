"""Admin corrections (/coach adjust, /coach undo), streak freezes and role rewards, through the stand-in."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, date, datetime, timedelta

import pytest

from coach.clock import to_unix
from coach.storage import RoleReward
from tests.conftest import Harness
from tests.databases import sqlite_only
from tests.fakediscord.server import FakeDiscordError
from tests.fakediscord.world import BOT_ROLE_DEFAULT, MANAGE_ROLES
from tests.test_board import MON, answer_now, checkin, noon, posted_round, setup_server, utc


async def text_of(h: Harness, user: int, command: str, options: dict | None = None) -> str:
    handle = await h.slash(user, command, options)
    text = await handle.wait_text()
    assert handle.ephemeral
    return text


async def ledger_agrees(h: Harness) -> None:
    storage, g = h.bot.storage, h.studio.guild
    assert await storage.stored_board_totals(g) == await storage.board_totals_from_ledger(g)


# ============================================================================ corrections


async def test_an_adjustment_shows_on_the_board_and_in_both_exports(running: Harness) -> None:
    storage = await setup_server(running)
    g, alice, bob, admin = running.studio.guild, running.studio.alice, running.studio.bob, running.studio.admin
    for i in range(3):
        await posted_round(storage, g, running.studio.channel, MON + timedelta(days=i))
        await checkin(storage, g, alice, MON + timedelta(days=i))
    await checkin(storage, g, bob, MON)
    await storage.touch_member(g, alice, "Alice", noon(MON))
    await storage.touch_member(g, bob, "Bob", noon(MON))
    running.clock.set(utc(2026, 3, 4, 21))
    await storage.window_period(g, "week", to_unix(utc(2026, 3, 1, 23)))  # a week board exists already
    text = await text_of(running, admin, "coach adjust", {"member": bob, "points": 4,
                                                          "reason": "Hosted the feedback session"})
    assert "Added **4** points to Bob" in text and "**5**" in text
    await ledger_agrees(running)
    handle = await running.slash(alice, "leaderboard")
    await handle.response()
    lines = handle.message["embeds"][0]["description"].split("\n")
    assert lines[0].startswith("**1.** Bob · **5** pts") and lines[1].startswith("**2.** Alice · **3** pts")
    text = await text_of(running, admin, "coach adjust", {"member": bob, "points": -2, "reason": "double count"})
    assert "Took **2** points from Bob" in text and "**3**" in text
    await ledger_agrees(running)
    await storage.rebuild_board_totals(g)
    await ledger_agrees(running)

    handle = await running.slash(bob, "me export")
    await handle.wait_text()
    (_, raw), = handle.message["_files"].items()
    doc = json.loads(raw)
    assert doc["points"]["board"] == 3 and doc["points"]["adjustments"] == 2
    assert [(c["kind"], c["amount"], c["reason"], c["admin_id"]) for c in doc["data"]["corrections"]] == [
        ("adjust", 4, "Hosted the feedback session", admin), ("adjust", -2, "double count", admin)]

    handle = await running.slash(admin, "coach export")
    await handle.wait_text()
    followups = await handle.wait_followups(2)
    files: dict[str, bytes] = {}
    for message in followups:
        files.update(message.get("_files") or {})
    rows = list(csv.reader(io.StringIO(files[f"bounce-corrections-{g}.csv"].decode())))
    assert rows[0] == ["when_utc", "member_id", "name", "kind", "points", "date", "status", "reason", "admin_id"]
    assert [r[1:5] + [r[7], r[8]] for r in rows[1:]] == [
        [str(bob), "Bob", "adjust", "4", "Hosted the feedback session", str(admin)],
        [str(bob), "Bob", "adjust", "-2", "double count", str(admin)]]


async def test_adjust_refuses_bad_input_and_changes_nothing(running: Harness) -> None:
    storage = await setup_server(running)
    g, bob, admin = running.studio.guild, running.studio.bob, running.studio.admin
    stranger = running.fake.add_user("Stranger")
    cases = [
        ({"member": bob, "points": 0, "reason": "x"}, "0 points changes nothing"),
        ({"member": bob, "points": 500, "reason": "x"}, "between -100 and 100"),
        ({"member": bob, "points": 2, "reason": "y" * 201}, "201 characters"),
        ({"member": bob, "points": -1, "reason": "oops"}, "below zero"),
        ({"member": stranger, "points": 1, "reason": "x"}, "isn't a member of this server"),
        ({"member": running.fake.bot_user_id, "points": 1, "reason": "x"}, "is a bot"),
    ]
    for options, expected in cases:
        assert expected in await text_of(running, admin, "coach adjust", options), options
    assert await storage.corrections_of(g) == []
    assert await storage.board_points(g, bob) == 0
    with pytest.raises(FakeDiscordError, match="default_member_permissions"):  # /coach is for admins
        await running.slash(bob, "coach adjust", {"member": bob, "points": 5, "reason": "me"})


async def test_undo_removes_a_checkin_and_its_point(running: Harness) -> None:
    storage = await setup_server(running)
    g, alice, admin = running.studio.guild, running.studio.alice, running.studio.admin
    await storage.start_season(g, "Spring", noon(MON - timedelta(days=1)))
    for i in range(3):
        await posted_round(storage, g, running.studio.channel, MON + timedelta(days=i))
        await checkin(storage, g, alice, MON + timedelta(days=i), "unfinished" if i == 1 else "finished")
    await storage.touch_member(g, alice, "Alice", noon(MON))
    running.clock.set(utc(2026, 3, 4, 21))
    assert (await storage.get_checkin(g, alice, "2026-03-03")) is not None
    text = await text_of(running, admin, "coach undo", {"member": alice, "date": "2026-03-03",
                                                        "reason": "answered for a friend"})
    assert "Removed Alice's check-in of 2026-03-03 (unfinished)" in text and "**2**" in text
    assert await storage.get_checkin(g, alice, "2026-03-03") is None
    assert await storage.board_points(g, alice) == 2
    await ledger_agrees(running)
    stats = await running.slash(alice, "stats")
    await stats.wait_text()
    assert "🔥 **1** now" in stats.message["embeds"][0]["fields"][0]["value"]  # Tuesday now missed
    again = await text_of(running, admin, "coach undo", {"member": alice, "date": "2026-03-03"})
    assert "no check-in on 2026-03-03" in again
    assert "couldn't read" in await text_of(running, admin, "coach undo", {"member": alice, "date": "3rd of May"})
    assert "Removed" in await text_of(running, admin, "coach undo", {"member": alice, "date": "today"})
    assert await storage.board_points(g, alice) == 1
    await ledger_agrees(running)
    handle = await running.slash(alice, "me export")
    await handle.wait_text()
    (_, raw), = handle.message["_files"].items()
    undos = [(c["kind"], c["amount"], c["local_date"], c["status"]) for c in json.loads(raw)["data"]["corrections"]]
    assert undos == [("undo", -1, "2026-03-03", "unfinished"), ("undo", -1, "2026-03-04", "finished")]
    # The member may answer that day's round again: a new check-in earns its point again.
    await checkin(storage, g, alice, date(2026, 3, 4))
    assert await storage.board_points(g, alice) == 2
    await ledger_agrees(running)


# ============================================================================ streak freezes


def test_freezes_are_earned_at_seven_held_at_most_two_and_used_on_a_miss() -> None:
    from coach.streaks import RoundDay, compute_streak

    def days(pattern: str) -> list[RoundDay]:  # a answered, m missed, w away, o open
        start = date(2026, 1, 1)
        return [RoundDay(start + timedelta(days=i), "finished" if c == "a" else None, away=c == "w", open=c == "o")
                for i, c in enumerate(pattern)]

    assert compute_streak(days("aaaaaa" + "m")).current == 0                   # 6 in a row: no freeze yet
    seven = compute_streak(days("aaaaaaa" + "m" + "a"))
    assert (seven.current, seven.freezes) == (8, 0) and seven.days[7].outcome == "frozen"
    assert "a streak freeze earned (1 held)" in seven.days[6].explanation
    assert "kept the streak (0 left)" in seven.days[7].explanation
    assert compute_streak(days("a" * 21)).freezes == 2                         # at most 2 held
    assert compute_streak(days("a" * 14 + "mm" + "a")).current == 15           # two misses, two freezes
    assert compute_streak(days("a" * 14 + "mmm" + "a")).current == 1           # the third breaks it
    # A frozen miss starts the count of answers in a row again; away days and the open round leave it alone.
    assert compute_streak(days("a" * 7 + "m" + "a" * 6 + "m")).current == 0
    assert compute_streak(days("aaa" + "ww" + "aaaa" + "m" + "o")).current == 7
    assert compute_streak(days("a" * 7 + "m" + "a"), freezes=False).current == 1  # /coach freezes off


async def test_a_freeze_keeps_the_streak_everywhere_and_the_reply_says_so_once(running: Harness) -> None:
    storage = await setup_server(running)
    g, alice, bob, admin = running.studio.guild, running.studio.alice, running.studio.bob, running.studio.admin
    first = MON - timedelta(days=10)
    for i in range(9):  # Feb 20..28: Alice answers seven in a row, misses the 27th, answers the 28th
        day = first + timedelta(days=i)
        await posted_round(storage, g, running.studio.channel, day)
        if i != 7:
            await checkin(storage, g, alice, day)
        await checkin(storage, g, bob, day)
    await posted_round(storage, g, running.studio.channel, MON - timedelta(days=1))  # Mar 1: both miss it
    await storage.touch_member(g, alice, "Alice", noon(MON))
    running.clock.set(utc(2026, 3, 2, 19, 0, 5))
    await running.tick()  # Monday's round, for real
    assert len(running.round_messages()) == 1
    handle = await running.slash(alice, "checkin", {"status": "finished"})
    text = await handle.wait_text()
    # The 27th used the freeze earned on the 26th; the 28th started a new run of answers, so the 1st broke it.
    assert "🧊" not in text and "+1 point" in text
    await storage.execute("DELETE FROM checkins WHERE guild_id = ? AND user_id = ? AND local_date = '2026-02-28'",
                          (g, bob))
    await checkin(storage, g, bob, MON - timedelta(days=1))
    # Bob: seven answers (Feb 20..26), the 27th answered, the 28th missed (his freeze covers it), the 1st answered.
    handle = await running.slash(bob, "checkin", {"status": "finished"})
    text = await handle.wait_text()
    assert "🧊" not in text  # told in the reply of the 1st (here written directly), not again
    stats = await running.slash(bob, "stats")
    await stats.wait_text()
    streak_field = stats.message["embeds"][0]["fields"][0]["value"]
    assert streak_field.startswith("🔥 **10** now") and "🧊 **0** streak freezes held · last used Sat 28 Feb" in \
        streak_field
    board_handle = await running.slash(bob, "leaderboard")
    await board_handle.response()
    lines = board_handle.message["embeds"][0]["description"].split("\n")
    assert any("Bob" in line and "🔥 10" in line for line in lines)
    # Switched off: the same history counts without freezes, everywhere.
    assert "**off**" in await text_of(running, admin, "coach freezes", {"state": "off"})
    stats = await running.slash(bob, "stats")
    await stats.wait_text()
    assert stats.message["embeds"][0]["fields"][0]["value"].startswith("🔥 **2** now")
    assert (await storage.current_streaks(g, [bob]))[bob] == 2
    assert "**off**" in await text_of(running, admin, "coach freezes")  # no option: shows the setting
    assert "**on**" in await text_of(running, admin, "coach freezes", {"state": "on"})
    assert (await storage.current_streaks(g, [bob]))[bob] == 10


async def test_the_first_reply_after_a_covered_miss_says_so_once(running: Harness) -> None:
    storage = await setup_server(running)
    g, alice = running.studio.guild, running.studio.alice
    first = MON - timedelta(days=8)
    for i in range(8):  # Feb 22..Mar 1: seven answered, then Mar 1 missed
        day = first + timedelta(days=i)
        await posted_round(storage, g, running.studio.channel, day)
        if i < 7:
            await checkin(storage, g, alice, day)
    running.clock.set(utc(2026, 3, 2, 19, 0, 5))
    await running.tick()
    handle = await running.slash(alice, "checkin", {"status": "unfinished"})
    text = await handle.wait_text()
    assert "🧊 You missed Sun 1 Mar, so a streak freeze kept your streak alive: it's **8** now (0 freezes left)." \
        in text
    again = await running.slash(alice, "checkin", {"status": "finished"})  # an edit of the same answer
    assert "🧊" not in await again.wait_text()
    assert (await storage.current_streaks(g, [alice]))[alice] == 8


# ============================================================================ role rewards


def can_give_roles(h: Harness) -> int:
    """Give the bot Manage Roles and put its role at the top; returns the bot's role id."""
    fake, g = h.fake, h.studio.guild
    bot_role = fake.bot_role_id(g)
    fake.set_role_permissions(g, bot_role, BOT_ROLE_DEFAULT | MANAGE_ROLES)
    fake.set_role_position(g, bot_role, 100)
    return bot_role


async def round_at(h: Harness, day: date) -> None:
    h.clock.set(datetime(day.year, day.month, day.day, 19, 0, 5, tzinfo=UTC))  # 20:00 Berlin
    await h.tick()


async def test_a_role_is_refused_at_setup_when_i_cannot_give_it(running: Harness) -> None:
    storage = await setup_server(running)
    fake, g, admin = running.fake, running.studio.guild, running.studio.admin
    role = fake.add_role(g, "Finisher")
    await fake.sync()
    options = {"kind": "checkins", "threshold": 3, "role": role}
    assert "**Manage Roles**" in await text_of(running, admin, "coach rewards add", options)
    fake.set_role_permissions(g, fake.bot_role_id(g), BOT_ROLE_DEFAULT | MANAGE_ROLES)
    await fake.sync()
    text = await text_of(running, admin, "coach rewards add", options)
    assert "sits above my highest role" in text and "Nothing was stored" in text  # new roles go on top
    assert "@everyone" in await text_of(running, admin, "coach rewards add", {**options, "role": g})
    assert "belongs to a bot" in await text_of(running, admin, "coach rewards add",
                                               {**options, "role": fake.bot_role_id(g)})
    assert await storage.rewards_of(g) == []
    fake.set_role_position(g, fake.bot_role_id(g), 100)
    await fake.sync()
    assert "Added: <@&" in await text_of(running, admin, "coach rewards add", options)
    assert "already a check-ins reward" in await text_of(running, admin, "coach rewards add", options)
    assert len(await storage.rewards_of(g)) == 1
    assert "at 3 check-ins" in await text_of(running, admin, "coach rewards list")


async def test_roles_at_thresholds_once_and_streak_roles_go_when_the_streak_breaks(running: Harness) -> None:
    storage = await setup_server(running)
    fake, g, admin, alice, bob = (running.fake, running.studio.guild, running.studio.admin, running.studio.alice,
                                  running.studio.bob)
    can_give_roles(running)
    regular, on_fire, loyal = fake.add_role(g, "Regular"), fake.add_role(g, "On fire"), fake.add_role(g, "Loyal")
    await fake.sync()
    await storage.set_freezes(g, False, running.clock.now())  # a single miss breaks a streak here
    for options in ({"kind": "checkins", "threshold": 2, "role": regular},
                    {"kind": "streak", "threshold": 2, "role": on_fire},
                    {"kind": "streak", "threshold": 2, "role": loyal, "keep": True}):
        assert "Added" in await text_of(running, admin, "coach rewards add", options)
    await round_at(running, MON)
    await answer_now(running, alice)
    await answer_now(running, bob)
    await running.tick()
    assert fake.role_changes == []  # one check-in each: nothing yet
    await round_at(running, MON + timedelta(days=1))
    await answer_now(running, alice)
    await running.tick()
    assert sorted(fake.role_changes) == sorted(("PUT", g, alice, r) for r in (regular, on_fire, loyal))
    assert {regular, on_fire, loyal} <= fake.member_role_ids(g, alice)
    await answer_now(running, alice, "skipped")  # an edit: no new point, no new change
    await running.tick()
    await running.tick()
    assert len(fake.role_changes) == 3
    # Wednesday both answer (Bob reaches 2 check-ins; his streak broke on Tuesday). Alice misses Thursday's
    # round: when Friday's posts, her streak is broken and the streak role that goes with it is taken back.
    await round_at(running, MON + timedelta(days=2))
    await answer_now(running, alice)
    await answer_now(running, bob)
    await running.tick()
    assert ("PUT", g, bob, regular) in fake.role_changes and ("PUT", g, bob, on_fire) not in fake.role_changes
    await round_at(running, MON + timedelta(days=3))
    await round_at(running, MON + timedelta(days=4))
    await running.tick()  # the tick after a round posts looks at the streaks it may have broken
    assert fake.role_changes[-1] == ("DELETE", g, alice, on_fire)
    assert on_fire not in fake.member_role_ids(g, alice)
    assert {regular, loyal} <= fake.member_role_ids(g, alice)  # check-ins stay reached; `keep` holds
    changes = len(fake.role_changes)
    await round_at(running, MON + timedelta(days=5))
    await running.tick()
    assert len(fake.role_changes) == changes  # taken once
    # Back on a streak: given again.
    await answer_now(running, alice)
    await round_at(running, MON + timedelta(days=6))
    await answer_now(running, alice)
    await running.tick()
    assert fake.role_changes[-1] == ("PUT", g, alice, on_fire)


async def test_failures_show_in_coach_show(running: Harness) -> None:
    storage = await setup_server(running)
    fake, g, admin, alice = running.fake, running.studio.guild, running.studio.admin, running.studio.alice
    can_give_roles(running)
    role = fake.add_role(g, "Regular")
    await fake.sync()
    assert "Added" in await text_of(running, admin, "coach rewards add",
                                    {"kind": "checkins", "threshold": 1, "role": role})
    fake.delete_role(g, role)
    await fake.sync()
    await round_at(running, MON)
    await answer_now(running, alice)
    await running.tick()
    assert fake.role_changes == []  # known before asking Discord
    handle = await running.slash(admin, "coach show")
    await handle.response()
    fields = {f["name"]: f["value"] for f in handle.message["embeds"][0]["fields"]}
    assert "its role was deleted" in fields["Role rewards"]
    assert (await storage.rewards_of(g))[0].last_error == "role_deleted"


async def test_the_weekly_role_rotates_with_the_recap(running: Harness) -> None:
    await setup_server(running)
    fake, g, admin, alice, bob = (running.fake, running.studio.guild, running.studio.admin, running.studio.alice,
                                  running.studio.bob)
    can_give_roles(running)
    crown = fake.add_role(g, "Producer of the week")
    await fake.sync()
    assert "top 1 of last week" in await text_of(running, admin, "coach rewards weekly", {"role": crown})
    await round_at(running, MON)
    await answer_now(running, alice)
    await answer_now(running, bob)
    await round_at(running, MON + timedelta(days=1))
    await answer_now(running, alice)
    await round_at(running, MON + timedelta(days=7))  # next Monday: the recap of last week posts
    assert any(m["embeds"] and m["embeds"][0]["title"].startswith("Weekly recap")
               for m in fake.messages[running.studio.channel])
    assert fake.role_changes == [("PUT", g, alice, crown)]
    for i in range(8, 10):
        await answer_now(running, bob)
        await round_at(running, MON + timedelta(days=i))
    await answer_now(running, bob)
    await round_at(running, MON + timedelta(days=14))
    # The two changes are separate posts of the outbox, sent side by side: either may reach Discord first.
    assert sorted(fake.role_changes[1:]) == [("DELETE", g, alice, crown), ("PUT", g, bob, crown)]
    assert crown in fake.member_role_ids(g, bob) and crown not in fake.member_role_ids(g, alice)
    await running.tick()
    assert len(fake.role_changes) == 3


def test_role_changes_rule() -> None:
    from coach.rewards import role_changes

    def reward(id_: int, kind: str, threshold: int, keep: bool = False) -> RoleReward:
        return RoleReward(id_, 1, kind, threshold, 100 + id_, keep, None, None)

    items = [reward(1, "streak", 3), reward(2, "streak", 3, keep=True), reward(3, "depth", 5),
             reward(4, "weekly", 1)]
    figures = {7: {"streak": 3, "depth": 4}, 8: {"streak": 0, "depth": 9}}
    add, remove = role_changes(items, figures, {(1, 8), (2, 8)})
    assert add == [(1, 7), (2, 7), (3, 8)] and remove == [(1, 8)]
    assert role_changes(items, figures, {(1, 8)}, gains=False) == ([], [(1, 8)])


async def test_a_role_change_retried_after_discord_errors_is_made_once(running: Harness) -> None:
    await setup_server(running)
    fake, g, admin, alice = running.fake, running.studio.guild, running.studio.admin, running.studio.alice
    can_give_roles(running)
    role = fake.add_role(g, "Regular")
    await fake.sync()
    await text_of(running, admin, "coach rewards add", {"kind": "checkins", "threshold": 1, "role": role})
    fake.inject_fault("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", status=503, times=20)
    await round_at(running, MON)
    await answer_now(running, alice)
    await running.tick()
    assert fake.role_changes == []  # Discord unavailable: retried later with backoff
    fake.faults.clear()
    running.clock.set(running.clock.now() + timedelta(minutes=6))
    await running.tick()
    await running.tick()
    assert fake.role_changes == [("PUT", g, alice, role)]


async def test_manage_roles_taken_away_shows_in_coach_show_until_it_is_back(running: Harness) -> None:
    storage = await setup_server(running)
    fake, g, admin, alice, bob = (running.fake, running.studio.guild, running.studio.admin, running.studio.alice,
                                  running.studio.bob)
    bot_role = can_give_roles(running)
    role = fake.add_role(g, "Regular")
    await fake.sync()
    await text_of(running, admin, "coach rewards add", {"kind": "checkins", "threshold": 1, "role": role})
    fake.set_role_permissions(g, bot_role, BOT_ROLE_DEFAULT)
    await fake.sync()
    await round_at(running, MON)
    await answer_now(running, alice)
    await running.tick()
    assert fake.role_changes == []  # known before asking: no 403 toward Discord's invalid-request limit
    handle = await running.slash(admin, "coach show")
    await handle.response()
    fields = {f["name"]: f["value"] for f in handle.message["embeds"][0]["fields"]}
    assert "I'm missing **Manage Roles**" in fields["Role rewards"]
    fake.set_role_permissions(g, bot_role, BOT_ROLE_DEFAULT | MANAGE_ROLES)
    await fake.sync()
    await answer_now(running, bob)
    await running.tick()
    assert fake.role_changes == [("PUT", g, bob, role)]
    assert (await storage.rewards_of(g))[0].last_error is None  # a change went through: the warning is gone
    await running.tick()  # and those who earned the role meanwhile get it now
    assert fake.role_changes == [("PUT", g, bob, role), ("PUT", g, alice, role)]
    await running.tick()
    assert len(fake.role_changes) == 2
    assert "Removed" in await text_of(running, admin, "coach rewards remove", {"role": role})
    assert "isn't a reward here" in await text_of(running, admin, "coach rewards remove", {"role": role})
    assert "No role rewards yet" in await text_of(running, admin, "coach rewards list")


@sqlite_only
async def test_migration_011_keeps_the_ledger_and_its_triggers(tmp_path) -> None:  # noqa: ANN001
    from coach.storage import Storage, migrations

    path, now = tmp_path / "old.sqlite3", noon(MON)
    old = tmp_path / "old-migrations"
    old.mkdir()
    for version, name, sql in migrations():
        if version < 11:
            (old / name).write_text(sql)
    storage = await Storage.open(path, migrations_dir=old)
    await storage.start_season(1, "Spring", now - timedelta(days=1))
    await checkin(storage, 1, 2, MON)
    await storage.award(1, 2, "reflection", 2, "core-01-ambition", now)
    ids = await storage.fetchall("SELECT id, kind FROM points ORDER BY id")
    with pytest.raises(sqlite3.IntegrityError):  # the old CHECK refuses it
        await storage.award(1, 2, "adjust", 3, "c1", now)
    await storage.close()
    storage = await Storage.open(path)
    try:
        assert await storage.fetchall("SELECT id, kind FROM points ORDER BY id") == ids
        await storage.adjust_points(1, 2, 3, "welcome gift", 9, now)
        await checkin(storage, 1, 2, MON + timedelta(days=1))
        assert await storage.board_points(1, 2) == 5
        assert await storage.stored_board_totals(1) == await storage.board_totals_from_ledger(1)
        season = await storage.fetchone("SELECT id FROM board_periods WHERE kind = 'season'")
        assert {s.user_id: (s.points, s.depth) for s in await storage.board_totals(1, season[0])} == {2: (5, 2)}
        assert await storage.undo_checkin(1, 2, MON.isoformat(), None, 9, now) is not None
        assert await storage.stored_board_totals(1) == await storage.board_totals_from_ledger(1)
        assert await storage.board_points(1, 2) == 4
    finally:
        await storage.close()
