"""An export job's life and rules. Pure: no I/O, no clock of its own."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from shared.tokens import Principal

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
ACTIVE = (QUEUED, RUNNING)
FORMATS = ("csv",)
OWNER_FILTERS = ("all", "unassigned")  # or a member's id
WEEK_PATTERN = re.compile(r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])\Z")  # \Z: "$" lets a final newline in

MAX_ACTIVE_PER_REQUESTER = 5
MAX_ATTEMPTS = 3


class TooManyExports(Exception):
    def __init__(self):
        super().__init__(f"You already have {MAX_ACTIVE_PER_REQUESTER} exports in progress; "
                         "wait for one to finish before requesting another.")


class ExportNotReady(Exception):
    def __init__(self, status: str):
        super().__init__(f"The export is {status}; only a finished export can be downloaded.")


def new_id() -> uuid.UUID:
    return uuid.uuid4()


@dataclass(frozen=True)
class Claim:
    """One attempt at building a job; only the latest attempt may settle it."""

    job_id: uuid.UUID
    attempt: int


def normalise_owner_filter(value: str) -> str:
    """"all", "unassigned" or a member id in canonical form; ValueError otherwise."""
    if value in OWNER_FILTERS:
        return value
    return str(uuid.UUID(value))


@dataclass
class ExportJob:
    id: uuid.UUID
    workspace_id: uuid.UUID
    session_id: uuid.UUID
    week: str
    owner_filter: str
    format: str
    requested_by: uuid.UUID
    principal_claims: dict
    created_at: datetime
    status: str = QUEUED
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    file_name: str | None = None
    row_count: int | None = None
    attempts: int = 0

    @property
    def requester(self) -> Principal:
        """The requester as the gateway vouched when the export was asked for."""
        return Principal.from_claims(self.principal_claims)

    def requested_by_principal(self, principal: Principal) -> bool:
        try:
            return uuid.UUID(principal.user_id or "") == self.requested_by
        except ValueError:
            return False

    @property
    def download_name(self) -> str:
        return f"okrsnap-{self.week}.{self.format}"

    def claim(self, now: datetime) -> Claim:
        self.status, self.started_at = RUNNING, now
        self.attempts += 1
        return Claim(self.id, self.attempts)

    def held_by(self, claim: Claim) -> bool:
        """False once the job was settled or reclaimed after this attempt's lease ran out."""
        return self.status == RUNNING and self.attempts == claim.attempt

    def finish(self, now: datetime, *, file_name: str, row_count: int) -> None:
        self.status, self.finished_at = DONE, now
        self.file_name, self.row_count, self.error = file_name, row_count, None

    def fail(self, now: datetime, error: str) -> None:
        self.status, self.finished_at, self.error = FAILED, now, error

    def release(self, error: str) -> None:
        """Back to the queue after a passing failure; the sweep retries it."""
        self.status, self.started_at, self.error = QUEUED, None, error

    def give_up(self, now: datetime) -> None:
        reason = self.error or "The worker stopped while building it."
        self.fail(now, f"Gave up after {self.attempts} attempts; please request the export again. "
                       f"Last problem: {reason}")


def unexportable_reason(view: dict) -> str | None:
    """Why a week view cannot become an export, in words the requester may read."""
    week = view["week"]
    if view["status"] == "no_snapshot":
        nearest = view.get("nearest_saved") or {}
        saved = [w for w in (nearest.get("before"), nearest.get("after")) if w]
        if not saved:
            return f"No Snapshot is saved for {week}; no week of this Session is saved yet."
        return f"No Snapshot is saved for {week}; nearest saved weeks: {', '.join(saved)}."
    if view["status"] == "future":
        return f"{week} has not started yet, so it has no Snapshot to export."
    return None
