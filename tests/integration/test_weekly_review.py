"""A Session walked through several weeks with a controlled clock; each week's view, deltas,
owner filter, signals, the calendar, compare and trend asserted value by value. The snapshot
store is real (SQLite); the events come from the check-in service's own handlers."""
from __future__ import annotations

import random
import uuid
from datetime import date, datetime, timezone

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from services.checkin.domain import commands
from services.checkin.service_layer import handlers as checkin
from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
from services.snapshot.service_layer import handlers as snapshot
from shared.clock import FixedClock
from shared.tokens import Principal
from tests.conftest import make_settings
from tests.unit.test_checkin_handlers import FakeUnitOfWork

WS, ANN, BOB = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
OWNER = Principal(str(ANN), {str(WS): "owner"})


class Members:
    def non_members(self, principal, workspace_id, user_ids):
        return set(user_ids) - {ANN, BOB}


def at(day: int, month: int = 10, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=timezone.utc)


def history():
    """W41 (Oct 5-11): plan and a first Check-in; W42: quiet; W43: KR1 moves and turns at risk;
    W44: KR3 added for Bob, KR2 removed. Returns the events and the ids."""
    uow, clock, m = FakeUnitOfWork(), FixedClock(at(5)), Members()
    session = checkin.create_session(commands.CreateSession(
        OWNER, WS, "Q4", date(2026, 10, 5), date(2026, 12, 27), "UTC"), uow=uow, clock=clock)
    objective = checkin.add_objective(commands.AddObjective(OWNER, session.id, "Grow", owner_id=ANN),
                                      uow=uow, clock=clock, members=m)
    kr1 = checkin.add_key_result(commands.AddKeyResult(OWNER, objective.id, "Revenue", 0, 100, owner_id=ANN),
                                 uow=uow, clock=clock, members=m)
    kr2 = checkin.add_key_result(commands.AddKeyResult(OWNER, objective.id, "Pilots", 0, 10),
                                 uow=uow, clock=clock, members=m)
    initiative = checkin.add_initiative(commands.AddInitiative(
        OWNER, session.id, "Campaign", "in_progress", ANN, key_result_ids=[kr1.id, kr2.id]),
        uow=uow, clock=clock, members=m)
    clock.set(at(7))
    checkin.record_check_in(commands.RecordCheckIn(OWNER, kr1.id, 20, "on_track", "first deals"), uow=uow, clock=clock)
    clock.set(at(20))
    checkin.record_check_in(commands.RecordCheckIn(OWNER, kr1.id, 50, "at_risk", "big deal slipped"),
                            uow=uow, clock=clock)
    clock.set(at(27))
    kr3 = checkin.add_key_result(commands.AddKeyResult(OWNER, objective.id, "Churn", 10, 5, owner_id=BOB),
                                 uow=uow, clock=clock, members=m)
    checkin.remove_item(commands.RemoveItem(OWNER, "key_result", kr2.id, 1), uow=uow, clock=clock)
    clock.set(NOW)  # W45: the ended weeks W41-W44 are closed (their markers follow their events)
    assert checkin.close_ended_weeks(uow=uow, clock=clock, grace_seconds=3600) == 4
    # A Check-in made on the 21st (W43) whose commit came after the weeks were closed: late.
    clock.set(at(21))
    checkin.record_check_in(commands.RecordCheckIn(OWNER, kr1.id, 60, "on_track", "late: signed on the 21st"),
                            uow=uow, clock=clock)
    ids = {"session": str(session.id), "objective": str(objective.id), "kr1": str(kr1.id), "kr2": str(kr2.id),
           "kr3": str(kr3.id), "initiative": str(initiative.id)}
    return uow.repo.events, ids


NOW = at(4, 11)  # Wednesday of W45
EVENTS, IDS = history()


def _store(tmp_path, events):
    store = snapshot_bootstrap(make_settings(tmp_path), clock=FixedClock(NOW))
    store.migrate()
    for event in events:  # those that come before their Session's are parked, then applied
        store.apply(event)
    return store


def _views(store):
    everyone = Principal(str(ANN), {str(WS): "viewer"})
    sid = uuid.UUID(IDS["session"])
    uow = store.uow
    views = {week: snapshot.week_view(everyone, sid, week, owner, uow=uow(), clock=store.clock)
             for week in ("2026-W41", "2026-W42", "2026-W43", "2026-W44", "2026-W45")
             for owner in ("all",)}
    views["bob-W44"] = snapshot.week_view(everyone, sid, "2026-W44", str(BOB), uow=uow(), clock=store.clock)
    views["calendar"] = snapshot.calendar(everyone, sid, uow=uow(), clock=store.clock)
    views["compare"] = snapshot.compare(everyone, sid, "2026-W41", "2026-W44", uow=uow())
    views["trend"] = snapshot.trend(everyone, sid, uow=uow(), clock=store.clock)
    views["chain"] = snapshot.verify_chain(sid, uow=uow())
    return views


def _krs(view):
    return {kr["title"]: kr for o in view["objectives"] for kr in o["key_results"]}


def test_a_session_walked_through_its_weeks(tmp_path):
    views = _views(_store(tmp_path, EVENTS))
    w41, w42, w43, w44, w45 = (views[f"2026-W{n}"] for n in (41, 42, 43, 44, 45))
    assert [v["status"] for v in (w41, w42, w43, w44, w45)] == ["sealed", "no_snapshot", "sealed", "sealed", "current"]
    assert w42["objectives"] == [] and w42["nearest_saved"] == {"before": "2026-W41", "after": "2026-W43"}

    # W41: the plan and the first Check-in; nothing earlier to compare against.
    assert w41["deltas"]["against"] is None
    assert {t: (k["current_value"], k["status"]) for t, k in _krs(w41).items()} == {
        "Revenue": (20.0, "on_track"), "Pilots": (0.0, "not_started")}
    assert [c["comment"] for c in w41["check_ins"]] == ["first deals"]

    # W43 against W41 (W42 has no Snapshot): Revenue moved 30 points and turned at risk.
    assert w43["deltas"]["against"] == "2026-W41"
    revenue = _krs(w43)["Revenue"]
    assert revenue["delta"] == {"new": False, "progress_points": 30.0, "value": 30.0,
                                "status_from": "on_track", "status_to": "at_risk"}
    assert revenue["signals"] == ["status_changed", "moved", "at_risk"]
    assert _krs(w43)["Pilots"]["signals"] == ["stale", "unassigned"]
    [campaign] = revenue["initiatives"]
    assert campaign["signals"] == []  # busy, and one of its Key Results moved
    assert w43["signals"] == {"status_changed": 1, "moved": 1, "at_risk": 1, "off_track": 0, "stale": 1,
                              "unassigned": 1, "active_without_impact": 0}

    # W44: Churn is new, Pilots removed; Revenue did not move and its last Check-in is 13 days old.
    assert [(i["type"], i["title"]) for i in w44["deltas"]["new"]] == [("key_result", "Churn")]
    assert [(i["type"], i["title"]) for i in w44["deltas"]["removed"]] == [("key_result", "Pilots")]
    assert _krs(w44)["Revenue"]["signals"] == ["at_risk", "stale"]
    assert _krs(w44)["Churn"]["delta"]["new"] is True
    assert _krs(w44)["Revenue"]["initiatives"][0]["signals"] == ["active_without_impact"]

    # Bob's filter keeps the Objective as context around his one Key Result.
    [objective] = views["bob-W44"]["objectives"]
    assert objective["context"] is True and [k["title"] for k in objective["key_results"]] == ["Churn"]

    # The late Check-in never changed the sealed W43: it is listed there as a late amendment and
    # counts in the current week.
    assert _krs(w43)["Revenue"]["current_value"] == 50.0
    assert [c["comment"] for c in w43["late_amendments"]] == ["late: signed on the 21st"]
    assert _krs(w44)["Revenue"]["current_value"] == 50.0
    assert set(_krs(w45)) == {"Revenue", "Churn"} and _krs(w45)["Revenue"]["current_value"] == 60.0
    assert [(c["comment"], c["late"]) for c in w45["check_ins"]] == [("late: signed on the 21st", True)]

    # Seals: one hash per closed week, chained; W42 (no activity) is sealed too, to keep the chain.
    seals = [views["chain"]["weeks"][i]["week"] for i in range(4)]
    assert seals == ["2026-W41", "2026-W42", "2026-W43", "2026-W44"] and views["chain"]["valid"]
    assert w43["seal"]["previous_hash"] == views["chain"]["weeks"][1]["content_hash"]

    weeks = {w["week"]: (w["status"], w["items"], w["changes"], w["check_ins"])
             for m in views["calendar"]["months"] for w in m["weeks"]}
    assert weeks["2026-W41"] == ("sealed", 4, 6, 1) and weeks["2026-W42"] == ("no_snapshot", None, 0, 0)
    assert weeks["2026-W44"] == ("sealed", 4, 3, 0)  # Churn came; Pilots went, disconnected first
    assert weeks["2026-W45"][0] == "current" and weeks["2026-W52"][0] == "future"
    assert [m["month"] for m in views["calendar"]["months"]] == ["2026-10", "2026-11", "2026-12"]

    compared = {k["title"]: k for k in views["compare"]["key_results"]}
    assert compared["Revenue"]["from"]["value"] == 20.0 and compared["Revenue"]["to"]["value"] == 50.0
    assert compared["Churn"]["from"] is None
    assert [i["title"] for i in views["compare"]["removed"]] == ["Pilots"]

    trend = {k["title"]: [(p["week"], p["progress"]) for p in k["points"]] for k in views["trend"]["key_results"]}
    # The late Check-in counts in W45 (as on the week view): W45 has a change, and its reading.
    assert trend["Revenue"] == [("2026-W41", 0.2), ("2026-W43", 0.5), ("2026-W44", 0.5), ("2026-W45", 0.6)]


@hypothesis_settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), duplicates=st.integers(0, 8))
def test_events_in_any_order_with_duplicates_give_the_same_weeks(tmp_path_factory, seed, duplicates):
    rng = random.Random(seed)
    shuffled = list(EVENTS) + [rng.choice(EVENTS) for _ in range(duplicates)]
    rng.shuffle(shuffled)
    in_order = _views(_store(tmp_path_factory.mktemp("in-order"), EVENTS))
    any_order = _views(_store(tmp_path_factory.mktemp("any-order"), shuffled))
    assert any_order == in_order


def test_sealed_rows_are_refused_by_the_database_and_tampering_is_detected(tmp_path):
    import sqlite3

    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    store = _store(tmp_path, EVENTS)
    with store.database.engine.connect() as conn:
        for statement in ("UPDATE item_versions SET state = '{}'", "DELETE FROM check_ins",
                          "UPDATE sealed_weeks SET content_hash = 'x'", "DELETE FROM sealed_weeks"):
            with pytest.raises(IntegrityError):
                conn.execute(text(statement))
            conn.rollback()
    assert snapshot.verify_chain(uuid.UUID(IDS["session"]), uow=store.uow())["valid"]
    # Someone with file access drops the guard and rewrites history: the chain shows it.
    path = store.settings.database_for("snapshot").url.split("///", 1)[1]
    store.database.dispose()
    with sqlite3.connect(path) as raw:
        raw.execute("DROP TRIGGER check_ins_sealed_no_update")
        raw.execute("DROP TRIGGER check_ins_sealed_no_move_in")
        raw.execute("UPDATE check_ins SET value = 99 WHERE comment = 'big deal slipped'")
    chain = snapshot.verify_chain(uuid.UUID(IDS["session"]), uow=store.uow())
    assert not chain["valid"]
    assert [w["week"] for w in chain["weeks"] if not w["ok"]] == ["2026-W43", "2026-W44"]  # and all after it


def test_the_fast_week_view_serialiser_matches_the_documented_schema(tmp_path):
    import json

    from flask import Flask

    from services.snapshot.entrypoints.app import render_week_view
    from services.snapshot.entrypoints.schemas import WeekView
    from shared.http import fast_json

    views = _views(_store(tmp_path, EVENTS))
    with Flask(__name__).app_context():
        for week in ("2026-W41", "2026-W43", "2026-W45", "bob-W44"):
            documented = WeekView().dump(views[week])
            fast = json.loads(fast_json(WeekView(), views[week]).get_data())
            assert fast == json.loads(json.dumps(documented)), week
            rendered = render_week_view(views[week])  # what the service answers
            assert json.loads(rendered) == fast, week
            assert list(json.loads(rendered)) == list(documented), week  # the schema's order too
    assert "canvas" not in json.dumps(fast)  # fields outside the schema never leave


def test_a_reused_live_view_never_hides_a_new_event(tmp_path):
    from services.snapshot.entrypoints.app import create_app
    from shared.events import Event
    from tests.helpers import internal_headers

    store = _store(tmp_path, EVENTS)
    client = create_app(store).test_client()
    headers = internal_headers(store.settings, "snapshot", ANN, {WS: "viewer"})
    path = f"/sessions/{IDS['session']}/snapshots/2026-W45"

    def revenue():
        view = client.get(path, headers=headers).json
        return next(k for o in view["objectives"] for k in o["key_results"] if k["title"] == "Revenue")

    assert revenue()["current_value"] == 60.0
    assert revenue()["current_value"] == 60.0  # served again, unchanged
    checked = next(e for e in reversed(EVENTS) if e.event_type == "checkin.key_result.checked_in")
    state = dict(checked.payload["key_result"], current_value=75.0, progress=0.75, version=99)
    store.apply(Event.new("checkin.key_result.checked_in", occurred_at=NOW, workspace_id=WS,
                          session_id=uuid.UUID(IDS["session"]), entity_id=uuid.UUID(IDS["kr1"]),
                          sequence=max(e.sequence for e in EVENTS) + 1, payload={
                              "check_in": dict(checked.payload["check_in"], id=str(uuid.uuid4()), value=75.0,
                                               checked_in_at=NOW),
                              "key_result": state}))
    assert revenue()["current_value"] == 75.0
