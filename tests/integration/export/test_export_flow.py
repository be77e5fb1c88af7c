"""Request -> outbox -> RabbitMQ -> worker claim -> builder -> CSV file -> download link."""
import csv
import io
import json
import uuid
from urllib.parse import urlsplit

import pika
import pytest
from sqlalchemy import update

from services.export.adapters import orm
from shared import tokens
from shared.messaging import DEAD_LETTER_REASON, broker_connection, topology_for
from tests.conftest import wait_until

pytestmark = pytest.mark.integration

WEEK = "2026-W48"


@pytest.fixture
def workspace():
    return uuid.uuid4()


@pytest.fixture
def alice(workspace, snapshot_stub):
    alice = tokens.Principal(str(uuid.uuid4()), {str(workspace): "viewer"})
    snapshot_stub.people[alice.user_id] = alice  # what the gateway vouches for now
    return alice


@pytest.fixture
def session_id(snapshot_stub, workspace):
    session_id = snapshot_stub.add_session(workspace)
    snapshot_stub.views[(session_id, WEEK)] = {
        "session": snapshot_stub.sessions[session_id], "week": WEEK,
        "starts_at": "2026-11-22T23:00:00+00:00", "ends_at": "2026-11-29T23:00:00+00:00",
        "status": "past", "nearest_saved": {"before": "2026-W47", "after": None}, "owner": "all",
        "objectives": [
            {"id": str(uuid.uuid4()), "title": "=HYPERLINK(\"http://evil.example\")", "owner_id": None,
             "parent_id": None, "progress": 0.5, "context": False,
             "key_results": [{"id": str(uuid.uuid4()), "title": "ARR", "owner_id": None, "start_value": 10.0,
                              "target_value": 20.0, "current_value": 15.0, "unit": "k€",
                              "status": "on_track", "progress": 0.5, "context": False}]},
            {"id": str(uuid.uuid4()), "title": "Hire well", "owner_id": None, "parent_id": None,
             "progress": 0.0, "context": False, "key_results": []},
        ],
    }
    return session_id


def headers(settings, principal):
    return {tokens.INTERNAL_HEADER: tokens.internal_token(settings.internal_secret, "export", principal)}


def request_export(client, settings, principal, session_id) -> dict:
    response = client.post("/exports", json={"session_id": session_id, "week": WEEK},
                           headers=headers(settings, principal))
    assert response.status_code == 202, response.json
    return response.json


def job_when(client, settings, principal, job_id, status) -> dict:
    def current():
        job = client.get(f"/exports/{job_id}", headers=headers(settings, principal)).json
        return job if job["status"] == status else None

    return wait_until(current, message=f"export {job_id} to be {status}")


def download(client, settings, job) -> list[dict]:
    link = urlsplit(job["download_url"])
    response = client.get(link.path.removeprefix("/api/v1") + "?" + link.query,
                          headers=headers(settings, tokens.Principal(None)))
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith('attachment; filename="okrsnap-2026-W48.csv"')
    return list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"), newline="")))


def test_a_requested_export_is_built_and_downloadable(container, client, relay, start_worker,
                                                      snapshot_stub, alice, session_id):
    settings = container.settings
    start_worker()
    job = request_export(client, settings, alice, session_id)

    assert relay.run_once() == 1
    done = job_when(client, settings, alice, job["id"], "done")

    assert done["row_count"] == 2
    rows = download(client, settings, done)
    assert [(r["objective"], r["key_result"], r["progress"]) for r in rows] == [
        ("'=HYPERLINK(\"http://evil.example\")", "ARR", "50.0"), ("Hire well", "", "")]
    [(asked_by, query)] = snapshot_stub.week_requests
    assert asked_by == alice  # the worker acted as the requester, with the requester's roles
    assert query == {"owner": ["all"]}


def test_a_malformed_message_is_dead_lettered_and_the_next_one_processed(
        container, client, relay, start_worker, alice, session_id):
    settings = container.settings
    topology = topology_for(settings)
    with broker_connection(settings) as connection:
        topology.declare(connection.channel())
    with pika.BlockingConnection(pika.URLParameters(settings.broker_url)) as amqp:
        channel = amqp.channel()
        exchange = topology.exchange("export").name
        channel.basic_publish(exchange, "export.job.requested", json.dumps({"job_id": "not an envelope"}),
                              pika.BasicProperties(content_type="application/json", delivery_mode=2))
        channel.basic_publish(exchange, "export.job.requested", b"\x00 not json",
                              pika.BasicProperties(content_type="text/plain", delivery_mode=2))
    job = request_export(client, settings, alice, session_id)
    assert relay.run_once() == 1

    start_worker()

    assert job_when(client, settings, alice, job["id"], "done")["row_count"] == 2
    dead = []
    dead_letter_queue = f"{topology.queue_name('export', 'jobs')}.dlq"
    wait_until(lambda: dead.extend(_take_all(settings.broker_url, dead_letter_queue)) or len(dead) == 2,
               message="both malformed messages in the dead-letter queue")
    reasons = sorted(properties.headers[DEAD_LETTER_REASON] for properties, _ in dead)
    assert reasons[0].startswith("invalid event") and reasons[1].startswith("undecodable body")
    bodies = {properties.content_type: body for properties, body in dead}
    assert json.loads(bodies["application/json"]) == {"job_id": "not an envelope"}


def _take_all(url: str, queue: str) -> list:
    """(properties, body) of every message waiting in a queue, read with pika."""
    taken = []
    with pika.BlockingConnection(pika.URLParameters(url)) as amqp:
        channel = amqp.channel()
        while (message := channel.basic_get(queue, auto_ack=True))[0] is not None:
            taken.append((message[1], message[2]))
    return taken


def test_stranded_jobs_are_picked_up_without_a_message(container, client, start_worker, alice, session_id):
    settings = container.settings
    forgotten = request_export(client, settings, alice, session_id)  # its event is never relayed
    crashed = request_export(client, settings, alice, session_id)
    with container.uow() as uow:  # as if a worker claimed it and died
        uow.session.execute(update(orm.export_jobs).where(orm.export_jobs.c.id == uuid.UUID(crashed["id"]))
                            .values(status="running", started_at=container.clock.now(), attempts=1))
        uow.commit()

    start_worker()
    settings.clock_file.write_text(json.dumps({"offset_seconds": 600}))  # past grace and lease

    assert job_when(client, settings, alice, forgotten["id"], "done")["row_count"] == 2
    assert job_when(client, settings, alice, crashed["id"], "done")["row_count"] == 2


def test_an_export_is_built_with_the_requesters_roles_of_now(container, client, relay, start_worker,
                                                             snapshot_stub, alice, session_id):
    settings = container.settings
    job = request_export(client, settings, alice, session_id)
    snapshot_stub.people[alice.user_id] = tokens.Principal(alice.user_id)  # removed after asking
    start_worker()
    assert relay.run_once() == 1
    failed = job_when(client, settings, alice, job["id"], "failed")
    assert "can no longer read" in failed["error"] and failed["download_url"] is None
    assert snapshot_stub.week_requests == []  # never fetched the week for someone without access
