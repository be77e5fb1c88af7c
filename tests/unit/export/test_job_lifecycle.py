"""An export job's life beyond building: progress while it builds, cancelling, the requester's
list, files deleted after the retention period, and attempts that lost their job keeping no file."""
import uuid
from datetime import timedelta

import pytest

from services.export.domain import formats
from services.export.domain.model import (
    CANCELLED,
    DONE,
    EXPIRED,
    RUNNING,
    ExportGone,
    NotCancellable,
)
from services.export.service_layer import handlers
from shared.access import NotFound
from shared.tokens import Principal
from tests.unit.export.fakes import (
    START,
    FakeFiles,
    FakeRepository,
    FakeUnitOfWork,
    key_result,
    objective,
    week_view,
)
from tests.unit.export.test_handlers import GRACE, LEASE, request, requested_event

WEEK = "2026-W48"


class RecordingRepository(FakeRepository):
    """Remembers the progress of every saved job, in order."""

    def __init__(self):
        super().__init__()
        self.progress_seen: list[int] = []

    def save(self, job):
        self.progress_seen.append(job.progress)
        super().save(job)


@pytest.fixture
def uow():
    return FakeUnitOfWork(RecordingRepository())


@pytest.fixture
def session_id(snapshots, workspace):
    session_id = snapshots.add_session(workspace)
    many = [key_result(f"KR {n}") for n in range(3 * formats.REPORT_EVERY)]
    snapshots.views[(session_id, WEEK)] = week_view(objectives=[objective(key_results=many)])
    return session_id


def claimed(alice, session_id, *, uow, clock, snapshots):
    job = request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    return job, handlers.claim_requested(requested_event(uow), uow=uow, clock=clock)


def test_a_build_reports_rising_progress_and_ends_at_100(alice, session_id, uow, clock, snapshots):
    job, claim = claimed(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    uow.repo.progress_seen.clear()

    handlers.build_export(claim, uow=uow, clock=clock, snapshots=snapshots, files=FakeFiles(), report_interval=0)

    seen = uow.repo.progress_seen
    assert seen[:2] == [handlers.FETCHED, handlers.LAID_OUT]
    writing = seen[2:-1]
    assert len(writing) >= 3 and writing == sorted(writing) and all(20 < p <= 99 for p in writing)
    assert seen[-1] == 100 and uow.repo.jobs[job.id].status == DONE


def test_reports_renew_the_lease_so_a_long_build_is_not_taken_over(alice, session_id, uow, clock, snapshots):
    job, claim = claimed(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    clock.advance(minutes=4)
    handlers.ProgressReport(claim, uow=uow, clock=clock, interval=0).stage(10)
    clock.advance(minutes=4)  # 8 minutes after the claim, 4 after the last sign of life

    assert handlers.reclaim_stranded(uow=uow, clock=clock, lease=LEASE, queued_grace=GRACE) == []
    clock.advance(minutes=2)
    [again] = handlers.reclaim_stranded(uow=uow, clock=clock, lease=LEASE, queued_grace=GRACE)
    assert (again.job_id, again.attempt) == (job.id, 2)


def test_cancelling_a_running_build_stops_it_and_keeps_no_file(
        alice, session_id, uow, clock, snapshots, monkeypatch):
    job, claim = claimed(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    files = FakeFiles()
    write = formats.write

    def write_and_cancel_midway(doc, fmt, out, on_rows=None):
        def cancelling(count):
            if uow.repo.jobs[job.id].status == RUNNING:
                handlers.cancel_export(alice, job.id, uow=uow, clock=clock)
            on_rows(count)
        write(doc, fmt, out, on_rows=cancelling)

    monkeypatch.setattr(handlers.formats, "write", write_and_cancel_midway)
    handlers.build_export(claim, uow=uow, clock=clock, snapshots=snapshots, files=files, report_interval=0)

    stored = uow.repo.jobs[job.id]
    assert (stored.status, stored.error, stored.file_name) == (CANCELLED, "Cancelled by its requester.", None)
    assert files.written == {}


class TakenOverWhileWriting(FakeFiles):
    """While the first attempt writes, its lease runs out and a second attempt builds the job."""

    def __init__(self, take_over):
        super().__init__()
        self.take_over = take_over

    def write_with(self, name, produce):
        super().write_with(name, produce)
        if name.endswith("-1.csv.zip"):
            self.take_over()


def test_an_attempt_that_lost_its_job_while_writing_deletes_its_own_file_only(
        alice, session_id, uow, clock, snapshots):
    job, stale = claimed(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)

    def take_over():
        clock.advance(minutes=6)
        [fresh] = handlers.reclaim_stranded(uow=uow, clock=clock, lease=LEASE, queued_grace=GRACE)
        handlers.build_export(fresh, uow=uow, clock=clock, snapshots=snapshots, files=files)

    files = TakenOverWhileWriting(take_over)
    handlers.build_export(stale, uow=uow, clock=clock, snapshots=snapshots, files=files, report_interval=3600)

    stored = uow.repo.jobs[job.id]
    assert (stored.status, stored.attempts, stored.file_name) == (DONE, 2, f"{job.id}-2.csv.zip")
    assert list(files.written) == [stored.file_name]


def test_only_a_queued_or_running_export_of_ones_own_can_be_cancelled(
        alice, session_id, workspace, uow, clock, snapshots):
    job, claim = claimed(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    bob = Principal(str(uuid.uuid4()), {str(workspace): "admin"})
    with pytest.raises(NotFound):
        handlers.cancel_export(bob, job.id, uow=uow, clock=clock)
    handlers.build_export(claim, uow=uow, clock=clock, snapshots=snapshots, files=FakeFiles())

    with pytest.raises(NotCancellable, match="done"):
        handlers.cancel_export(alice, job.id, uow=uow, clock=clock)
    assert uow.repo.jobs[job.id].status == DONE


def test_a_file_is_deleted_after_the_retention_period_and_the_job_says_so(
        alice, session_id, uow, clock, snapshots):
    job, claim = claimed(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    files = FakeFiles()
    handlers.build_export(claim, uow=uow, clock=clock, snapshots=snapshots, files=files,
                          retention=timedelta(days=3))
    built = uow.repo.jobs[job.id]
    assert built.file_expires_at == START + timedelta(days=3)

    clock.set(START + timedelta(days=3) - timedelta(seconds=1))
    assert handlers.delete_past_retention(uow=uow, clock=clock, files=files, retention=timedelta(days=3)) == 0
    assert handlers.finished_export(job.id, uow=uow).status == DONE
    clock.set(START + timedelta(days=3))
    assert handlers.delete_past_retention(uow=uow, clock=clock, files=files, retention=timedelta(days=3)) == 1

    stored = uow.repo.jobs[job.id]
    assert (stored.status, stored.file_name, files.written) == (EXPIRED, None, {})
    assert "retention period of 3 days" in stored.error
    with pytest.raises(ExportGone, match="request the export again"):
        handlers.finished_export(job.id, uow=uow)


def test_the_job_list_holds_ones_own_jobs_newest_first_in_readable_workspaces(
        alice, session_id, workspace, uow, clock, snapshots):
    other_session = snapshots.add_session(workspace)
    snapshots.views[(other_session, WEEK)] = week_view()
    first = request(alice, session_id, uow=uow, clock=clock, snapshots=snapshots)
    clock.advance(minutes=1)
    second = request(alice, other_session, uow=uow, clock=clock, snapshots=snapshots)
    bob = Principal(str(uuid.uuid4()), {str(workspace): "viewer"})
    request(bob, session_id, uow=uow, clock=clock, snapshots=snapshots)

    jobs, total = handlers.list_exports(alice, uow=uow)
    assert ([j.id for j in jobs], total) == ([second.id, first.id], 2)
    jobs, total = handlers.list_exports(alice, uow=uow, session_id=session_id)
    assert ([j.id for j in jobs], total) == ([first.id], 1)
    jobs, total = handlers.list_exports(alice, uow=uow, limit=1, offset=1)
    assert ([j.id for j in jobs], total) == ([first.id], 2)

    removed = Principal(alice.user_id, {})  # taken off the Workspace since
    assert handlers.list_exports(removed, uow=uow) == ([], 0)
    assert handlers.list_exports(Principal(None), uow=uow) == ([], 0)
