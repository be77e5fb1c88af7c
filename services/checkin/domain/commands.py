"""What a user asks the live Session to do; entrypoints build these from HTTP or the CLI."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from shared.tokens import Principal


@dataclass(frozen=True)
class CreateSession:
    principal: Principal
    workspace_id: uuid.UUID
    name: str
    start_date: date
    end_date: date
    timezone: str
    week_start_day: str = "monday"


@dataclass(frozen=True)
class AddObjective:
    principal: Principal
    session_id: uuid.UUID
    title: str
    owner_id: uuid.UUID | None = None
    parent_id: uuid.UUID | None = None


@dataclass(frozen=True)
class AddKeyResult:
    principal: Principal
    objective_id: uuid.UUID
    title: str
    start_value: float
    target_value: float
    current_value: float | None = None
    unit: str = ""
    owner_id: uuid.UUID | None = None


@dataclass(frozen=True)
class RecordCheckIn:
    principal: Principal
    key_result_id: uuid.UUID
    value: float
    status: str
    comment: str = ""
