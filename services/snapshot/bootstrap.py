"""The snapshot service's composition root."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.snapshot.service_layer import handlers
from services.snapshot.service_layer.unit_of_work import SnapshotUnitOfWork
from shared.clock import Clock
from shared.container import ServiceContainer
from shared.db import ProcessLocalDatabase
from shared.messaging import EventConsumer, broker_connection, event_verifier, topology_for
from shared.settings import Settings


@dataclass
class Snapshot(ServiceContainer):
    SERVICE = "snapshot"
    MIGRATIONS = Path(__file__).parent / "adapters" / "migrations"
    UNIT_OF_WORK = SnapshotUnitOfWork

    # A streaming replica for the reads (OKRSNAP_SNAPSHOT_READ_DATABASE_URL); None: the primary.
    replica: ProcessLocalDatabase | None = None

    def read_uow(self) -> SnapshotUnitOfWork:
        """A unit of work for answering reads: on the replica when there is one. It may lag the
        primary by what is being replayed; the views say how recent they are (`applied_through`)."""
        return self.UNIT_OF_WORK(self.replica.session) if self.replica is not None else self.uow()

    def apply(self, event) -> bool:
        return handlers.apply_event(event, uow=self.uow(), clock=self.clock)

    def apply_batch(self, events) -> int:
        return handlers.apply_events(events, uow=self.uow(), clock=self.clock)

    def consumer(self, connection=None, prefetch_count: int = 50) -> EventConsumer:
        return EventConsumer(
            connection=connection or broker_connection(self.settings),
            topology=topology_for(self.settings), consumer=self.SERVICE, purpose="events",
            handle=self.apply, verifier=event_verifier(self.settings), handle_batch=self.apply_batch, prefetch_count=prefetch_count,
        )


def bootstrap(settings: Settings | None = None, clock: Clock | None = None) -> Snapshot:
    settings = settings or Settings.from_env()
    read = settings.read_database_for(Snapshot.SERVICE)
    return Snapshot.build(settings, clock, replica=ProcessLocalDatabase(read) if read else None)
