"""The outbox relay signs what it publishes (issue 11): the message carries the signature by the
current event-signing key and its key id, the outbox row keeps the unsigned event, and a row
written before a key rotation goes out signed with the new key. On RabbitMQ and the embedded
broker."""
from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timezone

import pytest
from kombu import Queue
from sqlalchemy import select

from services.export.adapters import orm
from services.export.bootstrap import bootstrap as export_bootstrap
from shared.events import SIGNATURE, Event, EventVerifier, key_id
from shared.messaging import add_to_outbox, broker_connection, declare_topology, event_verifier, topology_for
from tests.conftest import wait_until

pytestmark = pytest.mark.integration
NEW_KEY = "the-event-signing-key-after-rotation-0123456789"


@pytest.fixture(params=["rabbitmq", "embedded"])
def settings(request):
    if request.param == "rabbitmq":
        return request.getfixturevalue("pg_settings")
    return request.getfixturevalue("embedded_settings")


def _requested() -> Event:
    job = uuid.uuid4()
    return Event.new("export.job.requested", occurred_at=datetime.now(timezone.utc), workspace_id=uuid.uuid4(),
                     entity_id=job, payload={"job_id": job})


def _relay_one(container, event: Event) -> dict:
    with container.database.session() as session:
        add_to_outbox(session, orm.outbox, event, event.occurred_at)
        session.commit()
    relay = container.relay()
    try:
        assert relay.run_once() == 1
    finally:
        relay.close()
    name = topology_for(container.settings).queue_name("export", "jobs")
    with broker_connection(container.settings) as connection:
        queue = Queue(name, no_declare=True)(connection.default_channel)
        message = wait_until(lambda: queue.get(no_ack=True), timeout=20, message="the relayed event")
        return message.payload


def test_the_relay_signs_with_the_current_key_and_the_outbox_keeps_the_event(settings):
    container = export_bootstrap(settings)
    container.migrate()
    declare_topology(settings)
    before = _requested()
    body = _relay_one(container, before)
    assert body[SIGNATURE]["key_id"] == key_id(settings.event_signing_key)
    event_verifier(settings).verify(body)
    with container.database.session() as session:
        stored = session.execute(select(orm.outbox.c.body).where(orm.outbox.c.event_id == str(before.event_id))
                                 ).scalar_one()
    assert SIGNATURE not in stored and stored == before.to_wire()

    # Rotated: the relay signs with the new key; consumers given the old one as previous accept both.
    rotated = dataclasses.replace(settings, event_signing_key=NEW_KEY,
                                  previous_secrets=dict(settings.previous_secrets, event=(settings.event_signing_key,)))
    container = dataclasses.replace(container, settings=rotated)
    after = _relay_one(container, _requested())
    assert after[SIGNATURE]["key_id"] == key_id(NEW_KEY) != body[SIGNATURE]["key_id"]
    both = event_verifier(rotated)
    both.verify(after)
    both.verify(body)
    with pytest.raises(ValueError, match="unknown key id"):
        EventVerifier([settings.event_signing_key]).verify(after)
    container.database.dispose()


def test_every_consumer_verifies_with_the_current_and_previous_keys(embedded_settings):
    from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap

    previous = "the-event-signing-key-being-rotated-out-0123"
    rotated = dataclasses.replace(embedded_settings,
                                  previous_secrets=dict(embedded_settings.previous_secrets, event=(previous,)))
    wanted = (key_id(rotated.event_signing_key), key_id(previous))
    snapshot = snapshot_bootstrap(rotated).consumer()
    export = export_bootstrap(rotated).consumer(lambda event: None)
    assert snapshot.verifier.key_ids == wanted and export.verifier.key_ids == wanted


def test_an_event_parked_then_dead_lettered_keeps_its_signature(tmp_path):
    """An event whose Session never came is parked, then dead-lettered by the worker's sweep: it
    goes with the signature it arrived with, so `okrsnap dlq replay` puts it through again."""
    from datetime import timedelta

    from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
    from services.snapshot.service_layer import handlers
    from shared.clock import FixedClock
    from shared.events import decode
    from shared.messaging import event_signer
    from tests.conftest import make_settings
    from tests.integration.test_weekly_review import EVENTS, NOW

    settings = make_settings(tmp_path)
    store = snapshot_bootstrap(settings, clock=FixedClock(NOW))
    store.migrate()
    orphan = next(e for e in EVENTS if e.event_type == "checkin.key_result.checked_in")
    received = event_signer(settings).sign(dataclasses.replace(orphan, session_id=uuid.uuid4()).to_wire())
    store.apply(decode(received))
    dead = []
    store.clock.set(NOW + timedelta(hours=2))
    assert handlers.expire_parked(3600, lambda body, reason: dead.append((body, reason)), uow=store.uow(),
                                  clock=store.clock) == 1
    (body, reason), = dead
    assert "unknown Session" in reason and body == received
    event_verifier(settings).verify(body)
    store.database.dispose()
