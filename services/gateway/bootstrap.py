"""The gateway's composition root."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from services.gateway.adapters.upstream import Upstream
from services.gateway.service_layer.unit_of_work import GatewayUnitOfWork
from shared.clock import Clock, clock_for
from shared.db import ProcessLocalDatabase
from shared.migrations import upgrade
from shared.settings import Settings

SERVICE = "gateway"
MIGRATIONS = Path(__file__).parent / "adapters" / "migrations"


@dataclass
class Gateway:
    settings: Settings
    database: ProcessLocalDatabase
    clock: Clock
    upstream: Upstream = field(default=None)

    def __post_init__(self):
        if self.upstream is None:
            self.upstream = Upstream(self.settings.service_urls, self.settings.internal_secret)

    def uow(self) -> GatewayUnitOfWork:
        return GatewayUnitOfWork(self.database.session)

    def migrate(self) -> None:
        upgrade(self.settings.database_for(SERVICE), MIGRATIONS)


def bootstrap(settings: Settings | None = None, clock: Clock | None = None) -> Gateway:
    settings = settings or Settings.from_env()
    return Gateway(settings, ProcessLocalDatabase(settings.database_for(SERVICE)),
                   clock or clock_for(settings))
