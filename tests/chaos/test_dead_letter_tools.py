"""`okrsnap dlq list|show|replay|purge` on RabbitMQ and on the embedded broker: listing moves
nothing, a replayed dead letter goes through the normal path and is applied once, purge empties."""
from __future__ import annotations

import dataclasses
import json
import uuid

import pytest
from click.testing import CliRunner
from kombu import Producer

from services.cli import main as okrsnap
from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
from shared import deadletters
from shared.clock import FixedClock
from shared.messaging import broker_connection, declare_topology, event_signer, publish_dead_letter, topology_for
from tests.conftest import wait_until
from tests.helpers import ConsumerThread
from tests.integration.test_weekly_review import EVENTS, NOW


@pytest.fixture(params=["rabbitmq", "embedded"])
def settings(request):
    if request.param == "rabbitmq":
        return request.getfixturevalue("pg_settings")
    return request.getfixturevalue("embedded_settings")


def _env(settings) -> dict:
    env = {"OKRSNAP_ENV": "test", "OKRSNAP_DATA_DIR": str(settings.data_dir),
           "OKRSNAP_BROKER_NAMESPACE": settings.broker_namespace,
           "OKRSNAP_INTERNAL_SECRET": settings.internal_secret,
           "OKRSNAP_ACCESS_TOKEN_SECRET": settings.access_token_secret,
           "OKRSNAP_DOWNLOAD_SECRET": settings.download_secret}
    if not settings.embedded_broker:
        env["OKRSNAP_BROKER_URL"] = settings.broker_url
    return env


def test_dead_letters_are_listed_shown_replayed_and_purged(settings):
    store = snapshot_bootstrap(settings, clock=FixedClock(NOW))
    store.migrate()
    declare_topology(settings)
    topology = topology_for(settings)
    healthy = [dataclasses.replace(e, event_id=uuid.uuid4()) for e in EVENTS[:3]]  # the Session first
    with broker_connection(settings) as connection:
        producer = Producer(connection.default_channel)
        for event in healthy:  # as if dead-lettered during an old outage
            publish_dead_letter(producer, topology, "snapshot", "events", event_signer(settings).sign(event.to_wire()),
                                "test: an old outage")
        publish_dead_letter(producer, topology, "snapshot", "events", b"{broken", "undecodable body: test")
    cli = CliRunner()
    listed = cli.invoke(okrsnap, ["dlq", "list"], env=_env(settings))
    assert listed.exit_code == 0, listed.output
    assert "4 dead letter(s) shown" in listed.output and str(healthy[0].event_id) in listed.output
    assert deadletters.depth(settings) == 4  # listing moved nothing
    shown = cli.invoke(okrsnap, ["dlq", "show", str(healthy[1].event_id)], env=_env(settings))
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["reason"] == "test: an old outage"

    with ConsumerThread(store.consumer()) as consumer:
        wait_until(lambda: consumer.consuming_connection is not None,
                   timeout=30, message="the worker consuming")
        replayed = cli.invoke(okrsnap, ["dlq", "replay", *(str(e.event_id) for e in healthy)], env=_env(settings))
        assert replayed.exit_code == 0, replayed.output
        assert "3 dead letter(s) replayed" in replayed.output

        def applied():
            with store.uow() as uow:
                return len(uow.repo.processed_among([e.event_id for e in healthy])) == len(healthy)

        wait_until(applied, timeout=30, message="the replayed events applied")
    assert [letter.reason for letter in deadletters.peek(settings)] == ["undecodable body: test"]
    purged = cli.invoke(okrsnap, ["dlq", "purge", "--yes"], env=_env(settings))
    assert purged.exit_code == 0 and "1 dead letter(s) purged" in purged.output, purged.output
    assert deadletters.depth(settings) == 0
    store.database.dispose()


def test_health_shows_parked_events_and_the_dead_letter_depth(embedded_settings):
    """Operators see what waits: /healthz of the snapshot service names the parked events, the
    oldest of them, and the dead-letter queue's depth."""
    from services.snapshot.entrypoints.app import create_app

    store = snapshot_bootstrap(embedded_settings, clock=FixedClock(NOW))
    store.migrate()
    declare_topology(embedded_settings)
    stray = dataclasses.replace(EVENTS[5], event_id=uuid.uuid4(), session_id=uuid.uuid4())  # its Session never came
    store.apply(stray)
    with broker_connection(embedded_settings) as connection:
        publish_dead_letter(Producer(connection.default_channel), topology_for(embedded_settings), "snapshot",
                            "events", b"{broken", "undecodable body: test")
    client = create_app(store).test_client()
    health = wait_until(lambda: (lambda h: h if h["dead_letters"] is not None else None)(client.get("/healthz").json),
                        timeout=30, message="the dead-letter depth in /healthz")
    assert health["status"] == "ok" and health["dead_letters"] == 1
    assert health["parked_events"] == 1 and health["oldest_parked_at"].startswith(NOW.date().isoformat())
    store.database.dispose()


def test_a_week_waiting_on_a_sequence_gap_is_named(tmp_path):
    """The sweep's log line when a closed week waits on a missing event for too long."""
    from datetime import timedelta

    from services.snapshot.service_layer import handlers
    from tests.conftest import make_settings

    clock = FixedClock(NOW)
    store = snapshot_bootstrap(make_settings(tmp_path), clock=clock)
    store.migrate()
    missing = next(e for e in EVENTS if e.event_type == "checkin.key_result.checked_in")
    for event in EVENTS:
        if event.event_id != missing.event_id:
            store.apply(event)
    clock.set(NOW + timedelta(hours=1))
    stalled = handlers.stalled_weeks(600, uow=store.uow(), clock=clock)
    assert stalled and stalled[0]["missing"] == 1 and stalled[0]["week"] == "2026-W41"
    store.apply(missing)
    assert handlers.stalled_weeks(600, uow=store.uow(), clock=clock) == []
