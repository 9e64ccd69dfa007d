"""A member's choices hold everywhere: announce-off in every public post, one name per member and server,
buttons that only work in their own server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from coach import board
from coach.members import display_name, may_name_publicly
from tests.conftest import Harness, eventually
from tests.test_board import (
    MON,
    answer_now,
    at,
    buttons,
    count_rows,
    noon,
    seed_two_servers,
    setup_server,
    utc,
)
from tests.test_dm import bot_says, dm_id, dm_on


def public_text(h: Harness) -> str:
    """Everything anyone in the check-in channel can see, as one string (content, embeds, mentions)."""
    return json.dumps(h.fake.all_messages(h.studio.channel), ensure_ascii=False)


def recaps(h: Harness) -> list[dict]:
    return [m for m in h.fake.messages[h.studio.channel]
            if m.get("embeds") and m["embeds"][0].get("title", "").startswith("Weekly recap")]


async def finish_project(h: Harness, user: int, name: str) -> str:
    await (await h.slash(user, "project start", {"name": name})).wait_text()
    done = await h.slash(user, "project finish", {"name": name})
    text = await done.wait_text()
    assert done.ephemeral and "+5 points" in text
    return text


# ----------------------------------------------------------------------------- the rule, pure and in SQL


def test_the_naming_rule() -> None:
    assert may_name_publicly(None) is True  # no stored choice: the default (announce on)
    assert may_name_publicly(1) is True and may_name_publicly(True) is True
    assert may_name_publicly(0) is False and may_name_publicly(False) is False


def test_one_display_name() -> None:
    assert display_name("DJ Nightowl", "Alice", "alice_99") == "DJ Nightowl"
    assert display_name(None, "Alice", "alice_99") == "Alice"
    assert display_name(None, None, "alice_99") == "alice_99"
    assert display_name("", "", "alice_99") == "alice_99"


async def test_storage_names_only_who_may_be_named_and_counts_everyone(running: Harness) -> None:
    storage = await setup_server(running)
    g, alice, bob = running.studio.guild, running.studio.alice, running.studio.bob
    stranger = 999  # never stored: the default holds
    await storage.touch_member(g, alice, "Alice", noon(MON))
    await storage.touch_member(g, bob, "Bob", noon(MON))
    await storage.set_announce(g, alice, False)
    for user, name in ((alice, "Secret Song"), (bob, "Loud Song"), (stranger, "Stray")):
        project = await storage.create_project(g, user, name, None, noon(MON))
        await storage.close_project(project.id, "finished", noon(MON))
    dropped = await storage.create_project(g, bob, "Let go", None, noon(MON))
    await storage.close_project(dropped.id, "dropped", noon(MON))
    week = await storage.public_finished_projects(g, 0, 2**40)
    assert week.total == 3
    assert [(p.name, p.user_id) for p in week.named] == [("Loud Song", bob), ("Stray", stranger)]
    assert await storage.nameable_members(g, [alice, bob, stranger]) == {bob, stranger}
    # The SQL function is the Python rule itself.
    for value in (None, 0, 1):
        row = await storage.fetchone("SELECT may_name_publicly(?)", (value,))
        assert bool(row[0]) is may_name_publicly(value)
    # Switched back on: named again.
    await storage.set_announce(g, alice, True)
    assert (await storage.public_finished_projects(g, 0, 2**40)).total == 3
    assert len((await storage.public_finished_projects(g, 0, 2**40)).named) == 3


def test_recap_finished_field_counts_all_names_some_and_fits() -> None:
    named = [board.Finish("Loud Song", "Bob", 2)]
    assert board.recap_finished(named, 2) == ("Finished this week (2)",
                                              "✅ **Loud Song** · Bob\n…and 1 more finished this week.")
    assert board.recap_finished([], 3) == ("Finished this week (3)",
                                           "✅ 3 projects finished this week, celebrated quietly.")
    assert board.recap_finished([], 0)[1].startswith("No projects finished this week")
    assert board.recap_streaks([], {}) == "No streaks to show here yet. The next round can start one."
    assert board.recap_streaks([(2, 7), (3, 1)], {2: "@everyone"}) == "🔥 **7** · @\u200beveryone\n🔥 **1** · <@3>"
    many = [board.Finish(f"Track {'x' * 50} {i}", f"Producer {i}", i) for i in range(50)]
    title, value = board.recap_finished(many, 57)
    assert title == "Finished this week (57)" and len(value) <= 1024
    shown = value.count("✅")
    assert value.endswith(f"…and {57 - shown} more finished this week.") and 0 < shown < 50


# ----------------------------------------------------------------------------- every public post


async def test_announce_off_counts_in_the_recap_but_is_named_in_no_public_post(harness: Harness) -> None:
    h = harness
    await h.start()
    await setup_server(h)
    g, alice, bob = h.studio.guild, h.studio.alice, h.studio.bob
    h.fake.guild(g).members[alice]["nick"] = "Quiet Owl"  # so her server name is distinct from her user name
    off = await h.slash(alice, "me announce", {"switch": "off"})
    assert "counts your check-ins and finishes without naming you" in await off.wait_text() and off.ephemeral
    for i in range(7):  # Monday 2 .. Sunday 8 March: seven rounds; Alice answers all, Bob every other day
        day = MON + timedelta(days=i)
        await at(h, datetime(day.year, day.month, day.day, 19, 0, 5, tzinfo=UTC))
        await answer_now(h, alice)
        if i % 2 == 0:
            await answer_now(h, bob, "unfinished")
        if i == 3:
            await finish_project(h, alice, "Secret Song")  # the celebration stays quiet
            await finish_project(h, bob, "Loud Song")      # Bob's is celebrated: the channel is not just silent
    celebrations = await eventually(lambda: [m for m in h.fake.messages[h.studio.channel] if not m.get("embeds")])
    assert len(celebrations) == 1 and f"<@{bob}>" in celebrations[0]["content"]
    await at(h, utc(2026, 3, 9, 19, 0, 5))  # the first round of the next week brings the recap
    (recap,) = await eventually(lambda: recaps(h))
    fields = {f["name"]: f["value"] for f in recap["embeds"][0]["fields"]}
    # Counted: both finished projects, all of Alice's check-ins, both active members.
    assert fields["Finished this week (2)"] == "✅ **Loud Song** · Bob\n…and 1 more finished this week."
    assert fields["Check-in rate"].startswith("**79%** · 11 check-ins over 7 rounds from 2 active members")
    # Not named: Alice has the longest streak (7), yet only Bob is listed.
    assert fields["Longest streaks"] == "🔥 **1** · Bob"
    # Nowhere in any public message: not her nickname, user name, id (no mention either), nor her project.
    seen = public_text(h)
    for trace in ("Quiet Owl", "Alice", str(alice), "Secret Song"):
        assert trace not in seen, trace
    assert "Loud Song" in seen and "Bob" in seen
    # Switched back on, she is named again in the next week's recap (the rule is read each time).
    await (await h.slash(alice, "me announce", {"switch": "on"})).wait_text()
    await answer_now(h, alice)  # Monday 9 March's round, open since the recap
    for i in range(1, 7):
        day = MON + timedelta(days=7 + i)
        await at(h, datetime(day.year, day.month, day.day, 19, 0, 5, tzinfo=UTC))
        await answer_now(h, alice)
    await at(h, utc(2026, 3, 16, 19, 0, 5))
    second = await eventually(lambda: recaps(h)[1:])
    streaks = {f["name"]: f["value"] for f in second[0]["embeds"][0]["fields"]}["Longest streaks"]
    assert streaks.split("\n")[0] == "🔥 **14** · Quiet Owl"


# ----------------------------------------------------------------------------- one name per member and server


async def test_a_dm_answer_keeps_the_server_nickname_on_the_board(running: Harness) -> None:
    h = running
    await setup_server(h)
    g, alice, bob = h.studio.guild, h.studio.alice, h.studio.bob
    h.bot.get_cog("DMReplies").settle_seconds = 0
    h.fake.guild(g).members[alice]["nick"] = "DJ Nightowl"
    await dm_on(h, alice, "21:00", "Europe/Berlin")  # a server interaction: stores the nickname
    assert (await h.bot.storage.get_member(g, alice)).display_name == "DJ Nightowl"
    h.clock.set(utc(2026, 3, 2, 20, 0, 5))
    await h.tick()
    await h.bot.get_cog("DMs").drain()
    before = len(h.fake.messages[dm_id(h, alice)])
    await h.fake.dm_message(alice, "finished the bassline")  # the DM carries only her global name, "Alice"
    logged = await bot_says(h, alice, before)
    assert logged["content"].startswith("Logged **Finished**") and "Alice" not in logged["content"]
    assert (await h.bot.storage.get_member(g, alice)).display_name == "DJ Nightowl"
    board_ = await h.slash(bob, "leaderboard", {"period": "all"})
    await board_.response()
    text = board_.message["embeds"][0]["description"]
    assert text.startswith("**1.** DJ Nightowl · **1** pts") and "Alice" not in text
    # A server interaction is the authority: a changed nickname, or none, is taken from there.
    h.fake.guild(g).members[alice]["nick"] = None
    await (await h.slash(alice, "me announce", {"switch": "on"})).wait_text()
    assert (await h.bot.storage.get_member(g, alice)).display_name == "Alice"  # her global name


async def test_a_dm_fills_a_name_only_where_none_is_stored(running: Harness) -> None:
    storage, g, alice = running.bot.storage, running.studio.guild, running.studio.alice
    await storage.touch_member(g, alice, "", noon(MON))
    await storage.touch_member(g, alice, "Alice", noon(MON), from_server=False)
    assert (await storage.get_member(g, alice)).display_name == "Alice"
    await storage.touch_member(g, alice, "DJ Nightowl", noon(MON))
    await storage.touch_member(g, alice, "Alice", noon(MON), from_server=False)
    assert (await storage.get_member(g, alice)).display_name == "DJ Nightowl"


# ----------------------------------------------------------------------------- buttons stay in their server


async def test_a_pager_pressed_in_another_server_is_refused(running: Harness) -> None:
    h = running
    g, alice = h.studio.guild, h.studio.alice
    other = h.fake.add_guild("Other Place")
    elsewhere = h.fake.add_channel(other, "general")
    h.fake.add_member(other, "Alice", user_id=alice)
    await h.fake.sync()
    for i in range(23):
        await h.bot.storage.create_project(g, alice, f"Beat {i:02d}", None, h.clock.now())
    handle = await h.slash(alice, "project list")
    await handle.response()
    message = handle.original
    before = json.dumps(h.fake.message(int(message["id"])), sort_keys=True)
    refused = await h.fake.click(message, buttons(message)["Next"], alice, guild_id=other, channel_id=elsewhere)
    text = await refused.wait_text()
    assert "another server" in text and refused.ephemeral
    assert json.dumps(h.fake.message(int(message["id"])), sort_keys=True) == before  # nothing changed
    # In its own server the same button pages.
    ok = await h.fake.click(message, buttons(message)["Next"], alice)
    await ok.response()
    assert "page 2/3" in ok.response_data["embeds"][0]["footer"]["text"]


@pytest.mark.parametrize("command,label,table", [("me forget", "Delete my data", "checkins")])
async def test_a_confirm_button_pressed_in_another_server_is_refused(running: Harness, command: str, label: str,
                                                                     table: str) -> None:
    g, other = await seed_two_servers(running)
    alice = running.studio.alice
    running.fake.add_member(other, "Alice", user_id=alice)
    await running.fake.sync()
    handle = await running.slash(alice, command)
    await handle.wait_text()
    custom_id = buttons(handle.message)[label]
    assert custom_id.startswith(f"bounce:fg:{g}:{alice}:")
    elsewhere = next(c for c, guild in running.fake.channel_guild.items() if guild == other)
    refused = await running.fake.click(handle.message, custom_id, alice, guild_id=other, channel_id=elsewhere)
    assert "another server" in await refused.wait_text() and refused.ephemeral
    assert await count_rows(running.bot.storage, table, g, alice) == 2
    assert await count_rows(running.bot.storage, table, other, alice) == 1
    # Pressed where it belongs, it works.
    done = await running.fake.click(handle.message, custom_id, alice)
    assert "Deleted" in await done.wait_text()
    assert await count_rows(running.bot.storage, table, g, alice) == 0


async def test_a_confirm_button_from_before_the_server_was_in_its_id_still_works(running: Harness) -> None:
    g, _ = await seed_two_servers(running)
    alice = running.studio.alice
    handle = await running.slash(alice, "me forget")
    await handle.wait_text()
    stored = running.fake.message(int(handle.message["id"]))
    for row in stored["components"]:  # as the previous version sent them: bounce:fg:<user>:<token>:<y|n>
        for component in row["components"]:
            component["custom_id"] = component["custom_id"].replace(f":{g}:", ":", 1)
    old_id = buttons(stored)["Delete my data"]
    assert old_id.startswith(f"bounce:fg:{alice}:")
    done = await running.fake.click(stored, old_id, alice)
    assert "Deleted" in await done.wait_text()
    assert await count_rows(running.bot.storage, "checkins", g, alice) == 0
