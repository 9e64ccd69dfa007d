"""Lessons through the loopback Discord: /coach lessons, weekly posts exactly once, /lesson, reflections."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from coach.clock import to_unix
from coach.errors import BadInput
from coach.lesson_posts import REFLECTION_MAX, clean_reflection, next_lesson_at, take_for
from coach.lessons import load_lessons
from coach.storage import LessonSchedule, Storage
from coach.text import (
    EMBED_DESCRIPTION_MAX,
    EMBED_FIELD_VALUE_MAX,
    EMBED_FOOTER_MAX,
    EMBED_TITLE_MAX,
    EMBED_TOTAL_MAX,
)
from cogs.lessons import lesson_embed
from tests.conftest import Harness
from tests.databases import database
from tests.fakediscord.server import FakeDiscordError

LIBRARY = load_lessons()
CORE = LIBRARY.track("core")
FIRST, SECOND, LAST = CORE[0], CORE[1], CORE[-1]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# Tuesday 09:00 UTC (no /coach setup: UTC); the harness clock starts Monday 2026-03-02 12:00 UTC.
TUE = utc(2026, 3, 3, 9, 0)


async def at(h: Harness, moment: datetime) -> None:
    h.clock.set(moment)
    await h.tick()


async def configure(h: Harness, **options: object) -> tuple[str, object]:
    handle = await h.slash(h.studio.admin, "coach lessons", {"channel": h.studio.channel, **options})
    return await handle.wait_text(), handle


def lesson_posts(h: Harness, channel: int | None = None) -> list[dict]:
    return [m for m in h.fake.messages[channel or h.studio.channel]
            if any(c["custom_id"].startswith("bounce:lr:") for row in m.get("components", [])
                   for c in row["components"])]


def reflect_id(message: dict) -> str:
    return next(c["custom_id"] for row in message["components"] for c in row["components"]
                if c["custom_id"].startswith("bounce:lr:"))


def modal_inputs(modal: dict) -> list[dict]:
    return [c for row in modal["components"] for c in (row.get("components") or [row.get("component")])]


async def submit(h: Harness, modal: dict, user: int, text: str):  # noqa: ANN201
    (field,) = modal_inputs(modal)
    return await h.fake.submit_modal(modal["custom_id"], {field["custom_id"]: text}, user)


async def reflect_via_command(h: Harness, user: int, text: str, lesson_id: str | None = None) -> str:
    handle = await h.slash(user, "lesson reflect", {"id": lesson_id} if lesson_id else {})
    await handle.response()
    assert handle.modal is not None, handle.describe()
    answer = await submit(h, handle.modal, user, text)
    result = await answer.wait_text()
    assert answer.ephemeral
    return result


async def weekly(h: Harness) -> dict:
    """Configure Tuesdays 09:00 UTC and post the first lesson."""
    await configure(h, weekday=1, time="09:00")
    await at(h, TUE + timedelta(seconds=5))
    (message,) = lesson_posts(h)
    return message


# ----------------------------------------------------------------------------- pure parts


def test_every_shipped_lesson_post_fits_discords_embed_limits() -> None:
    assert len(LIBRARY) >= 12
    for lesson in LIBRARY.lessons:
        embed = lesson_embed(lesson)
        data = embed.to_dict()
        assert len(data["title"]) <= EMBED_TITLE_MAX
        assert len(data["description"]) <= EMBED_DESCRIPTION_MAX
        assert all(len(f["value"]) <= EMBED_FIELD_VALUE_MAX and len(f["name"]) <= 256 for f in data["fields"])
        assert len(data["footer"]["text"]) <= EMBED_FOOTER_MAX
        assert len(embed) <= EMBED_TOTAL_MAX, lesson.id
        # The shipped lessons fit whole: nothing is cut.
        assert data["title"] == lesson.title and data["description"] == lesson.excerpt
        exercise = f"{lesson.your_turn}\n\n**You'll have:** {lesson.outcome}" if lesson.outcome else lesson.your_turn
        assert data["fields"][0]["value"] == exercise and lesson.reflect in data["footer"]["text"]
        assert len(data["fields"]) == 1  # the post: Quick Reference and FAQ are for /lesson show
        full = lesson_embed(lesson, full=True, author="Finishing Craft · Out the Door · 6 of 6").to_dict()
        assert len(lesson_embed(lesson, full=True)) <= EMBED_TOTAL_MAX and full["description"] == lesson.excerpt
        assert [f["name"] for f in full["fields"][1:]] == (["Quick Reference"] if lesson.quick_reference else []) + [
            q for q, _ in lesson.faq]
        assert len(f"bounce:lr:{lesson.id}") <= 100 and len(f"bounce:rf:{lesson.id}:{2**64}") <= 100
        assert len(f"bounce:ld:{lesson.id}") <= 100


def test_an_oversized_lesson_is_cut_to_fit() -> None:
    from dataclasses import replace

    huge = replace(FIRST, title="T" * 300, excerpt="x" * 4096, your_turn="y" * 1024, reflect="z" * 2000)
    embed = lesson_embed(huge)
    assert len(embed) <= EMBED_TOTAL_MAX and embed.description.endswith("…") and len(embed.title) <= 256


def test_clean_reflection() -> None:
    assert clean_reflection("  I hide behind sound design.  \n") == "I hide behind sound design."
    for empty in ("", "   ", "\n\t "):
        with pytest.raises(BadInput, match="empty"):
            clean_reflection(empty)
    assert clean_reflection("x" * REFLECTION_MAX) == "x" * REFLECTION_MAX
    with pytest.raises(BadInput, match="1,501 characters"):
        clean_reflection("x" * (REFLECTION_MAX + 1))


def test_lesson_due_grace_and_lateness() -> None:
    schedule = LessonSchedule(1, 2, 1, "09:00", "Europe/Berlin", to_unix(utc(2026, 3, 3, 8)),
                                      None, None, False)
    on_time, _ = take_for(schedule, utc(2026, 3, 3, 8, 0, 30), timedelta(hours=3), "x")
    assert on_time.local_date and not on_time.late and on_time.next_due == to_unix(utc(2026, 3, 10, 8))
    late, _ = take_for(schedule, utc(2026, 3, 3, 10), timedelta(hours=3), "x")
    assert late.local_date == "2026-03-03" and late.late and late.lesson_id == "x"
    missed, count = take_for(schedule, utc(2026, 3, 3, 12), timedelta(hours=3), "x")
    assert missed.local_date is None and not missed.late and count == 1


def test_next_lesson_keeps_the_wall_clock_across_dst() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert next_lesson_at(utc(2026, 3, 23, 12), time(10), berlin, 0) == utc(2026, 3, 30, 8)  # CEST: 10:00 = 08:00
    assert next_lesson_at(utc(2026, 3, 16, 12), time(10), berlin, 0) == utc(2026, 3, 23, 9)  # CET: 10:00 = 09:00
    assert next_lesson_at(utc(2026, 3, 2, 9, 59), time(10), ZoneInfo("UTC"), 0) == utc(2026, 3, 2, 10)
    with pytest.raises(BadInput, match="Monday to Sunday"):
        next_lesson_at(utc(2026, 3, 2), time(10), berlin, 7)


# ----------------------------------------------------------------------------- configuring


async def test_configure_defaults_to_monday_10_utc_then_follows_the_checkin_zone(running: Harness) -> None:
    text, handle = await configure(running)
    assert handle.ephemeral
    assert "Monday" in text and "10:00" in text and "(UTC)" in text and FIRST.title in text
    assert f"<t:{to_unix(utc(2026, 3, 9, 10))}:F>" in text  # today's 10:00 has passed
    await running.setup_checkin("20:00", "Europe/Berlin")
    text, _ = await configure(running, weekday=2, time="18:30")
    assert "Updated" in text and "Wednesday" in text and "Europe/Berlin" in text
    assert f"<t:{to_unix(utc(2026, 3, 4, 17, 30))}:F>" in text
    schedule = await running.bot.storage.get_lesson_schedule(running.studio.guild)
    assert (schedule.weekday, schedule.time_local, schedule.timezone) == (2, "18:30", "Europe/Berlin")
    assert schedule.next_due == to_unix(utc(2026, 3, 4, 17, 30))


async def test_configure_bad_inputs_store_nothing(running: Harness) -> None:
    fake, studio = running.fake, running.studio
    locked = fake.add_channel(studio.guild, "locked", overwrites=[
        {"id": str(fake.bot_role_id(studio.guild)), "type": 0, "allow": "0", "deny": str(1 << 11)},
    ])
    await fake.sync()
    text, handle = await configure(running, channel=locked)
    assert "can't post lessons" in text and "Send Messages" in text and handle.ephemeral
    text, handle = await configure(running, time="25:99")
    assert "`25:99` is not a time" in text and handle.ephemeral
    assert await running.bot.storage.get_lesson_schedule(studio.guild) is None
    with pytest.raises(FakeDiscordError):  # members aren't offered it: admins only (default_member_permissions)
        await running.slash(studio.alice, "coach lessons", {"channel": studio.channel})


# ----------------------------------------------------------------------------- posting


async def test_weekly_posts_in_track_order(harness: Harness) -> None:
    await harness.start()
    await configure(harness, weekday=1, time="09:00")
    await at(harness, TUE - timedelta(seconds=30))
    assert lesson_posts(harness) == []
    await at(harness, TUE + timedelta(seconds=5))
    (first,) = lesson_posts(harness)
    embed = first["embeds"][0]
    assert embed["title"] == FIRST.title and embed["description"] == FIRST.excerpt
    assert embed["fields"] == [{"name": "Your Turn", "value": FIRST.your_turn, "inline": False}]
    assert embed["footer"]["text"] == f"Reflect: {FIRST.reflect}"
    assert reflect_id(first) == f"bounce:lr:{FIRST.id}"
    assert not first["mention_everyone"] and first["mentions"] == [] and first["mention_roles"] == []
    await at(harness, TUE + timedelta(minutes=5))
    assert len(lesson_posts(harness)) == 1
    await at(harness, TUE + timedelta(days=7, seconds=5))
    posts = lesson_posts(harness)
    assert [p["embeds"][0]["title"] for p in posts] == [FIRST.title, SECOND.title]
    schedule = await harness.bot.storage.get_lesson_schedule(harness.studio.guild)
    assert schedule.next_due == to_unix(TUE + timedelta(days=14))


async def test_after_the_last_lesson_it_starts_over(running: Harness) -> None:
    storage, guild = running.bot.storage, running.studio.guild
    await configure(running, weekday=1, time="09:00")
    # The server's previous post (a week ago) was the 12th and last lesson of the track.
    claimed = await storage.claim_lesson_post(guild_id=guild, local_date="2026-02-24", lesson_id=LAST.id,
                                              scheduled_at=to_unix(utc(2026, 2, 24, 9)),
                                              channel_id=running.studio.channel, late=False, now=utc(2026, 2, 24, 9))
    await storage.mark_lesson_posted(claimed.id, 1, utc(2026, 2, 24, 9))
    assert LAST.order == 12
    await at(running, TUE + timedelta(seconds=5))
    (post,) = lesson_posts(running)
    assert post["embeds"][0]["title"] == FIRST.title
    assert (await storage.latest_lesson_post(guild)).lesson_id == FIRST.id


async def test_restart_just_after_posting_posts_nothing(harness: Harness) -> None:
    await harness.start()
    await configure(harness, weekday=1, time="09:00")
    await at(harness, TUE + timedelta(seconds=5))
    harness.clock.set(TUE + timedelta(seconds=30))
    await harness.restart()
    await harness.tick()
    assert len(lesson_posts(harness)) == 1


async def test_downtime_within_grace_posts_once_late(harness: Harness) -> None:
    await harness.start()
    await configure(harness, weekday=1, time="09:00")
    await harness.stop()
    harness.clock.set(TUE + timedelta(hours=1))
    await harness.start()  # the catch-up in setup_hook posts it
    await harness.tick()
    await harness.restart()
    await harness.tick()
    assert len(lesson_posts(harness)) == 1
    (row,) = await harness.bot.storage.lesson_posts_of(harness.studio.guild)
    assert row.late and row.state == "posted" and row.lesson_id == FIRST.id
    schedule = await harness.bot.storage.get_lesson_schedule(harness.studio.guild)
    assert schedule.next_due == to_unix(TUE + timedelta(days=7))


async def test_downtime_beyond_grace_skips_that_week_and_keeps_the_order(harness: Harness,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    await harness.start()
    await configure(harness, weekday=1, time="09:00")
    await harness.stop()
    harness.clock.set(TUE + timedelta(hours=5))
    await harness.start()
    assert lesson_posts(harness) == []
    assert "missed by more than the grace window" in caplog.text
    await at(harness, TUE + timedelta(days=7, seconds=1))
    (post,) = lesson_posts(harness)
    assert post["embeds"][0]["title"] == FIRST.title


async def test_paused_server_posts_no_lessons(running: Harness) -> None:
    await running.setup_checkin("20:00", "UTC")
    await configure(running, weekday=1, time="09:00")
    await (await running.slash(running.studio.admin, "coach pause")).wait_text()
    await at(running, TUE + timedelta(seconds=5))
    assert lesson_posts(running) == []


async def test_post_failing_with_403_is_recorded_told_once_and_not_retried(running: Harness) -> None:
    await configure(running, weekday=1, time="09:00")
    running.fake.inject_fault("POST", "/channels/{channel_id}/messages", status=403, code=50013, times=1)
    await at(running, TUE + timedelta(seconds=5))
    await at(running, TUE + timedelta(minutes=5))
    await at(running, TUE + timedelta(hours=2))
    assert len(running.fake.requests_to("/channels/{channel_id}/messages", "POST")) == 1
    (row,) = await running.bot.storage.lesson_posts_of(running.studio.guild)
    assert row.state == "failed" and row.error == "missing_permission"
    member_view = await (await running.slash(running.studio.alice, "lesson list")).wait_text()
    assert "missing permission" not in member_view  # members aren't bothered with it
    told = await (await running.slash(running.studio.admin, "lesson list")).wait_text()
    assert "couldn't post the lesson" in told and "missing permission" in told and "/coach lessons" in told
    again = await (await running.slash(running.studio.admin, "lesson list")).wait_text()
    assert "missing permission" not in again
    # Next week the same lesson (never seen by the server) goes out.
    await at(running, TUE + timedelta(days=7, seconds=5))
    (post,) = lesson_posts(running)
    assert post["embeds"][0]["title"] == FIRST.title


async def test_lost_permission_is_known_before_posting(running: Harness) -> None:
    fake, studio = running.fake, running.studio
    await configure(running, weekday=1, time="09:00")
    fake.set_overwrites(studio.channel, [
        {"id": str(fake.bot_role_id(studio.guild)), "type": 0, "allow": "0", "deny": str(1 << 11)},
    ])
    await fake.sync()
    await at(running, TUE + timedelta(seconds=5))
    assert fake.requests_to("/channels/{channel_id}/messages", "POST") == []
    schedule = await running.bot.storage.get_lesson_schedule(studio.guild)
    assert schedule.last_error == "missing_permission"


async def test_deleted_lesson_channel_is_told_to_the_admin(running: Harness) -> None:
    fake, studio = running.fake, running.studio
    lessons_channel = fake.add_channel(studio.guild, "lessons")
    await fake.sync()
    await configure(running, channel=lessons_channel, weekday=1, time="09:00")
    fake.delete_channel(lessons_channel)
    await fake.sync()
    await at(running, TUE + timedelta(seconds=5))
    assert fake.requests_to("/channels/{channel_id}/messages", "POST") == []
    told = await (await running.slash(studio.admin, "lesson show")).wait_text()
    assert "is gone" in told


# ----------------------------------------------------------------------------- reading


async def test_show_defaults_autocomplete_and_unknown_ids(running: Harness) -> None:
    alice = running.studio.alice
    before = await running.slash(alice, "lesson show")
    await before.response()
    assert before.ephemeral and before.response_data["embeds"][0]["title"] == FIRST.title
    await weekly(running)
    await at(running, TUE + timedelta(days=7, seconds=5))
    latest = await running.slash(alice, "lesson show")
    await latest.response()
    assert latest.response_data["embeds"][0]["title"] == SECOND.title
    assert reflect_id(latest.response_data) == f"bounce:lr:{SECOND.id}"
    third = await running.slash(alice, "lesson show", {"id": CORE[2].id})
    await third.response()
    assert third.response_data["embeds"][0]["title"] == CORE[2].title
    ac = await running.fake.autocomplete(running.studio.guild, running.studio.channel, alice, "lesson show",
                                         {"id": "valley"}, "id")
    await ac.response()
    assert [c["value"] for c in ac.choices] == ["core-04-valley"]
    everything = await running.fake.autocomplete(running.studio.guild, running.studio.channel, alice,
                                                 "lesson reflect", {"id": ""}, "id")
    await everything.response()
    assert 12 <= len(everything.choices) <= 25
    for command in ("lesson show", "lesson reflect"):
        handle = await running.slash(alice, command, {"id": "core-99-nope"})
        text = await handle.wait_text()
        assert "don't know a lesson called `core-99-nope`" in text and "/lesson list" in text and handle.ephemeral
        assert handle.modal is None
    assert await running.bot.storage.reflected_lesson_ids(running.studio.guild, alice) == set()


async def test_list_marks_reflections_and_pages(running: Harness) -> None:
    await weekly(running)
    alice = running.studio.alice
    await reflect_via_command(running, alice, "Finishing the EP has all the ambition and no check-ins.")
    handle = await running.slash(alice, "lesson list")
    await handle.response()
    embed = handle.response_data["embeds"][0]
    lines = embed["description"].splitlines()
    assert lines[0] == "__Core Track__"
    assert lines[1].startswith("💭") and FIRST.title in lines[1] and "latest here" in lines[1]
    assert all(line.startswith("▫️") for line in lines[2:]) and len(lines) == 11
    assert "reflected: 1" in embed["footer"]["text"] and f"of {len(LIBRARY)}" in embed["footer"]["text"]
    assert f"page 1/{-(-len(LIBRARY) // 10)}" in embed["footer"]["text"]
    nxt = [c for row in handle.response_data["components"] for c in row["components"] if c["label"] == "Next"][0]
    click = await running.fake.click(handle.original, nxt["custom_id"], alice)
    await click.response()
    assert "page 2/" in click.response_data["embeds"][0]["footer"]["text"]
    assert LAST.title in click.response_data["embeds"][0]["description"]


# ----------------------------------------------------------------------------- reflecting


async def test_reflect_earns_depth_once_edit_earns_nothing(running: Harness) -> None:
    await weekly(running)
    storage, guild, alice = running.bot.storage, running.studio.guild, running.studio.alice
    handle = await running.slash(alice, "lesson reflect")
    await handle.response()
    modal = handle.modal
    assert modal is not None and len(modal["title"]) <= 45 and FIRST.title[:20] in modal["title"]
    (field,) = modal_inputs(modal)
    assert field["label"] == FIRST.reflect_label and field["max_length"] == REFLECTION_MAX
    assert not field.get("value")
    answer = await submit(running, modal, alice, "  My EP. Nobody asks me about it, so it drifts.  ")
    text = await answer.wait_text()
    assert answer.ephemeral and "+2" in text and "depth points here: **2**" in text
    assert (await storage.get_reflection(guild, alice, FIRST.id)).body == "My EP. Nobody asks me about it, so it drifts."
    assert await storage.depth_points(guild, alice) == 2
    # Again: the form opens prefilled; the edit is saved and earns nothing more.
    again = await running.slash(alice, "lesson reflect", {"id": FIRST.id})
    await again.response()
    assert modal_inputs(again.modal)[0]["value"] == "My EP. Nobody asks me about it, so it drifts."
    edited = await (await submit(running, again.modal, alice, "My EP, and I'll post its status weekly.")).wait_text()
    assert "Edits don't earn more depth points" in edited and "depth points here: **2**" in edited
    assert (await storage.get_reflection(guild, alice, FIRST.id)).body == "My EP, and I'll post its status weekly."
    assert await storage.depth_points(guild, alice) == 2
    assert await storage.points_total(guild, alice, ["reflection"]) == 2
    # Another lesson earns its own +2; an active project adds a question about it.
    await (await running.slash(alice, "project start", {"name": "Night Drive EP"})).wait_text()
    third = await reflect_via_command(running, alice, "The drums.", CORE[2].id)
    assert "Night Drive EP" in third and "depth points here: **4**" in third
    assert await storage.depth_points(guild, running.studio.bob) == 0


async def test_reflect_button_works_after_a_restart(running: Harness) -> None:
    message = await weekly(running)
    await running.restart()
    bob = running.studio.bob
    click = await running.fake.click(message, reflect_id(message), bob)
    await click.response()
    assert click.modal is not None
    text = await (await submit(running, click.modal, bob, "The album. I talk about it; nobody checks.")).wait_text()
    assert "+2" in text
    assert await running.bot.storage.depth_points(running.studio.guild, bob) == 2


async def test_form_opened_before_a_restart_still_saves(running: Harness) -> None:
    message = await weekly(running)
    alice = running.studio.alice
    click = await running.fake.click(message, reflect_id(message), alice)
    await click.response()
    await running.restart()
    answer = await submit(running, click.modal, alice, "Written across a restart.")
    assert "+2" in await answer.wait_text() and answer.ephemeral
    assert (await running.bot.storage.get_reflection(running.studio.guild, alice, FIRST.id)).body == \
        "Written across a restart."


async def test_reflect_bad_inputs_change_nothing(running: Harness) -> None:
    storage, guild, alice, bob = running.bot.storage, running.studio.guild, running.studio.alice, running.studio.bob
    # Before any lesson was posted: no form, the first lesson is named with how to reflect on it.
    early = await running.slash(alice, "lesson reflect")
    text = await early.wait_text()
    assert early.ephemeral and early.modal is None
    assert FIRST.title in text and f"/lesson reflect id:{FIRST.id}" in text
    message = await weekly(running)
    # Only whitespace.
    click = await running.fake.click(message, reflect_id(message), alice)
    await click.response()
    blank = await submit(running, click.modal, alice, "   \n  ")
    assert "empty" in await blank.wait_text() and blank.ephemeral
    # Too long: Discord's form refuses it (max_length), and a crafted submit is refused by the bot too.
    with pytest.raises(FakeDiscordError, match="length 1501"):
        await submit(running, click.modal, alice, "x" * 1501)
    crafted = await running.fake.submit_modal(f"bounce:rf:{FIRST.id}:{bob}", {"reflection": "y" * 1501}, bob,
                                              guild_id=guild, channel_id=running.studio.channel)
    assert "1,501 characters" in await crafted.wait_text() and crafted.ephemeral
    assert await storage.reflected_lesson_ids(guild, alice) == set()
    assert await storage.reflected_lesson_ids(guild, bob) == set()
    assert await storage.depth_points(guild, alice) == 0 and await storage.depth_points(guild, bob) == 0


# ----------------------------------------------------------------------------- storage


async def test_two_processes_claim_a_due_lesson_once(tmp_path) -> None:  # noqa: ANN001
    now = utc(2026, 3, 3, 9)
    first = await Storage.open(database(tmp_path / "shared.sqlite3"))
    second = await Storage.open(database(tmp_path / "shared.sqlite3"))
    try:
        await first.set_lesson_schedule(guild_id=1, channel_id=2, weekday=1, time_local="09:00", timezone="UTC",
                                        next_due=to_unix(now), now=now)
        schedule = await first.get_lesson_schedule(1)
        take, _ = take_for(schedule, now, timedelta(hours=3), FIRST.id)
        claims = [await store.take_due("lesson", [take], now) for store in (first, second)]
        assert [len(c) for c in claims] == [1, 0]
        # Even a schedule moved back to that day (an admin's change) never gets a second post for the date.
        assert await second.claim_lesson_post(guild_id=1, local_date="2026-03-03", lesson_id=SECOND.id,
                                              scheduled_at=to_unix(now), channel_id=2, late=False, now=now) is None
        assert (await second.get_lesson_schedule(1)).next_due == to_unix(now + timedelta(days=7))
        assert len(await second.lesson_posts_of(1)) == 1
    finally:
        await first.close()
        await second.close()


async def test_coach_show_lists_the_lesson_schedule(running: Harness) -> None:
    await running.setup_checkin("20:00", "Europe/Berlin")
    await configure(running, weekday=2, time="09:15")
    text = await (await running.slash(running.studio.admin, "coach show")).wait_text()
    assert "Lessons" in text and "Wednesdays at 09:15 (Europe/Berlin)" in text
