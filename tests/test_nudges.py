"""Opt-in nudges through the loopback Discord: one DM a few hours before the open round closes, only for a member
who hasn't answered it; none on away days, while paused or in quiet hours; a pause after three ignored; exactly
once across restarts; `/me nudge` input checked before anything is stored."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from coach import nudges
from coach.clock import to_unix
from tests.conftest import Harness
from tests.test_dm import dm_on

MESSAGES = "/channels/{channel_id}/messages"
STOPS = "stops these nudges"
PAUSED = "Nudges are paused now"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


async def at(h: Harness, moment: datetime) -> None:
    """Move the clock, run the periodic job, and wait until what it handed over is sent."""
    h.clock.set(moment)
    await h.tick()


def nudges_to(h: Harness, user: int) -> list[dict]:
    if user not in h.fake.dm_channels:
        return []
    cid = int(h.fake.dm_channel(user)["id"])
    return [m for m in h.fake.messages[cid] if STOPS in m["content"] or PAUSED in m["content"]]


def posts_to_dm(h: Harness, user: int) -> list:
    if user not in h.fake.dm_channels:
        return []
    cid = int(h.fake.dm_channel(user)["id"])
    return [r for r in h.fake.requests_to(MESSAGES, "POST") if r.path.endswith(f"/channels/{cid}/messages")]


async def nudge(h: Harness, user: int, options: dict | None = None) -> str:
    handle = await h.slash(user, "me nudge", options or {})
    text = await handle.wait_text()
    assert handle.ephemeral
    return text


async def check_in(h: Harness, user: int, status: str = "finished") -> str:
    return await (await h.slash(user, "checkin", {"status": status})).wait_text()


@pytest.fixture
async def studio(running: Harness) -> Harness:
    """Check-in at 20:00 Berlin every day (19:00 UTC in March); Monday's round opens at 19:00 UTC and closes
    when Tuesday's opens. Alice and Bob have nudges on (3 hours before: Tuesday 16:00 UTC, 17:00 in Berlin)."""
    h = running
    await h.setup_checkin("20:00", "Europe/Berlin")
    await at(h, utc(2026, 3, 2, 19, 0, 5))
    assert len(h.round_messages()) == 1
    for user in (h.studio.alice, h.studio.bob):
        assert "Nudges are on" in await nudge(h, user, {"switch": "on"})
    return h


TUESDAY_NUDGE = utc(2026, 3, 3, 16)


# ----------------------------------------------------------------------------- the pure parts


def check(**over: object) -> nudges.NudgeCheck:
    values: dict = dict(guild_id=1, user_id=2, enabled=True, hours_before=3, next_due=to_unix(TUESDAY_NUDGE),
                        off_reason=None, on_at=0, paused=False, removed=False,
                        closes_at=to_unix(utc(2026, 3, 3, 19)), guild_tz="Europe/Berlin", time_local="20:00",
                        days=127, dm_tz=None, round_id=7, round_date="2026-03-02", round_channel=3,
                        round_message=4, answered=False, away=None)
    values.update(over)
    return nudges.NudgeCheck(**values)


def test_the_rules() -> None:
    now = TUESDAY_NUDGE
    assert nudges.why_not(check(), now) is None
    assert nudges.why_not(check(answered=True), now) == "answered"
    assert nudges.why_not(check(paused=True, closes_at=None), now) == "server_paused"
    assert nudges.why_not(check(enabled=False), now) == "switched_off"
    assert nudges.why_not(check(), now, round_id=6) == "round_closed"
    assert nudges.why_not(check(), utc(2026, 3, 3, 19)) == "round_closed"
    assert nudges.why_not(check(away="2026-03-02 2026-03-02"), now) == "away"   # the round's day
    assert nudges.why_not(check(away="2026-03-03 2026-03-09"), now) == "away"   # today
    assert nudges.why_not(check(away="2026-02-01 2026-02-10"), now) is None
    # 16:00 UTC is 01:00 in Tokyo: the member's DM zone decides, else the server's.
    assert nudges.why_not(check(dm_tz="Asia/Tokyo"), now) == "quiet_hours"
    assert nudges.why_not(check(guild_tz="Asia/Tokyo"), now) == "quiet_hours"
    assert nudges.is_quiet(utc(2026, 3, 3, 21), nudges.zone("Europe/Berlin"))       # 22:00
    assert not nudges.is_quiet(utc(2026, 3, 3, 7), nudges.zone("Europe/Berlin"))    # 08:00
    assert nudges.pauses_now(2) and not nudges.pauses_now(1)
    # Taking: a nudge for the open round, or only the advance.
    take = nudges.take_for(check(), now)
    assert take.round_id == 7 and take.expires_at == to_unix(utc(2026, 3, 3, 19))
    assert nudges.take_for(check(answered=True), now).round_id is None


def test_when_the_next_nudge_could_come() -> None:
    now = utc(2026, 3, 3, 12)
    assert nudges.next_nudge_at(check(), now) == TUESDAY_NUDGE
    # This round's nudge was taken already: Wednesday's.
    assert nudges.next_nudge_at(check(next_due=None), now) == utc(2026, 3, 4, 16)
    # Away until Wednesday: the nudges for the rounds dated Tuesday and Wednesday don't come; Thursday's does.
    assert nudges.next_nudge_at(check(away="2026-03-02 2026-03-04"), now) == utc(2026, 3, 6, 16)
    # Every nudge time falls in Tokyo's night: none could come.
    assert nudges.next_nudge_at(check(dm_tz="Asia/Tokyo"), now) is None
    assert nudges.next_nudge_at(check(paused=True, closes_at=None), now) is None


def test_input_is_checked_first() -> None:
    assert nudges.check_input("on", None) == ("on", 3)
    assert nudges.check_input("on", 12) == ("on", 12)
    assert nudges.check_input(None, None)[0] is None
    for switch, hours, expected in [("on", 0, "from 1 to 12"), ("on", 13, "you gave 13"), ("off", 2, "takes no"),
                                    (None, 2, "Add `switch:on`"), ("maybe", None, "`switch:on`")]:
        with pytest.raises(nudges.BadInput, match=expected):
            nudges.check_input(switch, hours)


# ----------------------------------------------------------------------------- through the stand-in


async def test_a_nudge_arrives_once_at_the_right_time_and_never_for_one_who_answered(studio: Harness) -> None:
    h, alice, bob = studio, studio.studio.alice, studio.studio.bob
    assert "Logged" in await check_in(h, bob)
    await at(h, TUESDAY_NUDGE - timedelta(seconds=30))
    assert nudges_to(h, alice) == []
    await at(h, TUESDAY_NUDGE + timedelta(seconds=5))
    [message] = nudges_to(h, alice)
    content = message["content"]
    assert "Night Owls Studio" in content and f"<t:{to_unix(utc(2026, 3, 3, 19))}:R>" in content
    [round_msg] = h.round_messages()
    assert f"/{h.studio.guild}/{h.studio.channel}/{round_msg['id']}" in content  # a link to the open round
    assert message["_allowed_mentions"] == {"parse": []} and not message.get("components")
    assert posts_to_dm(h, bob) == []
    await at(h, TUESDAY_NUDGE + timedelta(minutes=30))
    assert len(posts_to_dm(h, alice)) == 1  # one request, once
    row = await h.bot.storage.fetchone("SELECT state FROM nudges WHERE user_id = ?", (alice,))
    assert row[0] == "sent"
    # Tuesday's round opens; its nudge is Wednesday 16:00 UTC.
    await at(h, utc(2026, 3, 3, 19, 0, 5))
    assert (await h.bot.storage.nudge_check(h.studio.guild, alice)).next_due == to_unix(utc(2026, 3, 4, 16))


async def test_an_answer_just_before_sending_cancels_the_nudge(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    h.clock.set(TUESDAY_NUDGE + timedelta(seconds=5))
    reports = await h.bot.outbox.take_due(h.clock.now())  # taken into the outbox, not sent yet
    assert reports["nudge"].queued == 2
    assert "Logged" in await check_in(h, alice)
    await h.tick()
    assert posts_to_dm(h, alice) == [] and len(nudges_to(h, h.studio.bob)) == 1
    row = await h.bot.storage.fetchone("SELECT n.state, o.state, o.error FROM nudges n JOIN outbox o "
                                       "ON o.kind = 'nudge' AND o.ref_id = n.id WHERE n.user_id = ?", (alice,))
    assert tuple(row) == ("skipped", "skipped", "answered")


async def test_none_on_away_days(studio: Harness) -> None:
    h, alice, bob = studio, studio.studio.alice, studio.studio.bob
    text = await (await h.slash(alice, "me away", {"until": "2026-03-03"})).wait_text()
    assert "away" in text
    await at(h, TUESDAY_NUDGE + timedelta(seconds=5))
    assert nudges_to(h, alice) == [] and len(nudges_to(h, bob)) == 1
    await at(h, utc(2026, 3, 3, 19, 0, 5))  # Tuesday's round (an away day too)
    await at(h, utc(2026, 3, 4, 16, 0, 5))
    assert nudges_to(h, alice) == []
    await at(h, utc(2026, 3, 4, 19, 0, 5))  # Wednesday's round: back
    await at(h, utc(2026, 3, 5, 16, 0, 5))
    assert len(nudges_to(h, alice)) == 1


async def test_none_while_the_server_is_paused(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    await (await h.slash(h.studio.admin, "coach pause")).wait_text()
    assert (await h.bot.storage.nudge_check(h.studio.guild, alice)).next_due is None  # follows the server
    assert "paused" in await nudge(h, alice)
    for day in (3, 4):
        await at(h, utc(2026, 3, day, 16, 0, 5))
    assert nudges_to(h, alice) == []
    await (await h.slash(h.studio.admin, "coach resume")).wait_text()  # next run Wednesday 19:00 UTC
    await at(h, utc(2026, 3, 4, 16, 0, 5))
    assert len(nudges_to(h, alice)) == 1  # Monday's round is still the open one, closing Wednesday


async def test_skipped_in_quiet_hours_in_the_members_zone(studio: Harness) -> None:
    h, alice, bob = studio, studio.studio.alice, studio.studio.bob
    await dm_on(h, alice, "09:00", "Asia/Tokyo")  # DM check-ins on: Tokyo is alice's zone here
    shown = await nudge(h, alice)
    assert "Asia/Tokyo" in shown and "No nudge could come" in shown
    await at(h, TUESDAY_NUDGE + timedelta(seconds=5))  # 01:00 in Tokyo, 17:00 in Berlin
    assert nudges_to(h, alice) == [] and len(nudges_to(h, bob)) == 1
    row = await h.bot.storage.fetchone("SELECT COUNT(*) FROM nudges WHERE user_id = ?", (alice,))
    assert row[0] == 0
    # Twelve hours before the close is 16:00 in Tokyo: that one comes.
    await nudge(h, alice, {"switch": "on", "hours_before": 12})
    await at(h, utc(2026, 3, 3, 19, 0, 5))
    await at(h, utc(2026, 3, 4, 7, 0, 5))
    assert len(nudges_to(h, alice)) == 1


async def test_three_ignored_nudges_pause_with_one_notice(studio: Harness) -> None:
    h, alice, bob = studio, studio.studio.alice, studio.studio.bob
    for day in (3, 4, 5):
        await at(h, utc(2026, 3, day, 16, 0, 5))
        await at(h, utc(2026, 3, day, 19, 0, 5))  # the next round opens, unanswered by alice
        if day == 4:
            assert "Logged" in await check_in(h, bob)  # bob answers once: his count starts again
    sent = nudges_to(h, alice)
    assert len(sent) == 3
    assert all(PAUSED not in m["content"] for m in sent[:2])
    assert PAUSED in sent[2]["content"] and "`/me nudge switch:on`" in sent[2]["content"]
    assert all(PAUSED not in m["content"] for m in nudges_to(h, bob))
    for day in (6, 7):
        await at(h, utc(2026, 3, day, 16, 0, 5))
        await at(h, utc(2026, 3, day, 19, 0, 5))
    assert len(nudges_to(h, alice)) == 3  # paused: no more
    assert len(nudges_to(h, bob)) == 4 and all(PAUSED not in m["content"] for m in nudges_to(h, bob))
    shown = await nudge(h, alice)
    assert "paused" in shown and "`/me nudge switch:on`" in shown
    # Switched back on, counting starts again: the next nudge is a plain one.
    await nudge(h, alice, {"switch": "on"})
    await at(h, utc(2026, 3, 8, 16, 0, 5))
    assert len(nudges_to(h, alice)) == 4 and PAUSED not in nudges_to(h, alice)[-1]["content"]


async def test_a_restart_does_not_send_twice(studio: Harness) -> None:
    h, alice, bob = studio, studio.studio.alice, studio.studio.bob
    h.clock.set(TUESDAY_NUDGE + timedelta(seconds=5))
    await h.bot.outbox.take_due(h.clock.now())
    [job] = await h.bot.storage.lease_jobs("nudge", h.bot.settings.instance, h.clock.now(), 60, 1)
    await h.restart()  # killed after leasing one: the restarted process takes its own lease back at once
    await h.bot.outbox.drain()
    await at(h, TUESDAY_NUDGE + timedelta(minutes=5))
    await h.restart()
    await at(h, TUESDAY_NUDGE + timedelta(minutes=10))
    assert len(posts_to_dm(h, alice)) == 1 and len(posts_to_dm(h, bob)) == 1
    assert await h.bot.storage.get_job(job.id) == ("done", None)


async def test_a_retry_past_the_nonce_window_finds_the_first_nudge(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    await nudge(h, h.studio.bob, {"switch": "off"})
    h.clock.set(TUESDAY_NUDGE + timedelta(seconds=5))
    await h.tick()
    [job_row] = await h.bot.storage.fetchall("SELECT id FROM outbox WHERE kind = 'nudge'")
    # Sent, but the process died before recording it: the row is pending again, tried 3 minutes ago.
    await h.bot.storage.execute("UPDATE outbox SET state = 'pending', lease_until = 0, attempts = 1, "
                                "first_try_at = ? WHERE id = ?", (to_unix(h.clock.now()), job_row[0]))
    await h.bot.storage.execute("UPDATE nudges SET state = 'claimed'")
    await at(h, TUESDAY_NUDGE + timedelta(minutes=3))
    assert len(posts_to_dm(h, alice)) == 1
    assert await h.bot.storage.get_job(job_row[0]) == ("done", None)


async def test_closed_dms_switch_nudges_off_and_tell_the_member(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    h.fake.close_dms(alice)
    await at(h, TUESDAY_NUDGE + timedelta(seconds=5))
    setting = await h.bot.storage.nudge_check(h.studio.guild, alice)
    assert not setting.enabled and setting.off_reason == "dms_closed"
    text = await nudge(h, alice)
    assert "DMs are closed" in text and "wouldn't let me DM you" in text


async def test_me_nudge_bad_inputs_are_clear_and_change_nothing(studio: Harness, caplog) -> None:  # noqa: ANN001
    h, alice, admin = studio, studio.studio.alice, studio.studio.admin
    before = await h.bot.storage.nudge_check(h.studio.guild, alice)
    cases = [({"switch": "on", "hours_before": 0}, "from 1 to 12"),
             ({"switch": "on", "hours_before": 13}, "you gave 13"),
             ({"switch": "on", "hours_before": -2}, "you gave -2"),
             ({"switch": "off", "hours_before": 2}, "takes no hours"),
             ({"hours_before": 5}, "Add `switch:on`")]
    with caplog.at_level(logging.ERROR):
        for options, expected in cases:
            text = await nudge(h, alice, options)
            assert expected in text and "Nothing was changed" in text, (options, text)
            text = await nudge(h, admin, options)
            assert expected in text, (options, text)
    assert await h.bot.storage.nudge_check(h.studio.guild, alice) == before
    assert await h.bot.storage.nudge_check(h.studio.guild, admin) is None
    assert "Traceback" not in caplog.text
    assert "Nudges are off here" in await nudge(h, admin)
    assert "already off" in await nudge(h, admin, {"switch": "off"})


async def test_me_nudge_shows_the_setting_and_the_next_nudge(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    shown = await nudge(h, alice)
    assert "**3 hours**" in shown and f"<t:{to_unix(TUESDAY_NUDGE)}:F>" in shown and "Europe/Berlin" in shown
    text = await nudge(h, alice, {"switch": "on", "hours_before": 1})
    assert f"<t:{to_unix(utc(2026, 3, 3, 18))}:F>" in text and "1 hour before" in text
    assert len(h.fake.requests_to("/users/@me/channels", "POST")) == 2  # one DM channel each, opened once
    assert "no more nudges" in await nudge(h, alice, {"switch": "off"})
    assert "Nudges are off here" in await nudge(h, alice)
    await at(h, utc(2026, 3, 3, 18, 0, 5))
    assert nudges_to(h, alice) == []


async def test_me_nudge_needs_the_server_check_in(running: Harness) -> None:
    text = await nudge(running, running.studio.alice, {"switch": "on"})
    assert "`/coach setup`" in text
    assert await running.bot.storage.nudge_check(running.studio.guild, running.studio.alice) is None


async def test_nudges_follow_a_new_check_in_time(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    await h.setup_checkin("12:00", "Europe/Berlin")  # the next round opens Tuesday 11:00 UTC
    assert (await h.bot.storage.nudge_check(h.studio.guild, alice)).next_due == to_unix(utc(2026, 3, 3, 8))
    await at(h, utc(2026, 3, 3, 8, 0, 5))
    assert len(nudges_to(h, alice)) == 1


async def test_forget_removes_nudges(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    await at(h, TUESDAY_NUDGE + timedelta(seconds=5))
    data = await h.bot.storage.member_data(h.studio.guild, alice)
    assert len(data["nudge_settings"]) == 1 and len(data["nudges"]) == 1
    counts = await h.bot.storage.forget_member(h.studio.guild, alice)
    assert counts["nudge_settings"] == 1 and counts["nudges"] == 1
    assert await h.bot.storage.nudge_check(h.studio.guild, alice) is None


async def test_switched_on_inside_the_window_waits_for_the_next_round(studio: Harness) -> None:
    h, admin = studio, studio.studio.admin
    h.clock.set(utc(2026, 3, 3, 17))  # two hours before Monday's round closes
    text = await nudge(h, admin, {"switch": "on"})
    assert f"<t:{to_unix(utc(2026, 3, 4, 16))}:F>" in text  # Wednesday's, not one right now
    await at(h, utc(2026, 3, 3, 17, 30))
    assert nudges_to(h, admin) == []
    await at(h, utc(2026, 3, 3, 19, 0, 5))
    await at(h, utc(2026, 3, 4, 16, 0, 5))
    assert len(nudges_to(h, admin)) == 1


async def test_two_processes_on_one_database_take_a_nudge_once(studio: Harness) -> None:
    """The compare-and-set on next_due and the unique row, in one transaction: a second taker gets nothing."""
    import asyncio

    h, now = studio, TUESDAY_NUDGE + timedelta(seconds=5)
    due = await h.bot.storage.due_nudges(to_unix(now), 10)
    takes = [nudges.take_for(c, now) for c in due]
    first, second = await asyncio.gather(h.bot.storage.take_nudges(takes, now),
                                         h.bot.storage.take_nudges(takes, now))
    assert sorted([len(first), len(second)]) == [0, 2]
    # Even a schedule set due again (a new check-in time) takes no second nudge for the same round.
    await h.bot.storage.execute("UPDATE nudge_settings SET next_due = ?", (to_unix(TUESDAY_NUDGE),))
    again = [nudges.take_for(c, now) for c in await h.bot.storage.due_nudges(to_unix(now), 10)]
    assert again and await h.bot.storage.take_nudges(again, now) == []


async def test_a_round_posted_early_is_nudged_before_it_really_closes(running: Harness) -> None:
    """/coach post-now opens Monday's round at noon; the 20:00 run that day opens no new one, so the round stays
    open until Tuesday's and the nudge comes three hours before that."""
    h, alice = running, running.studio.alice
    await h.setup_checkin("20:00", "Europe/Berlin")
    await (await h.slash(h.studio.admin, "coach post-now")).wait_text()
    await nudge(h, alice, {"switch": "on"})
    await at(h, utc(2026, 3, 2, 16, 0, 5))
    assert nudges_to(h, alice) == []
    await at(h, utc(2026, 3, 2, 19, 0, 5))
    assert len(h.round_messages()) == 1
    await at(h, TUESDAY_NUDGE + timedelta(seconds=5))
    [message] = nudges_to(h, alice)
    assert f"<t:{to_unix(utc(2026, 3, 3, 19))}:R>" in message["content"]
