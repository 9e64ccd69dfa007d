"""The coach's words: the shipped files load and hold the voice's rules; broken files are refused."""

from __future__ import annotations

import json
import random
import re
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from coach.prompts import (
    DEFAULT_DIRECTORY,
    MAX_CHECKIN_CHARS,
    MAX_REPLY_CHARS,
    PLACEHOLDERS,
    SITUATIONS,
    PromptError,
    Prompts,
    load_prompts,
    placeholders,
)

SAMPLE = {"member": "Ana", "project": "Night Bus", "streak": 7, "server": "Loop Club"}


@pytest.fixture(scope="module")
def shipped() -> Prompts:
    return load_prompts(DEFAULT_DIRECTORY)


# ---------------------------------------------------------------- shipped words


def test_shipped_prompts_load(shipped: Prompts) -> None:
    assert len(shipped.checkin) >= 60
    assert set(shipped.replies) == set(SITUATIONS)
    for situation in SITUATIONS:
        assert len(shipped.replies[situation]) >= 6, situation
    for situation, lines in shipped.replies_no_project.items():
        assert len(lines) >= 3, situation
        assert all("project" not in placeholders(line) for line in lines), situation


def test_default_directory_is_the_repo_prompts_folder() -> None:
    assert DEFAULT_DIRECTORY.name == "prompts"
    assert (DEFAULT_DIRECTORY / "checkin.toml").is_file()
    assert load_prompts() == load_prompts(DEFAULT_DIRECTORY)


def test_situations_that_mention_a_project_have_no_project_variants(shipped: Prompts) -> None:
    for situation, lines in shipped.replies.items():
        if any("project" in placeholders(line) for line in lines):
            assert situation in shipped.replies_no_project, situation


def test_checkin_prompts_fit(shipped: Prompts) -> None:
    for text in shipped.checkin:
        assert len(text) <= MAX_CHECKIN_CHARS
        assert placeholders(text) <= {"server"}
        sentences = [s for s in re.split(r"(?<=[.?!])\s+", text) if s]
        assert 1 <= len(sentences) <= 3, text


def recites_buttons(text: str) -> bool:
    words = set(re.findall(r"[a-z]+", text.lower()))
    return {"finished", "unfinished", "skipped"} <= words


def test_most_prompts_do_not_recite_the_buttons(shipped: Prompts) -> None:
    """The buttons sit right under the prompt: spelling them out is allowed in at most a quarter of the prompts
    (and of the DM round texts)."""
    for lines in (shipped.checkin, shipped.replies["dm_round"]):
        reciting = [text for text in lines if recites_buttons(text)]
        assert len(reciting) * 4 <= len(lines), reciting


def all_shipped_lines(shipped: Prompts) -> list[str]:
    lines = list(shipped.checkin)
    lines += [line for lines_ in shipped.replies.values() for line in lines_]
    lines += [line for lines_ in shipped.replies_no_project.values() for line in lines_]
    return lines


def phrases(text: str, size: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"\{\w+\}|[a-z0-9']+", text.lower().replace("\u2019", "'"))
    return {tuple(words[i:i + size]) for i in range(len(words) - size + 1)}


def overused_phrases(lines: list[str], most: int = 6) -> dict[str, int]:
    """Five-word phrases (placeholders count as words) found in more than `most` lines."""
    counts: Counter[tuple[str, ...]] = Counter()
    for line in lines:
        counts.update(phrases(line))
    return {" ".join(p): n for p, n in counts.items() if n > most}


def test_no_five_word_phrase_in_more_than_six_lines(shipped: Prompts) -> None:
    assert overused_phrases(all_shipped_lines(shipped)) == {}


def test_the_phrase_check_catches_a_refrain() -> None:
    lines = [f"Line {i}: the point is for showing up, {i}." for i in range(7)]
    assert overused_phrases(lines) == {"the point is for showing": 7, "point is for showing up": 7}
    assert overused_phrases(lines[:6]) == {}
    assert recites_buttons("Finished, Unfinished or Skipped?") and not recites_buttons("Did you finish today?")


DAILY = ("finished", "unfinished", "skipped", "valley", "dm_round", "edited", "welcome_back", "nudge")
RARE = ("streak_3", "streak_7", "streak_30", "streak_100", "first_checkin", "project_started",
        "project_finished_announce", "project_finished_reply", "project_dropped", "lesson_reflected", "lesson_apply",
        "recap_intro", "skipped_run", "nudge_pause")


def test_enough_to_say_for_months(shipped: Prompts) -> None:
    assert len(shipped.checkin) >= 60
    for situation in DAILY:
        assert len(shipped.replies[situation]) >= 12, situation
        if situation in shipped.replies_no_project:
            assert len(shipped.replies_no_project[situation]) >= 6, situation
    for situation in RARE:
        assert len(shipped.replies[situation]) >= 6, situation
    assert set(DAILY) | set(RARE) == set(SITUATIONS)


SUSPICION = ("answer straight", "be honest with", "if you skipped today, say so", "in your control?",
             "honest answer", "the truth", "only way out")


def test_voice_never_suspects_and_finished_has_one_meaning(shipped: Prompts) -> None:
    for line in all_shipped_lines(shipped):
        lowered = line.lower()
        for phrase in SUSPICION:
            assert phrase not in lowered, line
    for line in shipped.replies["first_checkin"]:
        assert "/project finish" in line and "today" in line, line
    # The first two Skipped answers in a row: short and warm, no advice and no question.
    for line in shipped.replies["skipped"]:
        assert len(line) <= 80 and "?" not in line, line
    for line in shipped.replies["welcome_back"]:
        assert "streak" not in line.lower(), line


def test_every_reply_line_formats(shipped: Prompts) -> None:
    for lists in (shipped.replies, shipped.replies_no_project):
        for situation, lines in lists.items():
            for line in lines:
                assert len(line) <= MAX_REPLY_CHARS
                text = line.format_map(SAMPLE)
                assert "{" not in text and "}" not in text, (situation, line)


def test_voice_rules_in_shipped_lines(shipped: Prompts) -> None:
    all_lines = [line for lines in shipped.replies.values() for line in lines]
    all_lines += [line for lines in shipped.replies_no_project.values() for line in lines]
    all_lines += list(shipped.checkin)
    emoji = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
    for line in all_lines:
        assert len(emoji.findall(line)) <= 1, line
        assert "@everyone" not in line and "@here" not in line
    for line in shipped.replies["dm_round"]:
        assert "server" in placeholders(line)
    for situation in ("streak_3", "streak_7", "streak_30", "streak_100"):
        for line in shipped.replies[situation]:
            assert "streak" in placeholders(line), line
    for line in shipped.replies["project_finished_announce"]:
        assert "member" in placeholders(line)
    for line in (
        shipped.replies["project_finished_reply"] + shipped.replies_no_project["project_finished_reply"]
    ):
        assert "+5" in line
    for line in shipped.replies["lesson_reflected"]:
        assert "+2" in line
    for line in shipped.replies["recap_intro"]:
        assert "server" in placeholders(line)


# ---------------------------------------------------------------- checkin_prompt


def test_checkin_prompt_avoids_recent(shipped: Prompts) -> None:
    recent = [0, 1, 2, 3, 4, 5, 6]
    for seed in range(300):
        index = shipped.checkin_prompt(recent, random.Random(seed))
        assert 0 <= index < len(shipped.checkin)
        assert index not in recent


def test_checkin_prompt_varies(shipped: Prompts) -> None:
    picks = {shipped.checkin_prompt([], random.Random(seed)) for seed in range(200)}
    assert len(picks) > len(shipped.checkin) // 2


def test_checkin_prompt_falls_back_when_everything_is_recent(shipped: Prompts) -> None:
    count = len(shipped.checkin)
    recent = list(range(count))  # oldest first: 0 is the oldest, count-1 the newest
    for seed in range(100):
        index = shipped.checkin_prompt(recent, random.Random(seed))
        assert index == 0  # only the oldest stops counting


def test_checkin_prompt_ignores_stale_indices(shipped: Prompts) -> None:
    index = shipped.checkin_prompt([-1, 10_000, 3], random.Random(1))
    assert 0 <= index < len(shipped.checkin) and index != 3


def test_checkin_prompt_with_longer_history_than_prompts(tmp_path: Path) -> None:
    write_files(tmp_path, checkin=[f"Prompt {i}: Finished, Unfinished or Skipped?" for i in range(31)])
    prompts = load_prompts(tmp_path)
    recent = [5] * 10 + list(range(31)) + [7]  # repeats; 7 is the newest
    for seed in range(50):
        assert prompts.checkin_prompt(recent, random.Random(seed)) != 7


def test_checkin_text_fills_in_server(shipped: Prompts) -> None:
    index = next(i for i, text in enumerate(shipped.checkin) if "{server}" in text)
    text = shipped.checkin_text(index, server="Loop Club")
    assert "Loop Club" in text and "{" not in text


# ---------------------------------------------------------------- reply


def test_reply_formats_known_placeholders(shipped: Prompts) -> None:
    text = shipped.reply("streak_7", random.Random(3), member="Ana", streak=7)
    assert "7" in text and "{" not in text
    for seed in range(30):
        text = shipped.reply("dm_round", random.Random(seed), server="Loop Club")
        assert "Loop Club" in text


def test_reply_uses_project_lines_when_a_project_is_given(shipped: Prompts) -> None:
    seen = {shipped.reply("project_finished_announce", random.Random(s), **SAMPLE) for s in range(100)}
    assert seen <= {line.format_map(SAMPLE) for line in shipped.replies["project_finished_announce"]}
    assert all("Night Bus" in text and "Ana" in text for text in seen)


@pytest.mark.parametrize("project", ["", None, "   "])
def test_reply_uses_no_project_variants(shipped: Prompts, project: Any) -> None:
    expected = {line.format_map({**SAMPLE, "project": ""}) for line in shipped.replies_no_project["finished"]}
    for seed in range(100):
        text = shipped.reply("finished", random.Random(seed), member="Ana", project=project, streak=1)
        assert text in expected
        assert "****" not in text


def test_reply_without_project_argument_uses_no_project_variants(shipped: Prompts) -> None:
    for seed in range(50):
        text = shipped.reply("project_dropped", random.Random(seed), member="Ana")
        assert "**" not in text


def test_reply_without_no_project_list_skips_project_lines(tmp_path: Path) -> None:
    replies = valid_replies()
    replies["edited"] = {
        "lines": ["Updated for {project}."] + [f"Updated, {{member}} {i}." for i in range(5)]
    }
    replies["edited"]["lines_no_project"] = ["A", "B", "C"]
    write_files(tmp_path, replies=replies)
    prompts = load_prompts(tmp_path)
    # Build a Prompts with no no-project list for "edited" to exercise the fallback.
    bare = Prompts(prompts.checkin, prompts.replies, {})
    for seed in range(50):
        assert "for ." not in bare.reply("edited", random.Random(seed), member="Ana", project="")


def test_reply_does_not_reformat_values(shipped: Prompts) -> None:
    tricky = "{server} {0} {member.__class__}"
    for seed in range(20):
        text = shipped.reply("project_finished_announce", random.Random(seed), member=tricky, project="P")
        assert tricky in text


def test_reply_missing_value_renders_empty(shipped: Prompts) -> None:
    text = shipped.reply("recap_intro", random.Random(0))
    assert "{" not in text


def test_reply_rejects_unknown_situation_and_value(shipped: Prompts) -> None:
    with pytest.raises(KeyError):
        shipped.reply("valey", random.Random(0), member="Ana")
    with pytest.raises(TypeError, match="mood"):
        shipped.reply("valley", random.Random(0), member="Ana", mood="low")


def test_placeholder_set() -> None:
    assert PLACEHOLDERS == {"member", "project", "streak", "server"}


# ---------------------------------------------------------------- broken files


def toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def valid_checkin() -> list[str]:
    return [f"Prompt {i}: did you finish? Finished, Unfinished or Skipped." for i in range(31)]


def valid_replies() -> dict[str, dict[str, list[str]]]:
    tables: dict[str, dict[str, list[str]]] = {}
    for situation in SITUATIONS:
        lines = [f"{situation} line {i} for {{member}} in {{server}}." for i in range(6)]
        tables[situation] = {"lines": lines}
    return tables


def write_files(
    directory: Path,
    checkin: list[Any] | None = None,
    replies: dict[str, dict[str, list[Any]]] | None = None,
) -> None:
    checkin = valid_checkin() if checkin is None else checkin
    replies = valid_replies() if replies is None else replies
    body = ",\n".join(f"  {toml_string(p) if isinstance(p, str) else p}" for p in checkin)
    (directory / "checkin.toml").write_text(f"prompts = [\n{body}\n]\n", encoding="utf-8")
    parts = []
    for situation, table in replies.items():
        parts.append(f"[{situation}]")
        for key, lines in table.items():
            items = ",\n".join(f"  {toml_string(x) if isinstance(x, str) else x}" for x in lines)
            parts.append(f"{key} = [\n{items}\n]")
    (directory / "replies.toml").write_text("\n".join(parts) + "\n", encoding="utf-8")


def test_valid_fixture_loads(tmp_path: Path) -> None:
    write_files(tmp_path)
    prompts = load_prompts(tmp_path)
    assert len(prompts.checkin) == 31
    assert prompts.replies_no_project == {}


def expect_error(directory: Path, *fragments: str) -> str:
    with pytest.raises(PromptError) as info:
        load_prompts(directory)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_unknown_placeholder_names_file_key_and_line(tmp_path: Path) -> None:
    replies = valid_replies()
    replies["valley"]["lines"][2] = "Feeling {mood} today, {member}?"
    write_files(tmp_path, replies=replies)
    message = expect_error(tmp_path, "replies.toml", "[valley]", "line 3", "unknown placeholder {mood}")
    assert message == f"{tmp_path / 'replies.toml'} [valley] line 3: unknown placeholder {{mood}}"


@pytest.mark.parametrize(
    "bad",
    [
        "A stray { brace",
        "A stray } brace",
        "Positional {} field",
        "Numbered {0} field",
        "Attribute {member.name}",
        "Index {member[0]}",
        "Spec {streak:>5}",
        "Conversion {member!r}",
    ],
)
def test_malformed_placeholders(tmp_path: Path, bad: str) -> None:
    replies = valid_replies()
    replies["finished"]["lines"][0] = bad
    write_files(tmp_path, replies=replies)
    expect_error(tmp_path, "replies.toml", "[finished]", "line 1")


def test_literal_braces_are_allowed(tmp_path: Path) -> None:
    replies = valid_replies()
    replies["finished"]["lines"][0] = "Braces {{like this}} are fine, {member}."
    write_files(tmp_path, replies=replies)
    prompts = load_prompts(tmp_path)
    assert prompts.replies["finished"][0].format(member="Ana") == "Braces {like this} are fine, Ana."


def test_missing_situation(tmp_path: Path) -> None:
    replies = valid_replies()
    del replies["dm_round"]
    write_files(tmp_path, replies=replies)
    expect_error(tmp_path, "replies.toml", "[dm_round]", "missing")


def test_unknown_situation(tmp_path: Path) -> None:
    replies = valid_replies()
    replies["valey"] = replies["valley"]
    write_files(tmp_path, replies=replies)
    expect_error(tmp_path, "replies.toml", "[valey]", "unknown situation")


def test_unknown_key_in_situation(tmp_path: Path) -> None:
    replies = valid_replies()
    replies["skipped"]["line"] = ["typo"]
    write_files(tmp_path, replies=replies)
    expect_error(tmp_path, "replies.toml", "[skipped]", "line")


def test_fewer_than_six_lines(tmp_path: Path) -> None:
    replies = valid_replies()
    replies["streak_30"]["lines"] = replies["streak_30"]["lines"][:5]
    write_files(tmp_path, replies=replies)
    expect_error(tmp_path, "replies.toml", "[streak_30]", "5 lines", "at least 6")


def test_too_long_reply_line(tmp_path: Path) -> None:
    replies = valid_replies()
    replies["edited"]["lines"][3] = "x" * (MAX_REPLY_CHARS + 1)
    write_files(tmp_path, replies=replies)
    expect_error(tmp_path, "replies.toml", "[edited]", "line 4", "401 characters")


def test_too_long_checkin_prompt(tmp_path: Path) -> None:
    checkin = valid_checkin()
    checkin[7] = "y" * (MAX_CHECKIN_CHARS + 1)
    write_files(tmp_path, checkin=checkin)
    expect_error(tmp_path, "checkin.toml", "[prompts]", "line 8", "301 characters")


def test_thirty_checkin_prompts_are_too_few(tmp_path: Path) -> None:
    write_files(tmp_path, checkin=valid_checkin()[:30])
    expect_error(tmp_path, "checkin.toml", "[prompts]", "30 prompts", "at least 31")


def test_checkin_prompt_may_only_use_server(tmp_path: Path) -> None:
    checkin = valid_checkin()
    checkin[0] = "Did you finish, {member}?"
    write_files(tmp_path, checkin=checkin)
    expect_error(tmp_path, "checkin.toml", "[prompts]", "line 1", "{member}")


def test_checkin_missing_key(tmp_path: Path) -> None:
    write_files(tmp_path)
    (tmp_path / "checkin.toml").write_text('questions = ["a"]\n', encoding="utf-8")
    expect_error(tmp_path, "checkin.toml", "[questions]")


@pytest.mark.parametrize("name", ["checkin.toml", "replies.toml"])
def test_malformed_toml(tmp_path: Path, name: str) -> None:
    write_files(tmp_path)
    (tmp_path / name).write_text('prompts = [\n  "unterminated,\n]\n', encoding="utf-8")
    expect_error(tmp_path, name, "malformed TOML")


def test_missing_file(tmp_path: Path) -> None:
    write_files(tmp_path)
    (tmp_path / "replies.toml").unlink()
    expect_error(tmp_path, "replies.toml", "not found")


def test_project_lines_need_no_project_variants(tmp_path: Path) -> None:
    replies = valid_replies()
    replies["project_dropped"]["lines"][0] = "Dropped {project}."
    write_files(tmp_path, replies=replies)
    expect_error(tmp_path, "replies.toml", "[project_dropped]", "lines_no_project")


def test_no_project_variants_may_not_use_project(tmp_path: Path) -> None:
    replies = valid_replies()
    replies["finished"]["lines_no_project"] = ["One {member}.", "Two.", "Three about {project}."]
    write_files(tmp_path, replies=replies)
    expect_error(tmp_path, "replies.toml", "[finished] lines_no_project", "line 3", "{project}")


def test_too_few_no_project_variants(tmp_path: Path) -> None:
    replies = valid_replies()
    replies["finished"]["lines_no_project"] = ["One.", "Two."]
    write_files(tmp_path, replies=replies)
    expect_error(tmp_path, "replies.toml", "[finished] lines_no_project", "at least 3")


def test_dm_round_must_name_the_server(tmp_path: Path) -> None:
    replies = valid_replies()
    replies["dm_round"]["lines"][1] = "Check-in time, {member}."
    write_files(tmp_path, replies=replies)
    expect_error(tmp_path, "replies.toml", "[dm_round]", "line 2", "{server}")


@pytest.mark.parametrize("bad", ["42", '""', '"   "'])
def test_non_string_or_empty_line(tmp_path: Path, bad: str) -> None:
    replies = valid_replies()
    write_files(tmp_path, replies=replies)
    text = (tmp_path / "replies.toml").read_text(encoding="utf-8")
    text = text.replace('"recap_intro line 0 for {member} in {server}."', bad, 1)
    (tmp_path / "replies.toml").write_text(text, encoding="utf-8")
    expect_error(tmp_path, "replies.toml", "[recap_intro]", "line 1")


def test_repeated_line(tmp_path: Path) -> None:
    replies = valid_replies()
    replies["skipped"]["lines"][5] = replies["skipped"]["lines"][0]
    write_files(tmp_path, replies=replies)
    expect_error(tmp_path, "replies.toml", "[skipped]", "line 6", "repeats")


def test_shipped_files_are_plain_toml() -> None:
    for name in ("checkin.toml", "replies.toml"):
        with (DEFAULT_DIRECTORY / name).open("rb") as handle:
            assert tomllib.load(handle)
