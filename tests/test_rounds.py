"""The daily Accountability Check through the loopback Discord: posting, exactly once, answering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coach.clock import to_unix
from tests.conftest import Harness, eventually


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


async def at(h: Harness, moment: datetime) -> None:
    h.clock.set(moment)
    await h.tick()


def buttons(message: dict) -> dict[str, str]:
    return {c["label"]: c["custom_id"] for row in message["components"] for c in row["components"]}


async def answer(h: Harness, message: dict, label: str, user: int, project: str = "", note: str = "") -> str:
    click = await h.fake.click(message, buttons(message)[label], user)
    await click.response()
    modal = click.modal
    assert modal is not None, click.describe()
    fields = {}
    for row in modal["components"]:
        inner = row.get("components") or [row.get("component")]
        for comp in inner:
            fields[comp["custom_id"]] = project if "project" in comp["label"].lower() else note
    handle = await h.fake.submit_modal(modal["custom_id"], fields, user)
    text = await handle.wait_text()
    assert handle.ephemeral
    return text


# ----------------------------------------------------------------------------- posting


@pytest.mark.parametrize("day,due", [
    (utc(2026, 3, 28, 12), utc(2026, 3, 28, 19)),   # CET: 20:00 = 19:00 UTC
    (utc(2026, 3, 29, 12), utc(2026, 3, 29, 18)),   # spring forward that morning: 20:00 = 18:00 UTC
    (utc(2026, 10, 24, 12), utc(2026, 10, 24, 18)),
    (utc(2026, 10, 25, 12), utc(2026, 10, 25, 19)),  # fall back that morning
])
async def test_round_posts_at_berlin_wall_clock_across_dst(harness: Harness, day: datetime, due: datetime) -> None:
    harness.clock.set(day)
    await harness.start()
    await harness.setup_checkin("20:00", "Europe/Berlin")
    await at(harness, due - timedelta(seconds=30))
    assert harness.round_messages() == []
    await at(harness, due + timedelta(seconds=5))
    posted = harness.round_messages()
    assert len(posted) == 1
    assert day.strftime("%A") in posted[0]["embeds"][0]["title"]
    assert not posted[0]["mention_everyone"] and posted[0]["mention_roles"] == []


@pytest.mark.parametrize("tz,day,due", [
    ("Australia/Sydney", utc(2026, 4, 4, 12), utc(2026, 4, 4, 23, 30)),  # 5 April, first AEST day
    ("Australia/Sydney", utc(2026, 10, 3, 12), utc(2026, 10, 3, 23, 30)),  # 4 Oct, first AEDT day: 09:30 = 22:30 UTC
    ("America/New_York", utc(2026, 3, 8, 1), utc(2026, 3, 8, 13, 30)),
])
async def test_morning_rounds_elsewhere(harness: Harness, tz: str, day: datetime, due: datetime) -> None:
    if tz == "Australia/Sydney" and day.month == 10:
        due = utc(2026, 10, 3, 22, 30)
    harness.clock.set(day)
    await harness.start()
    await harness.setup_checkin("09:30", tz)
    await at(harness, due - timedelta(seconds=1))
    assert harness.round_messages() == []
    await at(harness, due + timedelta(seconds=1))
    assert len(harness.round_messages()) == 1


async def test_no_round_on_an_unchosen_weekday(harness: Harness) -> None:
    harness.clock.set(utc(2026, 3, 6, 12))  # Friday
    await harness.start()
    await harness.setup_checkin("20:00", "Europe/Berlin", "weekdays")
    await at(harness, utc(2026, 3, 6, 19, 1))
    await at(harness, utc(2026, 3, 7, 19, 1))  # Saturday
    await at(harness, utc(2026, 3, 8, 19, 1))  # Sunday
    assert len(harness.round_messages()) == 1
    await at(harness, utc(2026, 3, 9, 19, 1))  # Monday
    assert len(harness.round_messages()) == 2


async def test_role_ping_only_the_configured_role(harness: Harness) -> None:
    role = harness.fake.add_role(harness.studio.guild, "accountability")
    await harness.start()
    await harness.setup_checkin("20:00", "Europe/Berlin", role=role)
    await at(harness, utc(2026, 3, 2, 19, 0, 5))
    (message,) = harness.round_messages()
    assert message["mention_roles"] == [str(role)] and not message["mention_everyone"]
    assert message["mentions"] == []


async def test_restart_just_after_posting_posts_nothing_new(harness: Harness) -> None:
    await harness.start()
    await harness.setup_checkin("20:00", "Europe/Berlin")
    await at(harness, utc(2026, 3, 2, 19, 0, 5))
    harness.clock.set(utc(2026, 3, 2, 19, 0, 30))
    await harness.restart()
    await harness.tick()
    assert len(harness.round_messages()) == 1


async def test_downtime_of_an_hour_posts_once_late(harness: Harness) -> None:
    await harness.start()
    await harness.setup_checkin("20:00", "Europe/Berlin")
    await harness.stop()
    harness.clock.set(utc(2026, 3, 2, 20, 0))  # an hour after it was due
    await harness.start()  # setup_hook catches up
    await harness.tick()
    posted = harness.round_messages()
    assert len(posted) == 1
    assert "Posted late" in posted[0]["embeds"][0]["description"]
    await harness.restart()
    assert len(harness.round_messages()) == 1
    guild = await harness.bot.storage.get_guild(harness.studio.guild)
    assert guild.next_due == to_unix(utc(2026, 3, 3, 19))


async def test_downtime_of_five_hours_posts_nothing(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    await harness.start()
    await harness.setup_checkin("20:00", "Europe/Berlin")
    await harness.stop()
    harness.clock.set(utc(2026, 3, 3, 0, 0))
    await harness.start()
    assert harness.round_messages() == []
    assert "missed by more than the grace window" in caplog.text
    await at(harness, utc(2026, 3, 3, 19, 0, 1))
    assert len(harness.round_messages()) == 1


async def test_post_now_once_per_day_and_schedule_unchanged(running: Harness) -> None:
    await running.setup_checkin("20:00", "Europe/Berlin")
    before = (await running.bot.storage.get_guild(running.studio.guild)).next_due
    first = await running.slash(running.studio.admin, "coach post-now")
    assert "Posted today's round" in await first.wait_text()
    second = await running.slash(running.studio.admin, "coach post-now")
    text = await second.wait_text()
    assert "already up" in text and "discord.com/channels" in text
    assert (await running.bot.storage.get_guild(running.studio.guild)).next_due == before
    await at(running, utc(2026, 3, 2, 19, 0, 5))  # the scheduled time for the same day posts nothing more
    assert len(running.round_messages()) == 1


async def test_pause_and_resume(running: Harness) -> None:
    await running.setup_checkin("20:00", "Europe/Berlin")
    assert "Paused" in await (await running.slash(running.studio.admin, "coach pause")).wait_text()
    await at(running, utc(2026, 3, 2, 19, 0, 5))
    assert running.round_messages() == []
    text = await (await running.slash(running.studio.admin, "coach resume")).wait_text()
    assert "<t:1772564400:F>" in text  # tomorrow 20:00 Berlin
    await at(running, utc(2026, 3, 3, 19, 0, 5))
    assert len(running.round_messages()) == 1


async def test_deleted_channel_fails_once_and_admin_is_told_once(running: Harness) -> None:
    await running.setup_checkin("20:00", "Europe/Berlin")
    general = running.fake.add_channel(running.studio.guild, "general")
    running.fake.delete_channel(running.studio.channel)
    await running.fake.sync()
    await at(running, utc(2026, 3, 2, 19, 0, 5))
    await at(running, utc(2026, 3, 2, 19, 1, 5))
    posts = running.fake.requests_to("/channels/{channel_id}/messages", "POST")
    assert len(posts) == 0  # the bot knows the channel is gone: no request at all
    text = await (await running.slash(running.studio.admin, "coach pause", channel=general)).wait_text()
    assert "is gone" in text
    again = await (await running.slash(running.studio.admin, "coach resume", channel=general)).wait_text()
    assert "is gone" not in again


async def test_missing_permission_is_recorded_not_retried(running: Harness) -> None:
    await running.setup_checkin("20:00", "Europe/Berlin")
    running.fake.inject_fault("POST", "/channels/{channel_id}/messages", status=403, code=50013, times=5)
    await at(running, utc(2026, 3, 2, 19, 0, 5))
    await at(running, utc(2026, 3, 2, 19, 5))
    assert len(running.fake.requests_to("/channels/{channel_id}/messages", "POST")) == 1
    show = await (await running.slash(running.studio.admin, "coach show")).wait_text()
    assert "missing permission" in show


async def test_429_and_500_are_retried_by_discord_py(running: Harness) -> None:
    await running.setup_checkin("20:00", "Europe/Berlin")
    running.fake.inject_fault("POST", "/channels/{channel_id}/messages", status=429, retry_after=0.1)
    running.fake.inject_fault("POST", "/channels/{channel_id}/messages", status=500)
    await at(running, utc(2026, 3, 2, 19, 0, 5))
    assert len(running.round_messages()) == 1


async def test_reconnect_then_resume_keeps_working(running: Harness) -> None:
    await running.fake.send_reconnect()
    assert running.fake.resume_count == 1
    assert "All set" in await running.setup_checkin()


# ----------------------------------------------------------------------------- answering


async def posted_round(h: Harness) -> dict:
    await h.setup_checkin("20:00", "Europe/Berlin")
    await at(h, utc(2026, 3, 2, 19, 0, 5))
    (message,) = h.round_messages()
    return message


async def test_answer_with_button_and_modal_then_edit(running: Harness) -> None:
    message = await posted_round(running)
    alice = running.studio.alice
    text = await answer(running, message, "Finished", alice, project="Night Drive EP", note="bounced the rough mix")
    assert "Finished" in text and "Night Drive EP" in text and "+1 point" in text
    storage = running.bot.storage
    assert await storage.points_total(running.studio.guild, alice, ["checkin"]) == 1
    again = await answer(running, message, "Unfinished", alice, project="Night Drive EP")
    assert "no extra points" in again
    assert await storage.points_total(running.studio.guild, alice, ["checkin"]) == 1
    checkin = await storage.get_checkin(running.studio.guild, alice, "2026-03-02")
    assert checkin.status == "unfinished"
    tally = await eventually(lambda: "Unfinished **1**" in running.fake.message(int(message["id"]))["embeds"][0]
                             ["fields"][0]["value"] and running.fake.message(int(message["id"]))["embeds"][0]
                             ["fields"][0]["value"])
    assert "Unfinished **1**" in tally and "Finished **0**" in tally


async def test_modal_prefills_most_recent_active_project(running: Harness) -> None:
    message = await posted_round(running)
    await (await running.slash(running.studio.bob, "project start", {"name": "Basement Tapes"})).wait_text()
    click = await running.fake.click(message, buttons(message)["Skipped"], running.studio.bob)
    await click.response()
    values = [c.get("value") for row in click.modal["components"]
              for c in (row.get("components") or [row.get("component")])]
    assert "Basement Tapes" in values


async def test_checkin_command_answers_current_round(running: Harness) -> None:
    await posted_round(running)
    handle = await running.slash(running.studio.bob, "checkin", {"status": "skipped", "note": "no time today"})
    text = await handle.wait_text()
    assert handle.ephemeral and "Skipped" in text
    assert (await running.bot.storage.get_checkin(running.studio.guild, running.studio.bob, "2026-03-02")).via == "command"


async def test_checkin_without_a_round_says_when(running: Harness) -> None:
    await running.setup_checkin("20:00", "Europe/Berlin")
    handle = await running.slash(running.studio.bob, "checkin", {"status": "finished"})
    text = await handle.wait_text()
    assert "No check-in is open yet" in text and "<t:1772478000:F>" in text and handle.ephemeral


async def test_old_round_after_next_opened_is_refused(running: Harness) -> None:
    old = await posted_round(running)
    await at(running, utc(2026, 3, 3, 19, 0, 5))
    assert len(running.round_messages()) == 2
    click = await running.fake.click(old, buttons(old)["Finished"], running.studio.alice)
    text = await click.wait_text()
    assert "closed" in text and click.ephemeral
    assert await running.bot.storage.count_checkins(running.studio.guild, running.studio.alice) == 0


async def test_late_answer_counts_until_next_round(running: Harness) -> None:
    message = await posted_round(running)
    running.clock.set(utc(2026, 3, 3, 12))  # next morning, before the next round
    await answer(running, message, "Finished", running.studio.alice)
    assert await running.bot.storage.get_checkin(running.studio.guild, running.studio.alice, "2026-03-02")


async def test_buttons_work_after_restart(running: Harness) -> None:
    message = await posted_round(running)
    await running.restart()
    text = await answer(running, message, "Skipped", running.studio.alice)
    assert "Skipped" in text


async def test_note_with_mentions_is_stored_but_pings_nobody(running: Harness) -> None:
    message = await posted_round(running)
    note = "@everyone <@&123> <@456> got stuck on the drop"
    text = await answer(running, message, "Unfinished", running.studio.alice, note=note)
    checkin = await running.bot.storage.get_checkin(running.studio.guild, running.studio.alice, "2026-03-02")
    assert checkin.note == note
    for handle in running.fake.interactions:
        body = handle.response_data or {}
        assert body.get("allowed_mentions", {"parse": []}).get("parse") in ([], None)
    assert "@everyone" not in text


async def test_too_long_note_via_command_is_refused(running: Harness) -> None:
    await posted_round(running)
    handle = await running.slash(running.studio.alice, "checkin", {"status": "finished", "note": "x" * 5000})
    text = await handle.wait_text()
    assert "5,000 characters" in text and handle.ephemeral
    assert await running.bot.storage.count_checkins(running.studio.guild, running.studio.alice) == 0


async def test_coaching_reply_by_situation(running: Harness) -> None:
    await running.setup_checkin("20:00", "Europe/Berlin")
    prompts = running.bot.prompts
    situations = []
    for day in range(2, 7):
        await at(running, utc(2026, 3, day, 19, 0, 5))
        status = "finished" if day == 2 else "unfinished"
        text = await (await running.slash(running.studio.alice, "checkin", {"status": status})).wait_text()
        coach_line = text.split("\n")[-1]
        situations.append(next(s for s, lines in prompts.replies.items()
                               if any(_matches(coach_line, line) for line in lines)
                               or any(_matches(coach_line, line) for line in prompts.replies_no_project.get(s, ()))))
    # 1st ever; 2nd unfinished; 3rd = 3-round streak; 4th = third non-finished in a row: the valley.
    assert situations[0] == "first_checkin"
    assert situations[1] == "unfinished"
    assert situations[2] == "streak_3"
    assert situations[3] == "valley"


def _matches(text: str, template: str) -> bool:
    fixed = [part for part in template.replace("}", "{").split("{")[::2] if part.strip()]
    return all(part in text for part in fixed)


# ----------------------------------------------------------------------------- projects


async def test_project_lifecycle_and_autocomplete(running: Harness) -> None:
    await running.setup_checkin("20:00", "Europe/Berlin")
    alice, storage = running.studio.alice, running.bot.storage
    start = await running.slash(alice, "project start", {"name": "Night Drive EP", "deadline": "2026-04-01"})
    assert "Night Drive EP" in await start.wait_text()
    await (await running.slash(alice, "project start", {"name": "Bassline study"})).wait_text()
    ac = await running.fake.autocomplete(running.studio.guild, running.studio.channel, alice, "project finish",
                                         {"name": "night"}, "name")
    await ac.response()
    assert [c["value"] for c in ac.choices] == ["Night Drive EP"]
    done = await running.slash(alice, "project finish", {"name": "night drive ep"})
    assert "+5 points" in await done.wait_text()
    announcements = await eventually(
        lambda: [m for m in running.fake.messages[running.studio.channel] if not m.get("embeds")])
    assert len(announcements) == 1 and f"<@{alice}>" in announcements[0]["content"]
    assert announcements[0]["mentions"][0]["id"] == str(alice) and not announcements[0]["mention_everyone"]
    assert await storage.points_total(running.studio.guild, alice, ["finish"]) == 5
    dropped = await running.slash(alice, "project drop", {"name": "Bassline study"})
    assert "Dropped" in await dropped.wait_text()
    listing = await (await running.slash(alice, "project list")).wait_text()
    assert "Night Drive EP" in listing and "finished" in listing and "dropped" in listing


async def test_project_bad_inputs(running: Harness) -> None:
    alice, bob = running.studio.alice, running.studio.bob
    await (await running.slash(alice, "project start", {"name": "Night Drive EP"})).wait_text()
    cases = [
        (alice, "project start", {"name": "night drive ep"}, "already have an active project"),
        (alice, "project start", {"name": "x" * 81}, "81 characters"),
        (alice, "project start", {"name": "   "}, "Give the project a name"),
        (alice, "project start", {"name": "Later", "deadline": "2026-03-01"}, "already behind us"),
        (alice, "project start", {"name": "Later", "deadline": "next week"}, "is not a date"),
        (bob, "project finish", {"name": "Night Drive EP"}, "belongs to another member"),
        (bob, "project drop", {"name": "Nope"}, "no active project called"),
    ]
    for user, command, options, expected in cases:
        handle = await running.slash(user, command, options)
        text = await handle.wait_text()
        assert expected in text, (command, options, text)
        assert handle.ephemeral
    assert await running.bot.storage.count_projects(running.studio.guild, alice) == {"active": 1, "finished": 0,
                                                                                     "dropped": 0}
    assert await running.bot.storage.count_projects(running.studio.guild, bob) == {"active": 0, "finished": 0,
                                                                                   "dropped": 0}


async def test_finish_announce_off_and_once_per_project(running: Harness) -> None:
    await running.setup_checkin("20:00", "Europe/Berlin")
    alice = running.studio.alice
    await (await running.slash(alice, "me announce", {"switch": "off"})).wait_text()
    await (await running.slash(alice, "project start", {"name": "Quiet one"})).wait_text()
    await (await running.slash(alice, "project finish", {"name": "Quiet one"})).wait_text()
    assert running.fake.messages[running.studio.channel] == []


async def test_project_list_paginates_and_pages_after_restart(running: Harness) -> None:
    alice = running.studio.alice
    for i in range(23):
        await running.bot.storage.create_project(running.studio.guild, alice, f"Beat {i:02d}", None,
                                                 running.clock.now())
    handle = await running.slash(alice, "project list")
    await handle.response()
    first = handle.response_data
    assert "page 1/3" in first["embeds"][0]["footer"]["text"]
    await running.restart()
    next_id = [c for row in first["components"] for c in row["components"] if c["label"] == "Next"][0]["custom_id"]
    click = await running.fake.click(handle.original, next_id, alice)
    await click.response()
    assert "page 2/3" in click.response_data["embeds"][0]["footer"]["text"]


async def test_form_opened_before_a_restart_still_submits(running: Harness) -> None:
    message = await posted_round(running)
    click = await running.fake.click(message, buttons(message)["Finished"], running.studio.alice)
    await click.response()
    modal = click.modal
    await running.restart()
    fields = {c["custom_id"]: ("Night Drive EP" if c["custom_id"] == "project" else "printed the stems")
              for row in modal["components"] for c in (row.get("components") or [row.get("component")])}
    handle = await running.fake.submit_modal(modal["custom_id"], fields, running.studio.alice)
    text = await handle.wait_text()
    assert "Finished" in text and handle.ephemeral
    checkin = await running.bot.storage.get_checkin(running.studio.guild, running.studio.alice, "2026-03-02")
    assert checkin.note == "printed the stems"


async def test_two_members_with_forms_open_at_once(running: Harness) -> None:
    message = await posted_round(running)
    opened = []
    for user in (running.studio.alice, running.studio.bob):
        click = await running.fake.click(message, buttons(message)["Finished"], user)
        await click.response()
        opened.append((user, click.modal))
    for user, modal in opened:
        fields = {c["custom_id"]: "" for row in modal["components"]
                  for c in (row.get("components") or [row.get("component")])}
        handle = await running.fake.submit_modal(modal["custom_id"], fields, user)
        assert "Finished" in await handle.wait_text()
    assert await running.bot.storage.tally(int(message["components"][0]["components"][0]["custom_id"]
                                               .split(":")[2])) == {"finished": 2, "unfinished": 0, "skipped": 0}
