"""DM check-ins through the loopback Discord: own time and zone, answers by button and by plain text,
closed DMs, restarts and catch-up, exactly once."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from coach import dm
from coach.clock import FixedClock, from_unix, to_unix
from coach.schedule import EVERY_DAY, WEEKDAYS
from coach.textparse import parse_reply
from tests.conftest import Harness, make_studio
from tests.fakediscord.server import FakeDiscordError

MESSAGES = "/channels/{channel_id}/messages"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def cog(h: Harness):  # noqa: ANN201
    return h.bot.get_cog("DMs")


async def at(h: Harness, moment: datetime) -> None:
    """Move the clock, run the periodic job, and wait until the DMs it handed over are sent."""
    h.clock.set(moment)
    await h.tick()
    await cog(h).drain()


def dm_id(h: Harness, user: int) -> int:
    return int(h.fake.dm_channel(user)["id"])


def dm_rounds(h: Harness, user: int) -> list[dict]:
    """The DM rounds the member received (not the bot's answers to their replies)."""
    return [m for m in h.fake.messages[dm_id(h, user)] if "Tap a button or just reply here" in m["content"]]


def posts_to_dm(h: Harness, user: int) -> list:
    return [r for r in h.fake.requests_to(MESSAGES, "POST") if r.path.endswith(f"/channels/{dm_id(h, user)}/messages")]


def buttons(message: dict) -> dict[str, str]:
    return {c["label"]: c["custom_id"] for row in message["components"] for c in row["components"]}


async def dm_on(h: Harness, user: int, time: str, timezone: str, days: str | None = None, *,
                guild: int | None = None, channel: int | None = None) -> str:
    options = {"switch": "on", "time": time, "timezone": timezone}
    if days:
        options["days"] = days
    handle = await h.slash(user, "me dm", options, guild=guild, channel=channel)
    text = await handle.wait_text()
    assert handle.ephemeral
    return text


async def bot_says(h: Harness, user: int, before: int) -> dict:
    """The bot's next message in the member's DM channel (replies to DMs are sent from a listener)."""
    cid = dm_id(h, user)
    for _ in range(200):
        if len(h.fake.messages[cid]) > before:
            return h.fake.messages[cid][before]
        await asyncio.sleep(0.01)
    raise AssertionError(f"the bot did not answer in DMs; requests: {h.fake.describe_requests()}")


async def say(h: Harness, user: int, text: str) -> dict:
    before = len(h.fake.messages[dm_id(h, user)])
    await h.fake.dm_message(user, text)
    return await bot_says(h, user, before)


async def submit_form(h: Harness, click, project: str = "", note: str | None = None):  # noqa: ANN001, ANN201
    await click.response()
    modal = click.modal
    assert modal is not None, click.texts()
    fields, defaults = {}, {}
    for row in modal["components"]:
        for comp in row.get("components") or [row.get("component")]:
            defaults[comp["custom_id"]] = comp.get("value") or ""
            fields[comp["custom_id"]] = project if comp["custom_id"] == "project" else (
                defaults[comp["custom_id"]] if note is None else note)
    handle = await h.fake.submit_modal(modal["custom_id"], fields, click.user_id)
    return handle, defaults


async def checkin(h: Harness, guild: int, user: int, local_date: str):  # noqa: ANN201
    return await h.bot.storage.get_checkin(guild, user, local_date)


async def points(h: Harness, guild: int, user: int) -> int:
    return await h.bot.storage.points_total(guild, user, ["checkin"])


@pytest.fixture
async def studio(running: Harness) -> Harness:
    """A server with its channel check-in at 20:00 Berlin and today's round open (a DM delivers the server's
    open round); DM replies not throttled unless a test says so."""
    await running.setup_checkin("20:00", "Europe/Berlin")
    await (await running.slash(running.studio.admin, "coach post-now")).wait_text()
    running.bot.get_cog("DMReplies").settle_seconds = 0
    return running


# ----------------------------------------------------------------------------- the pure parts


def schedule(time: str, tz: str, due: datetime, days: int = EVERY_DAY) -> dm.DMSchedule:
    return dm.DMSchedule(1, 2, True, time, tz, days, to_unix(due), None, None)


@pytest.mark.parametrize("tz,time,due,closes", [
    ("America/New_York", "08:00", utc(2026, 3, 7, 13), utc(2026, 3, 8, 12)),   # EST -> EDT overnight
    ("Europe/Berlin", "20:00", utc(2026, 3, 28, 19), utc(2026, 3, 29, 18)),    # CET -> CEST
    ("Europe/Berlin", "02:30", utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1)),  # 02:30 doesn't exist: 03:00
])
def test_take_keeps_the_wall_clock_across_dst(tz: str, time: str, due: datetime, closes: datetime) -> None:
    take, missed = dm.take_for(schedule(time, tz, due), due + timedelta(seconds=5), timedelta(hours=3))
    assert take.local_date is not None and not take.late and missed == 0
    assert from_unix(take.closes_at) == closes and from_unix(take.next_due) == closes
    assert take.local_date == due.astimezone(ZoneInfo(tz)).date().isoformat()


def test_take_late_within_grace_and_the_latest_after_a_long_outage() -> None:
    due = utc(2026, 3, 2, 19)
    late, _ = dm.take_for(schedule("20:00", "Europe/Berlin", due), due + timedelta(hours=2), timedelta(hours=3))
    assert late.local_date == "2026-03-02" and late.late and from_unix(late.next_due) == utc(2026, 3, 3, 19)
    # Down two days: the DM of the day before yesterday and yesterday are skipped; today's, one hour old, goes.
    latest, missed = dm.take_for(schedule("20:00", "Europe/Berlin", due), due + timedelta(days=2, hours=1),
                                 timedelta(hours=3))
    assert latest.local_date == "2026-03-04" and latest.late and missed == 2
    assert from_unix(latest.next_due) == utc(2026, 3, 5, 19)
    old, missed = dm.take_for(schedule("20:00", "Europe/Berlin", due), due + timedelta(days=2, hours=4),
                              timedelta(hours=3))
    assert old.local_date is None and missed == 3 and from_unix(old.next_due) == utc(2026, 3, 5, 19)
    weekdays, _ = dm.take_for(schedule("20:00", "Europe/Berlin", utc(2026, 3, 6, 19), WEEKDAYS),
                              utc(2026, 3, 6, 19), timedelta(hours=3))
    assert from_unix(weekdays.closes_at) == utc(2026, 3, 9, 19)  # Friday's DM stays open over the weekend


def test_check_open() -> None:
    now = utc(2026, 3, 2, 20)
    sent = dm.DMRound(1, 10, 7, "2026-03-02", to_unix(now), to_unix(now + timedelta(days=1)), "sent", False, 1, 1,
                      None, 1, None)
    assert dm.check_open(sent, 7, now) is sent
    with pytest.raises(dm.NotAllowed):
        dm.check_open(sent, 8, now)
    with pytest.raises(dm.Conflict):
        dm.check_open(sent, 7, now + timedelta(days=1))
    with pytest.raises(dm.NotFound):
        dm.check_open(None, 7, now)


def test_pick_target() -> None:
    def r(i: int, guild: int) -> dm.DMRound:
        return dm.DMRound(i, guild, 7, "2026-03-02", 100 + i, 10**10, "sent", False, 1, 1, None, 1, None)

    assert dm.pick_target([]).round is None and dm.pick_target([]).choices == ()
    assert dm.pick_target([dm.OpenRound(r(1, 10), True)]).round.id == 1
    assert dm.pick_target([dm.OpenRound(r(1, 10), True), dm.OpenRound(r(2, 20), False)]).round.id == 2
    both = dm.pick_target([dm.OpenRound(r(1, 10), False), dm.OpenRound(r(2, 20), False)])
    assert both.round is None and [c.id for c in both.choices] == [2, 1]


def test_parse_setting_checks_everything_first() -> None:
    now = utc(2026, 3, 2, 12)
    for args, expected in [((None, "UTC", None), "`time`"), (("20:00", None, None), "`timezone`"),
                           ((None, None, None), "`time` and `timezone`"), (("25:99", "UTC", None), "`25:99`"),
                           (("20:00", "Mars/Olympus", None), "Mars/Olympus"), (("20:00", "UTC", "someday"), "someday")]:
        with pytest.raises(dm.BadInput) as err:
            dm.parse_setting(*args, now)
        assert expected in err.value.message
    ok = dm.parse_setting("8:05", "America/New_York", "weekdays", now)
    assert (ok.time_local, ok.timezone, ok.days, ok.next_due) == ("08:05", "America/New_York", WEEKDAYS,
                                                                 utc(2026, 3, 2, 13, 5))


# ----------------------------------------------------------------------------- /me dm


async def test_me_dm_on_shows_the_next_dm_and_costs_one_dm_channel(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    text = await dm_on(h, alice, "08:30", "America/New_York", "weekdays")
    # Monday 2 March 12:00 UTC = 07:00 in New York: the first DM is today at 08:30 EST = 13:30 UTC.
    assert "08:30" in text and "America/New_York" in text and "weekdays" in text
    assert f"<t:{to_unix(utc(2026, 3, 2, 13, 30))}:F>" in text
    assert len(h.fake.requests_to("/users/@me/channels", "POST")) == 1
    show = await h.slash(alice, "me dm")
    shown = await show.wait_text()
    assert show.ephemeral and "on" in shown and f"<t:{to_unix(utc(2026, 3, 2, 13, 30))}:F>" in shown
    # Changing the time keeps the one stored DM channel.
    await dm_on(h, alice, "09:00", "America/New_York")
    assert len(h.fake.requests_to("/users/@me/channels", "POST")) == 1
    await at(h, utc(2026, 3, 2, 14, 0, 5))
    assert len(dm_rounds(h, alice)) == 1 and len(posts_to_dm(h, alice)) == 1  # one request per DM
    assert len(h.fake.requests_to("/users/@me/channels", "POST")) == 1


async def test_me_dm_bad_inputs_are_clear_and_store_nothing(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    cases = [
        ({"switch": "on"}, "`time` and `timezone`"),
        ({"switch": "on", "time": "20:00"}, "`timezone`"),
        ({"switch": "on", "timezone": "Europe/Berlin"}, "`time`"),
        ({"switch": "on", "time": "25:99", "timezone": "Europe/Berlin"}, "`25:99` is not a time"),
        ({"switch": "on", "time": "20:00", "timezone": "Mars/Olympus"}, "`Mars/Olympus` is not a time zone"),
        ({"switch": "on", "time": "20:00", "timezone": "UTC", "days": "someday"}, "`someday` is not a day"),
        ({"time": "20:00"}, "Add `switch:on`"),
        ({"switch": "off", "time": "20:00"}, "takes no time"),
    ]
    for options, expected in cases:
        handle = await h.slash(alice, "me dm", options)
        text = await handle.wait_text()
        assert expected in text, (options, text)
        assert handle.ephemeral
    assert await h.bot.storage.get_dm_schedule(h.studio.guild, alice) is None
    assert h.fake.requests_to("/users/@me/channels", "POST") == []
    with pytest.raises(FakeDiscordError, match="not available in DMs"):
        await h.fake.slash(None, None, alice, "me dm", {})
    off = await h.slash(alice, "me dm", {"switch": "off"})
    assert "already off" in await off.wait_text()


async def test_me_dm_needs_the_server_check_in(running: Harness) -> None:
    text = await dm_on(running, running.studio.alice, "20:00", "Europe/Berlin")
    assert "`/coach setup`" in text
    assert await running.bot.storage.get_dm_schedule(running.studio.guild, running.studio.alice) is None


async def test_timezone_autocomplete_is_the_admin_one(studio: Harness) -> None:
    handle = await studio.fake.autocomplete(studio.studio.guild, studio.studio.channel, studio.studio.alice,
                                            "me dm", {"timezone": "berl"}, "timezone")
    await handle.response()
    assert handle.choices[0]["value"] == "Europe/Berlin"


async def test_me_dm_off_stops_the_dms(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    off = await h.slash(alice, "me dm", {"switch": "off"})
    assert "no more DM check-ins" in await off.wait_text()
    await at(h, utc(2026, 3, 2, 20, 1))
    assert posts_to_dm(h, alice) == []
    assert "off here" in await (await h.slash(alice, "me dm")).wait_text()


# ----------------------------------------------------------------------------- sending at the member's time


@pytest.mark.parametrize("tz,time,start,dues", [
    # New York springs forward on Sunday 8 March 2026: 08:00 EST = 13:00 UTC, 08:00 EDT = 12:00 UTC.
    ("America/New_York", "08:00", utc(2026, 3, 6, 12), [utc(2026, 3, 7, 13), utc(2026, 3, 8, 12),
                                                         utc(2026, 3, 9, 12)]),
    # Berlin springs forward on Sunday 29 March 2026: 20:00 CET = 19:00 UTC, 20:00 CEST = 18:00 UTC.
    ("Europe/Berlin", "20:00", utc(2026, 3, 27, 20), [utc(2026, 3, 28, 19), utc(2026, 3, 29, 18),
                                                       utc(2026, 3, 30, 18)]),
])
async def test_dm_arrives_at_local_time_across_dst(harness: Harness, tz: str, time: str, start: datetime,
                                                   dues: list[datetime]) -> None:
    harness.clock.set(start)
    await harness.start()
    await harness.setup_checkin("20:00", "Europe/Berlin")
    await (await harness.slash(harness.studio.admin, "coach post-now")).wait_text()
    alice = harness.studio.alice
    await dm_on(harness, alice, time, tz)
    for n, due in enumerate(dues, start=1):
        await at(harness, due - timedelta(seconds=30))
        assert len(dm_rounds(harness, alice)) == n - 1, due
        await at(harness, due + timedelta(seconds=5))
        sent = dm_rounds(harness, alice)
        assert len(sent) == n, due
        message = sent[-1]
        assert "Night Owls Studio" in message["content"]
        assert set(buttons(message)) == {"Finished", "Unfinished", "Skipped"}
        assert message["_allowed_mentions"] == {"parse": []}
        local = due.astimezone(ZoneInfo(tz)).date().isoformat()
        row = await harness.bot.storage.dm_round_on(harness.studio.guild, alice, local)
        assert row is not None and row.state == "sent" and row.scheduled_at == to_unix(due)


async def test_no_dm_when_the_channel_round_was_answered(studio: Harness) -> None:
    h, alice, bob = studio, studio.studio.alice, studio.studio.bob
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    await dm_on(h, bob, "21:00", "Europe/Berlin")
    await at(h, utc(2026, 3, 2, 19, 0, 5))  # the channel round
    [round_msg] = h.round_messages()
    click = await h.fake.click(round_msg, buttons(round_msg)["Finished"], alice)
    handle, _ = await submit_form(h, click, note="bounced the intro")
    assert "Logged" in await handle.wait_text()
    await at(h, utc(2026, 3, 2, 20, 0, 5))
    assert posts_to_dm(h, alice) == []
    assert len(dm_rounds(h, bob)) == 1
    skipped = await h.bot.storage.dm_round_on(h.studio.guild, alice, "2026-03-02")
    assert skipped is None or skipped.state == "answered"
    assert await points(h, h.studio.guild, alice) == 1


# ----------------------------------------------------------------------------- answering


async def test_buttons_log_for_the_server_like_a_channel_answer(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    await at(h, utc(2026, 3, 2, 20, 0, 5))
    [message] = dm_rounds(h, alice)
    click = await h.fake.click(message, buttons(message)["Finished"], alice)
    handle, _ = await submit_form(h, click, project="Night Drive EP", note="bounced the intro")
    text = await handle.wait_text()
    assert "Logged **Finished** on **Night Drive EP** for **Night Owls Studio**" in text and "(+1 point)" in text
    row = await checkin(h, h.studio.guild, alice, "2026-03-02")
    assert row.status == "finished" and row.note == "bounced the intro" and row.via == "dm_button"
    assert await points(h, h.studio.guild, alice) == 1
    # Answering again edits; no extra point.
    click = await h.fake.click(message, buttons(message)["Unfinished"], alice)
    handle, defaults = await submit_form(h, click, project="Night Drive EP", note="not quite")
    assert defaults["project"] == "Night Drive EP"
    assert "updated; no extra points" in await handle.wait_text()
    assert (await checkin(h, h.studio.guild, alice, "2026-03-02")).status == "unfinished"
    assert await points(h, h.studio.guild, alice) == 1


async def test_the_channel_round_of_the_same_day_counts_the_dm_answer(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    await at(h, utc(2026, 3, 2, 19, 0, 5))
    await at(h, utc(2026, 3, 2, 20, 0, 5))
    assert (await say(h, alice, "done"))["content"].startswith("Logged **Finished**")
    channel_round = await h.bot.storage.round_on(h.studio.guild, "2026-03-02")
    assert (await checkin(h, h.studio.guild, alice, "2026-03-02")).round_id == channel_round.id
    # The DM answer is the day's answer in the channel too: answering there edits it.
    [round_msg] = h.round_messages()
    click = await h.fake.click(round_msg, buttons(round_msg)["Skipped"], alice)
    handle, _ = await submit_form(h, click)
    assert "no extra points" in await handle.wait_text()
    assert await points(h, h.studio.guild, alice) == 1


async def test_one_calendar_a_dm_answer_counts_for_the_servers_open_round(running: Harness) -> None:
    """A member in Berlin on a Los Angeles server: their DM arrives on their 3 March while the server's open
    round is 2 March. The answer is the 2 March check-in, in the round's tally; once the 3 March round opens,
    the old DM is closed and logs nothing."""
    h, alice = running, running.studio.alice
    await h.setup_checkin("20:00", "America/Los_Angeles")
    h.bot.get_cog("DMReplies").settle_seconds = 0
    await dm_on(h, alice, "08:00", "Europe/Berlin")
    await at(h, utc(2026, 3, 3, 4, 0, 5))   # 20:00 in LA on 2 March: the channel round
    await at(h, utc(2026, 3, 3, 7, 0, 5))   # 08:00 in Berlin on 3 March: alice's DM
    [message] = dm_rounds(h, alice)
    click = await h.fake.click(message, buttons(message)["Finished"], alice)
    handle, _ = await submit_form(h, click, note="bounced the intro")
    text = await handle.wait_text()
    assert "for **Night Owls Studio**, Monday 2 March. (+1 point)" in text
    channel_round = await h.bot.storage.round_on(h.studio.guild, "2026-03-02")
    row = await checkin(h, h.studio.guild, alice, "2026-03-02")
    assert row.round_id == channel_round.id and row.via == "dm_button"
    assert await checkin(h, h.studio.guild, alice, "2026-03-03") is None
    assert (await h.bot.storage.tally(channel_round.id))["finished"] == 1
    # The same day's round in the channel is the same answer: answering there edits it.
    [round_msg] = h.round_messages()
    click = await h.fake.click(round_msg, buttons(round_msg)["Skipped"], alice)
    handle, _ = await submit_form(h, click)
    assert "no extra points" in await handle.wait_text()
    # The next server round opens (3 March in LA). Alice's DM of 3 March is still hers, but its buttons name
    # the old round: closed, like an old round's buttons in the channel.
    await at(h, utc(2026, 3, 4, 4, 0, 5))
    click = await h.fake.click(message, buttons(message)["Finished"], alice)
    await click.response()
    assert "closed: a newer one is open" in " ".join(click.texts()) and click.ephemeral
    assert await checkin(h, h.studio.guild, alice, "2026-03-03") is None
    # A plain-text reply names no round: like /checkin, it answers the open one (and its question's buttons too).
    question = await say(h, alice, "hmm, half of it")
    assert "(Tuesday 3 March)" in question["content"]
    click = await h.fake.click(question, buttons(question)["Unfinished"], alice)
    handle, _ = await submit_form(h, click)
    assert "Logged **Unfinished** for **Night Owls Studio**, Tuesday 3 March. (+1 point)" in await handle.wait_text()
    answer = await say(h, alice, "done")
    assert answer["content"].startswith("Logged **Finished** for **Night Owls Studio**, Tuesday 3 March.")
    row = await checkin(h, h.studio.guild, alice, "2026-03-03")
    assert row.status == "finished" and row.round_id == (await h.bot.storage.round_on(h.studio.guild, "2026-03-03")).id
    assert await points(h, h.studio.guild, alice) == 2


async def test_no_dm_and_nothing_logged_while_the_server_has_no_round_open(running: Harness) -> None:
    h, alice = running, running.studio.alice
    await h.setup_checkin("20:00", "Europe/Berlin")
    h.bot.get_cog("DMReplies").settle_seconds = 0
    await dm_on(h, alice, "14:00", "Europe/Berlin")
    await at(h, utc(2026, 3, 2, 13, 0, 5))  # before the server's first round (20:00 Berlin)
    assert posts_to_dm(h, alice) == []     # a DM delivers the server's open round: there is none yet
    row = await h.bot.storage.dm_round_on(h.studio.guild, alice, "2026-03-02")
    assert (row.state, row.error) == ("cancelled", "no_round")
    answer = await say(h, alice, "finished the bassline")
    assert "nothing was logged" in answer["content"]
    assert await h.bot.storage.member_checkins(h.studio.guild, alice) == []
    assert await points(h, h.studio.guild, alice) == 0


@pytest.mark.parametrize("text,status,note", [
    ("finished the bassline", "finished", "the bassline"),
    ("done", "finished", None),
    ("worked on the mix but not done", "unfinished", "the mix"),
    ("didn't get to it", "skipped", None),
    ("skip", "skipped", None),
])
async def test_plain_text_replies_are_logged(studio: Harness, text: str, status: str, note: str | None) -> None:
    h, alice = studio, studio.studio.alice
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    await at(h, utc(2026, 3, 2, 20, 0, 5))
    answer = await say(h, alice, text)
    assert answer["content"].startswith(f"Logged **{status.capitalize()}** for **Night Owls Studio**, Monday 2 March.")
    assert "(+1 point)" in answer["content"] and not answer.get("components")
    row = await checkin(h, h.studio.guild, alice, "2026-03-02")
    assert (row.status, row.note, row.via) == (status, note, "dm_text")
    assert await points(h, h.studio.guild, alice) == 1


async def test_unclear_reply_asks_with_the_three_buttons(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    await at(h, utc(2026, 3, 2, 20, 0, 5))
    question = await say(h, alice, "hmm, sort of? the hook is stuck")
    assert "How did it go?" in question["content"]
    assert set(buttons(question)) == {"Finished", "Unfinished", "Skipped"}
    assert await checkin(h, h.studio.guild, alice, "2026-03-02") is None  # nothing logged yet
    click = await h.fake.click(question, buttons(question)["Unfinished"], alice)
    handle, defaults = await submit_form(h, click)
    assert defaults["note"] == "hmm, sort of? the hook is stuck"  # their words, ready to edit
    assert "Logged **Unfinished**" in await handle.wait_text()
    row = await checkin(h, h.studio.guild, alice, "2026-03-02")
    assert row.status == "unfinished" and row.note == "hmm, sort of? the hook is stuck"


async def test_reply_with_several_servers_open_asks_which(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    fake = h.fake
    other = make_studio(fake, "Bass Camp")  # the bot joins a second server alice is in too
    fake.add_member(other.guild, "Alice", user_id=alice)
    await fake.sync()
    admin = await fake.slash(other.guild, other.channel, other.admin, "coach setup",
                             {"channel": other.channel, "time": "19:00", "timezone": "Europe/Berlin"})
    await admin.wait_text()
    await (await fake.slash(other.guild, other.channel, other.admin, "coach post-now")).wait_text()
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    await dm_on(h, alice, "21:00", "Europe/Berlin", guild=other.guild, channel=other.channel)
    await at(h, utc(2026, 3, 2, 20, 0, 5))
    assert len(dm_rounds(h, alice)) == 2
    question = await say(h, alice, "finished the bassline")
    assert "Which one is this **Finished** for?" in question["content"]
    labels = buttons(question)
    assert set(labels) == {"Night Owls Studio · Monday 2 March", "Bass Camp · Monday 2 March"}
    assert await checkin(h, other.guild, alice, "2026-03-02") is None
    click = await fake.click(question, labels["Bass Camp · Monday 2 March"], alice)
    text = await click.wait_text()
    assert "Logged **Finished** for **Bass Camp**" in text
    row = await checkin(h, other.guild, alice, "2026-03-02")
    assert (row.status, row.note) == ("finished", "the bassline")
    assert await checkin(h, h.studio.guild, alice, "2026-03-02") is None
    # The other server is the only unanswered one now: the next reply goes there without asking.
    answer = await say(h, alice, "didn't get to it")
    assert answer["content"].startswith("Logged **Skipped** for **Night Owls Studio**")
    # Both answered: an unclear reply asks which server and how it went.
    question = await say(h, alice, "hmm")
    assert "Which one is this for" in question["content"] and len(buttons(question)) == 6


async def test_reply_with_nothing_open_is_explained_kindly(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    first = await say(h, alice, "done")
    assert "`/me dm switch:on`" in first["content"]
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    later = await say(h, alice, "done")
    assert "no check-in open right now" in later["content"] and f"<t:{to_unix(utc(2026, 3, 2, 20))}:F>" in later["content"]
    assert await checkin(h, h.studio.guild, alice, "2026-03-02") is None
    assert await points(h, h.studio.guild, alice) == 0


async def test_a_burst_of_dms_gets_one_answer_to_the_latest(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    replies = h.bot.get_cog("DMReplies")
    replies.settle_seconds = 1.0
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    await at(h, utc(2026, 3, 2, 20, 0, 5))
    before = len(h.fake.messages[dm_id(h, alice)])
    for text in ("finished the intro", "finished the drop", "finished the bassline"):
        await h.fake.dm_message(alice, text)
    answer = await bot_says(h, alice, before)
    await replies.settled()
    await h.fake.sync()
    assert len(h.fake.messages[dm_id(h, alice)]) == before + 1  # one answer, never one per message
    assert answer["content"].startswith("Logged **Finished**") and "(+1 point)" in answer["content"]
    row = await checkin(h, h.studio.guild, alice, "2026-03-02")
    assert row.note == "the bassline" and await points(h, h.studio.guild, alice) == 1  # from the latest
    # A message after the answer is never dropped: it gets its own answer (an edit here).
    again = await say(h, alice, "didn't get to it after all")
    assert "updated; no extra points" in again["content"]
    assert (await checkin(h, h.studio.guild, alice, "2026-03-02")).status == "skipped"


# ----------------------------------------------------------------------------- failures


async def test_closed_dms_switch_off_without_retries_and_tell_the_member(studio: Harness) -> None:
    h, alice, fake = studio, studio.studio.alice, studio.fake
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    fake.close_dms(alice)
    invalid = fake.invalid_requests
    await at(h, utc(2026, 3, 2, 20, 0, 5))
    assert len(posts_to_dm(h, alice)) == 1 and fake.invalid_requests == invalid + 1
    schedule = await h.bot.storage.get_dm_schedule(h.studio.guild, alice)
    assert not schedule.enabled and schedule.off_reason == "dms_closed" and schedule.next_due is None
    assert (await h.bot.storage.dm_round_on(h.studio.guild, alice, "2026-03-02")).error == "dms_closed"
    for day in range(3, 6):
        await at(h, utc(2026, 3, day, 20, 0, 5))
    assert len(posts_to_dm(h, alice)) == 1  # never again
    # The member hears about it once, on their next private reply in the server.
    show = await h.slash(alice, "me dm")
    text = await show.wait_text()
    assert "DMs are closed" in text and "📌" in text
    again = await (await h.slash(alice, "me dm")).wait_text()
    assert "📌" not in again
    # Opening DMs and switching on again works.
    fake.open_dms(alice)
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    await at(h, utc(2026, 3, 6, 20, 0, 5))
    assert len(dm_rounds(h, alice)) == 1


# ----------------------------------------------------------------------------- restarts


async def test_restart_catches_up_once_within_grace(studio: Harness) -> None:
    h, alice, bob = studio, studio.studio.alice, studio.studio.bob
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    await dm_on(h, bob, "21:00", "Europe/Berlin")
    await h.stop()
    h.clock.set(utc(2026, 3, 2, 21, 30))  # 1.5 h late, within the 3 h grace
    await h.start()
    await cog(h).drain()
    for user in (alice, bob):
        [message] = dm_rounds(h, user)
        assert "a little late" in message["content"]
    await h.restart()
    await at(h, utc(2026, 3, 2, 21, 45))
    assert len(posts_to_dm(h, alice)) == 1 and len(posts_to_dm(h, bob)) == 1
    # A reply after the restart still lands.
    h.bot.get_cog("DMReplies").settle_seconds = 0
    assert (await say(h, alice, "done"))["content"].startswith("Logged **Finished**")


async def test_missed_beyond_grace_is_skipped_and_logged(studio: Harness, caplog) -> None:  # noqa: ANN001
    h, alice = studio, studio.studio.alice
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    await h.stop()
    h.clock.set(utc(2026, 3, 3, 2))  # 6 h after the DM was due
    with caplog.at_level(logging.INFO, logger="bounce.dm"):
        await h.start()
        await cog(h).drain()
    assert posts_to_dm(h, alice) == []
    assert "missed by more than the grace window" in caplog.text
    schedule = await h.bot.storage.get_dm_schedule(h.studio.guild, alice)
    assert from_unix(schedule.next_due) == utc(2026, 3, 3, 20)
    await at(h, utc(2026, 3, 3, 20, 0, 5))
    assert len(dm_rounds(h, alice)) == 1


async def test_a_claim_left_by_a_dead_process_is_sent_once(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    storage = h.bot.storage
    due = utc(2026, 3, 2, 20)
    h.clock.set(due + timedelta(seconds=3))
    # Another process took the schedule into the outbox, leased the DM and died before sending.
    [sched] = await storage.due_dm_schedules(to_unix(h.clock.now()), 10)
    take, _ = dm.take_for(sched, h.clock.now(), h.bot.grace)
    [job_id] = await storage.take_due("dm", [take], h.clock.now())
    [job] = await storage.lease_jobs("dm", "other-host", h.clock.now(), 60, 10)
    await at(h, due + timedelta(seconds=30))  # its lease still runs: it may still be sending
    assert posts_to_dm(h, alice) == []
    await h.restart()
    await at(h, due + timedelta(minutes=3))  # the lease ran out: taken over
    await at(h, due + timedelta(minutes=4))
    assert len(posts_to_dm(h, alice)) == 1
    assert (await h.bot.storage.get_dm_round(job.ref_id)).state == "sent"
    assert await h.bot.storage.get_job(job_id) == ("done", None)


async def test_two_processes_on_one_database_send_once(studio: Harness) -> None:
    """The compare-and-set on next_due and the unique row, in one transaction: a second taker gets nothing."""
    h = studio
    await dm_on(h, h.studio.alice, "21:00", "Europe/Berlin")
    now = utc(2026, 3, 2, 20, 0, 5)
    [sched] = await h.bot.storage.due_dm_schedules(to_unix(now), 10)
    take, _ = dm.take_for(sched, now, h.bot.grace)
    first, second = await asyncio.gather(h.bot.storage.take_due("dm", [take], now),
                                         h.bot.storage.take_due("dm", [take], now))
    assert sorted([len(first), len(second)]) == [0, 1]
    assert await h.bot.storage.take_due("dm", [take], now) == []


def test_fixed_clock_is_used() -> None:
    clock = FixedClock(utc(2026, 3, 2, 12))
    take, _ = dm.take_for(schedule("13:00", "UTC", utc(2026, 3, 2, 13)), clock.now() + timedelta(hours=1),
                          timedelta(hours=3))
    assert take.local_date == "2026-03-02"
    assert parse_reply("done").confident


async def test_a_dm_form_opened_before_a_restart_still_submits(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    await at(h, utc(2026, 3, 2, 20, 0, 5))
    [message] = dm_rounds(h, alice)
    click = await h.fake.click(message, buttons(message)["Skipped"], alice)
    await click.response()
    modal = click.modal
    await h.restart()
    handle = await h.fake.submit_modal(modal["custom_id"], {"project": "", "note": "sick day"}, alice)
    assert "Logged **Skipped** for **Night Owls Studio**" in await handle.wait_text()
    row = await checkin(h, h.studio.guild, alice, "2026-03-02")
    assert (row.status, row.note) == ("skipped", "sick day")


async def test_no_dm_while_the_server_is_paused(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    await (await h.slash(h.studio.admin, "coach pause")).wait_text()
    await at(h, utc(2026, 3, 2, 20, 0, 5))
    assert posts_to_dm(h, alice) == []
    assert (await h.bot.storage.dm_round_on(h.studio.guild, alice, "2026-03-02")).error == "server_paused"
    await (await h.slash(h.studio.admin, "coach resume")).wait_text()
    await at(h, utc(2026, 3, 3, 20, 0, 5))
    assert len(dm_rounds(h, alice)) == 1


async def test_forget_removes_the_dm_data_of_that_server(studio: Harness) -> None:
    h, alice = studio, studio.studio.alice
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    await at(h, utc(2026, 3, 2, 20, 0, 5))
    storage = h.bot.storage
    await storage.forget_dm_member(h.studio.guild, alice)
    assert await storage.get_dm_schedule(h.studio.guild, alice) is None
    assert await storage.dm_round_on(h.studio.guild, alice, "2026-03-02") is None
    assert await storage.get_dm_channel(alice) is None


async def test_a_server_name_in_a_dm_cannot_ping(running: Harness) -> None:
    h, fake, alice = running, running.fake, running.studio.alice
    loud = make_studio(fake, "@everyone *Beats*")
    fake.add_member(loud.guild, "Alice", user_id=alice)
    await fake.sync()
    await (await fake.slash(loud.guild, loud.channel, loud.admin, "coach setup",
                            {"channel": loud.channel, "time": "20:00", "timezone": "UTC"})).wait_text()
    await (await fake.slash(loud.guild, loud.channel, loud.admin, "coach post-now")).wait_text()
    await dm_on(h, alice, "21:00", "UTC", guild=loud.guild, channel=loud.channel)
    await at(h, utc(2026, 3, 2, 21, 0, 5))
    [message] = dm_rounds(h, alice)
    assert "@\u200beveryone \\*Beats\\*" in message["content"]
    assert not message["mention_everyone"] and message["_allowed_mentions"] == {"parse": []}


async def test_a_member_who_left_the_server_gets_no_more_dms_from_it(studio: Harness) -> None:
    """Without the members intent nobody tells the bot; about once a week it asks Discord (one request)."""
    h, alice, bob = studio, studio.studio.alice, studio.studio.bob
    await dm_on(h, alice, "21:00", "Europe/Berlin")
    await dm_on(h, bob, "21:00", "Europe/Berlin")
    member_gets = lambda: h.fake.requests_to("/guilds/{guild_id}/members/{user_id}", "GET")  # noqa: E731
    await at(h, utc(2026, 3, 2, 20, 0, 5))
    assert len(dm_rounds(h, alice)) == 1 and member_gets() == []  # just switched on: known to be there
    h.fake.remove_member(h.studio.guild, alice)
    await h.fake.sync()
    await at(h, utc(2026, 3, 10, 20, 0, 5))  # a week on: asked once each
    assert len(dm_rounds(h, alice)) == 1 and len(dm_rounds(h, bob)) == 2
    assert len(member_gets()) == 2
    schedule = await h.bot.storage.get_dm_schedule(h.studio.guild, alice)
    assert not schedule.enabled and schedule.off_reason == "left_server"
    await at(h, utc(2026, 3, 11, 20, 0, 5))
    assert len(dm_rounds(h, bob)) == 3 and len(member_gets()) == 2  # Bob is not asked again for a week
