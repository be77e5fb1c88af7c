"""A Session's weeks: from its week start day 00:00 to the next, in the Session's timezone.

Named like ISO weeks, generalised to any week start day: a week belongs to the year of its
fourth day, and week 1 is the one that holds January 4th. With Monday starts this is ISO 8601.
A week that holds a DST change is 167 or 169 hours long; bounds are computed in local time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
LABEL = re.compile(r"^(\d{4})-W(\d{2})$")


class InvalidWeek(ValueError):
    pass


def _start_of_week(day: date, week_start_day: str) -> date:
    offset = (day.weekday() - WEEKDAYS.index(week_start_day)) % 7
    return day - timedelta(days=offset)


def _first_week_start(year: int, week_start_day: str) -> date:
    return _start_of_week(date(year, 1, 4), week_start_day)


@dataclass(frozen=True, order=True)
class Week:
    start: date          # local date of the first day
    week_start_day: str

    @property
    def label(self) -> str:
        year = (self.start + timedelta(days=3)).year
        number = (self.start - _first_week_start(year, self.week_start_day)).days // 7 + 1
        return f"{year}-W{number:02d}"

    def next(self) -> "Week":
        return Week(self.start + timedelta(days=7), self.week_start_day)

    def previous(self) -> "Week":
        return Week(self.start - timedelta(days=7), self.week_start_day)

    def bounds(self, tz: str) -> tuple[datetime, datetime]:
        """[start, end) as UTC instants."""
        zone = ZoneInfo(tz)
        start = datetime.combine(self.start, time(0), tzinfo=zone)
        end = datetime.combine(self.start + timedelta(days=7), time(0), tzinfo=zone)
        return start.astimezone(timezone.utc), end.astimezone(timezone.utc)

    @classmethod
    def containing(cls, day: date, week_start_day: str) -> "Week":
        return cls(_start_of_week(day, week_start_day), week_start_day)

    @classmethod
    def of_instant(cls, moment: datetime, tz: str, week_start_day: str) -> "Week":
        if moment.tzinfo is None:
            raise ValueError("naive datetime")
        return cls.containing(moment.astimezone(ZoneInfo(tz)).date(), week_start_day)

    @classmethod
    def parse(cls, label: str, week_start_day: str) -> "Week":
        match = LABEL.match(label or "")
        if not match:
            raise InvalidWeek(f"{label!r} is not a week like 2026-W48.")
        year, number = int(match.group(1)), int(match.group(2))
        if not 1970 <= year <= 2200:
            raise InvalidWeek(f"{label!r}: years run from 1970 to 2200.")
        if not 1 <= number <= 53:
            raise InvalidWeek(f"{label!r}: week numbers run from 01 to 53.")
        week = cls(_first_week_start(year, week_start_day) + timedelta(weeks=number - 1), week_start_day)
        if week.label != label:
            raise InvalidWeek(f"{label!r}: {year} has no week {number}.")
        return week


def session_weeks(start_date: date, end_date: date, week_start_day: str) -> list[Week]:
    week, last = Week.containing(start_date, week_start_day), Week.containing(end_date, week_start_day)
    weeks = []
    while week <= last:
        weeks.append(week)
        week = week.next()
    return weeks
