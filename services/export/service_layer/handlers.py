"""Use cases of export jobs. Requesting writes the job and its event in one transaction;
claiming is short and transactional; building runs outside any transaction or message callback
and settles the job only if its claim still holds."""
from __future__ import annotations

import importlib.metadata
import logging
import uuid
from datetime import datetime, timedelta
from typing import Callable

from services.export.adapters.identity import IdentityUnavailable
from services.export.adapters.snapshot_client import (
    SnapshotNotFound,
    SnapshotRejected,
    SnapshotUnavailable,
)
from services.export.domain import commands, document, formats
from services.export.domain.model import (
    DONE,
    MAX_ACTIVE_PER_REQUESTER,
    MAX_ATTEMPTS,
    OWNER_FILTERS,
    QUEUED,
    Claim,
    ExportJob,
    ExportNotReady,
    TooManyExports,
    download_title,
    new_id,
    normalise_owner_filter,
    unexportable_reason,
)
from shared.access import NotFound, can_read, ensure_readable
from shared.events import Event
from shared.messaging import Unprocessable
from shared.tokens import Principal

log = logging.getLogger(__name__)

REQUESTED = "export.job.requested"

Outcome = Callable[[ExportJob, datetime], None]  # settles a job at a given time


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


def build_export(claim: Claim, *, uow, clock, snapshots, files, identities=None) -> None:
    """Fetches the week as the requester may see it now (`identities`: their current roles; the
    roles vouched for when they asked otherwise), names its people as the requester may see them,
    writes the file, settles the job."""
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
    try:
        outcome = _build(job, requester, snapshots, files, identities, clock)
    except Exception:  # noqa: BLE001 - a bug or a full disk: retried, then given up
        log.exception("building export %s failed", job.id)
        outcome = _internal_error
    _settle(claim, uow, clock, outcome)


def _build(job: ExportJob, requester: Principal, snapshots, files, identities, clock) -> Outcome:
    """The slow part, outside any transaction; returns how to settle the job."""
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
    doc = document.build(view, people=people, workspace_name=workspace_name, generated_at=clock.now(),
                         generated_by=job.requested_by, version=okrsnap_version())
    name = files.name_for(job.id, job.extension)
    files.write_with(name, lambda out: formats.write(doc, job.format, out))
    owner = job.owner_filter if job.owner_filter in OWNER_FILTERS else people_name(people, job.owner_filter)
    title = download_title(view["session"]["name"], job.week, owner)
    rows = len(doc.items)
    return lambda j, now: j.finish(now, file_name=name, row_count=rows, title=title)


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
            ids.update(i.get("owner_id") for i in kr.get("initiatives", []))
    for check_in in view.get("check_ins", []) + view.get("late_amendments", []):
        ids.add(check_in.get("author_id"))
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


def _settle(claim: Claim, uow, clock, change: Outcome) -> None:
    with uow:
        job = uow.repo.get(claim.job_id, for_update=True)
        if job is None or not job.held_by(claim):
            return  # reclaimed after our lease ran out: the newer attempt settles it
        change(job, clock.now())
        uow.repo.save(job)
        uow.commit()


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


def finished_export(job_id, *, uow) -> ExportJob:
    with uow:
        job = uow.repo.get(job_id)
    if job is None:
        raise NotFound("Export")
    if job.status != DONE:
        raise ExportNotReady(job.status)
    return job
