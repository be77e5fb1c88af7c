"""The snapshot service's composition root."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.snapshot.service_layer import handlers
from services.snapshot.service_layer.unit_of_work import SnapshotUnitOfWork
from shared.clock import Clock, clock_for
from shared.db import ProcessLocalDatabase
from shared.messaging import EventConsumer, broker_connection, topology_for
from shared.migrations import upgrade
from shared.settings import Settings

SERVICE = "snapshot"
MIGRATIONS = Path(__file__).parent / "adapters" / "migrations"


@dataclass
class Snapshot:
    settings: Settings
    database: ProcessLocalDatabase
    clock: Clock

    def uow(self) -> SnapshotUnitOfWork:
        return SnapshotUnitOfWork(self.database.session)

    def apply(self, event) -> bool:
        return handlers.apply_event(event, uow=self.uow(), clock=self.clock)

    def consumer(self, connection=None) -> EventConsumer:
        return EventConsumer(
            connection=connection or broker_connection(self.settings),
            topology=topology_for(self.settings), consumer=SERVICE, purpose="events",
            handle=self.apply,
        )

    def migrate(self) -> None:
        upgrade(self.settings.database_for(SERVICE), MIGRATIONS)


def bootstrap(settings: Settings | None = None, clock: Clock | None = None) -> Snapshot:
    settings = settings or Settings.from_env()
    return Snapshot(settings, ProcessLocalDatabase(settings.database_for(SERVICE)),
                    clock or clock_for(settings))
