"""A Check-in's event delivered to workers that die before acking it - seven times, as when a
worker is killed again and again while its database is down - is still applied, not
dead-lettered: the queue has no broker delivery limit to count those deaths against it (issue
10, defect 1)."""
from __future__ import annotations

import pytest
from kombu import Connection, Producer, Queue

from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
from shared.clock import FixedClock
from shared.messaging import declare_topology, event_signer, topology_for
from tests.conftest import wait_until
from tests.helpers import ConsumerThread
from tests.integration.test_weekly_review import EVENTS, NOW

pytestmark = pytest.mark.integration


def test_deliveries_to_workers_that_died_never_dead_letter_a_message(pg_settings, broker_url):
    store = snapshot_bootstrap(pg_settings, clock=FixedClock(NOW))
    store.migrate()
    declare_topology(pg_settings)
    topology = topology_for(pg_settings)
    session_created = EVENTS[0]
    with Connection(broker_url, transport_options={"confirm_publish": True}) as connection:
        Producer(connection.channel(), exchange=topology.exchange("checkin")).publish(
            event_signer(pg_settings).sign(session_created.to_wire()), routing_key=session_created.event_type, serializer="json", delivery_mode=2)
    queue_name = topology.queue_name("snapshot", "events")
    for death in range(7):  # taken, never acked, the connection gone: as a SIGKILLed worker does
        with Connection(broker_url) as worker:
            message = wait_until(lambda w=worker: Queue(queue_name, no_declare=True)(w.channel()).get(no_ack=False),
                                 timeout=10, message=f"delivery {death + 1}")
            assert message.payload["event_id"] == str(session_created.event_id)
    with ConsumerThread(store.consumer()) as consumer:
        wait_until(lambda: consumer.processed == 1, timeout=30, message="the event applied")
    with Connection(broker_url) as connection:
        _, dead, _ = connection.channel().queue_declare(f"{queue_name}.dlq", passive=True)
    assert dead == 0
    with store.uow() as uow:
        assert uow.repo.get_session(session_created.session_id) is not None
    store.database.dispose()
