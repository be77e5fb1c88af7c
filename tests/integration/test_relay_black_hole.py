"""The relay says so while the broker is a black hole (issue 10, defect 10): a publish that
waits for its confirm fails after PUBLISH_TIMEOUT and is logged then, not when the network heals
(closing the dead connection used to wait for the broker's Close-Ok, and the log line with it)."""
from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from datetime import datetime, timezone

import pytest

from services.checkin.adapters import orm
from services.checkin.bootstrap import bootstrap as checkin_bootstrap
from shared.messaging import add_to_outbox, declare_topology
from tests.chaos.proxy import FaultProxy
from tests.conftest import make_settings, wait_until
from tests.integration.test_weekly_review import EVENTS

pytestmark = pytest.mark.integration


def _outbox_row(container) -> None:
    event = dataclasses.replace(EVENTS[0], event_id=uuid.uuid4())  # routed to the snapshot queue
    with container.database.session() as session:
        add_to_outbox(session, orm.outbox, event, datetime.now(timezone.utc))
        session.commit()


def _unsent(container) -> int:
    with container.database.session() as session:
        return len(session.execute(orm.outbox.select().where(orm.outbox.c.sent_at.is_(None))).all())


def test_the_relay_logs_a_failed_round_during_a_broker_black_hole(tmp_path, database_url, broker_url, namespace,
                                                                  caplog):
    proxy = FaultProxy(int(broker_url.split("@", 1)[1].split("/", 1)[0].split(":")[1]), name="amqp")
    settings = make_settings(tmp_path, OKRSNAP_DATABASE_URL=database_url,
                             OKRSNAP_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F",
                             OKRSNAP_BROKER_NAMESPACE=namespace)
    container = checkin_bootstrap(settings)
    container.migrate()
    declare_topology(settings)
    relay, stop = container.relay(), threading.Event()
    thread = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
    caplog.set_level(logging.INFO, logger="shared.messaging")
    try:
        thread.start()
        _outbox_row(container)
        wait_until(lambda: _unsent(container) == 0, timeout=30, message="the first row published")
        proxy.blackhole()
        _outbox_row(container)
        wait_until(lambda: any("relay round failed" in r.getMessage() for r in caplog.records), timeout=40,
                   message="a failed round logged while the broker is a black hole")
        assert proxy.mode == "blackhole"  # said during the outage, not after it
    finally:
        proxy.restore()
        stop.set()
        thread.join(timeout=30)
        proxy.close()
        container.database.dispose()
    assert not thread.is_alive()
