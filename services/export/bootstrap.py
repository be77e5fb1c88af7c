"""The export service's composition root: the one place that wires settings, database, clock,
broker, the snapshot client and the export files. Nothing connects until first used in the
process that uses it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable

from services.export.adapters import orm
from services.export.adapters.files import ExportFiles
from services.export.adapters.identity import GatewayIdentities
from services.export.adapters.snapshot_client import SnapshotClient
from services.export.service_layer.unit_of_work import ExportUnitOfWork
from services.export.service_layer.worker import ExportWorker
from shared.clock import Clock
from shared.container import ServiceContainer
from shared.events import Event
from shared.messaging import EventConsumer, OutboxRelay, broker_connection, event_verifier, topology_for
from shared.settings import Settings

SERVICE = "export"
MIGRATIONS = Path(__file__).parent / "adapters" / "migrations"


@dataclass
class Export(ServiceContainer):
    SERVICE = SERVICE
    MIGRATIONS = MIGRATIONS
    UNIT_OF_WORK = ExportUnitOfWork

    snapshots: SnapshotClient
    files: ExportFiles
    identities: GatewayIdentities

    def relay(self) -> OutboxRelay:
        return self.outbox_relay(orm.outbox)

    def consumer(self, handle: Callable[[Event], None]) -> EventConsumer:
        return EventConsumer(connection=broker_connection(self.settings),
                             topology=topology_for(self.settings), consumer=SERVICE,
                             purpose="jobs", handle=handle, verifier=event_verifier(self.settings))

    def worker(self, **options) -> ExportWorker:
        """options: lease, queued_grace, sweep_interval, builders, report_interval (see ExportWorker)."""
        options.setdefault("retention", timedelta(seconds=self.settings.export_retention))
        return ExportWorker(uow_factory=self.uow, clock=self.clock, snapshots=self.snapshots,
                            files=self.files, consumer_factory=self.consumer, identities=self.identities,
                            **options)



def bootstrap(settings: Settings | None = None, clock: Clock | None = None) -> Export:
    settings = settings or Settings.from_env()
    return Export.build(settings, clock,
                        snapshots=SnapshotClient(settings.service_urls["snapshot"], settings.internal_secret),
                        files=ExportFiles(settings.export_dir),
                        identities=GatewayIdentities(settings.service_urls["gateway"], settings.internal_secret))
