"""The live Session's rules. Pure: no I/O, no clock of its own."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.events import STATUSES, WEEKDAYS

MAX_SESSION_DAYS = 366


class DomainError(Exception):
    """A request that breaks a rule of the live Session; `field` names the culprit."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def progress(start: float, target: float, current: float) -> float:
    """(current - start) / (target - start), clamped to 0..1; works for decreasing metrics."""
    if target == start:
        return 1.0 if current == target else 0.0
    ratio = (current - start) / (target - start)
    return min(1.0, max(0.0, ratio))


@dataclass
class Session:
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    start_date: date
    end_date: date
    timezone: str
    week_start_day: str = "monday"
    created_at: datetime | None = None

    def __post_init__(self):
        if not self.name.strip():
            raise DomainError("A Session needs a name.", "name")
        if self.end_date < self.start_date:
            raise DomainError("The end date is before the start date.", "end_date")
        if (self.end_date - self.start_date).days > MAX_SESSION_DAYS:
            raise DomainError(f"A Session lasts at most {MAX_SESSION_DAYS} days.", "end_date")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise DomainError(f"Unknown IANA timezone {self.timezone!r}.", "timezone") from None
        if self.week_start_day not in WEEKDAYS:
            raise DomainError("Unknown week start day.", "week_start_day")

    def state(self) -> dict:
        return {"id": self.id, "workspace_id": self.workspace_id, "name": self.name,
                "start_date": self.start_date, "end_date": self.end_date,
                "timezone": self.timezone, "week_start_day": self.week_start_day}


@dataclass
class Objective:
    id: uuid.UUID
    session_id: uuid.UUID
    workspace_id: uuid.UUID
    title: str
    owner_id: uuid.UUID | None = None
    parent_id: uuid.UUID | None = None
    created_at: datetime | None = None

    def __post_init__(self):
        if not self.title.strip():
            raise DomainError("An Objective needs a title.", "title")
        if self.parent_id is not None and self.parent_id == self.id:
            raise DomainError("An Objective cannot be its own parent.", "parent_id")

    def state(self) -> dict:
        return {"id": self.id, "session_id": self.session_id, "title": self.title,
                "owner_id": self.owner_id, "parent_id": self.parent_id}


@dataclass
class CheckIn:
    id: uuid.UUID
    key_result_id: uuid.UUID
    value: float
    status: str
    comment: str
    author_id: uuid.UUID | None
    checked_in_at: datetime

    def state(self) -> dict:
        return {"id": self.id, "key_result_id": self.key_result_id, "value": self.value,
                "status": self.status, "comment": self.comment, "author_id": self.author_id,
                "checked_in_at": self.checked_in_at}


@dataclass
class KeyResult:
    id: uuid.UUID
    objective_id: uuid.UUID
    session_id: uuid.UUID
    workspace_id: uuid.UUID
    title: str
    start_value: float
    target_value: float
    current_value: float
    unit: str = ""
    status: str = "not_started"
    owner_id: uuid.UUID | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    check_ins: list[CheckIn] = field(default_factory=list)

    def __post_init__(self):
        if not self.title.strip():
            raise DomainError("A Key Result needs a title.", "title")
        if self.status not in STATUSES:
            raise DomainError("Unknown status.", "status")

    @property
    def progress(self) -> float:
        return progress(self.start_value, self.target_value, self.current_value)

    def check_in(self, *, value: float, status: str, comment: str, author_id, at: datetime) -> CheckIn:
        if status not in STATUSES:
            raise DomainError("Unknown status.", "status")
        entry = CheckIn(new_id(), self.id, value, status, comment, author_id, at)
        self.current_value = value
        self.status = status
        self.updated_at = at
        self.check_ins.append(entry)
        return entry

    def state(self) -> dict:
        return {"id": self.id, "objective_id": self.objective_id, "title": self.title,
                "owner_id": self.owner_id, "start_value": self.start_value,
                "target_value": self.target_value, "current_value": self.current_value,
                "unit": self.unit, "status": self.status, "progress": self.progress}
