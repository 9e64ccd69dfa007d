"""Admin corrections (/coach adjust, /coach undo), streak freezes and role rewards, through the stand-in."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta

import pytest

from coach.clock import to_unix
from tests.conftest import Harness
from tests.fakediscord.server import FakeDiscordError
from tests.test_board import MON, checkin, noon, posted_round, setup_server, utc


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
