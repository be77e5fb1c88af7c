"""Use cases of export jobs. Requesting writes the job and its event in one transaction;
claiming is short and transactional; building runs outside any transaction or message callback
and settles the job only if its claim still holds."""
from __future__ import annotations

import importlib.metadata
import logging
import time
import uuid
from datetime import datetime, timedelta
from typing import Callable

from services.export.adapters.gc_pause import cyclic_gc_paused
from services.export.adapters.identity import IdentityUnavailable
from services.export.adapters.snapshot_client import (
    SnapshotNotFound,
    SnapshotRejected,
    SnapshotUnavailable,
)
from services.export.domain import commands, document, formats
from services.export.domain.model import (
    DONE,
    EXPIRED,
    MAX_ACTIVE_PER_REQUESTER,
    MAX_ATTEMPTS,
    OWNER_FILTERS,
    QUEUED,
    Claim,
    ExportGone,
    ExportJob,
    ExportNotReady,
    TooManyExports,
    download_title,
    new_id,
    normalise_owner_filter,
    unexportable_reason,
)
from shared import observability
from shared.access import NotFound, can_read, ensure_readable
from shared.events import Event
from shared.messaging import Unprocessable
from shared.tokens import Principal

log = logging.getLogger(__name__)

REQUESTED = "export.job.requested"

Outcome = Callable[[ExportJob, datetime], None]  # settles a job at a given time
RETENTION = timedelta(days=7)

# Share of the progress bar each stage of a build takes: fetching the week, then laying out the
# document, then writing its rows (which is most of the time for a large week).
FETCHED, LAID_OUT = 5, 20


class BuildAbandoned(Exception):
    """The job was cancelled, or taken over by a newer attempt, while this attempt built it."""


class ProgressReport:
    """The builder's progress and sign of life, written at most every `interval` seconds; raises
    BuildAbandoned once the attempt no longer holds the job, so a cancelled build stops early."""

    def __init__(self, claim: Claim, *, uow, clock, interval: float = 1.0, monotonic=time.monotonic):
        self.claim, self.uow, self.clock = claim, uow, clock
        self.interval, self.monotonic = interval, monotonic
        self._last: float | None = None
        self.total_rows = 0
        self._rows_done = 0

    def stage(self, percent: int) -> None:
        self._write(percent)

    def rows(self, count: int) -> None:
        """`count` more rows written (the writers call this every few thousand rows)."""
        self._rows_done += count
        share = self._rows_done / self.total_rows if self.total_rows else 1.0
        percent = LAID_OUT + int((99 - LAID_OUT) * min(1.0, share))
        if self._last is None or self.monotonic() - self._last >= self.interval:
            self._write(percent)

    def _write(self, percent: int) -> None:
        self._last = self.monotonic()
        with self.uow:
            job = self.uow.repo.get(self.claim.job_id, for_update=True)
            if job is None or not job.held_by(self.claim):
                raise BuildAbandoned()
            job.report(self.clock.now(), percent)
            self.uow.repo.save(job)
            self.uow.commit()


def request_export(cmd: commands.RequestExport, *, uow, clock, snapshots) -> ExportJob:
    """The principal must be signed in (the entrypoint refuses anonymous requests)."""
    try:
        session = snapshots.session(cmd.session_id, cmd.principal)
    except SnapshotNotFound:
        raise NotFound("Session") from None
    ensure_readable(cmd.principal, session["workspace_id"], "Session")
    requester = uuid.UUID(cmd.principal.user_id)
    now = clock.now()
    job = ExportJob(new_id(), session["workspace_id"], session["id"], cmd.week,
                    normalise_owner_filter(cmd.owner), cmd.format, requester,
                    principal_claims={**cmd.principal.to_claims(), "sub": cmd.principal.user_id},
                    created_at=now)
    with uow:
        uow.repo.lock_requester(requester)
        if uow.repo.count_active(requester) >= MAX_ACTIVE_PER_REQUESTER:
            raise TooManyExports()
        uow.repo.add(job)
        uow.repo.add_event(Event.new(
            REQUESTED, occurred_at=now, workspace_id=job.workspace_id, session_id=job.session_id,
            entity_id=job.id, actor_id=requester, payload={"job_id": job.id}))
        uow.commit()
    return job


def claim_requested(event: Event, *, uow, clock) -> Claim | None:
    """Claims a requested job once per event; None when there is nothing (more) to build."""
    if event.event_type != REQUESTED:
        raise Unprocessable(f"the export jobs queue does not take {event.event_type!r}")
    job_id = event.load_payload()["job_id"]
    now = clock.now()
    with uow:
        if uow.repo.already_processed(event.event_id):
            return None
        job = uow.repo.get(job_id, for_update=True)
        if job is None:
            raise Unprocessable(f"export job {job_id} does not exist")
        claim = None
        if job.status == QUEUED:  # else the sweep got there first
            claim = job.claim(now)
            uow.repo.save(job)
        uow.repo.mark_processed(event.event_id, now)
        uow.commit()
    return claim


def reclaim_stranded(*, uow, clock, lease: timedelta, queued_grace: timedelta,
                     limit: int = 20) -> list[Claim]:
    """Jobs whose builder died or whose message never came: claim them again, or give up
    after MAX_ATTEMPTS so a job that kills its builder cannot loop forever."""
    now = clock.now()
    claims = []
    with uow:
        for job in uow.repo.stranded(running_before=now - lease, queued_before=now - queued_grace,
                                     limit=limit):
            if job.attempts >= MAX_ATTEMPTS:
                job.give_up(now)
            else:
                claims.append(job.claim(now))
            uow.repo.save(job)
        uow.commit()
    return claims


def build_export(claim: Claim, *, uow, clock, snapshots, files, identities=None,
                 retention: timedelta = RETENTION, report_interval: float = 1.0) -> None:
    """Fetches the week as the requester may see it now (`identities`: their current roles; the
    roles vouched for when they asked otherwise), names its people as the requester may see them,
    writes the file (under a name of this attempt's own), settles the job. An attempt that no
    longer holds the job (cancelled, or reclaimed after its lease ran out) keeps no file."""
    with uow:
        job = uow.repo.get(claim.job_id)
    if job is None or not job.held_by(claim):
        return
    try:
        requester = job.requester if identities is None else identities.current(job.requested_by)
    except IdentityUnavailable as exc:
        outage = str(exc)
        _settle(claim, uow, clock, lambda j, now: j.release(outage))
        return
    progress = ProgressReport(claim, uow=uow, clock=clock, interval=report_interval)
    written: list[str] = []
    try:
        with cyclic_gc_paused():
            outcome = _build(job, claim, requester, snapshots, files, identities, clock, progress, retention,
                             written)
    except BuildAbandoned:
        log.info("export %s attempt %d stopped: cancelled or taken over", job.id, claim.attempt)
        outcome = None
    except Exception:  # noqa: BLE001 - a bug or a full disk: retried, then given up
        log.exception("building export %s failed", job.id)
        outcome = _internal_error
    if outcome is None or not _settle(claim, uow, clock, outcome):
        for name in written:  # this attempt's own file: the job no longer wants it
            files.delete(name)


def _build(job: ExportJob, claim: Claim, requester: Principal, snapshots, files, identities, clock,
           progress: ProgressReport, retention: timedelta, written: list[str]) -> Outcome:
    """The slow part, outside any transaction; returns how to settle the job."""
    started = time.perf_counter()
    try:
        view = snapshots.week_view(job.session_id, job.week, job.owner_filter, requester)
    except SnapshotNotFound:
        return lambda j, now: j.fail(now, "The Session no longer exists or you can no longer read it.")
    except SnapshotRejected as exc:
        refusal = str(exc)  # `exc` itself is unbound once the except block ends
        return lambda j, now: j.fail(now, refusal)
    except SnapshotUnavailable as exc:
        outage = str(exc)
        return lambda j, now: j.release(outage)
    reason = unexportable_reason(view)
    if reason:
        return lambda j, now: j.fail(now, reason)
    try:
        people, workspace_name = _people(view, job, requester, identities)
    except IdentityUnavailable as exc:
        outage = str(exc)
        return lambda j, now: j.release(outage)
    progress.stage(FETCHED)
    doc = document.build(view, people=people, workspace_name=workspace_name, generated_at=clock.now(),
                         generated_by=job.requested_by, version=okrsnap_version())
    progress.stage(LAID_OUT)
    progress.total_rows = len(doc.items) + len(doc.check_ins)
    name = files.name_for(job.id, job.extension, attempt=claim.attempt)
    written.append(name)
    files.write_with(name, lambda out: formats.write(doc, job.format, out, on_rows=progress.rows))
    owner = job.owner_filter if job.owner_filter in OWNER_FILTERS else people_name(people, job.owner_filter)
    title = download_title(doc.metadata["session"], job.week, owner)
    rows = len(doc.items)
    observability.export_built(job.format, time.perf_counter() - started)
    return lambda j, now: j.finish(now, file_name=name, row_count=rows, title=title, retention=retention)


def _people(view: dict, job: ExportJob, requester: Principal, identities):
    """{user id: Person} of everyone the file names, and the Workspace's name; both as the
    requester may see them (None for people when there is no directory to ask: ids stand in)."""
    if identities is None:
        return None, None
    ids = {job.requested_by}
    if job.owner_filter not in OWNER_FILTERS:
        ids.add(job.owner_filter)
    for objective in view["objectives"]:
        ids.add(objective.get("owner_id"))
        for kr in objective["key_results"]:
            ids.add(kr.get("owner_id"))
            ids.update(i.get("owner_id") for i in kr.get("initiatives") or ())
    for key in ("check_ins", "late_amendments"):
        ids.update(check_in.get("author_id") for check_in in view.get(key) or ())
    answer = identities.people(job.workspace_id, [i for i in ids if i is not None], requester)
    people = {user_id: document.Person(name, email) for user_id, (name, email) in answer["people"].items()}
    return people, answer["workspace"]["name"]


def people_name(people, user_id) -> str:
    person = (people or {}).get(str(user_id))
    return person.name if person else str(user_id)


def okrsnap_version() -> str:
    try:
        return importlib.metadata.version("okrsnap")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _internal_error(job: ExportJob, now: datetime) -> None:
    job.release("An internal error stopped the build.")


def release(claim: Claim, reason: str, *, uow, clock) -> None:
    _settle(claim, uow, clock, lambda j, now: j.release(reason))


def _settle(claim: Claim, uow, clock, change: Outcome) -> bool:
    """True when this attempt settled the job; False when it was cancelled or reclaimed after
    this attempt's lease ran out (the newer attempt settles it)."""
    with uow:
        job = uow.repo.get(claim.job_id, for_update=True)
        if job is None or not job.held_by(claim):
            return False
        change(job, clock.now())
        uow.repo.save(job)
        uow.commit()
    return True


def cancel_export(principal: Principal, job_id, *, uow, clock) -> ExportJob:
    """The requester stops a queued or running export; a builder at work notices at its next
    progress report and deletes what it wrote."""
    with uow:
        job = uow.repo.get(job_id, for_update=True)
        if job is None or not job.requested_by_principal(principal) or not can_read(principal, job.workspace_id):
            raise NotFound("Export")
        job.cancel(clock.now())
        uow.repo.save(job)
        uow.commit()
    return job


def delete_past_retention(*, uow, clock, files, retention: timedelta = RETENTION, limit: int = 50) -> int:
    """Deletes the files whose retention ran out; their jobs say so. The file goes before the
    commit: a crash in between leaves a job whose file is missing, which the next round expires
    (and which a download answers 410 for meanwhile), never a file nobody knows of."""
    now = clock.now()
    with uow:
        jobs = uow.repo.past_retention(now, limit=limit)
        for job in jobs:
            if job.file_name:
                files.delete(job.file_name)
            job.expire(now, retention)
            uow.repo.save(job)
        uow.commit()
    return len(jobs)


# --- queries ------------------------------------------------------------------------------

def get_export(principal: Principal, job_id, *, uow, snapshots=None) -> ExportJob:
    """Only the requester sees a job, and only while still a member of its Workspace; to anyone
    else it does not exist. A finished job (whose answer carries a fresh download link) also
    needs its Session still readable to them: a restricted Session they were taken off, or one
    gone, takes its exports with it."""
    with uow:
        job = uow.repo.get(job_id)
    if job is None or not job.requested_by_principal(principal) or not can_read(principal, job.workspace_id):
        raise NotFound("Export")
    if job.status == DONE and snapshots is not None:
        try:
            snapshots.session(job.session_id, principal)
        except SnapshotNotFound:
            raise NotFound("Export") from None
    return job


def list_exports(principal: Principal, *, uow, session_id=None, limit: int = 20,
                 offset: int = 0) -> tuple[list[ExportJob], int]:
    """The requester's own jobs, newest first, in the Workspaces they may still read."""
    readable = [uuid.UUID(ws) for ws in principal.workspaces if can_read(principal, ws)]
    if principal.anonymous or not readable:
        return [], 0
    with uow:
        return uow.repo.requested_by(uuid.UUID(principal.user_id), workspace_ids=readable,
                                     session_id=session_id, limit=limit, offset=offset)


def finished_export(job_id, *, uow) -> ExportJob:
    with uow:
        job = uow.repo.get(job_id)
    if job is None:
        raise NotFound("Export")
    if job.status == EXPIRED:
        raise ExportGone(job.error)
    if job.status != DONE:
        raise ExportNotReady(job.status)
    return job
