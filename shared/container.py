"""What every service's composition root holds and does: settings, its own database (made per
process on first use), the clock, units of work, migrations, and the outbox relay."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from sqlalchemy import Table

from shared.clock import Clock, clock_for
from shared.db import ProcessLocalDatabase
from shared.messaging import OutboxRelay, broker_connection, event_signer, topology_for
from shared.migrations import upgrade
from shared.settings import Settings


@dataclass
class ServiceContainer:
    SERVICE: ClassVar[str]
    MIGRATIONS: ClassVar[Path]
    UNIT_OF_WORK: ClassVar[type]

    settings: Settings
    database: ProcessLocalDatabase
    clock: Clock

    @classmethod
    def build(cls, settings: Settings | None = None, clock: Clock | None = None, **dependencies):
        settings = settings or Settings.from_env()
        return cls(settings, ProcessLocalDatabase(settings.database_for(cls.SERVICE)),
                   clock or clock_for(settings), **dependencies)

    def uow(self):
        return self.UNIT_OF_WORK(self.database.session)

    def migrate(self) -> None:
        upgrade(self.settings.database_for(self.SERVICE), self.MIGRATIONS)

    def outbox_relay(self, outbox: Table, **options) -> OutboxRelay:
        return OutboxRelay(
            session_factory=self.database.session, outbox=outbox, producer_name=self.SERVICE,
            connection_factory=lambda: broker_connection(self.settings),
            topology=topology_for(self.settings), clock=self.clock, signer=event_signer(self.settings), **options,
        )
