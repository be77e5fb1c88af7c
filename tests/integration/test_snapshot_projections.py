"""The snapshot service's materialised views (issue 13): a batch is one transaction, however much
it seals or un-parks; the views read from what is stored (each sealed week's states, each item's
newest version) answer exactly what deriving every week from the item versions answers; a sealed
week's stored states are read-only; rendered views are kept within a size."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError

from services.snapshot.adapters import orm
from services.snapshot.adapters.repository import SnapshotRepository
from services.snapshot.entrypoints.app import RenderedViews
from services.snapshot.service_layer import handlers as snapshot
from shared.tokens import Principal
from shared.weeks import Week
from tests.integration.test_weekly_review import ANN, BOB, EVENTS, IDS, WS, _store, _views

SESSION_EVENTS = ("checkin.session.created",)


def _commits(store) -> list:
    commits: list = []
    event.listen(store.database.engine, "commit", lambda conn: commits.append(1))
    return commits


def test_a_batch_that_brings_its_session_unparks_and_seals_commits_once(tmp_path):
    store = _store(tmp_path, [])
    created = next(e for e in EVENTS if e.event_type in SESSION_EVENTS)
    rest = [e for e in EVENTS if e is not created]
    assert store.apply_batch(rest) == len(rest)  # all parked: their Session is unknown
    with store.uow() as uow:
        assert uow.repo.parked_count() == len(rest)
    commits = _commits(store)
    assert store.apply_batch([created]) == 1
    assert len(commits) == 1, "applying, un-parking and sealing must be one transaction"
    with store.uow() as uow:
        assert uow.repo.parked_count() == 0
        assert [s["week"] for s in uow.repo.seals(created.session_id)] == [
            "2026-W41", "2026-W42", "2026-W43", "2026-W44"]
    assert _views(store) == _views(_store(tmp_path / "in-order", EVENTS))


def test_a_batch_of_check_ins_and_its_week_marker_commits_once(tmp_path):
    markers = [e for e in EVENTS if e.event_type == "checkin.session.week_closed"]
    first = EVENTS.index(markers[0])
    store = _store(tmp_path, EVENTS[:first - 1])
    commits = _commits(store)
    store.apply_batch(EVENTS[first - 1:first + 1])  # the week's last event and its marker
    assert len(commits) == 1
    with store.uow() as uow:
        assert [s["week"] for s in uow.repo.seals(markers[0].session_id)] == ["2026-W41"]


def test_views_from_the_stored_projections_equal_views_derived_from_every_version(tmp_path, monkeypatch):
    store = _store(tmp_path, EVENTS)
    stored = _views(store)
    with store.uow() as uow:
        sid = uuid.UUID(IDS["session"])
        assert uow.repo.projection(sid, "2026-W43") is not None
        assert uow.repo.live_states(sid, stored["2026-W45"]["ends_at"]) is not None
    monkeypatch.setattr(SnapshotRepository, "projection", lambda self, *a: None)
    monkeypatch.setattr(SnapshotRepository, "live_states", lambda self, *a: None)
    snapshot._SEALED_STATES.clear()  # else the sealed weeks' states come from this process's copy
    assert _views(store) == stored


def test_the_live_projection_is_the_newest_version_of_every_item(tmp_path):
    store = _store(tmp_path, EVENTS)
    sid = uuid.UUID(IDS["session"])
    with store.uow() as uow:
        newest = uow.repo.latest_states(sid)
        assert {kind: len(items) for kind, items in newest.items()} == {
            "objective": 1, "key_result": 3, "initiative": 1}  # the removed Key Result too
        end = Week.parse("2026-W45", "monday").bounds("UTC")[1]
        live, derived = uow.repo.live_states(sid, end), uow.repo.states_as_of(sid, end)
        assert {k: sorted(v, key=lambda i: i["id"]) for k, v in live.items()} == \
               {k: sorted(v, key=lambda i: i["id"]) for k, v in derived.items()}
        # A week whose end comes before an item's newest version cannot be read from it.
        assert uow.repo.live_states(sid, Week.parse("2026-W43", "monday").bounds("UTC")[1]) is None


def test_the_live_projection_on_postgresql_is_the_newest_version_of_every_item(tmp_path, database_url):
    from services.snapshot.bootstrap import bootstrap
    from shared.clock import FixedClock
    from tests.conftest import make_settings
    from tests.integration.test_weekly_review import NOW

    store = bootstrap(make_settings(tmp_path, OKRSNAP_DATABASE_URL=database_url), clock=FixedClock(NOW))
    store.migrate()
    store.apply_batch(EVENTS)
    sid = uuid.UUID(IDS["session"])
    end = Week.parse("2026-W45", "monday").bounds("UTC")[1]
    with store.uow() as uow:  # the states joined by the server, in the order of the rows read one by one
        assert uow.repo.live_states(sid, end) == {kind: sorted(items, key=lambda i: uuid.UUID(i["id"]))
                                                  for kind, items in uow.repo.states_as_of(sid, end).items()}
        assert len(uow.repo.live_states(sid, end)["key_result"]) == 2  # the removed one left out
        # Key Result ids written by the server as text: the same strings as the states' ids.
        assert list(uow.repo.last_check_ins(sid, end)) == [IDS["kr1"]]
    store.database.engine.dispose()


def test_a_sealed_weeks_stored_states_are_read_only_and_checked_by_verify(tmp_path):
    store = _store(tmp_path, EVENTS)
    with store.database.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(orm.sealed_projections)).scalar_one() == 4
        for statement in ("UPDATE sealed_projections SET states = '{}'", "DELETE FROM sealed_projections"):
            with pytest.raises(IntegrityError):
                conn.execute(text(statement))
            conn.rollback()
    assert snapshot.verify_chain(uuid.UUID(IDS["session"]), uow=store.uow())["valid"]


def test_a_sealed_weeks_states_are_decoded_once_per_process(tmp_path, monkeypatch):
    store = _store(tmp_path, EVENTS)
    snapshot._SEALED_STATES.clear()
    reads: list = []
    projection = SnapshotRepository.projection
    monkeypatch.setattr(SnapshotRepository, "projection", lambda self, *a: reads.append(a) or projection(self, *a))
    reader, sid = Principal(str(ANN), {str(WS): "viewer"}), uuid.UUID(IDS["session"])
    live = lambda: snapshot.week_view(reader, sid, "2026-W45", "all", uow=store.uow(), clock=store.clock)  # noqa: E731
    first = live()  # the live week, compared against the newest sealed one
    assert [a[1] for a in reads] == ["2026-W44"] and first["deltas"]["against"] == "2026-W44"
    reads.clear()
    assert live() == first
    assert reads == [], "the sealed baseline is read again"


def test_rendered_views_stay_within_their_size():
    views = RenderedViews(max_bytes=1000)
    for i in range(50):
        views.put(("week", i), b"x" * 200)
    assert views.size <= 1000 and views.get(("week", 49)) == b"x" * 200 and views.get(("week", 0)) is None
    views.put(("huge",), b"x" * 600)  # more than a quarter of the budget: not kept
    assert views.get(("huge",)) is None


def _client(store):
    from services.snapshot.entrypoints.app import create_app
    from tests.helpers import internal_headers

    client = create_app(store).test_client()
    return lambda path, role="viewer": client.get(path, headers=internal_headers(
        store.settings, "snapshot", ANN, {WS: role}))


def test_a_sealed_weeks_view_is_rendered_once_for_every_process_and_again_when_it_changes(tmp_path, monkeypatch):
    import dataclasses

    from services.snapshot.entrypoints import app as app_module
    from tests.integration.test_weekly_review import NOW

    store = _store(tmp_path, EVENTS)
    get = _client(store)
    path = f"/sessions/{IDS['session']}/snapshots/2026-W43"
    app_module._RENDERED.clear()  # earlier tests read this Session's weeks (the same ids) in this process
    first = get(path)
    assert first.status_code == 200 and first.json["status"] == "sealed"
    app_module._RENDERED.clear()  # another process: nothing in its memory

    def not_again(*args, **kwargs):
        raise AssertionError("a sealed week's view rendered again")

    with monkeypatch.context() as patch:
        patch.setattr(snapshot, "week_view", not_again)
        assert get(path).get_data() == first.get_data()
        assert get(path, "owner").get_data() == first.get_data()  # the same view: nothing hidden from either
    # The Session renamed: its sealed weeks answer with the new name (the stored view is not reused).
    created = EVENTS[0]
    store.apply(dataclasses.replace(
        created, event_id=uuid.uuid4(), event_type="checkin.session.updated", occurred_at=NOW,
        sequence=max(e.sequence for e in EVENTS) + 1, payload=dict(created.payload, name="Q4 renamed",
                                                                    version=created.payload["version"] + 1)))
    app_module._RENDERED.clear()
    assert get(path).json["session"]["name"] == "Q4 renamed"
    for owner in ("unassigned", str(BOB), str(ANN), *(str(uuid.uuid4()) for _ in range(8))):
        assert get(f"{path}?owner={owner}").status_code == 200
    with store.database.engine.connect() as conn:  # a few kept per week, not one per reader and filter
        kept = conn.execute(select(func.count()).select_from(orm.rendered_views)).scalar_one()
    assert kept == snapshot.RENDERED_KEPT_PER_WEEK


def test_an_event_parked_while_its_session_committed_elsewhere_is_applied_after_the_commit(tmp_path, monkeypatch):
    created = EVENTS[0]
    store = _store(tmp_path, [created])
    check_in = next(e for e in EVENTS if e.event_type == "checkin.key_result.checked_in")
    lock = SnapshotRepository.lock_sessions
    calls = []

    def session_not_yet_committed(self, session_ids):  # the other worker's commit, unseen by ours
        calls.append(1)
        return {} if len(calls) == 1 else lock(self, session_ids)

    monkeypatch.setattr(SnapshotRepository, "lock_sessions", session_not_yet_committed)
    assert store.apply(check_in)
    with store.uow() as uow:
        assert uow.repo.parked_count() == 0, "applied right after the commit, not left for the sweep"
        assert uow.repo.processed_among([check_in.event_id]) == {str(check_in.event_id)}


def _made_private(store):
    import dataclasses

    from tests.integration.test_weekly_review import NOW

    objective = next(e for e in EVENTS if e.event_type == "checkin.objective.created")
    store.apply(dataclasses.replace(  # made private today: hidden in every week, sealed ones too
        objective, event_id=uuid.uuid4(), event_type="checkin.objective.updated", occurred_at=NOW,
        sequence=max(e.sequence for e in EVENTS) + 1,
        payload=dict(objective.payload, private=True, visible_to=[], version=objective.payload["version"] + 1)))
    return objective.session_id


def test_the_migration_flags_private_objectives_already_stored(tmp_path):
    from alembic import command
    from alembic.config import Config

    from shared.db import make_engine
    from shared.migrations import upgrade

    store = _store(tmp_path, EVENTS)
    session_id = _made_private(store)
    target = store.settings.database_for("snapshot")
    store.database.dispose()
    engine = make_engine(target)
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(store.MIGRATIONS))
        config.attributes["connection"], config.attributes["schema"] = connection, target.schema
        command.downgrade(config, "0007")
    engine.dispose()
    upgrade(target, store.MIGRATIONS)
    with store.uow() as uow:
        assert uow.repo.has_private_objective(session_id)


def test_a_shared_sealed_view_never_shows_a_private_objective_to_whom_it_is_hidden(tmp_path):
    store = _store(tmp_path, EVENTS)
    _made_private(store)
    from services.snapshot.entrypoints.app import create_app
    from tests.helpers import internal_headers

    app = create_app(store).test_client()
    path = f"/sessions/{IDS['session']}/snapshots/2026-W44"

    def titles(user, role):
        view = app.get(path, headers=internal_headers(store.settings, "snapshot", user, {WS: role})).json
        return [o["title"] for o in view["objectives"]]

    assert titles(uuid.uuid4(), "admin") == ["Grow"]  # rendered first, for everyone who sees everything
    assert titles(BOB, "member") == []
    assert titles(ANN, "viewer") == ["Grow"]  # its owner
    assert titles(BOB, "member") == []  # served again from what was rendered for him
    with store.database.engine.connect() as conn:  # only the view everyone who sees everything shares
        assert conn.execute(select(func.count()).select_from(orm.rendered_views)).scalar_one() == 1
