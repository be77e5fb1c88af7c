"""The gateway's composition root."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.gateway.adapters.ratelimit import limiter_for
from services.gateway.adapters.upstream import Upstream
from services.gateway.service_layer.unit_of_work import GatewayUnitOfWork
from shared.clock import Clock, SystemClock
from shared.container import ServiceContainer
from shared.settings import Settings


@dataclass
class Gateway(ServiceContainer):
    SERVICE = "gateway"
    MIGRATIONS = Path(__file__).parent / "adapters" / "migrations"
    UNIT_OF_WORK = GatewayUnitOfWork

    upstream: Upstream | None = None
    limiter: object | None = None      # Redis, else database, limiter (connects on first use)
    wall_clock: Clock | None = None    # credential expiry and audit times: never the settable clock

    def __post_init__(self):
        if self.upstream is None:
            self.upstream = Upstream(self.settings.service_urls, self.settings.internal_secret)
        if self.limiter is None:
            self.limiter = limiter_for(self.settings.redis_url, self.database.session)
        if self.wall_clock is None:
            self.wall_clock = SystemClock()

    def uow(self) -> GatewayUnitOfWork:
        return GatewayUnitOfWork(self.database.session, connect=lambda: self.database.engine.connect())


def bootstrap(settings: Settings | None = None, clock: Clock | None = None) -> Gateway:
    return Gateway.build(settings, clock)
