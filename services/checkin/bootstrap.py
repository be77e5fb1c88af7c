"""The check-in service's composition root: the one place that wires settings, database,
clock, broker and the member directory. Nothing connects until first used in its process."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.checkin.adapters import orm
from services.checkin.adapters.directory import GatewayDirectory
from services.checkin.service_layer.unit_of_work import CheckinUnitOfWork
from shared.clock import Clock
from shared.container import ServiceContainer
from shared.messaging import OutboxRelay
from shared.settings import Settings

OUTBOX_CHANNEL = "okrsnap_outbox_checkin"  # NOTIFYed by the outbox's trigger (migration 0003)


@dataclass
class Checkin(ServiceContainer):
    SERVICE = "checkin"
    MIGRATIONS = Path(__file__).parent / "adapters" / "migrations"
    UNIT_OF_WORK = CheckinUnitOfWork

    members: GatewayDirectory | None = None

    def __post_init__(self):
        if self.members is None:
            self.members = GatewayDirectory(self.settings.service_urls["gateway"], self.settings.internal_secret)

    def relay(self) -> OutboxRelay:
        return self.outbox_relay(orm.outbox, notify_channel=OUTBOX_CHANNEL)


def bootstrap(settings: Settings | None = None, clock: Clock | None = None) -> Checkin:
    return Checkin.build(settings, clock)
