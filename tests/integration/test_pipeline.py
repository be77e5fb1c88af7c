"""The event pipeline on real PostgreSQL and RabbitMQ: check-in -> outbox -> relay (confirms)
-> snapshot consumer -> week view. Also: a relay that dies between publish and mark-sent."""
from __future__ import annotations

import json
import os
import uuid

import pika
import pytest
from sqlalchemy import func, select

from services.checkin.adapters import orm as checkin_orm
from services.checkin.bootstrap import bootstrap as checkin_bootstrap
from services.checkin.entrypoints.app import create_app as checkin_app
from services.snapshot.adapters import orm as snapshot_orm
from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
from services.snapshot.entrypoints.app import create_app as snapshot_app
from shared.clock import FileClock
from shared.messaging import DEAD_LETTER_REASON, event_signer
from shared.topology import Topology
from tests.conftest import wait_until
from tests.helpers import ConsumerThread, EveryoneIsAMember, internal_headers

pytestmark = pytest.mark.integration


@pytest.fixture
def services(pg_settings):
    checkin = checkin_bootstrap(pg_settings)
    checkin.members = EveryoneIsAMember()
    snapshot = snapshot_bootstrap(pg_settings)
    checkin.migrate()
    snapshot.migrate()
    FileClock(pg_settings.clock_file).set(__import__("datetime").datetime(2026, 11, 25, 10, tzinfo=__import__("datetime").timezone.utc))
    yield checkin, snapshot
    checkin.database.dispose()
    snapshot.database.dispose()


def _seed(checkin, settings, workspace_id, user_id):
    client = checkin_app(checkin).test_client()
    headers = internal_headers(settings, "checkin", user_id, {workspace_id: "member"})
    session = client.post(f"/workspaces/{workspace_id}/sessions", headers=headers, json={
        "name": "Q4", "start_date": "2026-10-05", "end_date": "2026-12-27", "timezone": "Europe/Berlin"}).json
    objective = client.post(f"/sessions/{session['id']}/objectives", headers=headers,
                            json={"title": "Grow", "owner_id": str(user_id)}).json
    kr = client.post(f"/objectives/{objective['id']}/key-results", headers=headers, json={
        "title": "ARR", "start_value": 10, "target_value": 20, "owner_id": str(user_id)}).json
    checked = client.post(f"/key-results/{kr['id']}/check-ins", headers=headers,
                          json={"value": 15, "status": "on_track", "comment": "two deals closed"})
    assert checked.status_code == 201, checked.json
    return session, kr


def _unsent(checkin) -> int:
    with checkin.database.session() as db:
        return db.execute(select(func.count()).select_from(checkin_orm.outbox)
                          .where(checkin_orm.outbox.c.sent_at.is_(None))).scalar_one()


def test_check_in_reaches_the_week_snapshot_through_rabbitmq(services, pg_settings):
    checkin, snapshot = services
    workspace_id, user_id = uuid.uuid4(), uuid.uuid4()
    session, kr = _seed(checkin, pg_settings, workspace_id, user_id)
    assert _unsent(checkin) == 4

    relay = checkin.relay()
    assert relay.run_once() == 4
    relay.close()
    assert _unsent(checkin) == 0

    with ConsumerThread(snapshot.consumer()) as consumer:
        wait_until(lambda: consumer.processed == 4, message="4 events applied")

    client = snapshot_app(snapshot).test_client()
    headers = internal_headers(pg_settings, "snapshot", user_id, {workspace_id: "member"})
    view = client.get(f"/sessions/{session['id']}/snapshots/2026-W48", headers=headers)
    assert view.status_code == 200, view.json
    body = view.json
    assert body["status"] == "current"
    [objective] = body["objectives"]
    [key_result] = objective["key_results"]
    assert (key_result["title"], key_result["current_value"], key_result["progress"], key_result["status"]) == \
        ("ARR", 15.0, 0.5, "on_track")
    assert [c["comment"] for c in body["check_ins"]] == ["two deals closed"]
    # Another Workspace's member sees nothing, as if the Session did not exist.
    stranger = internal_headers(pg_settings, "snapshot", uuid.uuid4(), {uuid.uuid4(): "owner"})
    assert client.get(f"/sessions/{session['id']}/snapshots/2026-W48", headers=stranger).status_code == 404
    # A week with no activity says so and points to the nearest saved weeks.
    empty = client.get(f"/sessions/{session['id']}/snapshots/2026-W46", headers=headers).json
    assert empty["status"] == "no_snapshot" and empty["objectives"] == []
    assert empty["nearest_saved"] == {"before": None, "after": "2026-W48"}


class RelayDied(BaseException):
    """Stands for the process dying: raised after the broker confirmed, before the commit."""


def test_relay_killed_between_publish_and_commit_still_delivers_once(services, pg_settings):
    checkin, snapshot = services
    workspace_id, user_id = uuid.uuid4(), uuid.uuid4()
    session, kr = _seed(checkin, pg_settings, workspace_id, user_id)

    dying = checkin.relay()
    original_publish = None

    def publish_then_die(*args, **kwargs):
        original_publish(*args, **kwargs)  # confirmed by the broker...
        raise RelayDied()                  # ...and the process is gone before marking it sent

    producer = dying._ensure_producer()
    original_publish = producer.publish
    producer.publish = publish_then_die
    with pytest.raises(RelayDied):
        dying.run_once()
    dying.close()
    assert _unsent(checkin) == 4  # nothing was marked sent: the commit never happened

    fresh = checkin.relay()
    assert fresh.run_once() == 4
    fresh.close()

    with ConsumerThread(snapshot.consumer()) as consumer:
        # 1 duplicate delivery + 4 events; the duplicate is skipped by its event id.
        wait_until(lambda: consumer.processed == 5, message="5 deliveries handled")
    with snapshot.database.session() as db:
        versions = db.execute(select(func.count()).select_from(snapshot_orm.item_versions)).scalar_one()
        check_ins = db.execute(select(func.count()).select_from(snapshot_orm.check_ins)).scalar_one()
        processed = db.execute(select(func.count()).select_from(snapshot_orm.processed_events)).scalar_one()
    assert (versions, check_ins, processed) == (3, 1, 4)


def test_malformed_message_is_dead_lettered_and_the_worker_goes_on(services, pg_settings):
    checkin, snapshot = services
    topology = Topology(pg_settings.broker_namespace)
    workspace_id, user_id = uuid.uuid4(), uuid.uuid4()
    with ConsumerThread(snapshot.consumer()) as consumer:
        wait_until(lambda: consumer.consuming_connection is not None, message="consumer consuming")
        params = pika.URLParameters(pg_settings.broker_url)
        with pika.BlockingConnection(params) as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            exchange = topology.exchange("checkin").name
            wait_until(lambda: _queue_exists(channel, topology.queue_name("snapshot", "events")),
                       message="queue declared")
            channel.basic_publish(exchange, "checkin.key_result.checked_in", b"{not json",
                                  pika.BasicProperties(content_type="application/json", delivery_mode=2))
            channel.basic_publish(exchange, "checkin.key_result.checked_in",
                                  json.dumps(event_signer(pg_settings).sign({"event_id": "nope"})).encode(),
                                  pika.BasicProperties(content_type="application/json", delivery_mode=2))
        _seed(checkin, pg_settings, workspace_id, user_id)
        relay = checkin.relay()
        relay.run_once()
        relay.close()
        wait_until(lambda: consumer.processed == 4, message="the good events after the bad ones")

    with pika.BlockingConnection(pika.URLParameters(pg_settings.broker_url)) as connection:
        channel = connection.channel()
        dlq = topology.queue_name("snapshot", "events") + ".dlq"
        reasons = []
        for _ in range(2):
            method, properties, body = channel.basic_get(dlq, auto_ack=True)
            assert method is not None, "dead-letter queue holds both bad messages"
            reasons.append(properties.headers[DEAD_LETTER_REASON])
    assert reasons[0].startswith("undecodable body")
    assert reasons[1].startswith("invalid event") and "event_id" in reasons[1]


def _queue_exists(channel, name: str) -> bool:
    try:
        channel.queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False


def test_relay_and_consumer_recover_when_the_broker_drops_their_connections(services, pg_settings):
    """The broker closes every connection (as on a restart or a memory alarm): relay and
    consumer reconnect, re-declare the topology, and carry on, nothing lost."""
    import shutil
    import subprocess
    import threading

    if shutil.which("rabbitmqctl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true needs rabbitmqctl to cut the broker's connections")
        pytest.skip("rabbitmqctl is not installed here (the broker runs elsewhere)")
    checkin, snapshot = services
    workspace_id, user_id = uuid.uuid4(), uuid.uuid4()
    _seed(checkin, pg_settings, workspace_id, user_id)
    relay = checkin.relay()
    assert relay.run_once() == 4
    with ConsumerThread(snapshot.consumer()) as consumer:
        wait_until(lambda: consumer.processed == 4, message="the first 4 events")
        subprocess.run(["rabbitmqctl", "close_all_connections", "okrsnap test: broker restart"],
                       check=True, capture_output=True, timeout=60)
        _seed(checkin, pg_settings, workspace_id, user_id)  # 4 more events while the links are down
        stop = threading.Event()
        runner = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
        runner.start()
        try:
            wait_until(lambda: _unsent(checkin) == 0, timeout=30, message="the relay to catch up")
            wait_until(lambda: consumer.processed == 8, timeout=30, message="all 8 events applied")
        finally:
            stop.set()
            runner.join(10)


def test_relay_sleeps_until_a_commit_notifies_it_and_survives_losing_its_listener(services, pg_settings):
    """With a fallback poll far beyond the test's waits, only the outbox trigger's NOTIFY can wake
    the relay; after its listening connection is killed, it listens again and is woken again."""
    import threading

    from sqlalchemy import text

    checkin, _ = services
    workspace_id, user_id = uuid.uuid4(), uuid.uuid4()
    _seed(checkin, pg_settings, workspace_id, user_id)
    relay = checkin.relay()
    stop = threading.Event()
    runner = threading.Thread(target=relay.run_forever, args=(stop,),
                              kwargs={"idle_sleep": 600, "max_idle_sleep": 600, "busy_for": 0}, daemon=True)
    runner.start()
    try:
        wait_until(lambda: _unsent(checkin) == 0, timeout=10, message="the first round")
        wait_until(lambda: relay._listener is not None, timeout=10, message="the relay to listen")
        _seed(checkin, pg_settings, workspace_id, user_id)
        wait_until(lambda: _unsent(checkin) == 0, timeout=10, message="the relay woken by NOTIFY")
        with checkin.database.session() as db:
            killed = db.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE query LIKE 'LISTEN %' AND datname = current_database()")).all()
        assert killed, "the relay had no listening connection"
        _seed(checkin, pg_settings, workspace_id, user_id)
        wait_until(lambda: _unsent(checkin) == 0, timeout=10, message="the relay listening again")
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()
