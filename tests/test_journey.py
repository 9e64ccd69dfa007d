"""The lesson journey: unlocks by depth points, exercises done, /lesson next|tracks, what a server reads next."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from coach import journey
from coach.lessons import DEFAULT_LESSONS_DIR, LessonError, load_lessons
from coach.storage import Storage
from tests.conftest import Harness
from tests.databases import sqlite_only
from tests.test_lessons import lesson_text, write
from tests.test_lessons_cog import TUE, at, configure, lesson_posts, reflect_via_command, weekly

LIBRARY = load_lessons()
CORE, FINISHING, WORKING = LIBRARY.track("core"), LIBRARY.track("finishing"), LIBRARY.track("working")


def button_id(message: dict, prefix: str) -> str:
    return next(c["custom_id"] for row in message["components"] for c in row["components"]
                if c["custom_id"].startswith(prefix))


async def text_of(h: Harness, user: int, command: str, options: dict | None = None) -> str:
    handle = await h.slash(user, command, options or {})
    text = await handle.wait_text()
    assert handle.ephemeral, handle.describe()
    return text


# ----------------------------------------------------------------------------- pure: which lesson comes next


def test_next_lesson_for_server_steps_through_a_track_then_follows_the_choice() -> None:
    nxt = journey.next_lesson_for_server
    assert nxt(LIBRARY, [], None) == CORE[0]
    assert nxt(LIBRARY, [CORE[2].id, CORE[1].id], None) == CORE[3]
    assert nxt(LIBRARY, [CORE[-1].id], None) == CORE[0]  # default: the Core Track again
    assert nxt(LIBRARY, [CORE[-1].id], "finishing") == FINISHING[0]
    assert nxt(LIBRARY, [FINISHING[0].id, CORE[-1].id], "finishing") == FINISHING[1]
    # The chosen track just ended: Core comes back (the choice is what follows another track).
    assert nxt(LIBRARY, [FINISHING[-1].id], "finishing") == CORE[0]
    assert nxt(LIBRARY, [WORKING[-1].id], "finishing") == FINISHING[0]
    assert nxt(LIBRARY, [CORE[-1].id], "no-such-track") == CORE[0]


def test_renamed_or_removed_lessons_never_send_a_server_back_to_lesson_one(tmp_path: Path) -> None:
    nxt = journey.next_lesson_for_server
    # core-05 was posted, then renamed (new id, same place) or removed: the server goes on after it.
    assert nxt(LIBRARY, ["core-05-renamed-away", CORE[3].id, CORE[2].id], None) == CORE[4]
    write(tmp_path / "t" / "01.md", lesson_text(id="t-new", track="t", order=1).replace("tags:", "formerly: [t-old]\ntags:"))
    write(tmp_path / "t" / "02.md", lesson_text(id="t-2", track="t", order=2))
    renamed = load_lessons(tmp_path)
    assert renamed.get("t-old").id == "t-new" and nxt(renamed, ["t-old"], None).id == "t-2"
    write(tmp_path / "t" / "02.md", lesson_text(id="t-2", track="t", order=2).replace("tags:", "formerly: [t-old]\ntags:"))
    with pytest.raises(LessonError, match="former id 't-old' is also used by"):
        load_lessons(tmp_path)
    shutil.rmtree(tmp_path / "t")
    for n in (1, 2, 3):
        write(tmp_path / "songs" / f"0{n}.md", lesson_text(id=f"songs-{n}", track="songs", order=n))
    songs = load_lessons(tmp_path)
    assert nxt(songs, [], None).id == "songs-1"  # no Core Track: the first track there is
    assert nxt(songs, ["songs-3"], None).id == "songs-1"
    (tmp_path / "songs" / "02.md").unlink()
    assert nxt(load_lessons(tmp_path), ["songs-2", "songs-1"], None).id == "songs-3"
    assert nxt(load_lessons(tmp_path), ["gone-a", "gone-b"], None).id == "songs-1"  # nothing known: the start


def test_member_next_reads_unlocked_tracks_first_and_locks_hold() -> None:
    assert journey.member_next(LIBRARY, 0, set(), []) == CORE[0]
    assert journey.member_next(LIBRARY, 10, set(), []) == FINISHING[0]
    read_finishing = {lesson.id for lesson in FINISHING}
    assert journey.member_next(LIBRARY, 12, read_finishing, []) == CORE[0]
    assert journey.member_next(LIBRARY, 20, set(), []) == FINISHING[0]
    assert journey.member_next(LIBRARY, 20, read_finishing, []) == WORKING[0]
    everything = {lesson.id for lesson in LIBRARY.lessons}
    assert journey.member_next(LIBRARY, 99, everything, []) is None
    # A lesson the server posted is open to everyone there, whatever their depth points.
    assert journey.can_read(LIBRARY, WORKING[0], 0, [WORKING[0].id])
    assert not journey.can_read(LIBRARY, WORKING[1], 19, [WORKING[0].id])
    assert journey.member_next(LIBRARY, 0, {lesson.id for lesson in CORE}, [FINISHING[0].id]) == FINISHING[0]
    assert [t.name for t in journey.newly_unlocked(LIBRARY, 25, {"finishing"})] == ["working"]


# ----------------------------------------------------------------------------- the journey through the stand-in


async def test_reflect_and_do_exercises_cross_a_threshold_be_told_once_and_read_on(running: Harness) -> None:
    h, alice = running, running.studio.alice
    storage, guild = h.bot.storage, h.studio.guild
    post = await weekly(h)
    assert button_id(post, "bounce:ld:") == f"bounce:ld:{CORE[0].id}"
    for lesson in CORE[:4]:  # 4 reflections: 8 depth points
        assert "+2" in await reflect_via_command(h, alice, "Honest words about this one.", lesson.id)
    locked = await text_of(h, alice, "lesson show", {"id": FINISHING[0].id})
    assert "opens at **10** depth points" in locked and "You have 8, so 2 more" in locked
    assert "Finishing Craft" in locked
    assert CORE[4].title in await text_of(h, alice, "lesson next")  # Core is open; reflected ones count as read
    # The Done button on the post: +1, once.
    click = await h.fake.click(post, button_id(post, "bounce:ld:"), alice)
    text = await click.wait_text()
    assert click.ephemeral and "+1 depth point" in text and "**9**" in text and "unlocked" not in text
    again = await h.fake.click(post, button_id(post, "bounce:ld:"), alice)
    assert "already" in await again.wait_text() and await storage.depth_points(guild, alice) == 9
    # /lesson done crosses 10: told in the same private reply, once.
    crossed = await text_of(h, alice, "lesson done", {"id": CORE[1].id})
    assert "+1 depth point" in crossed and "**10**" in crossed
    assert "You unlocked **Finishing Craft**" in crossed and "/lesson next" in crossed
    assert crossed.count("You unlocked") == 1
    assert "unlocked" not in await text_of(h, alice, "lesson done", {"id": CORE[1].id})
    assert "unlocked" not in await text_of(h, alice, "lesson tracks")
    # /lesson next opens the unlocked track, whole, in order.
    handle = await h.slash(alice, "lesson next")
    await handle.wait_text()
    embed = handle.message["embeds"][0]
    assert embed["title"] == FINISHING[0].title and embed["author"]["name"] == \
        "Finishing Craft · Shape and Commitment · 1 of 6"
    assert f"**You'll have:** {FINISHING[0].outcome}" in embed["fields"][0]["value"]
    assert [f["name"] for f in embed["fields"][1:3]] == ["Quick Reference", FINISHING[0].faq[0][0]]
    assert {button_id(handle.message, "bounce:lr:"), button_id(handle.message, "bounce:ld:")} == {
        f"bounce:lr:{FINISHING[0].id}", f"bounce:ld:{FINISHING[0].id}"}
    second = await h.slash(alice, "lesson next")
    await second.wait_text()
    assert second.message["embeds"][0]["title"] == FINISHING[1].title
    # Reading it is allowed now; the next track is still locked.
    assert "Reflect" in await text_of(h, alice, "lesson show", {"id": FINISHING[3].id})
    still = await text_of(h, alice, "lesson show", {"id": WORKING[0].id})
    assert "opens at **20** depth points" in still and "You have 10, so 10 more" in still
    refused = await text_of(h, alice, "lesson done", {"id": WORKING[0].id})
    assert "opens at **20**" in refused and await storage.depth_points(guild, alice) == 10
    # Bob has no points: the locked track stays locked for him.
    assert "opens at **10**" in await text_of(h, h.studio.bob, "lesson show", {"id": FINISHING[0].id})
    # /lesson tracks, /lesson list and /stats (Alice never checked in) show the progress.
    tracks = await text_of(h, alice, "lesson tracks")
    assert "🔓 **Core Track** · 💭 4/12 reflected · ✅ 2/12 done" in tracks
    assert "🔓 **Finishing Craft** · 💭 0/6 reflected · ✅ 0/6 done" in tracks
    assert "🔒 **The Working Producer**" in tracks and "opens at 20 depth (10 to go)" in tracks
    listing = await h.slash(alice, "lesson list")
    await listing.wait_text()
    lines = listing.message["embeds"][0]["description"].splitlines()
    assert lines[1].startswith("💭✅") and lines[3].startswith("💭 ") and lines[5].startswith("▫️")
    assert "done: 2" in listing.message["embeds"][0]["footer"]["text"]
    stats = await text_of(h, alice, "stats")
    assert "✨ **10** depth points · 💭 4 reflected · ✅ 2 exercises done · 🔓 2 of 3 tracks open" in stats
    assert "No check-ins here yet" in stats
    assert "hasn't checked in here yet" in await text_of(h, h.studio.bob, "stats", {"member": alice})
    # The depth board ranks by depth points.
    board = await text_of(h, h.studio.bob, "leaderboard", {"rank": "depth"})
    assert "Depth board" in board and "✨ **10**" in board
    # The ledger holds it all; the board totals still agree with it.
    assert await storage.stored_board_totals(guild) == await storage.board_totals_from_ledger(guild)
    assert await storage.done_lesson_ids(guild, alice) == {CORE[0].id, CORE[1].id}


async def test_done_button_works_after_a_restart(running: Harness) -> None:
    post = await weekly(running)
    await running.restart()
    bob = running.studio.bob
    click = await running.fake.click(post, button_id(post, "bounce:ld:"), bob)
    assert "+1 depth point" in await click.wait_text() and click.ephemeral
    assert await running.bot.storage.depth_points(running.studio.guild, bob) == 1


async def test_lesson_done_without_an_id_before_any_post_explains(running: Harness) -> None:
    text = await text_of(running, running.studio.alice, "lesson done")
    assert "No lesson has been posted here yet" in text and f"/lesson done id:{CORE[0].id}" in text
    everything = await text_of(running, running.studio.alice, "lesson next")
    assert CORE[0].title in everything


async def test_stats_without_anything_still_says_so(running: Harness) -> None:
    assert "haven't checked in here yet" in await text_of(running, running.studio.alice, "stats")


# ----------------------------------------------------------------------------- the server's track


async def test_admins_choose_what_follows_the_track_and_coach_show_says_it(running: Harness) -> None:
    h = running
    await h.setup_checkin("20:00", "UTC")
    await configure(h, weekday=1, time="09:00")
    text = await text_of(h, h.studio.admin, "coach lessons", {"then": "finishing"})
    assert f"Next lesson: **{CORE[0].title}**, 1 of 12 in **Core Track**" in text
    assert "When Core Track ends: **Finishing Craft** (your choice" in text
    assert "When Core Track ends: **Finishing Craft**" in await text_of(h, h.studio.admin, "coach show")
    bad = await text_of(h, h.studio.admin, "coach lessons", {"then": "jazz"})
    assert "no track called `jazz`" in bad and "`working`" in bad
    back = await text_of(h, h.studio.admin, "coach lessons", {"then": "core"})
    assert "When Core Track ends: **Core Track** (the default" in back
    schedule = await h.bot.storage.get_lesson_schedule(h.studio.guild)
    assert (schedule.weekday, schedule.time_local) == (1, "09:00")  # choosing a track kept the schedule
    # The sender follows the choice when the track ends (rows as the sender writes them).
    await h.bot.storage.set_next_track(h.studio.guild, "working", h.clock.now())
    for week, lesson in enumerate(CORE):
        await posted(h.bot.storage, h.studio.guild, lesson.id, week)
    await at(h, TUE + timedelta(seconds=5))
    (post,) = lesson_posts(h)
    assert post["embeds"][0]["title"] == WORKING[0].title


async def posted(storage: Storage, guild: int, lesson_id: str, week: int) -> None:
    from datetime import UTC, datetime

    day = datetime(2025, 1, 7, 9, tzinfo=UTC) + timedelta(weeks=week)
    claim = await storage.claim_lesson_post(guild_id=guild, local_date=day.date().isoformat(), lesson_id=lesson_id,
                                            scheduled_at=int(day.timestamp()), channel_id=1, late=False, now=day)
    await storage.mark_lesson_posted(claim.id, 1000 + week, day)


async def test_own_lesson_track_loads_and_posts(harness: Harness, tmp_path: Path) -> None:
    own = tmp_path / "own"
    for n in (1, 2):
        write(own / "songs" / f"0{n}.md", lesson_text(id=f"songs-{n}", track="songs", order=n, title=f"Song {n}"))
    await harness.start(lessons_dir=own)
    text, _ = await configure(harness, weekday=1, time="09:00")
    assert "Song 1" in text and "1 of 2 in **Songs Track**" in text
    await at(harness, TUE + timedelta(seconds=5))
    await at(harness, TUE + timedelta(days=7, seconds=5))
    await at(harness, TUE + timedelta(days=14, seconds=5))
    assert [p["embeds"][0]["title"] for p in lesson_posts(harness)] == ["Song 1", "Song 2", "Song 1"]
    assert "Song 2" in await text_of(harness, harness.studio.alice, "lesson show", {"id": "songs-2"})


async def test_renaming_the_last_posted_lesson_does_not_restart_the_track(harness: Harness, tmp_path: Path) -> None:
    copy = tmp_path / "lessons"
    shutil.copytree(DEFAULT_LESSONS_DIR, copy)
    await harness.start(lessons_dir=copy)
    await configure(harness, weekday=1, time="09:00")
    await at(harness, TUE + timedelta(seconds=5))
    await at(harness, TUE + timedelta(days=7, seconds=5))
    assert [p["embeds"][0]["title"] for p in lesson_posts(harness)] == [CORE[0].title, CORE[1].title]
    # While the bot is down, lesson 2 is renamed (its old id kept under `formerly`) and lesson 3 is removed.
    path = copy / "core" / CORE[1].path.name
    path.write_text(path.read_text().replace(f"id: {CORE[1].id}", f"id: core-02-renamed\nformerly: [{CORE[1].id}]"))
    (copy / "core" / CORE[2].path.name).unlink()
    await harness.restart(lessons_dir=copy)
    await at(harness, TUE + timedelta(days=14, seconds=5))
    assert [p["embeds"][0]["title"] for p in lesson_posts(harness)] == [CORE[0].title, CORE[1].title, CORE[3].title]
    # The old post's buttons still work under the old id.
    old = lesson_posts(harness)[1]
    click = await harness.fake.click(old, button_id(old, "bounce:ld:"), harness.studio.alice)
    assert "+1 depth point" in await click.wait_text()
    # Renamed without `formerly`: the lesson after the newest one still known comes next (never lesson 1).
    path.write_text(path.read_text().replace(f"formerly: [{CORE[1].id}]\n", ""))
    await harness.restart(lessons_dir=copy)
    await at(harness, TUE + timedelta(days=21, seconds=5))
    assert lesson_posts(harness)[-1]["embeds"][0]["title"] == CORE[4].title


# ----------------------------------------------------------------------------- storage: the ledger learns 'exercise'


@sqlite_only
async def test_migration_keeps_the_ledger_and_depth_counts_exercises(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from coach.storage import migrations

    path, now = tmp_path / "old.sqlite3", datetime(2026, 3, 2, 12, tzinfo=UTC)
    old = tmp_path / "old-migrations"
    old.mkdir()
    for version, name, sql in migrations():
        if version < 7:
            (old / name).write_text(sql)
    storage = await Storage.open(path, migrations_dir=old)
    await storage.award(1, 2, "reflection", 2, "core-01-ambition", now)
    await storage.award(1, 2, "checkin", 1, "2026-03-01", now)
    with pytest.raises(sqlite3.IntegrityError):  # the old CHECK refuses it
        await storage.award(1, 2, "exercise", 1, "core-01-ambition", now)
    await storage.close()
    storage = await Storage.open(path)
    try:
        assert await storage.schema_version() == migrations()[-1][0]
        assert await storage.depth_points(1, 2) == 2
        assert await storage.award(1, 2, "exercise", 1, "core-01-ambition", now)
        assert not await storage.award(1, 2, "exercise", 1, "core-01-ambition", now)
        assert await storage.depth_points(1, 2) == 3
        assert await storage.stored_board_totals(1) == await storage.board_totals_from_ledger(1) == {
            (0, 2): (1, 3, int(now.timestamp()))}
        forgotten = await storage.forget_member(1, 2)
        assert forgotten["points"] == 3 and await storage.stored_board_totals(1) == {}
    finally:
        await storage.close()


async def test_coach_lessons_needs_a_channel_the_first_time_and_offers_tracks(running: Harness) -> None:
    admin = running.studio.admin
    first = await text_of(running, admin, "coach lessons", {"then": "working"})
    assert "Pick the channel where lessons should be posted" in first
    assert await running.bot.storage.get_lesson_schedule(running.studio.guild) is None
    handle = await running.fake.autocomplete(running.studio.guild, running.studio.channel, admin, "coach lessons",
                                             {"then": "fin"}, focused="then")
    await handle.response()
    assert [(c["name"], c["value"]) for c in handle.choices] == [("Finishing Craft (6 lessons)", "finishing")]
