import io
import uuid
import zipfile
from datetime import timedelta

import pytest

from services.export.adapters.identity import IdentityUnavailable
from services.export.adapters.snapshot_client import SnapshotRejected
from services.export.domain import commands
from services.export.domain.model import (
    DONE,
    FAILED,
    MAX_ACTIVE_PER_REQUESTER,
    MAX_ATTEMPTS,
    QUEUED,
    RUNNING,
    TooManyExports,
)
from services.export.service_layer import handlers
from shared.access import NotFound
from shared.events import Event
from shared.messaging import Unprocessable
from shared.tokens import Principal
from tests.unit.export.fakes import (
    START,
    FakeFiles,
    FakeIdentities,
    key_result,
    objective,
    week_view,
)

LEASE, GRACE = timedelta(minutes=5), timedelta(minutes=2)


@pytest.fixture
def session_id(snapshots, workspace):
    return snapshots.add_session(workspace)


def request(alice, session_id, *, uow, clock, snapshots, week="2026-W48", owner="all"):
    return handlers.request_export(commands.RequestExport(alice, session_id, week, owner),
                                   uow=uow, clock=clock, snapshots=snapshots)


def requested_event(uow) -> Event:
    return uow.repo.events[-1]


# --- requesting ---------------------------------------------------------------------------

def test_request_queues_a_job_and_its_event_in_one_commit(alice, session_id, workspace, uow, clock, snapshots):
    job = request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)

    stored = uow.repo.jobs[job.id]
    assert (stored.status, stored.week, stored.owner_filter, stored.format) == \
        (QUEUED, "2026-W48", "all", "csv")
    assert stored.workspace_id == workspace and stored.session_id == session_id
    assert stored.requested_by == uuid.UUID(alice.user_id)
    assert stored.principal_claims == {"sub": alice.user_id, "ws": {str(workspace): "viewer"}}
    event = requested_event(uow)
    assert (event.event_type, event.payload) == ("export.job.requested", {"job_id": str(job.id)})
    assert (event.workspace_id, event.session_id, event.entity_id) == (workspace, session_id, job.id)
    assert uow.commits == 1


def test_request_checks_the_session_as_the_requester(alice, session_id, uow, clock, snapshots):
    request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)

    assert snapshots.asked_by == [alice]


def test_member_filter_is_stored_in_canonical_form(alice, session_id, uow, clock, snapshots):
    member = uuid.uuid4()

    job = request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots, owner=str(member).upper())

    assert job.owner_filter == str(member)


def test_unknown_or_unreadable_session_is_not_found(alice, workspace, uow, clock, snapshots):
    other_workspace_session = snapshots.add_session(uuid.uuid4())

    for session_id in (uuid.uuid4(), other_workspace_session):
        with pytest.raises(NotFound, match="Session not found."):
            request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    assert uow.repo.jobs == {} and uow.repo.events == []


def test_a_session_outside_the_requesters_workspaces_is_refused_even_if_the_service_answers(
        alice, uow, clock, snapshots):
    stranger_session = snapshots.add_session(uuid.uuid4())
    snapshots.session = lambda session_id, principal: snapshots.sessions[session_id]

    with pytest.raises(NotFound):
        request(alice, stranger_session, uow=uow, clock=clock, snapshots=snapshots)


def test_at_most_five_active_exports_per_requester(alice, session_id, uow, clock, snapshots, workspace):
    jobs = [request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
            for _ in range(MAX_ACTIVE_PER_REQUESTER)]

    with pytest.raises(TooManyExports, match="5 exports in progress"):
        request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    assert len(uow.repo.jobs) == len(uow.repo.events) == MAX_ACTIVE_PER_REQUESTER

    bob = Principal(str(uuid.uuid4()), {str(workspace): "member"})
    request(bob, session_id, uow=uow, clock=clock, snapshots=snapshots)  # others are not limited

    uow.repo.jobs[jobs[0].id].status = DONE  # a finished one frees a place
    request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)


# --- claiming -----------------------------------------------------------------------------

def test_claim_runs_the_job_once_per_event(alice, session_id, uow, clock, snapshots):
    job = request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    event = requested_event(uow)
    clock.advance(seconds=3)

    claim = handlers.claim_requested(event, uow=uow, clock=clock)

    stored = uow.repo.jobs[job.id]
    assert (claim.job_id, claim.attempt) == (job.id, 1)
    assert (stored.status, stored.started_at, stored.attempts) == (RUNNING, clock.now(), 1)
    assert event.event_id in uow.repo.processed

    assert handlers.claim_requested(event, uow=uow, clock=clock) is None  # redelivered duplicate
    assert uow.repo.jobs[job.id].attempts == 1


def test_claim_leaves_a_job_the_sweep_already_took(alice, session_id, uow, clock, snapshots):
    job = request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    clock.advance(minutes=3)
    [swept] = handlers.reclaim_stranded(uow=uow, clock=clock, lease=LEASE, queued_grace=GRACE)

    assert handlers.claim_requested(requested_event(uow), uow=uow, clock=clock) is None
    assert uow.repo.jobs[job.id].attempts == swept.attempt == 1
    assert requested_event(uow).event_id in uow.repo.processed


def test_claim_of_a_missing_job_or_a_foreign_event_is_unprocessable(alice, session_id, uow, clock, snapshots):
    request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    event = requested_event(uow)
    uow.repo.jobs.clear()

    with pytest.raises(Unprocessable, match="does not exist"):
        handlers.claim_requested(event, uow=uow, clock=clock)
    assert event.event_id not in uow.repo.processed

    foreign = Event(uuid.uuid4(), "checkin.session.created", 1, START, uuid.uuid4(), uuid.uuid4(), {})
    with pytest.raises(Unprocessable):
        handlers.claim_requested(foreign, uow=uow, clock=clock)


# --- building -----------------------------------------------------------------------------

def _claimed(alice, session_id, *, uow, clock, snapshots):
    job = request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    return job, handlers.claim_requested(requested_event(uow), uow=uow, clock=clock)


def test_build_writes_the_file_as_the_requester_and_marks_done(alice, session_id, uow, clock, snapshots):
    job, claim = _claimed(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    snapshots.views[(session_id, "2026-W48")] = week_view(objectives=[
        objective(key_results=[key_result("=1+1"), key_result()]), objective("No KRs")])
    snapshots.asked_by.clear()
    files = FakeFiles()

    handlers.build_export(claim, uow=uow, clock=clock, snapshots=snapshots, files=files)

    stored = uow.repo.jobs[job.id]
    assert (stored.status, stored.row_count, stored.file_name, stored.error) == (DONE, 4, f"{job.id}-1.csv.zip", None)
    assert stored.finished_at == clock.now()
    with zipfile.ZipFile(io.BytesIO(files.written[f"{job.id}-1.csv.zip"])) as archive:
        assert "'=1+1" in archive.read("items.csv").decode("utf-8-sig")
    assert stored.download_name == "Q4-2026-W48-all.csv.zip"
    assert snapshots.asked_by == [alice]


def test_a_week_without_snapshot_fails_with_the_reason(alice, session_id, uow, clock, snapshots):
    job, claim = _claimed(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    snapshots.views[(session_id, "2026-W48")] = week_view(status="no_snapshot", before="2026-W46")

    handlers.build_export(claim, uow=uow, clock=clock, snapshots=snapshots, files=FakeFiles())

    stored = uow.repo.jobs[job.id]
    assert stored.status == FAILED
    assert stored.error == "No Snapshot is saved for 2026-W48; nearest saved weeks: 2026-W46."


def test_lost_access_fails_the_job(alice, session_id, uow, clock, snapshots):
    job, claim = _claimed(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    del snapshots.sessions[session_id]

    handlers.build_export(claim, uow=uow, clock=clock, snapshots=snapshots, files=FakeFiles())

    assert uow.repo.jobs[job.id].status == FAILED


def test_snapshot_service_down_puts_the_job_back_in_the_queue(alice, session_id, uow, clock, snapshots):
    job, claim = _claimed(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    snapshots.down = True

    handlers.build_export(claim, uow=uow, clock=clock, snapshots=snapshots, files=FakeFiles())

    stored = uow.repo.jobs[job.id]
    assert (stored.status, stored.started_at) == (QUEUED, None)
    assert stored.error == "The snapshot service did not answer."


def test_a_refused_week_fails_with_the_services_reason(alice, session_id, uow, clock, snapshots):
    job, claim = _claimed(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)

    def refuse(*args):
        raise SnapshotRejected("2026-W48 is outside the Session.")
    snapshots.week_view = refuse

    handlers.build_export(claim, uow=uow, clock=clock, snapshots=snapshots, files=FakeFiles())

    stored = uow.repo.jobs[job.id]
    assert (stored.status, stored.error) == (FAILED, "2026-W48 is outside the Session.")


def test_an_unexpected_error_puts_the_job_back_in_the_queue(alice, session_id, uow, clock, snapshots):
    job, claim = _claimed(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    snapshots.views[(session_id, "2026-W48")] = week_view()
    files = FakeFiles()

    def disk_full(name, content):
        raise OSError(28, "No space left on device")
    files.write = files.write_with = disk_full

    handlers.build_export(claim, uow=uow, clock=clock, snapshots=snapshots, files=files)

    stored = uow.repo.jobs[job.id]
    assert (stored.status, stored.error) == (QUEUED, "An internal error stopped the build.")


def test_a_superseded_attempt_does_not_settle_the_job(alice, session_id, uow, clock, snapshots):
    job, stale_claim = _claimed(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    clock.advance(minutes=6)
    [fresh_claim] = handlers.reclaim_stranded(uow=uow, clock=clock, lease=LEASE, queued_grace=GRACE)
    snapshots.views[(session_id, "2026-W48")] = week_view(status="no_snapshot")

    handlers.build_export(stale_claim, uow=uow, clock=clock, snapshots=snapshots, files=FakeFiles())

    stored = uow.repo.jobs[job.id]
    assert (stored.status, stored.attempts, fresh_claim.attempt) == (RUNNING, 2, 2)


# --- sweeping -----------------------------------------------------------------------------

def test_sweep_takes_expired_leases_and_forgotten_queued_jobs_only(alice, session_id, uow, clock, snapshots):
    running, _ = _claimed(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    queued = request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    clock.advance(minutes=3)
    fresh = request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)

    assert [c.job_id for c in handlers.reclaim_stranded(uow=uow, clock=clock, lease=LEASE,
                                                        queued_grace=GRACE)] == [queued.id]
    clock.advance(minutes=3)
    claims = handlers.reclaim_stranded(uow=uow, clock=clock, lease=LEASE, queued_grace=GRACE)

    assert {(c.job_id, c.attempt) for c in claims} == {(running.id, 2), (fresh.id, 1)}


def test_sweep_gives_up_after_the_last_attempt(alice, session_id, uow, clock, snapshots):
    job, _ = _claimed(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    for _ in range(MAX_ATTEMPTS):
        clock.advance(minutes=6)
        handlers.reclaim_stranded(uow=uow, clock=clock, lease=LEASE, queued_grace=GRACE)

    stored = uow.repo.jobs[job.id]
    assert (stored.status, stored.attempts) == (FAILED, MAX_ATTEMPTS)
    assert stored.error.startswith(f"Gave up after {MAX_ATTEMPTS} attempts")


# --- reading ------------------------------------------------------------------------------

def test_only_the_requester_sees_a_job(alice, session_id, workspace, uow, clock, snapshots):
    job = request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    colleague = Principal(str(uuid.uuid4()), {str(workspace): "owner"})

    assert handlers.get_export(alice, job.id, uow=uow).id == job.id
    for stranger in (colleague, Principal(None)):
        with pytest.raises(NotFound, match="Export not found."):
            handlers.get_export(stranger, job.id, uow=uow)


def test_a_finished_export_goes_with_its_session_when_the_requester_can_no_longer_read_it(
        alice, session_id, uow, clock, snapshots):
    job = request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    stored = uow.repo.jobs[job.id]
    stored.claim(clock.now())
    stored.finish(clock.now(), file_name="x.csv", row_count=1)
    assert handlers.get_export(alice, job.id, uow=uow, snapshots=snapshots).status == "done"
    del snapshots.sessions[session_id]  # taken off a restricted Session, or the Session is gone
    with pytest.raises(NotFound, match="Export not found."):
        handlers.get_export(alice, job.id, uow=uow, snapshots=snapshots)


def test_build_names_people_as_the_requester_may_see_them(alice, session_id, uow, clock, snapshots):
    identities = FakeIdentities(workspace_name="Acme")
    identities.principals[alice.user_id] = alice
    identities.add("Alice Admin", "alice@example.com", alice.user_id)
    owner = identities.add("Olga Owner", "olga@example.com")
    job = request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots, owner=str(owner))
    claim = handlers.claim_requested(requested_event(uow), uow=uow, clock=clock)
    view = week_view(objectives=[dict(objective("Grow", owner_id=owner), id="o", key_results=[
        dict(key_result("ARR", owner_id=uuid.uuid4()), id="k")])])
    view["owner"] = str(owner)
    snapshots.views[(session_id, "2026-W48")] = view
    files = FakeFiles()

    handlers.build_export(claim, uow=uow, clock=clock, snapshots=snapshots, files=files, identities=identities)

    stored = uow.repo.jobs[job.id]
    assert stored.status == DONE and stored.download_name == "Q4-2026-W48-Olga Owner.csv.zip"
    [(workspace, asked, principal)] = identities.asked
    assert principal == alice and str(owner) in asked and alice.user_id in asked
    with zipfile.ZipFile(io.BytesIO(files.written[stored.file_name])) as archive:
        items = archive.read("items.csv").decode("utf-8-sig")
        metadata = archive.read("metadata.csv").decode("utf-8-sig")
    assert "Olga Owner,olga@example.com" in items and "(no longer a member)" in items
    assert "Owner filter,Olga Owner <olga@example.com>" in metadata
    assert "Generated by,Alice Admin <alice@example.com>" in metadata and "Workspace,Acme" in metadata


def test_a_directory_outage_puts_the_job_back_in_the_queue(alice, session_id, uow, clock, snapshots):
    identities = FakeIdentities()
    identities.principals[alice.user_id] = alice
    job, claim = _claimed(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    snapshots.views[(session_id, "2026-W48")] = week_view()
    identities.people = lambda *args: (_ for _ in ()).throw(IdentityUnavailable("the gateway answered 503"))

    handlers.build_export(claim, uow=uow, clock=clock, snapshots=snapshots, files=FakeFiles(), identities=identities)

    stored = uow.repo.jobs[job.id]
    assert (stored.status, stored.error) == (QUEUED, "the gateway answered 503")
