"""Numbers, dates and labels for people: progress in whole or one-decimal percent, values with
their unit and no float noise, times in the Session's timezone."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Flask

STATUS_LABELS = {
    "not_started": "Not started", "on_track": "On track", "at_risk": "At risk", "off_track": "Off track",
    "done": "Done", "in_progress": "In progress", "blocked": "Blocked", "cancelled": "Cancelled",
    "paused": "Paused", "completed": "Completed",
}
SIGNAL_LABELS = {
    "status_changed": "Status changed", "moved": "Moved", "at_risk": "At risk", "off_track": "Off track",
    "stale": "Stale", "unassigned": "Unassigned", "active_without_impact": "Active without impact",
}
WEEK_STATUS_LABELS = {
    "sealed": "sealed", "current": "live", "past": "being sealed", "future": "future", "no_snapshot": "no Snapshot",
}


def _trim(number: float, places: int) -> str:
    text = f"{number:,.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def percent(progress) -> str:
    """0.39375 -> '39.4%', 0.5 -> '50%'."""
    if progress is None:
        return "–"
    return f"{_trim(float(progress) * 100, 1)}%"


def number(value, places: int = 4) -> str:
    """A value as its owner typed it: 8.85 stays 8.85, 0.1 + 0.2 shows 0.3, 1200000 is 1,200,000."""
    if value is None:
        return "–"
    return _trim(round(float(value), places), places)


def with_unit(value, unit: str | None) -> str:
    text = number(value)
    if not unit:
        return text
    return f"{text} {unit}" if unit[0].isalnum() else f"{text}{unit}"


def signed(value, places: int = 1, suffix: str = "") -> str:
    """+8 pts, −1.7 (a real minus sign), ±0."""
    if value is None:
        return ""
    rounded = round(float(value), places)
    if rounded == 0:
        return f"±0{suffix}"
    sign = "+" if rounded > 0 else "−"
    return f"{sign}{_trim(abs(rounded), places)}{suffix}"


def status_label(status: str | None) -> str:
    if not status:
        return "–"
    return STATUS_LABELS.get(status, status.replace("_", " ").capitalize())


def signal_label(signal: str) -> str:
    return SIGNAL_LABELS.get(signal, signal.replace("_", " ").capitalize())


def parse_instant(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def local_time(value, tz: str | None, fmt: str = "%a %d %b %Y, %H:%M") -> str:
    instant = parse_instant(value)
    if instant is None:
        return "–"
    if tz:
        instant = instant.astimezone(ZoneInfo(tz))
    return instant.strftime(fmt)


def week_dates(starts_at, ends_at, tz: str) -> str:
    """The days a week covers in the Session's timezone: '23–29 Nov', '30 Nov – 6 Dec'."""
    zone = ZoneInfo(tz)
    first = parse_instant(starts_at).astimezone(zone).date()
    last = (parse_instant(ends_at).astimezone(zone) - timedelta(seconds=1)).date()
    if first.month == last.month:
        return f"{first.day}–{last.day} {last:%b}"
    if first.year == last.year:
        return f"{first.day} {first:%b} – {last.day} {last:%b}"
    return f"{first.day} {first:%b} {first.year} – {last.day} {last:%b} {last.year}"


def week_title(week: dict, tz: str) -> str:
    """'2026-W48 · 23–29 Nov'"""
    return f"{week['week']} · {week_dates(week['starts_at'], week['ends_at'], tz)}"


def short_hash(value: str | None) -> str:
    return (value or "")[:12]


def day(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return f"{value.day} {value:%b %Y}"


def month_label(month: str) -> str:
    """'2026-11' -> 'Nov 2026'"""
    return datetime.strptime(month + "-01", "%Y-%m-%d").strftime("%b %Y")


def register(app: Flask) -> None:
    from services.gateway.web.charts import chart
    from services.gateway.web.review import month_target

    app.jinja_env.filters.update(
        percent=percent, number=number, with_unit=with_unit, signed=signed, status_label=status_label,
        signal_label=signal_label, local_time=local_time, short_hash=short_hash, day=day,
    )
    app.jinja_env.globals.update(week_title=week_title, week_dates=week_dates, month_label=month_label,
                                 review_month_target=month_target, chart=chart, ZERO_ID=uuid.UUID(int=0),
                                 WEEK_STATUS_LABELS=WEEK_STATUS_LABELS)
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
