from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.weeks import WEEKDAYS, InvalidWeek, Week, session_weeks


def test_monday_weeks_are_iso_weeks():
    for day in (date(2026, 11, 25), date(2021, 1, 3), date(2020, 12, 31), date(2026, 12, 28)):
        iso = day.isocalendar()
        assert Week.containing(day, "monday").label == f"{iso.year}-W{iso.week:02d}"


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31)), st.sampled_from(WEEKDAYS))
def test_labels_round_trip_for_every_week_start(day, start_day):
    week = Week.containing(day, start_day)
    assert week.start.weekday() == WEEKDAYS.index(start_day)
    assert week.start <= day < week.start + timedelta(days=7)
    assert Week.parse(week.label, start_day) == week


def test_bounds_follow_the_session_timezone_across_dst():
    # Europe/Berlin leaves summer time on Sunday 2026-10-25: that Monday-week lasts 169 hours.
    week = Week.containing(date(2026, 10, 21), "monday")
    start, end = week.bounds("Europe/Berlin")
    assert start == datetime(2026, 10, 18, 22, tzinfo=timezone.utc)  # Monday 00:00 CEST
    assert end == datetime(2026, 10, 25, 23, tzinfo=timezone.utc)    # Monday 00:00 CET
    assert end - start == timedelta(hours=169)
    spring = Week.containing(date(2026, 3, 25), "monday").bounds("Europe/Berlin")
    assert spring[1] - spring[0] == timedelta(hours=167)


def test_an_instant_belongs_to_the_week_of_its_local_date():
    late_sunday_utc = datetime(2026, 11, 29, 23, 30, tzinfo=timezone.utc)  # Monday 00:30 in Berlin
    assert Week.of_instant(late_sunday_utc, "UTC", "monday").label == "2026-W48"
    assert Week.of_instant(late_sunday_utc, "Europe/Berlin", "monday").label == "2026-W49"


@pytest.mark.parametrize("label", ["2026-48", "2026-W00", "2026-W54", "2025-W53", "W48", "", "2026-W4",
                                   "9999-W52", "0001-W01"])
def test_malformed_or_impossible_weeks_are_refused(label):
    with pytest.raises(InvalidWeek):
        Week.parse(label, "monday")


def test_session_weeks_cover_start_to_end():
    weeks = session_weeks(date(2026, 10, 1), date(2026, 12, 31), "monday")
    assert weeks[0].label == "2026-W40" and weeks[-1].label == "2026-W53"  # 2026 has 53 ISO weeks
    assert len(weeks) == 14
