"""The outbox through the loopback Discord: catch-up of the latest occurrence after an outage of any length
(rounds, DMs, lessons, across a daylight-saving change), transient failures retried within the grace window,
permanent ones recorded, an outage never reported as a deleted channel, a retry past the nonce window that
finds the first post instead of posting again, and a broken schedule that blocks nobody."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from coach.clock import to_unix
from coach.outbox import CatchUp, catch_up
from coach.schedule import EVERY_DAY, next_occurrence, parse_time
from tests.conftest import Harness, make_studio
from tests.test_dm import dm_on, dm_rounds
from tests.test_lessons_cog import configure, lesson_posts

MESSAGES = "/channels/{channel_id}/messages"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


async def at(h: Harness, moment: datetime) -> None:
    h.clock.set(moment)
    await h.tick()


# ----------------------------------------------------------------------------- the rule, pure


def berlin_8pm(t: datetime) -> datetime:
    from zoneinfo import ZoneInfo

    return next_occurrence(t, parse_time("20:00"), ZoneInfo("Europe/Berlin"), EVERY_DAY).due_utc


def test_catch_up_posts_the_latest_occurrence_inside_grace() -> None:
    grace = timedelta(hours=3)
    # Down from Monday 2 March before the round to Tuesday 21:00 Berlin: Tuesday's round, an hour old, posts.
    plan = catch_up(utc(2026, 3, 2, 19), utc(2026, 3, 3, 20), grace, berlin_8pm)
    assert plan == CatchUp(utc(2026, 3, 3, 19), True, (utc(2026, 3, 2, 19),), utc(2026, 3, 4, 19))
    # Across the spring-forward night: down from Saturday 28 to Sunday 29 March 20:30 CEST.
    plan = catch_up(utc(2026, 3, 28, 19), utc(2026, 3, 29, 18, 30), grace, berlin_8pm)
    assert plan.scheduled == utc(2026, 3, 29, 18) and plan.late and plan.missed == (utc(2026, 3, 28, 19),)
    # Down a month: only the latest can post; the walk looks back a bounded distance.
    plan = catch_up(utc(2026, 2, 1, 19), utc(2026, 3, 3, 19, 30), grace, berlin_8pm)
    assert plan.scheduled == utc(2026, 3, 3, 19) and 8 <= len(plan.missed) <= 9
    # On time: not late, nothing missed.
    plan = catch_up(utc(2026, 3, 2, 19), utc(2026, 3, 2, 19, 0, 30), grace, berlin_8pm)
    assert plan == CatchUp(utc(2026, 3, 2, 19), False, (), utc(2026, 3, 3, 19))
    # The latest is older than the grace window: nothing posts.
    plan = catch_up(utc(2026, 3, 2, 19), utc(2026, 3, 3, 23), grace, berlin_8pm)
    assert plan.scheduled is None and len(plan.missed) == 2 and plan.next_due == utc(2026, 3, 4, 19)


# ----------------------------------------------------------------------------- catch-up through the stand-in


async def test_a_day_long_outage_posts_todays_round_once_late(harness: Harness, caplog) -> None:  # noqa: ANN001
    harness.clock.set(utc(2026, 3, 2, 12))
    await harness.start()
    await harness.setup_checkin("20:00", "Europe/Berlin")
    await harness.stop()
    harness.clock.set(utc(2026, 3, 3, 20))  # Tuesday 21:00 Berlin: Monday's round missed, Tuesday's an hour old
    with caplog.at_level(logging.INFO):
        await harness.start()
    [posted] = harness.round_messages()
    assert "Tuesday 3 March" in posted["embeds"][0]["title"]
    assert "Posted late" in posted["embeds"][0]["description"]
    assert "1 round(s) missed by more than the grace window" in caplog.text
    await harness.restart()
    await at(harness, utc(2026, 3, 3, 20, 30))
    assert len(harness.round_messages()) == 1


async def test_an_outage_across_the_spring_forward_night_posts_sundays_round(harness: Harness) -> None:
    harness.clock.set(utc(2026, 3, 28, 12))
    await harness.start()
    await harness.setup_checkin("20:00", "Europe/Berlin")
    await harness.stop()
    harness.clock.set(utc(2026, 3, 29, 18, 30))  # Sunday 20:30 CEST
    await harness.start()
    [posted] = harness.round_messages()
    assert "Sunday 29 March" in posted["embeds"][0]["title"]
    round_ = await harness.bot.storage.round_on(harness.studio.guild, "2026-03-29")
    assert round_.scheduled_at == to_unix(utc(2026, 3, 29, 18)) and round_.late


async def test_an_outage_posts_the_latest_dm_and_lesson_once(harness: Harness) -> None:
    h = harness
    h.clock.set(utc(2026, 3, 23, 12))  # Monday, a week before the spring-forward Monday
    await h.start()
    await h.setup_checkin("20:00", "Europe/Berlin")
    await configure(h, weekday=0, time="10:00")
    await (await h.slash(h.studio.admin, "coach post-now")).wait_text()
    await dm_on(h, h.studio.alice, "11:00", "Europe/Berlin")
    await h.stop()
    h.clock.set(utc(2026, 3, 30, 9, 30))  # Monday 30 March 11:30 CEST: the lesson (08:00 UTC) is 1.5 h old
    await h.start()
    [lesson] = lesson_posts(h)
    post = await h.bot.storage.latest_lesson_post(h.studio.guild)
    assert post.local_date == "2026-03-30" and post.scheduled_at == to_unix(utc(2026, 3, 30, 8)) and post.late
    [sent] = dm_rounds(h, h.studio.alice)  # 11:00 CEST = 09:00 UTC, half an hour ago
    assert "a little late" in sent["content"]
    row = await h.bot.storage.dm_round_on(h.studio.guild, h.studio.alice, "2026-03-30")
    assert row.state == "sent" and row.scheduled_at == to_unix(utc(2026, 3, 30, 9)) and row.late
    await h.restart()
    await at(h, utc(2026, 3, 30, 10))
    assert len(lesson_posts(h)) == 1 and len(dm_rounds(h, h.studio.alice)) == 1


# ----------------------------------------------------------------------------- transient and permanent


async def test_a_5xx_is_retried_with_backoff_within_the_grace_window(running: Harness) -> None:
    await running.setup_checkin("20:00", "Europe/Berlin")
    running.fake.inject_fault("POST", MESSAGES, status=503, times=2)
    await at(running, utc(2026, 3, 2, 19, 0, 5))
    assert running.round_messages() == []
    await at(running, utc(2026, 3, 2, 19, 0, 8))  # the backoff (5 s) has not passed: no request
    assert len(running.fake.requests_to(MESSAGES, "POST")) == 1
    await at(running, utc(2026, 3, 2, 19, 0, 15))
    await at(running, utc(2026, 3, 2, 19, 1))
    assert len(running.round_messages()) == 1
    assert len(running.fake.requests_to(MESSAGES, "POST")) == 3
    show = await (await running.slash(running.studio.admin, "coach show")).wait_text()
    assert "is gone" not in show and "missing permission" not in show


async def test_an_unavailable_server_waits_and_is_never_called_deleted(running: Harness) -> None:
    h = running
    await h.setup_checkin("20:00", "Europe/Berlin")
    guild_payload = h.fake.guild_payload(h.studio.guild, members=False)
    await h.fake.dispatch("GUILD_DELETE", {"id": str(h.studio.guild), "unavailable": True})
    await at(h, utc(2026, 3, 2, 19, 0, 5))
    await at(h, utc(2026, 3, 2, 19, 1))
    assert h.round_messages() == [] and h.fake.requests_to(MESSAGES, "POST") == []
    state, error = (await h.bot.storage.fetchone(
        "SELECT state, error FROM outbox WHERE kind = 'round'"))
    assert (state, error) == ("pending", "guild_unavailable")
    await h.fake.dispatch("GUILD_CREATE", guild_payload)  # the outage ends
    await at(h, utc(2026, 3, 2, 19, 3))
    assert len(h.round_messages()) == 1


async def test_an_outage_longer_than_grace_gives_up_and_says_so(running: Harness) -> None:
    h = running
    await h.setup_checkin("20:00", "Europe/Berlin")
    h.fake.inject_fault("POST", MESSAGES, status=503, times=1000)
    moment = utc(2026, 3, 2, 19, 0, 5)
    while moment < utc(2026, 3, 2, 22, 30):
        await at(h, moment)
        moment += timedelta(minutes=6)
    assert h.round_messages() == []
    round_ = await h.bot.storage.round_on(h.studio.guild, "2026-03-02")
    assert round_.state == "failed" and round_.error.startswith("gave_up:discord_503")
    posts = len(h.fake.requests_to(MESSAGES, "POST"))
    assert 30 <= posts <= 45  # about one try per tick once the backoff reached 5 minutes, never a loop
    h.fake.faults.clear()
    show = await (await h.slash(h.studio.admin, "coach show")).wait_text()
    assert "unreachable" in show and "is gone" not in show


# ----------------------------------------------------------------------------- never twice past the nonce window


async def test_a_retry_past_the_nonce_window_finds_the_first_post(running: Harness) -> None:
    h = running
    await h.setup_checkin("20:00", "Europe/Berlin")
    h.clock.set(utc(2026, 3, 2, 19, 0, 5))
    storage, outbox = h.bot.storage, h.bot.outbox
    # The round is taken and posted, and the process dies before recording the post.
    await outbox.take_due(h.clock.now())
    [job] = await storage.lease_jobs("round", outbox.owner, h.clock.now(), 60, 10)
    await outbox.lanes["round"].deliver(job)
    assert len(h.round_messages()) == 1
    h.fake.nonce_window = 0  # Discord has forgotten the nonce by the time the retry comes
    h.clock.set(utc(2026, 3, 2, 19, 5))
    await h.restart()       # the same instance takes its lease back at once
    assert len(h.round_messages()) == 1
    round_ = await h.bot.storage.round_on(h.studio.guild, "2026-03-02")
    assert round_.state == "posted" and round_.message_id == int(h.round_messages()[0]["id"])
    assert len(h.fake.requests_to(MESSAGES, "POST")) == 1
    assert h.fake.requests_to(MESSAGES, "GET")  # it looked before posting


async def test_a_retry_inside_the_nonce_window_is_answered_with_the_first_post(running: Harness) -> None:
    h = running
    await h.setup_checkin("20:00", "Europe/Berlin")
    h.clock.set(utc(2026, 3, 2, 19, 0, 5))
    outbox = h.bot.outbox
    await outbox.take_due(h.clock.now())
    [job] = await h.bot.storage.lease_jobs("round", outbox.owner, h.clock.now(), 60, 10)
    await outbox.lanes["round"].deliver(job)
    await h.restart()
    await at(h, utc(2026, 3, 2, 19, 0, 30))
    assert len(h.round_messages()) == 1 and h.fake.nonce_dedupes == 1
    assert (await h.bot.storage.round_on(h.studio.guild, "2026-03-02")).state == "posted"


# ----------------------------------------------------------------------------- one bad row blocks nobody


async def test_a_broken_time_zone_pauses_that_server_and_blocks_nobody(running: Harness, caplog) -> None:  # noqa: ANN001
    h = running
    other = make_studio(h.fake, "Bass Camp")
    await h.fake.sync()
    await h.setup_checkin("20:00", "Europe/Berlin")
    await (await h.fake.slash(other.guild, other.channel, other.admin, "coach setup",
                              {"channel": other.channel, "time": "20:00", "timezone": "Europe/Berlin"})).wait_text()
    # A tzdata update retired the zone this server chose.
    await h.bot.storage.execute("UPDATE guild_settings SET timezone = 'Mars/Olympus' WHERE guild_id = ?",
                                (h.studio.guild,))
    with caplog.at_level(logging.INFO):
        await at(h, utc(2026, 3, 2, 19, 0, 5))
        await at(h, utc(2026, 3, 2, 19, 1))
    assert len(h.round_messages(other.channel)) == 1 and h.round_messages() == []
    assert caplog.text.count("its schedule can't be computed") == 1
    settings = await h.bot.storage.get_guild(h.studio.guild)
    assert settings.paused and settings.next_due is None and settings.last_error == "broken_schedule"
    show = await (await h.slash(h.studio.admin, "coach show")).wait_text()
    assert "time zone" in show and "/coach setup" in show


async def test_a_missing_lesson_fails_alone(running: Harness) -> None:
    h = running
    await h.setup_checkin("20:00", "Europe/Berlin")
    await configure(h, weekday=0, time="21:00")
    await h.bot.storage.execute("UPDATE lesson_settings SET next_due = ?", (to_unix(utc(2026, 3, 2, 20)),))
    h.clock.set(utc(2026, 3, 2, 20, 0, 5))
    await h.bot.outbox.take_due(h.clock.now())
    await h.bot.storage.execute("UPDATE lesson_posts SET lesson_id = 'gone-for-good'")
    await h.tick()
    assert lesson_posts(h) == []
    post = await h.bot.storage.latest_lesson_post(h.studio.guild)
    assert post is None
    state = await h.bot.storage.fetchone("SELECT state, error FROM outbox WHERE kind = 'lesson'")
    assert tuple(state) == ("failed", "lesson_missing")


@pytest.mark.parametrize("kind", ["round", "dm", "lesson", "recap"])
def test_every_kind_has_one_sender(kind: str) -> None:
    from coach.outbox import KINDS

    assert kind in KINDS


async def test_setup_asks_for_read_message_history(running: Harness) -> None:
    """Without it the bot could not look for a post it may already have made before retrying it."""
    from tests.fakediscord.world import READ_MESSAGE_HISTORY, overwrite

    h = running
    h.fake.set_overwrites(h.studio.channel, [overwrite(h.fake.bot_user_id, deny=READ_MESSAGE_HISTORY, member=True)])
    await h.fake.sync()
    text = await h.setup_checkin("20:00", "Europe/Berlin")
    assert "Read Message History" in text
    assert await h.bot.storage.get_guild(h.studio.guild) is None


async def test_the_tick_line_says_what_happened_and_counts_invalid_answers(running: Harness, caplog) -> None:  # noqa: ANN001
    h = running
    await h.setup_checkin("20:00", "Europe/Berlin")
    h.fake.inject_fault("POST", MESSAGES, status=403, code=50013)
    with caplog.at_level(logging.INFO, logger="bounce"):
        await at(h, utc(2026, 3, 2, 19, 0, 5))
        await at(h, utc(2026, 3, 2, 19, 0, 30))  # nothing happened: no line
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tick:")]
    assert len(lines) == 1, lines
    assert "round due 1 (queued 1" in lines[0] and "round:failed 1" in lines[0]
    assert "discord answered invalid 1" in lines[0] and "403 1" in lines[0]
