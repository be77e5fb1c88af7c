"""The export service's composition root: the one place that wires settings, database, clock,
broker, the snapshot client and the export files. Nothing connects until first used in the
process that uses it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from services.export.adapters import orm
from services.export.adapters.files import ExportFiles
from services.export.adapters.snapshot_client import SnapshotClient
from services.export.service_layer.unit_of_work import ExportUnitOfWork
from services.export.service_layer.worker import ExportWorker
from shared.clock import Clock, clock_for
from shared.db import ProcessLocalDatabase
from shared.events import Event
from shared.messaging import EventConsumer, OutboxRelay, broker_connection, topology_for
from shared.migrations import upgrade
from shared.settings import Settings

SERVICE = "export"
MIGRATIONS = Path(__file__).parent / "adapters" / "migrations"


@dataclass
class Export:
    settings: Settings
    database: ProcessLocalDatabase
    clock: Clock
    snapshots: SnapshotClient
    files: ExportFiles

    def uow(self) -> ExportUnitOfWork:
        return ExportUnitOfWork(self.database.session)

    def relay(self) -> OutboxRelay:
        return OutboxRelay(
            session_factory=self.database.session, outbox=orm.outbox, producer_name=SERVICE,
            connection_factory=lambda: broker_connection(self.settings),
            topology=topology_for(self.settings), clock=self.clock,
        )

    def consumer(self, handle: Callable[[Event], None]) -> EventConsumer:
        return EventConsumer(connection=broker_connection(self.settings),
                             topology=topology_for(self.settings), consumer=SERVICE,
                             purpose="jobs", handle=handle)

    def worker(self, **options) -> ExportWorker:
        """options: lease, queued_grace, sweep_interval, builders (see ExportWorker)."""
        return ExportWorker(uow_factory=self.uow, clock=self.clock, snapshots=self.snapshots,
                            files=self.files, consumer_factory=self.consumer, **options)

    def migrate(self) -> None:
        upgrade(self.settings.database_for(SERVICE), MIGRATIONS)


def bootstrap(settings: Settings | None = None, clock: Clock | None = None) -> Export:
    settings = settings or Settings.from_env()
    return Export(settings, ProcessLocalDatabase(settings.database_for(SERVICE)),
                  clock or clock_for(settings),
                  SnapshotClient(settings.service_urls["snapshot"], settings.internal_secret),
                  ExportFiles(settings.export_dir))
