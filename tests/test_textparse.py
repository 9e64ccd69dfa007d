"""Plain-text DM answers: what the member meant, whether we're sure, and what's left as a note."""

from __future__ import annotations

import pytest

from coach.textparse import MAX_NOTE_CHARS, ParsedReply, parse_reply

F, U, S = "finished", "unfinished", "skipped"

# (text, status, confident, note)
CASES: list[tuple[str, str | None, bool, str]] = [
    # finished
    ("finished the bassline", F, True, "the bassline"),
    ("done", F, True, ""),
    ("done!", F, True, ""),
    ("Done.", F, True, ""),
    ("DONE", F, True, ""),
    ("bounced it", F, True, ""),
    ("finished", F, True, ""),
    ("I finally finished the bassline", F, True, "the bassline"),
    ("the bassline is done", F, True, "the bassline"),
    ("exported a rough mix", F, True, "a rough mix"),
    ("printed the stems", F, True, "the stems"),
    ("got it done", F, True, ""),
    ("✅", F, True, ""),
    ("done, bounced the 8 bar loop and named the file", F, True, "the 8 bar loop and named the file"),
    # unfinished, including every negated "finish"/"done"
    ("worked on the mix but not done", U, True, "the mix"),
    ("half way", U, True, ""),
    ("halfway through the mix", U, True, "the mix"),
    ("still working on it", U, True, ""),
    ("not finished", U, True, ""),
    ("not done", U, True, ""),
    ("not done yet", U, True, ""),
    ("didn't finish", U, True, ""),
    ("didnt finish", U, True, ""),
    ("didn\u2019t finish the hook", U, True, "the hook"),
    ("haven't finished yet", U, True, ""),
    ("almost done with the drop", U, True, "the drop"),
    ("nearly there", U, True, ""),
    ("I've been working on the drop, not finished yet", U, True, "the drop"),
    ("mixed the vocals but didn't finish", U, True, "mixed the vocals"),
    ("made some progress on the arrangement", U, True, "the arrangement"),
    ("wip", U, True, ""),
    ("No, still working on it", U, True, ""),
    ("didn't skip, worked on the chords", U, True, "the chords"),
    ("going to finish it tomorrow", U, False, "tomorrow"),
    # skipped
    ("didn't get to it", S, True, ""),
    ("I didn't get to it", S, True, ""),
    ("didn't get around to it today", S, True, ""),
    ("skip", S, True, ""),
    ("skipped today, family stuff", S, True, "family stuff"),
    ("no time today", S, True, ""),
    ("nope, nothing", S, True, ""),
    ("haven't done anything today", S, True, ""),
    ("did nothing", S, True, ""),
    ("nothing finished", S, True, ""),
    ("not today", S, True, ""),
    ("took the day off", S, True, ""),
    ("didnt touch it", S, True, ""),
    ("no progress", S, True, ""),
    ("too busy to finish", S, True, ""),
    # unclear: no status, or a guess that must be confirmed
    ("hello", None, False, "hello"),
    ("?", None, False, ""),
    ("", None, False, ""),
    ("   ", None, False, ""),
    ("finished but also skipped", None, False, ""),
    ("done with the drums, still working on the mix", None, False, "the drums, the mix"),
    ("yes", F, False, ""),
    ("no", S, False, ""),
    ("nah", S, False, ""),
    ("finished?", F, False, ""),
    ("finished the intro but not the drop", None, False, "the intro but not the drop"),
    ("finishing the mix", U, False, "finishing the mix"),
    ("working on the finishing touches", U, True, "the finishing touches"),
    ("not sure", None, False, "not sure"),
]


@pytest.mark.parametrize(("text", "status", "confident", "note"), CASES)
def test_parse_reply(text: str, status: str | None, confident: bool, note: str) -> None:
    assert parse_reply(text) == ParsedReply(status, confident, note)  # type: ignore[arg-type]


def test_enough_cases() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize(
    "text",
    [
        "not done",
        "didn't finish",
        "not finished yet",
        "never finished it",
        "couldn't finish",
        "haven't bounced it yet",
        "not quite done",
        "wasn't able to finish",
        "it's not done",
    ],
)
def test_negations_never_read_as_finished(text: str) -> None:
    assert parse_reply(text).status != "finished"


def test_unsure_means_no_status_or_not_confident() -> None:
    for text in ("hello", "?", "finished but also skipped", "lol", "what?"):
        result = parse_reply(text)
        assert result.status is None or not result.confident
        if result.status is None:
            assert not result.confident


def test_note_is_trimmed_and_bounded() -> None:
    result = parse_reply("finished " + "the long outro " * 100)
    assert result.status == "finished" and result.confident
    assert len(result.note) <= MAX_NOTE_CHARS
    assert result.note.startswith("the long outro")
    assert result.note.endswith("…")


def test_note_keeps_original_case_and_text() -> None:
    assert parse_reply("Finished the Bassline for NIGHT BUS").note == "the Bassline for NIGHT BUS"


def test_whitespace_is_collapsed() -> None:
    assert parse_reply("  finished \n the   hook  ").note == "the hook"


def test_parsed_reply_is_frozen() -> None:
    result = parse_reply("done")
    with pytest.raises(AttributeError):
        result.status = "skipped"  # type: ignore[misc]
