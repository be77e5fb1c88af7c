"""One notion of "now" for every service. Tests and the demo may set it; production may not."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: okrsnap keeps every instant timezone-aware (UTC)")
    return moment.astimezone(timezone.utc)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    """A clock that only moves when told: for unit tests and for importing dated history."""

    def __init__(self, moment: datetime):
        self._now = utc(moment)

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = utc(moment)

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now


class FileClock:
    """A clock shared by several processes through a file holding {"now": ISO-8601} or
    {"offset_seconds": N}. Without the file it is the system clock."""

    def __init__(self, path: Path, system: Clock | None = None):
        self.path = Path(path)
        self.system = system or SystemClock()
        self._cache: tuple[float, dict] | None = None

    def _read(self) -> dict:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return {}
        if self._cache is None or self._cache[0] != mtime:
            self._cache = (mtime, json.loads(self.path.read_text() or "{}"))
        return self._cache[1]

    def now(self) -> datetime:
        spec = self._read()
        if "now" in spec:
            return utc(datetime.fromisoformat(spec["now"]))
        return self.system.now() + timedelta(seconds=float(spec.get("offset_seconds", 0)))

    def set(self, moment: datetime) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"now": utc(moment).isoformat()}))
        tmp.replace(self.path)


def clock_for(settings) -> Clock:
    if settings.clock_file is not None:
        return FileClock(settings.clock_file)
    return SystemClock()
