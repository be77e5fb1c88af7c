"""Three snapshot workers against real RabbitMQ and PostgreSQL, the events published shuffled and
with duplicates: the same week views and the same seal hashes as one in-order application."""
from __future__ import annotations

import random
import uuid

import pytest
from kombu import Connection, Producer

from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
from shared.clock import FixedClock
from shared.messaging import declare_topology, event_signer, topology_for
from tests.conftest import make_settings, wait_until
from tests.helpers import ConsumerThread
from tests.integration.test_weekly_review import EVENTS, IDS, NOW, _store, _views

pytestmark = pytest.mark.integration


def test_three_workers_agree_with_one(tmp_path, database_url, broker_url, namespace):
    baseline = _views(_store(tmp_path / "one", EVENTS))

    settings = make_settings(tmp_path / "three", OKRSNAP_DATABASE_URL=database_url, OKRSNAP_BROKER_URL=broker_url,
                             OKRSNAP_BROKER_NAMESPACE=namespace)
    store = snapshot_bootstrap(settings, clock=FixedClock(NOW))
    store.migrate()
    declare_topology(settings)
    rng = random.Random(7)
    deliveries = list(EVENTS) + rng.sample(EVENTS, 6)  # six redeliveries, as after lost confirms
    rng.shuffle(deliveries)
    workers = [ConsumerThread(store.consumer(prefetch_count=2)) for _ in range(3)]
    consumers = [worker.__enter__() for worker in workers]
    try:
        wait_until(lambda: all(c.consuming_connection is not None for c in consumers),
                   message="three workers consuming")
        with Connection(broker_url, transport_options={"confirm_publish": True}) as connection:
            producer = Producer(connection.channel(), exchange=topology_for(settings).exchange("checkin"))
            for event in deliveries:
                producer.publish(event_signer(settings).sign(event.to_wire()), routing_key=event.event_type, serializer="json",
                                 delivery_mode=2, message_id=str(event.event_id))
        wait_until(lambda: sum(c.processed for c in consumers) == len(deliveries), timeout=60,
                   message="every delivery handled")
        assert sum(1 for c in consumers if c.processed) >= 2, "the workers shared the queue"
    finally:
        for worker in workers:
            worker.__exit__(None, None, None)
    assert _views(store) == baseline
    assert baseline["chain"]["valid"] and len(baseline["chain"]["weeks"]) == 4
    store.database.dispose()
    assert uuid.UUID(IDS["session"])  # the same Session throughout
