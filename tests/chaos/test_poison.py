"""The poison suite: messages that can never be applied - malformed JSON, unknown versions and
types, huge bodies, events that fail at every try, events of a Session that never comes, and
forged events (unsigned, signed with another key, tampered with, replayed with a changed version)
- each land in the dead-letter queue with the reason in a header, on RabbitMQ and on the embedded
broker, while healthy traffic published behind them is applied without waiting for them."""
from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import pytest
from kombu import Producer, Queue

from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
from shared import messaging
from shared.clock import FixedClock
from shared.messaging import DEAD_LETTER_REASON, broker_connection, declare_topology, event_signer, topology_for
from tests.conftest import wait_until
from tests.helpers import ConsumerThread
from tests.integration.test_weekly_review import EVENTS, NOW

HEALTHY_DEADLINE = 30  # seconds; a poison message once held a worker 120 s per delivery


@pytest.fixture(params=["rabbitmq", "embedded"])
def settings(request):
    if request.param == "rabbitmq":
        return request.getfixturevalue("pg_settings")
    return request.getfixturevalue("embedded_settings")


def _variant(event, **changes):
    return dataclasses.replace(event, event_id=uuid.uuid4(), **changes)


def _wire(event, settings=None, **envelope):
    """The event's wire body, changed as asked, signed with the installation's key (as the relay
    signs it): poison a producer could send, not a forgery."""
    body = dict(event.to_wire(), **envelope)
    return event_signer(settings).sign(body) if settings is not None else body


def _dead_letters(settings) -> list:
    """Everything in the snapshot queue's dead-letter queue so far (taken out)."""
    name = topology_for(settings).dead_letter_queue("snapshot", "events").name
    found = []
    with broker_connection(settings) as connection:
        queue = Queue(name, no_declare=True)(connection.default_channel)
        while (message := queue.get(no_ack=True)) is not None:
            found.append((message.headers or {}).get(DEAD_LETTER_REASON, "<no reason>"))
    return found


def test_a_dead_letter_reaches_the_dead_letter_queue_on_the_embedded_broker(embedded_settings):
    """Issue 10, defect 4: the worker logged "dead-lettering" but the queue stayed empty (its
    producer's connection had no binding of the dead-letter exchange)."""
    store = snapshot_bootstrap(embedded_settings, clock=FixedClock(NOW))
    store.migrate()
    declare_topology(embedded_settings)
    topology = topology_for(embedded_settings)
    with ConsumerThread(store.consumer()) as consumer:
        wait_until(lambda: consumer.consuming_connection is not None,
                   timeout=30, message="the worker consuming")
        with broker_connection(embedded_settings) as connection:
            topology.declare(connection.default_channel)
            Producer(connection.default_channel, exchange=topology.exchange("checkin")).publish(
                event_signer(embedded_settings).sign({"event_id": "not-a-uuid"}),
                routing_key="checkin.key_result.checked_in", serializer="json")
        reasons: list[str] = []
        wait_until(lambda: reasons.extend(_dead_letters(embedded_settings)) or reasons, timeout=30,
                   message="the dead letter in the dead-letter queue")
    assert reasons and reasons[0].startswith("invalid event")


def test_poison_is_dead_lettered_with_its_reason_while_healthy_traffic_flows(settings):
    from services.snapshot.entrypoints.worker import dead_letter_publisher, sweep_once

    clock = FixedClock(NOW)
    store = snapshot_bootstrap(settings, clock=clock)
    store.migrate()
    declare_topology(settings)
    topology = topology_for(settings)
    check_in = next(e for e in EVENTS if e.event_type == "checkin.key_result.checked_in")
    sign = event_signer(settings).sign
    big = _wire(_variant(check_in))
    big["payload"] = dict(big["payload"], padding="x" * (messaging.MAX_EVENT_BYTES + 1000))
    poison = [  # (body, routing key, what the reason must say)
        (b'{"event_id": "not json at all', check_in.event_type, "undecodable"),
        (_wire(_variant(check_in), settings, event_version=99), check_in.event_type, "version 99"),
        (_wire(_variant(check_in), settings, event_type="checkin.key_result.exploded"),
         "checkin.key_result.exploded", "unknown event"),
        (sign(big), check_in.event_type, "exceeds the limit"),
        (_wire(_variant(check_in, sequence=None), settings), check_in.event_type, "no valid sequence"),
        (_wire(_variant(check_in, session_id=None), settings), check_in.event_type, "has no session_id"),
        (_wire(_variant(check_in, session_id=uuid.uuid4()), settings), check_in.event_type, "unknown Session"),
        (_wire(_variant(check_in)), check_in.event_type, "unsigned event"),
    ]
    worker = ConsumerThread(store.consumer())
    consumer = worker.__enter__()
    try:
        wait_until(lambda: consumer.consuming_connection is not None, timeout=30, message="the worker consuming")
        with broker_connection(settings) as connection:
            channel = connection.default_channel
            topology.declare(channel)  # the embedded transport routes with this connection's bindings
            producer = Producer(channel, exchange=topology.exchange("checkin"))
            for body, routing_key, _ in poison:  # the poison first: healthy traffic queues behind it
                if isinstance(body, bytes):
                    producer.publish(body, routing_key=routing_key, content_type="application/json",
                                     content_encoding="utf-8", delivery_mode=2)
                else:
                    producer.publish(body, routing_key=routing_key, serializer="json", delivery_mode=2)
            for event in EVENTS:
                producer.publish(sign(event.to_wire()), routing_key=event.event_type, serializer="json",
                                 delivery_mode=2)
            healthy = {str(e.event_id) for e in EVENTS}

            def all_applied():
                with store.uow() as uow:
                    return len(uow.repo.processed_among(list(healthy))) == len(healthy)

            wait_until(all_applied, timeout=HEALTHY_DEADLINE, message="every healthy event applied")
            # A second event claiming a sequence number already applied fails at every try.
            taken = _variant(check_in)
            producer.publish(sign(taken.to_wire()), routing_key=taken.event_type, serializer="json",
                             delivery_mode=2)

        reasons: list[str] = []
        expected = [want for _, _, want in poison if want != "unknown Session"] + ["already applied"]

        def dead_lettered(wanted):
            reasons.extend(_dead_letters(settings))
            return all(any(w in r for r in reasons) for w in wanted)

        wait_until(lambda: dead_lettered(expected), timeout=30, message=f"dead letters {expected}")
        # The event of an unknown Session waits (parked, acknowledged) until its time is up.
        with store.uow() as uow:
            assert uow.repo.oldest_parked() is not None
        clock.set(NOW + timedelta(hours=2))
        publisher = dead_letter_publisher(store)
        try:
            assert sweep_once(store, publisher, max_age=3600) == 1
        finally:
            publisher.close()
        wait_until(lambda: dead_lettered(["unknown Session"]), timeout=30, message="the unknown Session's event")
    finally:
        worker.__exit__(None, None, None)
    assert len(reasons) == len(poison) + 1, reasons  # each poison message once, nothing healthy
    assert "<no reason>" not in reasons
    assert consumer.processed >= len(EVENTS)
    with store.uow() as uow:
        assert uow.repo.oldest_parked() is None
    store.database.dispose()


OLD_KEY = "event-signing-key-being-rotated-out-0123456789"
NEW_KEY = "event-signing-key-rotated-in-0123456789abcdef"
ATTACKER_KEY = "a-key-the-attacker-made-up-0123456789abcdef"


def test_forged_session_updates_are_dead_lettered_and_change_nothing(settings):
    """Issue 11 (High): one forged `checkin.session.updated` with a higher version opened a
    restricted Session's weeks to every member. Unsigned, signed with another key, signed with
    another key under the real key's id, tampered with after signing, and a genuine update
    replayed with a raised version: each is dead-lettered at once with its reason, nothing of it
    is applied, and the genuine events behind them (signed with the key being rotated out and
    with the new one) are."""
    from shared.events import SIGNATURE, EventSigner, key_id
    from shared.tokens import Principal
    from tests.integration.test_weekly_review import ANN, BOB, WS

    # Mid-rotation: the relay signs with NEW_KEY; events still signed with OLD_KEY verify.
    settings = dataclasses.replace(settings, event_signing_key=NEW_KEY,
                                   previous_secrets=dict(settings.previous_secrets, event=(OLD_KEY,)))
    old, new, attacker = EventSigner(OLD_KEY), EventSigner(NEW_KEY), EventSigner(ATTACKER_KEY)
    clock = FixedClock(NOW)
    store = snapshot_bootstrap(settings, clock=clock)
    store.migrate()
    declare_topology(settings)
    topology = topology_for(settings)
    created = EVENTS[0]
    assert created.event_type == "checkin.session.created"
    session_id, sequence = created.session_id, max(e.sequence for e in EVENTS)

    def updated(version: int, visibility: str, members: list, seq: int):
        return dataclasses.replace(created, event_id=uuid.uuid4(), event_type="checkin.session.updated",
                                   sequence=seq, occurred_at=NOW, payload=dict(
                                       created.payload, version=version, visibility=visibility,
                                       members=[str(m) for m in members]))

    genuine = updated(created.payload["version"] + 1, "restricted", [ANN], sequence + 1)
    opened = updated(created.payload["version"] + 10, "workspace", [], sequence + 2)  # what the attacker wants
    tampered = new.sign(opened.to_wire())
    tampered["payload"] = dict(tampered["payload"], members=[str(BOB)])
    under_real_id = attacker.sign(opened.to_wire())
    under_real_id[SIGNATURE] = dict(under_real_id[SIGNATURE], key_id=key_id(NEW_KEY))
    raised = new.sign(genuine.to_wire())
    raised["payload"] = dict(raised["payload"], version=created.payload["version"] + 10, visibility="workspace")
    forged = [  # (body, what the reason must say)
        (opened.to_wire(), "unsigned event"),
        (attacker.sign(opened.to_wire()), f"unknown key id '{key_id(ATTACKER_KEY)}'"),
        (under_real_id, "wrong signature"),
        (tampered, "wrong signature"),
        (raised, "wrong signature"),
    ]
    with ConsumerThread(store.consumer()) as consumer:
        wait_until(lambda: consumer.consuming_connection is not None, timeout=30, message="the worker consuming")
        with broker_connection(settings) as connection:
            channel = connection.default_channel
            topology.declare(channel)
            producer = Producer(channel, exchange=topology.exchange("checkin"))
            for body, _ in forged:  # first: the genuine events queue behind them
                producer.publish(body, routing_key="checkin.session.updated", serializer="json", delivery_mode=2)
            for event in EVENTS:  # published before the rotation, with the key now rotated out
                producer.publish(old.sign(event.to_wire()), routing_key=event.event_type, serializer="json",
                                 delivery_mode=2)
            producer.publish(new.sign(genuine.to_wire()), routing_key=genuine.event_type, serializer="json",
                             delivery_mode=2)
        healthy = {str(e.event_id) for e in [*EVENTS, genuine]}

        def all_applied():
            with store.uow() as uow:
                return len(uow.repo.processed_among(list(healthy))) == len(healthy)

        wait_until(all_applied, timeout=HEALTHY_DEADLINE, message="every genuine event applied")
        reasons: list[str] = []

        def dead_lettered():
            reasons.extend(_dead_letters(settings))
            return len(reasons) >= len(forged)

        wait_until(dead_lettered, timeout=30, message="every forgery dead-lettered")
    assert len(reasons) == len(forged) and all(r.startswith("refused: ") for r in reasons), reasons
    for _, want in forged:
        assert sum(want in r for r in reasons) == sum(want == w for _, w in forged), (want, reasons)
    assert consumer.dead_lettered_count == len(forged)
    with store.uow() as uow:
        session = uow.repo.get_session(session_id)
        assert uow.repo.processed_among([str(opened.event_id)]) == set()
    assert session["visibility"] == "restricted" and session["version"] == genuine.payload["version"]
    assert [str(m) for m in session["members"]] == [str(ANN)]
    from services.snapshot.service_layer import handlers as snapshot
    from shared.access import AccessDenied

    outsider = Principal(str(BOB), {str(WS): "member"})
    with pytest.raises(AccessDenied):
        snapshot.week_view(outsider, session_id, "2026-W43", "all", uow=store.uow(), clock=clock)
    store.database.dispose()
