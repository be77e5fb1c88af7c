"""The check-in service's composition root: the one place that wires settings, database,
clock and broker. Nothing connects until first used in the process that uses it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.checkin.adapters import orm
from services.checkin.adapters.directory import GatewayDirectory
from services.checkin.service_layer.unit_of_work import CheckinUnitOfWork
from shared.clock import Clock, clock_for
from shared.db import ProcessLocalDatabase
from shared.messaging import OutboxRelay, broker_connection, topology_for
from shared.migrations import upgrade
from shared.settings import Settings

SERVICE = "checkin"
MIGRATIONS = Path(__file__).parent / "adapters" / "migrations"


@dataclass
class Checkin:
    settings: Settings
    database: ProcessLocalDatabase
    clock: Clock
    members: GatewayDirectory = None

    def __post_init__(self):
        if self.members is None:
            self.members = GatewayDirectory(self.settings.service_urls["gateway"], self.settings.internal_secret)

    def uow(self) -> CheckinUnitOfWork:
        return CheckinUnitOfWork(self.database.session)

    def relay(self) -> OutboxRelay:
        return OutboxRelay(
            session_factory=self.database.session, outbox=orm.outbox, producer_name=SERVICE,
            connection_factory=lambda: broker_connection(self.settings),
            topology=topology_for(self.settings), clock=self.clock,
        )

    def migrate(self) -> None:
        upgrade(self.settings.database_for(SERVICE), MIGRATIONS)


def bootstrap(settings: Settings | None = None, clock: Clock | None = None) -> Checkin:
    settings = settings or Settings.from_env()
    return Checkin(settings, ProcessLocalDatabase(settings.database_for(SERVICE)),
                   clock or clock_for(settings))
