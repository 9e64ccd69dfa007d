"""The coach's voice over months: no line repeats before its situation's others were said, prompts don't repeat
within 30 rounds, the valley comes once per run of Unfinished answers, short lines for the first skips, a welcome
back after an absence. A 90-day simulation over a real Storage (restarts on the way), plus the real bot."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from coach import checkins, voice
from coach.checkins import History
from coach.prompts import Prompts, load_prompts
from coach.storage import Storage
from tests.conftest import Harness
from tests.databases import database

GUILD = 77
START = date(2026, 1, 5)


def at_eight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 20, 0, tzinfo=UTC)


# ----------------------------------------------------------------------------- pure parts


def test_rotation_says_every_line_once_then_starts_again_without_the_last() -> None:
    ids = [f"id{i}" for i in range(5)]
    rng = random.Random(3)
    used: list[str] = []
    said = []
    for _ in range(50):
        index, used = voice.next_in_rotation(used, ids, rng)
        said.append(ids[index])
    for start in range(0, 50, 5):
        assert sorted(said[start:start + 5]) == ids  # each rotation says every line once
    assert all(a != b for a, b in zip(said, said[1:], strict=False))  # never twice in a row, even across rotations


def test_rotation_forgets_lines_no_longer_shipped() -> None:
    index, used = voice.next_in_rotation(["gone", "id0", "id1"], ["id0", "id1", "id2"], random.Random(1))
    assert index == 2 and used == ["id0", "id1", "id2"]


def test_prompt_window_leaves_a_choice() -> None:
    assert voice.prompt_window(31) == 30
    assert voice.prompt_window(66) == 49
    assert voice.prompt_window(5) == 4


def history(dates: list[str], answers: dict[str, str], away: list[tuple[str, str]] | None = None) -> History:
    return History(set(dates), dict(answers), away or [])


def test_welcome_back_counts_missed_rounds_but_not_away_days() -> None:
    days = [(START + timedelta(days=i)).isoformat() for i in range(12)]
    h = history(days, {days[0]: "finished", days[8]: "unfinished"})
    assert voice.missed_before(h, days[8]) == 7
    away = history(days, {days[0]: "finished", days[8]: "unfinished"}, [(days[2], days[4])])
    assert voice.missed_before(away, days[8]) == 4


def test_the_run_ends_at_a_finish_or_a_long_absence() -> None:
    days = [(START + timedelta(days=i)).isoformat() for i in range(20)]
    answers = {days[0]: "unfinished", days[1]: "finished", days[2]: "unfinished", days[3]: "skipped",
               days[4]: "unfinished", days[13]: "unfinished", days[14]: "skipped"}
    h = history(days, answers)
    assert [d for d, _ in voice.current_run(h, days[4])] == [days[4], days[3], days[2]]
    assert [d for d, _ in voice.current_run(h, days[14])] == [days[14], days[13]]  # 8 missed before day 13


# ----------------------------------------------------------------------------- 90 days


@dataclass
class Member:
    user_id: int
    name: str
    project: str | None
    weights: tuple[float, float, float]  # finished, unfinished, skipped
    away: tuple[int, int] | None = None  # days marked /me away (no answers then)
    absent: tuple[int, int] | None = None  # days without an answer, not marked away
    skip_days: tuple[int, int] | None = None  # days answered Skipped (off sick)
    said: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    answers: list[tuple[str, str, str]] = field(default_factory=list)  # (date, status, situation)


MEMBERS = [
    Member(101, "Ana", "Night Bus", (0.35, 0.45, 0.20)),
    Member(102, "Ben", "Film cue 3M2", (0.05, 0.85, 0.10)),  # one long scoring job
    Member(103, "Cleo", "Band EP", (0.30, 0.50, 0.20), skip_days=(20, 30), absent=(50, 61)),
    Member(104, "Dev", None, (0.30, 0.40, 0.30), away=(40, 52)),
    Member(105, "Eli", "Client mix", (0.40, 0.40, 0.20)),
    Member(106, "Fay", None, (0.20, 0.60, 0.20)),
]


def key_and_index(prompts: Prompts, situation: str, project: str | None, values: dict, reply: str
                  ) -> tuple[str, int, int]:
    key, lines = prompts.pool(situation, has_project=bool(project))
    rendered = [prompts.fill(line, **values) for line in lines]
    assert reply in rendered, (situation, reply)
    return key, rendered.index(reply), len(lines)


def assert_rotation(sequence: list[int], size: int, what: str) -> None:
    """Every block of `size` consecutive lines from the start is one full rotation: no line twice in it."""
    for start in range(0, len(sequence), size):
        block = sequence[start:start + size]
        assert len(set(block)) == len(block), f"{what}: line repeated within a rotation: {sequence}"
    assert all(a != b for a, b in zip(sequence, sequence[1:], strict=False)), what


async def test_ninety_days_of_answers_with_restarts(tmp_path: Path) -> None:
    path = database(tmp_path / "voice.sqlite3")
    storage = await Storage.open(path)
    prompts = load_prompts()
    rng = random.Random(1)
    await storage.upsert_guild(guild_id=GUILD, channel_id=5, time_local="20:00", timezone="UTC", days=127,
                               role_id=None, next_due=None, now=at_eight(START))
    said = {m.user_id: defaultdict(list) for m in MEMBERS}
    dm_said: list[int] = []
    prompt_indices: list[int] = []
    answered = total = 0
    try:
        for day_number in range(90):
            if day_number and day_number % 20 == 0:  # a restart: new objects over the same database
                await storage.close()
                storage = await Storage.open(path)
                prompts = load_prompts()
                rng = random.Random(day_number)
            day = START + timedelta(days=day_number)
            now = at_eight(day)
            index = await voice.choose_prompt(storage, prompts, GUILD, rng)
            prompt_indices.append(index)
            round_ = await storage.claim_round(guild_id=GUILD, local_date=day.isoformat(),
                                               scheduled_at=int(now.timestamp()), channel_id=5, prompt_index=index,
                                               late=False, manual=False, now=now)
            assert round_ is not None
            await storage.mark_round_posted(round_.id, 1000 + day_number, now)
            text = await voice.choose_dm_text(storage, prompts, GUILD, 104, rng, server="Night Owls")
            dm_said.append([prompts.fill(x, server="Night Owls") for x in prompts.replies["dm_round"]].index(text))
            for member in MEMBERS:
                if member.away and day_number == member.away[0]:
                    await storage.set_away(GUILD, member.user_id, day.isoformat(),
                                           (START + timedelta(days=member.away[1])).isoformat())
                if member.away and member.away[0] <= day_number <= member.away[1]:
                    continue
                total += 1
                if member.absent and member.absent[0] <= day_number <= member.absent[1]:
                    continue
                if member.skip_days and member.skip_days[0] <= day_number <= member.skip_days[1]:
                    status = "skipped"
                elif rng.random() < 0.85:
                    status = rng.choices(("finished", "unfinished", "skipped"), member.weights)[0]
                else:
                    continue
                answered += 1
                outcome = await checkins.record(
                    storage, prompts, rng, guild_id=GUILD, user_id=member.user_id, local_date=day.isoformat(),
                    round_id=round_.id, member_name=member.name, server_name="Night Owls", status=status,
                    project_name=member.project, note=None, via="button", now=now)
                values = {"member": member.name, "project": member.project or "", "streak": outcome.streak.current,
                          "server": "Night Owls"}
                key, line, size = key_and_index(prompts, outcome.situation, member.project, values, outcome.reply)
                said[member.user_id][key].append(line)
                member.answers.append((day.isoformat(), status, outcome.situation))
                if rng.random() < 0.05:  # now and then an edit of the same day: the edited rotation
                    edit = await checkins.record(
                        storage, prompts, rng, guild_id=GUILD, user_id=member.user_id, local_date=day.isoformat(),
                        round_id=round_.id, member_name=member.name, server_name="Night Owls", status=status,
                        project_name=member.project, note="edited", via="button", now=now)
                    assert edit.situation == "edited"
                    key, line, _ = key_and_index(prompts, "edited", member.project, values, edit.reply)
                    said[member.user_id][key].append(line)
    finally:
        await storage.close()

    assert 0.8 < answered / total < 0.9  # away days aside
    # 1. No member hears a line again before the situation's other lines were said.
    for member in MEMBERS:
        for key, sequence in said[member.user_id].items():
            situation = key.removesuffix(".np")
            lines = prompts.replies_no_project[situation] if key.endswith(".np") else prompts.replies[situation]
            assert_rotation(sequence, len(lines), f"{member.name} {key}")
    assert_rotation(dm_said, len(prompts.replies["dm_round"]), "DM round texts")
    assert sum(len(s) for s in said[101].values()) > 60
    # 2. A server's prompts don't repeat within its last 30 rounds.
    for i in range(len(prompt_indices)):
        window = prompt_indices[max(0, i - 29):i + 1]
        assert len(set(window)) == len(window), f"prompt repeated within 30 rounds at round {i}"
    # 3. The valley: at most once per run of Unfinished answers, from the third Unfinished on; only for Unfinished.
    for member in MEMBERS:
        run_unfinished, valleys_in_run = 0, 0
        for _, status, situation in member.answers:
            if situation == "welcome_back" or status == "finished":
                run_unfinished, valleys_in_run = 0, 0
            if status == "unfinished":
                run_unfinished += 1
            if situation == "valley":
                assert status == "unfinished" and run_unfinished >= voice.VALLEY_AT, member.name
                valleys_in_run += 1
                assert valleys_in_run == 1, f"{member.name}: the valley twice in one run"
    ben = [s for _, _, s in MEMBERS[1].answers]
    assert 1 <= ben.count("valley") <= 10, ben  # a long job: a few finishes break it into a few runs
    # 4. Skipped: the first two in a row get the short lines; Cleo's sick week gets skipped_run after that.
    cleo = MEMBERS[2].answers
    sick = [s for d, _, s in cleo if START + timedelta(days=20) <= date.fromisoformat(d) <= START + timedelta(days=30)]
    assert "skipped_run" in sick and sick.count("skipped") <= 2 + sum(1 for s in sick if s.startswith("streak"))
    # 5. Welcome back after Cleo's unannounced absence; none after Dev's away days.
    back = [s for d, _, s in cleo if date.fromisoformat(d) > START + timedelta(days=61)]
    assert back[0] == "welcome_back"
    dev_after = [s for d, _, s in MEMBERS[3].answers if date.fromisoformat(d) > START + timedelta(days=52)]
    assert dev_after[0] != "welcome_back"


async def test_two_processes_share_one_rotation(tmp_path: Path) -> None:
    path = database(tmp_path / "shared.sqlite3")
    one, two = await Storage.open(path), await Storage.open(path)
    prompts = load_prompts()
    lines = prompts.replies["unfinished"]
    try:
        said = []
        for round_number in range(len(lines) // 2):
            picks = await asyncio.gather(
                voice.pick_line(one, GUILD, 9, "unfinished", lines, random.Random(round_number)),
                voice.pick_line(two, GUILD, 9, "unfinished", lines, random.Random(round_number)),
            )
            said.extend(picks)
        assert len(set(said)) == len(said)  # same seed in both processes, yet no line twice
    finally:
        await one.close()
        await two.close()


# ----------------------------------------------------------------------------- through the real bot


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


async def at(h: Harness, moment: datetime) -> None:
    h.clock.set(moment)
    await h.tick()


async def button_answer(h: Harness, message: dict, label: str, user: int, project: str) -> str:
    ids = {c["label"]: c["custom_id"] for row in message["components"] for c in row["components"]}
    click = await h.fake.click(message, ids[label], user)
    await click.response()
    modal = click.modal
    assert modal is not None, click.describe()
    fields = {}
    for row in modal["components"]:
        for comp in row.get("components") or [row.get("component")]:
            fields[comp["custom_id"]] = project if "project" in comp["label"].lower() else ""
    handle = await h.fake.submit_modal(modal["custom_id"], fields, user)
    return await handle.wait_text()


async def test_a_button_answer_says_the_one_line_left_in_the_rotation(running: Harness) -> None:
    h, alice, guild = running, running.studio.alice, running.studio.guild
    await h.setup_checkin("20:00", "Europe/Berlin")
    await at(h, utc(2026, 3, 2, 19, 0, 5))
    first = await button_answer(h, h.round_messages()[-1], "Finished", alice, "Night Bus")
    assert "/project finish" in first  # the first check-in says what Finished means
    footer = h.round_messages()[-1]["embeds"][0]["footer"]["text"]
    assert "today" in footer and "/project finish" in footer
    # Every Unfinished line but one was said to Alice already (before a restart): the button must say that one.
    lines = h.bot.prompts.replies["unfinished"]
    left = 4
    said = " ".join(voice.line_id(line) for i, line in enumerate(lines) if i != left)
    assert await h.bot.storage.swap_voice_memory(guild, alice, "unfinished", None, said)
    await h.restart()
    await at(h, utc(2026, 3, 3, 19, 0, 5))
    text = await button_answer(h, h.round_messages()[-1], "Unfinished", alice, "Night Bus")
    expected = h.bot.prompts.fill(lines[left], member="Alice", project="Night Bus", server="Night Owls Studio")
    assert text.split("\n")[-1] == expected
    assert (await h.bot.storage.voice_memory(guild, alice, "unfinished")).split() == [
        *said.split(), voice.line_id(lines[left])]


async def test_a_dm_round_says_the_one_text_left_in_the_rotation(running: Harness) -> None:
    from tests.test_dm import at as dm_at
    from tests.test_dm import dm_on, dm_rounds

    h, alice, guild = running, running.studio.alice, running.studio.guild
    await h.setup_checkin("20:00", "Europe/Berlin")
    await (await h.slash(h.studio.admin, "coach post-now")).wait_text()  # a DM delivers the open round
    h.bot.get_cog("DMReplies").settle_seconds = 0
    texts = h.bot.prompts.replies["dm_round"]
    left = 7
    said = " ".join(voice.line_id(text) for i, text in enumerate(texts) if i != left)
    assert await h.bot.storage.swap_voice_memory(guild, alice, "dm_round", None, said)
    await dm_on(h, alice, "09:00", "Europe/Berlin")
    await dm_at(h, utc(2026, 3, 3, 8, 0, 5))
    (message,) = dm_rounds(h, alice)
    assert h.bot.prompts.fill(texts[left], server="Night Owls Studio") in message["content"]
