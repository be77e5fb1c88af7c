"""The export worker: claims jobs from messages and from a periodic sweep, builds them on builder
threads. The message callback only claims (one short transaction) so the consumer keeps sending
heartbeats while an export is built (kombu#806, pika#636); a job, not a held delivery, carries
the work, so a crash at any point leaves a job the sweep takes up again."""
from __future__ import annotations

import logging
import queue
import threading
from datetime import timedelta
from typing import Callable

from services.export.domain.model import Claim
from services.export.service_layer import handlers
from shared.events import Event

log = logging.getLogger(__name__)


class ExportWorker:
    def __init__(self, *, uow_factory: Callable, clock, snapshots, files,
                 consumer_factory: Callable[[Callable[[Event], None]], object], identities=None,
                 lease: timedelta = timedelta(minutes=2), queued_grace: timedelta = timedelta(minutes=2),
                 sweep_interval: float = 30.0, builders: int = 2, retention: timedelta = handlers.RETENTION,
                 report_interval: float = 1.0):
        self.uow_factory = uow_factory
        self.clock = clock
        self.snapshots = snapshots
        self.files = files
        self.identities = identities
        self.consumer_factory = consumer_factory
        self.lease = lease
        self.queued_grace = queued_grace
        self.sweep_interval = sweep_interval
        self.builders = builders
        self.retention = retention
        self.report_interval = report_interval  # a builder reports (and renews its lease) this often
        self._claims: queue.Queue[Claim] = queue.Queue()

    def on_requested(self, event: Event) -> None:
        """The consumer's handler: claim and hand over; the consumer acks after this returns."""
        claim = handlers.claim_requested(event, uow=self.uow_factory(), clock=self.clock)
        if claim is not None:
            self._claims.put(claim)

    def sweep(self) -> int:
        """Reclaims stranded jobs, deletes files past retention and partial files of dead builders."""
        claims = handlers.reclaim_stranded(uow=self.uow_factory(), clock=self.clock, lease=self.lease,
                                           queued_grace=self.queued_grace)
        for claim in claims:
            self._claims.put(claim)
        handlers.delete_past_retention(uow=self.uow_factory(), clock=self.clock, files=self.files,
                                       retention=self.retention)
        self.files.remove_abandoned(older_than=self.lease.total_seconds())
        return len(claims)

    def build_next(self, timeout: float) -> bool:
        try:
            claim = self._claims.get(timeout=timeout)
        except queue.Empty:
            return False
        try:
            handlers.build_export(claim, uow=self.uow_factory(), clock=self.clock,
                                  snapshots=self.snapshots, files=self.files, identities=self.identities,
                                  retention=self.retention, report_interval=self.report_interval)
        except Exception:  # noqa: BLE001 - e.g. the database is down: the lease brings it back
            log.exception("building export %s failed; it is retried after its lease", claim.job_id)
        return True

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set (or the consumer fails, which sets it for the other threads)."""
        consumer = self.consumer_factory(self.on_requested)
        threads = [threading.Thread(target=self._build_until, args=(stop,), name=f"export-builder-{n}")
                   for n in range(self.builders)]
        threads.append(threading.Thread(target=self._sweep_until, args=(stop, consumer),
                                        name="export-sweeper"))
        for thread in threads:
            thread.start()
        try:
            consumer.run()
        finally:
            stop.set()
            for thread in threads:
                thread.join()
            self._release_unbuilt()

    def _build_until(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.build_next(timeout=0.2)

    def _sweep_until(self, stop: threading.Event, consumer) -> None:
        while True:
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - try again next round
                log.exception("sweeping stranded exports failed")
            if stop.wait(self.sweep_interval):
                break
        consumer.should_stop = True  # the consumer polls this between drains

    def _release_unbuilt(self) -> None:
        """Claims handed over but not built go back to the queue instead of waiting out a lease."""
        while True:
            try:
                claim = self._claims.get_nowait()
            except queue.Empty:
                return
            try:
                handlers.release(claim, "The worker stopped before building it.",
                                 uow=self.uow_factory(), clock=self.clock)
            except Exception:  # noqa: BLE001 - the lease still brings it back
                log.exception("releasing export %s failed", claim.job_id)
