"""The same pipeline on the embedded default: SQLite files and kombu's SQLAlchemy transport."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from services.checkin.bootstrap import bootstrap as checkin_bootstrap
from services.checkin.entrypoints.app import create_app as checkin_app
from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
from services.snapshot.entrypoints.app import create_app as snapshot_app
from shared.clock import FileClock
from tests.conftest import wait_until
from tests.helpers import ConsumerThread, EveryoneIsAMember, internal_headers


def test_embedded_pipeline(embedded_settings):
    settings = embedded_settings
    assert settings.embedded_broker and settings.database_for("checkin").is_sqlite
    FileClock(settings.clock_file).set(datetime(2026, 11, 25, 10, tzinfo=timezone.utc))
    checkin, snapshot = checkin_bootstrap(settings), snapshot_bootstrap(settings)
    checkin.members = EveryoneIsAMember()
    checkin.migrate()
    snapshot.migrate()
    workspace_id, user_id = uuid.uuid4(), uuid.uuid4()
    client = checkin_app(checkin).test_client()
    headers = internal_headers(settings, "checkin", user_id, {workspace_id: "owner"})
    session = client.post(f"/workspaces/{workspace_id}/sessions", headers=headers, json={
        "name": "Q4", "start_date": "2026-10-05", "end_date": "2026-12-27", "timezone": "UTC"}).json
    objective = client.post(f"/sessions/{session['id']}/objectives", headers=headers, json={"title": "Ship"}).json
    kr = client.post(f"/objectives/{objective['id']}/key-results", headers=headers,
                     json={"title": "Bugs open", "start_value": 40, "target_value": 0}).json
    client.post(f"/key-results/{kr['id']}/check-ins", headers=headers, json={"value": 30, "status": "at_risk"})

    with ConsumerThread(snapshot.consumer()) as consumer:
        relay = checkin.relay()
        wait_until(lambda: relay.run_once() == 0 and consumer.processed == 4, message="4 events applied")
        relay.close()

    view = snapshot_app(snapshot).test_client().get(
        f"/sessions/{session['id']}/snapshots/2026-W48",
        headers=internal_headers(settings, "snapshot", user_id, {workspace_id: "viewer"})).json
    [key_result] = view["objectives"][0]["key_results"]
    assert (key_result["current_value"], key_result["progress"], key_result["status"]) == (30.0, 0.25, "at_risk")


def test_deliveries_held_by_a_killed_worker_come_back(embedded_settings):
    """kombu's embedded transport marks a delivered message invisible for good; a worker killed
    while holding messages would lose them. At start, the worker brings back what it never
    recorded and deletes what it did."""
    from sqlalchemy import create_engine, text

    from services.snapshot.adapters import orm
    from shared.messaging import recover_embedded_deliveries

    settings = embedded_settings
    FileClock(settings.clock_file).set(datetime(2026, 11, 25, 10, tzinfo=timezone.utc))
    checkin, snapshot = checkin_bootstrap(settings), snapshot_bootstrap(settings)
    checkin.members = EveryoneIsAMember()
    checkin.migrate()
    snapshot.migrate()
    workspace_id, user_id = uuid.uuid4(), uuid.uuid4()
    headers = internal_headers(settings, "checkin", user_id, {workspace_id: "owner"})
    client = checkin_app(checkin).test_client()
    session = client.post(f"/workspaces/{workspace_id}/sessions", headers=headers, json={
        "name": "Q4", "start_date": "2026-10-05", "end_date": "2026-12-27", "timezone": "UTC"}).json
    relay = checkin.relay()
    with ConsumerThread(snapshot.consumer()) as consumer:
        wait_until(lambda: relay.run_once() == 0 and consumer.processed == 1, message="the Session applied")
    client.post(f"/sessions/{session['id']}/objectives", headers=headers, json={"title": "Held and lost"})
    assert relay.run_once() == 1
    relay.close()
    broker = create_engine(settings.broker_url.removeprefix("sqla+"))
    with broker.begin() as conn:  # what a worker killed while holding the message leaves behind
        assert conn.execute(text("UPDATE kombu_message SET visible = 0")).rowcount == 2
    deleted, restored = recover_embedded_deliveries(settings, "snapshot", "events", snapshot.database.session,
                                                    orm.processed_events)
    assert (deleted, restored) == (1, 1)
    with ConsumerThread(snapshot.consumer()) as consumer:
        wait_until(lambda: consumer.processed == 1, message="the held message applied after all")
    with broker.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM kombu_message WHERE visible = 1")).scalar_one() == 0
    broker.dispose()
