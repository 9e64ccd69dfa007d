"""Pure schedule maths: parsing what admins type, and next runs across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from coach.errors import BadInput
from coach.schedule import (
    EVERY_DAY,
    WEEKDAYS,
    WEEKENDS,
    format_days,
    next_occurrence,
    parse_days,
    parse_time,
    parse_timezone,
    resolve_local,
    search_timezones,
)

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize("text,expected", [("20:00", time(20)), ("9:30", time(9, 30)), (" 00:05 ", time(0, 5)),
                                           ("23:59", time(23, 59))])
def test_parse_time_accepts_24h(text: str, expected: time) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["25:99", "24:00", "8pm", "20", "20:5", "", "12:60", "-1:00"])
def test_parse_time_rejects_with_an_example(text: str) -> None:
    with pytest.raises(BadInput, match=r"is not a time; use 24-hour `HH:MM`, e.g. `20:00`"):
        parse_time(text)


@pytest.mark.parametrize("text,mask", [(None, EVERY_DAY), ("every day", EVERY_DAY), ("weekdays", WEEKDAYS),
                                       ("Weekends", WEEKENDS), ("mon,wed,fri", 0b10101), ("Sun", 1 << 6),
                                       ("tue thu", 0b1010)])
def test_parse_days(text: str | None, mask: int) -> None:
    assert parse_days(text) == mask


def test_parse_days_rejects_unknown_day() -> None:
    with pytest.raises(BadInput, match="`funday` is not a day"):
        parse_days("mon,funday")
    assert format_days(0b10101) == "Monday, Wednesday, Friday"


def test_timezones() -> None:
    assert parse_timezone("Europe/Berlin").key == "Europe/Berlin"
    with pytest.raises(BadInput, match="not a time zone"):
        parse_timezone("Mars/Olympus")
    with pytest.raises(BadInput):
        parse_timezone("../../etc/passwd")
    found = search_timezones("new_y")
    assert "America/New_York" in found and len(search_timezones("a")) == 25


def test_spring_forward_keeps_wall_clock_time() -> None:
    # Berlin moves 02:00 -> 03:00 on 2026-03-29. 20:00 stays 20:00: 19:00 UTC before, 18:00 UTC after.
    sat = next_occurrence(datetime(2026, 3, 28, 12, tzinfo=UTC), time(20), BERLIN, EVERY_DAY)
    sun = next_occurrence(sat.due_utc, time(20), BERLIN, EVERY_DAY)
    assert sat.due_utc == datetime(2026, 3, 28, 19, tzinfo=UTC) and sat.local_date == date(2026, 3, 28)
    assert sun.due_utc == datetime(2026, 3, 29, 18, tzinfo=UTC) and sun.local_date == date(2026, 3, 29)


def test_fall_back_keeps_wall_clock_time() -> None:
    sat = next_occurrence(datetime(2026, 10, 24, 12, tzinfo=UTC), time(20), BERLIN, EVERY_DAY)
    sun = next_occurrence(sat.due_utc, time(20), BERLIN, EVERY_DAY)
    assert sat.due_utc == datetime(2026, 10, 24, 18, tzinfo=UTC)
    assert sun.due_utc == datetime(2026, 10, 25, 19, tzinfo=UTC)


def test_nonexistent_time_runs_at_first_valid_minute() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29: it runs at 03:00 local (01:00 UTC).
    assert resolve_local(date(2026, 3, 29), time(2, 30), BERLIN) == datetime(2026, 3, 29, 1, tzinfo=UTC)


def test_repeated_hour_runs_once() -> None:
    # 02:30 happens twice in Berlin on 2026-10-25; the schedule runs at the first one only.
    first = next_occurrence(datetime(2026, 10, 24, 23, tzinfo=UTC), time(2, 30), BERLIN, EVERY_DAY)
    assert first.due_utc == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    following = next_occurrence(first.due_utc, time(2, 30), BERLIN, EVERY_DAY)
    assert following.local_date == date(2026, 10, 26)


def test_weekdays_skip_weekend() -> None:
    fri = next_occurrence(datetime(2026, 3, 6, 12, tzinfo=UTC), time(20), BERLIN, WEEKDAYS)
    mon = next_occurrence(fri.due_utc, time(20), BERLIN, WEEKDAYS)
    assert fri.local_date == date(2026, 3, 6) and mon.local_date == date(2026, 3, 9)


def test_sydney_and_new_york_morning() -> None:
    syd = next_occurrence(datetime(2026, 4, 4, 12, tzinfo=UTC), time(9, 30), ZoneInfo("Australia/Sydney"), EVERY_DAY)
    # Sydney leaves daylight time on 2026-04-05 at 03:00: 09:30 on the 5th is AEST (UTC+10).
    assert syd.local_date == date(2026, 4, 5) and syd.due_utc == datetime(2026, 4, 4, 23, 30, tzinfo=UTC)
    ny = next_occurrence(datetime(2026, 3, 8, 0, tzinfo=UTC), time(9, 30), ZoneInfo("America/New_York"), EVERY_DAY)
    assert ny.due_utc == datetime(2026, 3, 8, 13, 30, tzinfo=UTC)  # EDT from 2026-03-08
