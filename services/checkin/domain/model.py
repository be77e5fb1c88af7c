"""The live Session's rules. Pure: no I/O, no clock of its own.

Every entity carries a version that grows by one with each change; an edit names the version
it was made against, so two people editing the same item never silently overwrite each other.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import date, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.events import (
    CADENCES,
    INITIATIVE_STATUSES,
    KEY_RESULT_KINDS,
    STATUSES,
    WEEKDAYS,
)

MAX_SESSION_DAYS = 366
VISIBILITIES = ("workspace", "restricted")
EARLIEST, LATEST = date(1970, 1, 1), date(2200, 12, 31)  # keeps week arithmetic far from date limits


class DomainError(Exception):
    """A request that breaks a rule of the live Session; `field` names the culprit (422)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class Conflict(DomainError):
    """The request is valid but the item's state refuses it (409): archived, stale version."""


class VersionRequired(DomainError):
    """An edit without If-Match (428)."""


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def progress(start: float, target: float, current: float) -> float:
    """(current - start) / (target - start), clamped to 0..1; works for decreasing metrics."""
    if target == start:
        return 1.0 if current == target else 0.0
    ratio = (current - start) / (target - start)
    return min(1.0, max(0.0, ratio))


def weighted_progress(key_results: list["KeyResult"]) -> float | None:
    """An Objective's progress: the weighted mean of its Key Results (None without any)."""
    total = sum(kr.weight for kr in key_results)
    if not key_results or total <= 0:
        return None
    return sum(kr.progress * kr.weight for kr in key_results) / total


def check_version(entity, expected: int | None) -> None:
    if expected is None:
        raise VersionRequired("Send If-Match with the version you edited (see the ETag).", "If-Match")
    if expected != entity.version:
        raise Conflict(f"This item changed since version {expected} (now {entity.version}); "
                       "reload it and apply your edit again.", "If-Match")


class Entity:
    """Shared behaviour: apply validated changes, bump the version, describe the full state."""

    MUTABLE: tuple[str, ...] = ()

    def validate(self) -> None:  # overridden
        pass

    def update(self, changes: dict, at: datetime) -> None:
        unknown = set(changes) - set(self.MUTABLE)
        if unknown:
            raise DomainError("These fields cannot be changed.", sorted(unknown)[0])
        for name, value in changes.items():
            setattr(self, name, value)
        self.validate()
        self.touch(at)

    def touch(self, at: datetime) -> None:
        self.version += 1
        self.updated_at = at

    def state(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclass_fields(self)
                if f.name not in ("created_at", "updated_at", "removed_at")} | \
               {"removed": getattr(self, "removed_at", None) is not None}


def _title(value: str, field_name: str = "title") -> None:
    if not value or not value.strip():
        raise DomainError(f"A {field_name} is needed.", field_name)


@dataclass
class Session(Entity):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    start_date: date
    end_date: date
    timezone: str
    week_start_day: str = "monday"
    checkin_cadence: str = "weekly"
    checkin_weekday: str = "friday"
    status: str = "active"  # active | archived
    visibility: str = "workspace"  # workspace | restricted (its members, owners and admins)
    members: list = field(default_factory=list)
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None

    MUTABLE = ("name", "start_date", "end_date", "timezone", "week_start_day", "checkin_cadence",
               "checkin_weekday", "visibility", "members")
    ACCESS_FIELDS = ("visibility", "members")  # changing who may see it takes an owner or admin

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        _title(self.name, "name")
        for name in ("start_date", "end_date"):
            if not EARLIEST <= getattr(self, name) <= LATEST:
                raise DomainError(f"Dates run from {EARLIEST} to {LATEST}.", name)
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
        if self.checkin_weekday not in WEEKDAYS:
            raise DomainError("Unknown weekday.", "checkin_weekday")
        if self.checkin_cadence not in CADENCES:
            raise DomainError("Unknown Check-in cadence.", "checkin_cadence")
        if self.visibility not in VISIBILITIES:
            raise DomainError("Visibility is workspace or restricted.", "visibility")

    @property
    def archived(self) -> bool:
        return self.status == "archived"

    def ensure_editable(self) -> None:
        if self.archived:
            raise Conflict(f"The Session {self.name!r} is archived: it is read-only, and still "
                           "reviewable.", "session")

    def archive(self, at: datetime) -> None:
        self.ensure_editable()
        self.status = "archived"
        self.touch(at)

    def state(self) -> dict:
        out = Entity.state(self)
        out.pop("removed")  # Sessions are archived, never removed
        return out


@dataclass
class Objective(Entity):
    id: uuid.UUID
    session_id: uuid.UUID
    workspace_id: uuid.UUID
    title: str
    description: str = ""
    owner_id: uuid.UUID | None = None
    parent_id: uuid.UUID | None = None
    private: bool = False
    visible_to: list = field(default_factory=list)
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None
    removed_at: datetime | None = None

    MUTABLE = ("title", "description", "owner_id", "parent_id", "private", "visible_to")

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        _title(self.title)
        if self.parent_id is not None and self.parent_id == self.id:
            raise DomainError("An Objective cannot be its own parent.", "parent_id")


def ensure_no_cycle(objective_id, new_parent_id, parent_of: dict) -> None:
    """Refuse a parent that is the Objective itself or one of its descendants."""
    seen = set()
    current = new_parent_id
    while current is not None:
        if current == objective_id:
            raise DomainError("That parent would make the Objective tree a cycle.", "parent_id")
        if current in seen:  # an existing cycle in stored data: refuse rather than loop
            raise DomainError("The Objective tree is inconsistent.", "parent_id")
        seen.add(current)
        current = parent_of.get(current)


@dataclass
class CheckIn:
    id: uuid.UUID
    key_result_id: uuid.UUID
    value: float
    status: str
    comment: str
    author_id: uuid.UUID | None
    checked_in_at: datetime
    confidence: int | None = None

    def state(self) -> dict:
        return {"id": self.id, "key_result_id": self.key_result_id, "value": self.value,
                "status": self.status, "confidence": self.confidence, "comment": self.comment,
                "author_id": self.author_id, "checked_in_at": self.checked_in_at}


@dataclass
class KeyResult(Entity):
    id: uuid.UUID
    objective_id: uuid.UUID
    session_id: uuid.UUID
    workspace_id: uuid.UUID
    title: str
    start_value: float = 0.0
    target_value: float = 1.0
    current_value: float = 0.0
    unit: str = ""
    kind: str = "metric"
    status: str = "not_started"
    confidence: int | None = None
    weight: float = 1.0
    owner_id: uuid.UUID | None = None
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None
    removed_at: datetime | None = None
    check_ins: list[CheckIn] = field(default_factory=list)

    MUTABLE = ("title", "owner_id", "start_value", "target_value", "unit", "status", "confidence",
               "weight")

    def __post_init__(self):
        if self.kind == "milestone":
            self.start_value, self.target_value = 0.0, 1.0
        self.validate()

    def validate(self) -> None:
        _title(self.title)
        if self.kind not in KEY_RESULT_KINDS:
            raise DomainError("A Key Result is a metric or a milestone (done / not done).", "kind")
        if self.status not in STATUSES:
            raise DomainError("Unknown status.", "status")
        if self.confidence is not None and not 0 <= self.confidence <= 10:
            raise DomainError("Confidence runs from 0 to 10.", "confidence")
        if not self.weight > 0:
            raise DomainError("A weight must be above 0.", "weight")
        if self.kind == "milestone" and (self.start_value, self.target_value) != (0.0, 1.0):
            raise DomainError("A milestone has no start and target: check in 1 (done) or 0.", "target_value")
        if self.kind == "milestone" and self.current_value not in (0.0, 1.0):
            raise DomainError("A milestone is 1 (done) or 0 (not done).", "value")

    @property
    def progress(self) -> float:
        return progress(self.start_value, self.target_value, self.current_value)

    def check_in(self, *, value: float, status: str, confidence: int | None, comment: str, author_id,
                 at: datetime) -> CheckIn:
        self.current_value = value
        self.status = status
        if confidence is not None:
            self.confidence = confidence
        self.validate()
        entry = CheckIn(new_id(), self.id, value, status, comment, author_id, at, confidence)
        self.check_ins.append(entry)
        self.touch(at)
        return entry

    def state(self) -> dict:
        out = Entity.state(self)
        out.pop("check_ins")
        return out | {"progress": self.progress}


@dataclass
class Canvas:
    """A linked document with its own access list (member ids)."""

    title: str
    url: str
    access: list = field(default_factory=list)

    def __post_init__(self):
        _title(self.title, "canvas.title")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise DomainError("A canvas URL must be an http(s) address.", "canvas.url")

    def state(self) -> dict:
        return {"title": self.title, "url": self.url, "access": list(self.access)}


@dataclass
class InitiativeCheckIn:
    id: uuid.UUID
    initiative_id: uuid.UUID
    status: str
    comment: str
    author_id: uuid.UUID | None
    checked_in_at: datetime

    def state(self) -> dict:
        return {"id": self.id, "initiative_id": self.initiative_id, "status": self.status,
                "comment": self.comment, "author_id": self.author_id, "checked_in_at": self.checked_in_at}


@dataclass
class Initiative(Entity):
    id: uuid.UUID
    session_id: uuid.UUID
    workspace_id: uuid.UUID
    title: str
    status: str = "not_started"
    owner_id: uuid.UUID | None = None
    canvas: Canvas | None = None
    key_result_ids: list = field(default_factory=list)
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None
    removed_at: datetime | None = None
    check_ins: list[InitiativeCheckIn] = field(default_factory=list)

    MUTABLE = ("title", "status", "owner_id", "canvas")

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        _title(self.title)
        if self.status not in INITIATIVE_STATUSES:
            raise DomainError("Unknown status.", "status")

    def connect(self, key_result: KeyResult, at: datetime) -> None:
        if key_result.session_id != self.session_id:
            raise DomainError("An Initiative connects to Key Results of its own Session.", "key_result_id")
        if key_result.id in self.key_result_ids:
            raise Conflict("Already connected.", "key_result_id")
        self.key_result_ids.append(key_result.id)
        self.touch(at)

    def disconnect(self, key_result_id, at: datetime) -> None:
        if key_result_id not in self.key_result_ids:
            raise Conflict("Not connected.", "key_result_id")
        self.key_result_ids.remove(key_result_id)
        self.touch(at)

    def check_in(self, *, status: str, comment: str, author_id, at: datetime) -> InitiativeCheckIn:
        self.status = status
        self.validate()
        entry = InitiativeCheckIn(new_id(), self.id, status, comment, author_id, at)
        self.check_ins.append(entry)
        self.touch(at)
        return entry

    def state(self) -> dict:
        out = Entity.state(self)
        out.pop("check_ins")
        return out | {"canvas": self.canvas.state() if self.canvas else None,
                      "key_result_ids": list(self.key_result_ids)}


def remove(entity: Entity, at: datetime) -> None:
    entity.removed_at = at
    entity.touch(at)
