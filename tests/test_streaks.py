from datetime import date, timedelta

import pytest

from coach.streaks import (
    MILESTONES,
    RoundDay,
    StreakDay,
    checkin_rate,
    compute_streak,
    milestone_reached,
    nonfinished_run,
)

D0 = date(2025, 3, 3)  # a Monday


def rounds_from(spec: str) -> list[RoundDay]:
    """One character per posted round, one day apart:
    F/U/S answered finished/unfinished/skipped, m missed, a away (unanswered),
    A away but answered finished, o open unanswered, O open answered finished."""
    out = []
    for i, ch in enumerate(spec):
        d = D0 + timedelta(days=i)
        out.append(
            {
                "F": RoundDay(d, "finished"),
                "U": RoundDay(d, "unfinished"),
                "S": RoundDay(d, "skipped"),
                "m": RoundDay(d, None),
                "a": RoundDay(d, None, away=True),
                "A": RoundDay(d, "finished", away=True),
                "o": RoundDay(d, None, open=True),
                "O": RoundDay(d, "finished", open=True),
            }[ch]
        )
    return out


@pytest.mark.parametrize(
    ("spec", "current", "best", "outcomes"),
    [
        ("", 0, 0, ""),
        ("FFUS", 4, 4, "cccc"),
        ("SSS", 3, 3, "ccc"),  # skipped counts: showing up honestly
        ("FFmF", 1, 2, "ccMc"),  # a miss in the middle
        ("mm", 0, 0, "MM"),
        ("FaaF", 2, 2, "cAAc"),  # away in the middle bridges
        ("FFaa", 2, 2, "ccAA"),  # away at the end keeps current
        ("FFo", 2, 2, "ccO"),  # open unanswered: neither counts nor breaks yet
        ("FFO", 3, 3, "ccc"),  # open answered counts
        ("FAF", 3, 3, "ccc"),  # answered while away still counts
        ("FFFFmFF", 2, 4, "ccccMcc"),  # best vs current
        ("FmFFFmF", 1, 3, "cMcccMc"),
        ("amF", 1, 1, "AMc"),
    ],
)
def test_compute_streak_table(spec, current, best, outcomes):
    code = {"c": "counted", "A": "away", "O": "open", "M": "missed"}
    result = compute_streak(rounds_from(spec))
    assert result.current == current
    assert result.best == best
    assert [d.outcome for d in result.days] == [code[c] for c in outcomes]
    assert [d.local_date for d in result.days] == [r.local_date for r in rounds_from(spec)]


def test_streak_after_tracks_running_value():
    result = compute_streak(rounds_from("FFaFmo"))
    assert [d.streak_after for d in result.days] == [1, 2, 2, 3, 0, 0]


def test_explanations_present_for_each_day():
    result = compute_streak(rounds_from("FUSmaAo"))
    assert all(isinstance(d, StreakDay) and d.explanation for d in result.days)
    texts = [d.explanation for d in result.days]
    assert texts[0] == "answered: finished (+1)"
    assert texts[1] == "answered: unfinished (+1)"
    assert texts[2] == "answered: skipped (+1)"
    assert texts[3].startswith("missed: streak reset")
    assert texts[4] == "away: neither counts nor breaks"
    assert "(+1)" in texts[5] and "away" in texts[5]
    assert texts[6] == "still open: answer before the next round"


def test_edit_recomputes_from_new_statuses():
    rounds = rounds_from("FFmFF")
    before = compute_streak(rounds)
    assert (before.current, before.best) == (2, 2)
    # A late answer for the missed round (or an edit) changes the history: recompute.
    edited = list(rounds)
    edited[2] = RoundDay(rounds[2].local_date, "skipped")
    after = compute_streak(edited)
    assert (after.current, after.best) == (5, 5)
    assert after.days[2].outcome == "counted"
    # Editing one answer's status to another status never changes the count.
    edited[0] = RoundDay(rounds[0].local_date, "unfinished")
    assert compute_streak(edited).current == 5


def test_gaps_between_posted_rounds_break_nobody():
    # No round posted for a week (bot down): only posted rounds are passed in.
    rounds = [RoundDay(D0, "finished"), RoundDay(D0 + timedelta(days=8), "finished")]
    assert compute_streak(rounds).current == 2


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        compute_streak([RoundDay(D0, "done")])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        compute_streak([RoundDay(D0, "finished"), RoundDay(D0, "finished")])
    with pytest.raises(ValueError):
        compute_streak([RoundDay(D0 + timedelta(days=1), "finished"), RoundDay(D0, "finished")])


def test_result_is_immutable():
    result = compute_streak(rounds_from("F"))
    with pytest.raises(AttributeError):
        result.current = 5  # type: ignore[misc]
    assert isinstance(result.days, tuple)


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], 0),
        (["finished"], 0),
        (["unfinished"], 1),
        (["skipped", "unfinished", "skipped"], 3),
        (["skipped", "unfinished", "finished", "skipped"], 2),
        (["skipped", None, "unfinished", None, "skipped", "finished"], 3),  # unanswered skipped over
        ([None, None], 0),
        (["finished", "skipped", "skipped", "skipped"], 0),
    ],
)
def test_nonfinished_run(statuses, expected):
    assert nonfinished_run(statuses) == expected


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (0, 1, None),
        (2, 3, 3),
        (3, 3, None),
        (3, 4, None),
        (6, 7, 7),
        (29, 30, 30),
        (99, 100, 100),
        (100, 101, None),
        (5, 0, None),  # reset
        (0, 8, 7),  # several crossed at once (recompute): highest
        (7, 3, None),  # going down never reaches one
    ],
)
def test_milestone_reached(previous, current, expected):
    assert milestone_reached(previous, current) == expected


def test_milestones_constant():
    assert MILESTONES == (3, 7, 30, 100)


@pytest.mark.parametrize(
    ("spec", "last", "expected"),
    [
        ("", 30, 0.0),
        ("FFFF", 30, 1.0),
        ("FmFm", 30, 0.5),
        ("FmSU", 30, 0.75),
        ("FFaa", 30, 1.0),  # unanswered away days excluded
        ("FmFo", 30, 2 / 3),  # open unanswered round excluded
        ("FmFO", 30, 0.75),  # open answered round included
        ("FAm", 30, 2 / 3),  # answered while away included
        ("mmFF", 2, 1.0),  # only the last `last`
        ("mmFF", 3, 2 / 3),
        ("aao", 30, 0.0),  # nothing eligible
        ("mmm", 30, 0.0),
    ],
)
def test_checkin_rate(spec, last, expected):
    assert checkin_rate(rounds_from(spec), last=last) == pytest.approx(expected)


def test_checkin_rate_default_window_is_30():
    rounds = rounds_from("m" * 10 + "F" * 30)
    assert checkin_rate(rounds) == 1.0
    assert checkin_rate(rounds, last=40) == pytest.approx(0.75)


def test_checkin_rate_rejects_bad_window():
    with pytest.raises(ValueError):
        checkin_rate(rounds_from("F"), last=0)
