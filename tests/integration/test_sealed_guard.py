"""The database refuses every change to a sealed week, from any search_path, and verify reports
tampering instead of failing on it (issue 10, defect 8)."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
from services.snapshot.entrypoints.app import create_app as create_snapshot_app
from services.snapshot.service_layer import handlers
from shared.clock import FixedClock
from tests.conftest import make_settings
from tests.helpers import internal_headers
from tests.integration.test_weekly_review import EVENTS, IDS, NOW, WS

pytestmark = pytest.mark.integration


@pytest.fixture
def sealed_store(tmp_path, database_url):
    store = snapshot_bootstrap(make_settings(tmp_path, OKRSNAP_DATABASE_URL=database_url), clock=FixedClock(NOW))
    store.migrate()
    for event in EVENTS:
        store.apply(event)
    sid = uuid.UUID(IDS["session"])
    assert len(handlers.verify_chain(sid, uow=store.uow())["weeks"]) == 4  # W41-W44 sealed
    yield store, sid
    store.database.dispose()


def test_sealed_weeks_refuse_inserts_moves_and_truncate_from_any_search_path(sealed_store, database_url):
    store, sid = sealed_store
    outsider = create_engine(database_url)  # search_path "$user", public: not the service's schema
    kr = IDS["kr1"]
    version = {"sid": sid, "kr": uuid.UUID(kr), "event": uuid.uuid4(), "now": NOW, "sealed": NOW - timedelta(days=20)}
    try:
        with outsider.begin() as conn:  # a live row (the current week) may come, change and go
            conn.execute(text(
                "INSERT INTO snapshot.item_versions (session_id, entity_type, entity_id, sequence, occurred_at,"
                " effective_at, event_id, state) VALUES (:sid, 'key_result', :kr, 1000, :now, :now, :event, '{}')"),
                version)
            conn.execute(text("UPDATE snapshot.item_versions SET state = '{\"x\": 1}' WHERE event_id = :event"),
                         version)
        refused = [
            "INSERT INTO snapshot.item_versions (session_id, entity_type, entity_id, sequence, occurred_at,"
            " effective_at, event_id, state) VALUES (:sid, 'key_result', :kr, 1001, :sealed, :sealed, :other, '{}')",
            "UPDATE snapshot.item_versions SET effective_at = :sealed WHERE event_id = :event",
            "UPDATE snapshot.check_ins SET value = value + 1 WHERE session_id = :sid",
            "TRUNCATE snapshot.check_ins",
            "TRUNCATE snapshot.item_versions CASCADE",
            "DELETE FROM snapshot.week_closes WHERE session_id = :sid",
        ]
        for statement in refused:
            with pytest.raises(DBAPIError, match="sealed week|read-only"):
                with outsider.begin() as conn:
                    conn.execute(text(statement), dict(version, other=uuid.uuid4()))
    finally:
        outsider.dispose()
    assert handlers.verify_chain(sid, uow=store.uow())["valid"]


def test_verify_reports_a_deleted_close_record_instead_of_crashing(sealed_store, database_url):
    store, sid = sealed_store
    superuser = create_engine(database_url)
    try:
        with superuser.begin() as conn:  # tampering that goes around the triggers
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text("DELETE FROM snapshot.week_closes WHERE session_id = :sid AND week = '2026-W42'"),
                         {"sid": sid})
    finally:
        superuser.dispose()
    chain = handlers.verify_chain(sid, uow=store.uow())
    assert not chain["valid"]
    assert [w["week"] for w in chain["weeks"] if not w["ok"]] == ["2026-W42"]
    assert "close record is missing" in chain["weeks"][1]["problem"]
    app = create_snapshot_app(store)
    headers = internal_headers(store.settings, "snapshot", uuid.uuid4(), {WS: "owner"})
    response = app.test_client().get(f"/sessions/{sid}/snapshots/verify", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["valid"] is False

