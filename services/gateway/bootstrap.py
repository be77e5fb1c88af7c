"""The gateway's composition root."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.gateway.adapters.upstream import Upstream
from services.gateway.service_layer.unit_of_work import GatewayUnitOfWork
from shared.clock import Clock
from shared.container import ServiceContainer
from shared.settings import Settings


@dataclass
class Gateway(ServiceContainer):
    SERVICE = "gateway"
    MIGRATIONS = Path(__file__).parent / "adapters" / "migrations"
    UNIT_OF_WORK = GatewayUnitOfWork

    upstream: Upstream | None = None

    def __post_init__(self):
        if self.upstream is None:
            self.upstream = Upstream(self.settings.service_urls, self.settings.internal_secret)


def bootstrap(settings: Settings | None = None, clock: Clock | None = None) -> Gateway:
    return Gateway.build(settings, clock)
