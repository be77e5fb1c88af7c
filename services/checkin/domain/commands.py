"""What a user asks the live Session to do; entrypoints build these from HTTP or the CLI."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

from shared.tokens import Principal

ITEM_KINDS = ("session", "objective", "key_result", "initiative")


@dataclass(frozen=True)
class CreateSession:
    principal: Principal
    workspace_id: uuid.UUID
    name: str
    start_date: date
    end_date: date
    timezone: str
    week_start_day: str = "monday"
    checkin_cadence: str = "weekly"
    checkin_weekday: str = "friday"
    visibility: str = "workspace"
    members: tuple = ()


@dataclass(frozen=True)
class ArchiveSession:
    principal: Principal
    session_id: uuid.UUID


@dataclass(frozen=True)
class AddObjective:
    principal: Principal
    session_id: uuid.UUID
    title: str
    description: str = ""
    owner_id: uuid.UUID | None = None
    parent_id: uuid.UUID | None = None
    private: bool = False
    visible_to: list = field(default_factory=list)


@dataclass(frozen=True)
class AddKeyResult:
    principal: Principal
    objective_id: uuid.UUID
    title: str
    start_value: float = 0.0
    target_value: float = 1.0
    current_value: float | None = None
    unit: str = ""
    kind: str = "metric"
    owner_id: uuid.UUID | None = None
    status: str = "not_started"
    confidence: int | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class AddInitiative:
    principal: Principal
    session_id: uuid.UUID
    title: str
    status: str = "not_started"
    owner_id: uuid.UUID | None = None
    canvas: dict | None = None
    key_result_ids: list = field(default_factory=list)


@dataclass(frozen=True)
class UpdateItem:
    """Edit of one item, made against `expected_version` (the If-Match header)."""

    principal: Principal
    kind: str
    item_id: uuid.UUID
    expected_version: int | None
    changes: dict


@dataclass(frozen=True)
class RemoveItem:
    principal: Principal
    kind: str
    item_id: uuid.UUID
    expected_version: int | None


@dataclass(frozen=True)
class Connect:
    principal: Principal
    initiative_id: uuid.UUID
    key_result_id: uuid.UUID
    connected: bool = True  # False: disconnect


@dataclass(frozen=True)
class RecordCheckIn:
    principal: Principal
    key_result_id: uuid.UUID
    value: float
    status: str
    comment: str = ""
    confidence: int | None = None


@dataclass(frozen=True)
class RecordInitiativeCheckIn:
    principal: Principal
    initiative_id: uuid.UUID
    status: str
    comment: str = ""


@dataclass(frozen=True)
class ImportHistory:
    """A Session's past: items and dated Check-ins (see entrypoints.schemas.HistoryImport)."""

    principal: Principal
    workspace_id: uuid.UUID
    document: dict
