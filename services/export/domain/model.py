"""An export job's life and rules. Pure: no I/O, no clock of its own."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.tokens import Principal

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
CANCELLED, EXPIRED = "cancelled", "expired"  # by its requester; its file deleted after retention
STATUSES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED, EXPIRED)
ACTIVE = (QUEUED, RUNNING)
FORMATS = ("csv", "xlsx", "json")  # csv: a ZIP of items.csv, check_ins.csv and metadata.csv
EXTENSIONS = {"csv": "csv.zip", "xlsx": "xlsx", "json": "json"}
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


class ExportGone(Exception):
    """The file was deleted after its retention period."""


class NotCancellable(Exception):
    def __init__(self, status: str):
        super().__init__(f"The export is {status}; only a queued or running export can be cancelled.")


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
    download_title: str | None = None  # "<session>-<week>-<owner filter>", named when built
    progress: int = 0  # percent of the build done, while running
    heartbeat_at: datetime | None = None  # the builder's last sign of life (the lease runs from it)
    file_expires_at: datetime | None = None  # when a finished file is deleted (retention)

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
    def extension(self) -> str:
        return EXTENSIONS.get(self.format, self.format)

    @property
    def download_name(self) -> str:
        return f"{self.download_title or f'okrsnap-{self.week}'}.{self.extension}"

    def claim(self, now: datetime) -> Claim:
        self.status, self.started_at, self.heartbeat_at, self.progress = RUNNING, now, now, 0
        self.attempts += 1
        return Claim(self.id, self.attempts)

    def report(self, now: datetime, progress: int) -> None:
        """A builder's sign of life: how far it got; renews its lease."""
        self.progress = max(self.progress, min(99, max(0, int(progress))))
        self.heartbeat_at = now

    def cancel(self, now: datetime) -> None:
        if self.status not in ACTIVE:
            raise NotCancellable(self.status)
        self.status, self.finished_at, self.error = CANCELLED, now, "Cancelled by its requester."

    def expire(self, now: datetime, retention: timedelta) -> None:
        """The file is gone after the retention period; the job stays to say so."""
        days = retention / timedelta(days=1)
        kept = f"{days:g} day{'s' if days != 1 else ''}"
        self.status, self.file_name = EXPIRED, None
        self.error = f"The file was deleted after the retention period of {kept}; request the export again."

    def held_by(self, claim: Claim) -> bool:
        """False once the job was settled or reclaimed after this attempt's lease ran out."""
        return self.status == RUNNING and self.attempts == claim.attempt

    def finish(self, now: datetime, *, file_name: str, row_count: int, title: str | None = None,
               retention: timedelta = timedelta(days=7)) -> None:
        self.status, self.finished_at, self.progress = DONE, now, 100
        self.file_name, self.row_count, self.error = file_name, row_count, None
        self.file_expires_at = now + retention
        if title is not None:
            self.download_title = title

    def fail(self, now: datetime, error: str) -> None:
        self.status, self.finished_at, self.error = FAILED, now, error

    def release(self, error: str) -> None:
        """Back to the queue after a passing failure; the sweep retries it."""
        self.status, self.started_at, self.heartbeat_at, self.error = QUEUED, None, None, error
        self.progress = 0

    def give_up(self, now: datetime) -> None:
        reason = self.error or "The worker stopped while building it."
        self.fail(now, f"Gave up after {self.attempts} attempts; please request the export again. "
                       f"Last problem: {reason}")


_UNSAFE_IN_NAMES = re.compile(r'[\x00-\x1f\x7f"*/:<>?\\|\u200b-\u200f\u202a-\u202e\u2066-\u2069]+')


def download_title(session_name: str, week: str, owner: str) -> str:
    """`<session>-<week>-<owner filter>` for a file name: no path, quote or control characters,
    no bidi tricks, at most 120 characters."""
    def clean(part: str, limit: int) -> str:
        part = _UNSAFE_IN_NAMES.sub("_", part).strip(" .")
        return re.sub(r"\s+", " ", part)[:limit].strip() or "_"
    return f"{clean(session_name, 60)}-{week}-{clean(owner, 40)}"


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
