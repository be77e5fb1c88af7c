"""The snapshot service's composition root."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.snapshot.service_layer import handlers
from services.snapshot.service_layer.unit_of_work import SnapshotUnitOfWork
from shared.clock import Clock
from shared.container import ServiceContainer
from shared.messaging import EventConsumer, broker_connection, event_verifier, topology_for
from shared.settings import Settings


@dataclass
class Snapshot(ServiceContainer):
    SERVICE = "snapshot"
    MIGRATIONS = Path(__file__).parent / "adapters" / "migrations"
    UNIT_OF_WORK = SnapshotUnitOfWork

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
    return Snapshot.build(settings, clock)
