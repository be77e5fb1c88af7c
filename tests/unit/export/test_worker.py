import threading
import uuid
from datetime import datetime, timezone

from services.export.domain import commands
from services.export.domain.model import DONE, QUEUED, RUNNING
from services.export.service_layer import handlers
from services.export.service_layer.worker import ExportWorker
from shared.clock import FixedClock
from shared.tokens import Principal
from tests.conftest import wait_until
from tests.unit.export.fakes import FakeFiles, FakeSnapshots, FakeUnitOfWork, week_view


class FakeConsumer:
    """Delivers the given events, then idles until told to stop, like ConsumerMixin.run."""

    def __init__(self, handle, events):
        self.handle, self.events = handle, events
        self.should_stop = False
        self.idle = threading.Event()

    def run(self):
        for event in self.events:
            self.handle(event)
        self.idle.set()
        while not self.should_stop:
            self.idle.wait(0.01)


def setup(builders):
    uow, snapshots, files = FakeUnitOfWork(), FakeSnapshots(), FakeFiles()
    clock = FixedClock(datetime(2026, 11, 25, tzinfo=timezone.utc))
    workspace = uuid.uuid4()
    alice = Principal(str(uuid.uuid4()), {str(workspace): "member"})
    session_id = snapshots.add_session(workspace)
    snapshots.views[(session_id, "2026-W48")] = week_view()
    job = handlers.request_export(commands.RequestExport(alice, session_id, "2026-W48"),
                                  uow=uow, clock=clock, snapshots=snapshots)
    consumers = []

    def consumer_factory(handle):
        consumers.append(FakeConsumer(handle, list(uow.repo.events)))
        return consumers[-1]

    worker = ExportWorker(uow_factory=lambda: FakeUnitOfWork(uow.repo), clock=clock, snapshots=snapshots,
                          files=files, consumer_factory=consumer_factory, builders=builders,
                          sweep_interval=60)
    return worker, uow, job, files, consumers


def test_the_message_callback_only_claims_and_a_builder_does_the_work():
    worker, uow, job, files, _ = setup(builders=0)

    worker.on_requested(uow.repo.events[0])

    assert uow.repo.jobs[job.id].status == RUNNING and files.written == {}
    assert worker.build_next(timeout=0) is True
    assert uow.repo.jobs[job.id].status == DONE and len(files.written) == 1
    assert worker.build_next(timeout=0) is False


def test_run_builds_delivered_jobs_until_stopped():
    worker, uow, job, files, consumers = setup(builders=1)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()

    wait_until(lambda: uow.repo.jobs[job.id].status == DONE, message="the job to be built")
    stop.set()
    thread.join(timeout=10)

    assert not thread.is_alive() and consumers[0].should_stop


def test_claims_not_built_when_stopping_go_back_to_the_queue():
    worker, uow, job, files, consumers = setup(builders=0)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    wait_until(lambda: consumers and consumers[0].idle.is_set(), message="the event to be delivered")

    stop.set()
    thread.join(timeout=10)

    stored = uow.repo.jobs[job.id]
    assert (stored.status, stored.error) == (QUEUED, "The worker stopped before building it.")
    assert files.written == {}
