"""The snapshot service reads from a PostgreSQL streaming replica (issue 14): a primary and its
replica started here with initdb and pg_basebackup; events are applied on the primary, the week
views, calendar and comparisons are answered from the replica, and a lagging replica says how far
its reading has come (`applied_through`) instead of hiding it. A sealed week's view rendered from
the replica is kept on the primary (a replica is read-only)."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from services.snapshot.adapters import orm
from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
from services.snapshot.entrypoints import app as app_module
from services.snapshot.entrypoints.app import create_app
from shared.clock import FixedClock
from tests import pg_replica
from tests.conftest import IN_CI, make_settings
from tests.helpers import internal_headers
from tests.integration.test_weekly_review import ANN, EVENTS, IDS, NOW, WS

pytestmark = pytest.mark.integration


@pytest.fixture
def pair():
    if pg_replica.binaries() is None:
        if IN_CI:
            pytest.fail("CI=true and PostgreSQL's server binaries (pg_basebackup, initdb) are missing", pytrace=False)
        pytest.skip("SKIPPED LOUDLY: PostgreSQL's server binaries are not installed")
    started = pg_replica.StreamingPair().start()
    try:
        yield started
    finally:
        started.stop()


def _kr1(view: dict) -> dict:
    return next(kr for o in view["objectives"] for kr in o["key_results"] if kr["id"] == IDS["kr1"])


def test_views_are_read_from_the_replica_and_say_how_far_it_has_come(pair, tmp_path):
    settings = make_settings(tmp_path, OKRSNAP_DATABASE_URL=pair.primary_url,
                             OKRSNAP_SNAPSHOT_READ_DATABASE_URL=pair.replica_url)
    store = snapshot_bootstrap(settings, clock=FixedClock(NOW))
    assert store.replica is not None
    store.migrate()
    *earlier, late_check_in = EVENTS
    assert late_check_in.event_type == "checkin.key_result.checked_in"
    store.apply_batch(earlier)
    pair.wait_caught_up()

    client = create_app(store).test_client()
    headers = internal_headers(settings, "snapshot", ANN, {WS: "owner"})
    sid = IDS["session"]

    def live() -> dict:
        answer = client.get(f"/sessions/{sid}/snapshots/2026-W45", headers=headers)
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()

    before = live()
    assert _kr1(before)["current_value"] == 50
    assert before["applied_through"] is not None

    pair.pause_replay()  # the replica lags: what the primary applies now, it has not replayed
    store.apply_batch([late_check_in])
    with store.uow() as uow:  # the primary has it
        primary_through = uow.repo.applied_through(uuid.UUID(sid))
    lagging = live()
    assert _kr1(lagging)["current_value"] == 50, "answered from the replica, which has not replayed it"
    assert lagging["applied_through"] == before["applied_through"]

    # A sealed week rendered from the lagging replica is kept on the primary, for every process.
    app_module._RENDERED.clear()  # earlier tests read this Session's weeks (the same ids) in this process
    with store.uow() as uow:
        kept_before = uow.session.execute(select(func.count()).select_from(orm.rendered_views)).scalar_one()
    sealed = client.get(f"/sessions/{sid}/snapshots/2026-W43", headers=headers)
    assert sealed.status_code == 200, sealed.get_json()
    assert sealed.get_json()["status"] == "sealed" and sealed.get_json()["applied_through"] is None
    with store.uow() as uow:
        assert uow.session.execute(select(func.count()).select_from(orm.rendered_views)).scalar_one() == kept_before + 1

    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"]["replica"] == "ok"

    pair.resume_replay()
    pair.wait_caught_up()
    caught_up = live()
    assert _kr1(caught_up)["current_value"] == 60
    assert caught_up["applied_through"] == primary_through.isoformat()
    assert caught_up["applied_through"] > before["applied_through"]
    calendar = client.get(f"/sessions/{sid}/snapshots", headers=headers)
    assert calendar.status_code == 200


def test_not_ready_while_the_replica_is_unreachable(tmp_path, database_url):
    settings = make_settings(tmp_path, OKRSNAP_DATABASE_URL=database_url,
                             OKRSNAP_SNAPSHOT_READ_DATABASE_URL="postgresql://postgres@127.0.0.1:1/none")
    store = snapshot_bootstrap(settings, clock=FixedClock(NOW))
    store.migrate()
    answer = create_app(store).test_client().get("/readyz")
    assert answer.status_code == 503
    assert "replica" in answer.get_json()["message"]
