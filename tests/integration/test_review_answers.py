"""Review answers that were wrong (issue 9): an owner's Initiative under someone else's Key
Result, compare against a week with no Snapshot, and calendar counts per principal with a late
Check-in. The events come from the check-in service's handlers; the snapshot store is real
(SQLite)."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timezone

from services.checkin.domain import commands
from services.checkin.service_layer import handlers as checkin
from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
from services.snapshot.service_layer import handlers as snapshot
from shared.clock import FixedClock
from shared.tokens import Principal
from tests.conftest import make_settings
from tests.unit.test_checkin_handlers import FakeUnitOfWork

WS, LEAD, ANN, BOB = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
OWNER = Principal(str(LEAD), {str(WS): "owner"})
VIEWER = Principal(str(ANN), {str(WS): "viewer"})  # Ann: sees everything but Bob's private Objective


class Members:
    def non_members(self, principal, workspace_id, user_ids):
        return set(user_ids) - {LEAD, ANN, BOB}


def at(day: int, month: int = 10, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=timezone.utc)


NOW = at(4, 11)  # Wednesday of W45


def history():
    """W41: Ann's Objective and Key Result, Bob's Objective and Key Result, Ann's Initiative
    connected only to Bob's Key Result, Bob's private Objective; a Check-in on Ann's Key Result.
    W42: quiet (no Snapshot). W43: a Check-in on Bob's Key Result. W44: one on Ann's. In W45 the
    ended weeks are closed, then a Check-in made on the 21st (W43) arrives: late."""
    uow, clock, m = FakeUnitOfWork(), FixedClock(at(5)), Members()
    session = checkin.create_session(commands.CreateSession(
        OWNER, WS, "Q4", date(2026, 10, 5), date(2026, 12, 27), "UTC"), uow=uow, clock=clock)
    grow = checkin.add_objective(commands.AddObjective(OWNER, session.id, "Grow", owner_id=ANN),
                                 uow=uow, clock=clock, members=m)
    revenue = checkin.add_key_result(commands.AddKeyResult(OWNER, grow.id, "Revenue", 0, 100, owner_id=ANN),
                                     uow=uow, clock=clock, members=m)
    ops = checkin.add_objective(commands.AddObjective(OWNER, session.id, "Ops", owner_id=BOB),
                                uow=uow, clock=clock, members=m)
    uptime = checkin.add_key_result(commands.AddKeyResult(OWNER, ops.id, "Uptime", 0, 10, owner_id=BOB),
                                    uow=uow, clock=clock, members=m)
    fix = checkin.add_initiative(commands.AddInitiative(
        OWNER, session.id, "Ann's fix", "in_progress", ANN, key_result_ids=[uptime.id]),
        uow=uow, clock=clock, members=m)
    secret = checkin.add_objective(commands.AddObjective(OWNER, session.id, "Secret", owner_id=BOB, private=True),
                                   uow=uow, clock=clock, members=m)
    checkin.add_key_result(commands.AddKeyResult(OWNER, secret.id, "Hidden", 0, 1, owner_id=BOB),
                           uow=uow, clock=clock, members=m)
    clock.set(at(7))
    checkin.record_check_in(commands.RecordCheckIn(OWNER, revenue.id, 20, "on_track", "first deals"),
                            uow=uow, clock=clock)
    clock.set(at(20))
    checkin.record_check_in(commands.RecordCheckIn(OWNER, uptime.id, 5, "at_risk", "outage"), uow=uow, clock=clock)
    clock.set(at(27))
    checkin.record_check_in(commands.RecordCheckIn(OWNER, revenue.id, 30, "on_track", "more deals"),
                            uow=uow, clock=clock)
    clock.set(NOW)
    assert checkin.close_ended_weeks(uow=uow, clock=clock, grace_seconds=3600) == 4
    clock.set(at(21))
    checkin.record_check_in(commands.RecordCheckIn(OWNER, revenue.id, 25, "on_track", "late: signed on the 21st"),
                            uow=uow, clock=clock)
    ids = {"session": session.id, "grow": str(grow.id), "ops": str(ops.id), "revenue": str(revenue.id),
           "uptime": str(uptime.id), "fix": str(fix.id)}
    return uow.repo.events, ids


EVENTS, IDS = history()


def _store(tmp_path, events=EVENTS):
    store = snapshot_bootstrap(make_settings(tmp_path), clock=FixedClock(NOW))
    store.migrate()
    for event in events:
        store.apply(event)
    return store


def _view(store, principal, week, owner="all"):
    return snapshot.week_view(principal, IDS["session"], week, owner, uow=store.uow(), clock=store.clock)


def _outline(view):
    return [(o["title"], o["context"], [(k["title"], k["context"], [i["title"] for i in k["initiatives"]])
                                        for k in o["key_results"]]) for o in view["objectives"]]


# -- 1. an owner's Initiative connected only to someone else's Key Result ---------------------

def test_an_owners_initiative_under_someone_elses_key_result_stays_with_its_parents_as_context(tmp_path):
    store = _store(tmp_path)
    for principal in (OWNER, VIEWER):
        anns = _view(store, principal, "2026-W43", str(ANN))
        assert _outline(anns) == [
            ("Grow", False, [("Revenue", False, [])]),
            ("Ops", True, [("Uptime", True, ["Ann's fix"])]),  # Bob's: context around Ann's Initiative
        ]
        # The context Key Result carries no signals of its own and is not counted, like a context
        # Objective; Ann's Initiative is hers and is counted.
        uptime = anns["objectives"][1]["key_results"][0]
        assert uptime["signals"] == [] and uptime["delta"]["progress_points"] == 50.0
        [fix] = uptime["initiatives"]
        assert fix["signals"] == []  # in progress, and its Key Result moved
        everyone = _view(store, principal, "2026-W43")
        everyone_uptime = everyone["objectives"][1]["key_results"][0]
        assert everyone_uptime["signals"] == ["status_changed", "moved", "at_risk"]
        assert anns["signals"]["at_risk"] == 0 and everyone["signals"]["at_risk"] == 1
        assert sum(anns["signals"].values()) == sum(len(k["signals"]) + sum(len(i["signals"]) for i in k["initiatives"])
                                                    for o in anns["objectives"] for k in o["key_results"])
        # The week's Check-ins listed are those of Ann's own Key Results, not of the context one.
        assert [c["comment"] for c in anns["check_ins"]] == []
        assert [c["comment"] for c in everyone["check_ins"]] == ["outage"]
        # Bob's view is unchanged: his Key Result, with the Initiative connected to it.
        assert _outline(_view(store, principal, "2026-W43", str(BOB))) == [
            ("Ops", False, [("Uptime", False, ["Ann's fix"])])] + (
            [("Secret", False, [("Hidden", False, [])])] if principal is OWNER else [])


# -- 2. compare against a week with no Snapshot -----------------------------------------------

def _compare(store, principal, first, second):
    return snapshot.compare(principal, IDS["session"], first, second, uow=store.uow(), clock=store.clock)


def test_compare_says_which_week_has_no_snapshot_and_whose_readings_it_shows(tmp_path):
    from flask import Flask

    from services.snapshot.entrypoints.schemas import Comparison

    store = _store(tmp_path)
    for principal in (OWNER, VIEWER):
        quiet = _compare(store, principal, "2026-W42", "2026-W44")
        assert (quiet["from"], quiet["from_status"], quiet["from_readings_week"]) == ("2026-W42", "no_snapshot",
                                                                                     "2026-W41")
        assert quiet["from_nearest_saved"] == {"before": "2026-W41", "after": "2026-W43"}
        assert (quiet["to_status"], quiet["to_readings_week"]) == ("sealed", "2026-W44")
        revenue = {k["title"]: k for k in quiet["key_results"]}["Revenue"]
        assert revenue["from"]["value"] == 20.0 and revenue["to"]["value"] == 30.0  # W41's reading, named so
        # A week that has its Snapshot names itself; a week to come shows the live readings.
        saved = _compare(store, principal, "2026-W41", "2026-W50")
        assert (saved["from_status"], saved["from_readings_week"]) == ("sealed", "2026-W41")
        assert (saved["to_status"], saved["to_readings_week"]) == ("future", "2026-W45")
        with Flask(__name__).app_context():
            dumped = Comparison().dump(quiet)
        assert dumped["from_status"] == "no_snapshot" and dumped["from_readings_week"] == "2026-W41"
        assert dumped["to_nearest_saved"]["before"] == "2026-W43"


def test_compare_between_two_quiet_weeks_names_the_saved_week_both_show(tmp_path):
    store = _store(tmp_path, [e for e in EVENTS if e.occurred_at < at(12)])  # only W41 had activity
    quiet = _compare(store, OWNER, "2026-W42", "2026-W43")
    assert (quiet["from_status"], quiet["to_status"]) == ("no_snapshot", "no_snapshot")
    assert quiet["from_readings_week"] == "2026-W41" and quiet["to_readings_week"] == "2026-W41"
    assert quiet["to_nearest_saved"] == {"before": "2026-W41", "after": None}
    assert all(k["delta"]["progress_points"] == 0 for k in quiet["key_results"])


def test_the_compare_page_says_so(tmp_path):
    from pathlib import Path

    import jinja2

    source = (Path(__file__).parents[2] / "services/gateway/web/templates/compare.html").read_text()
    start = source.index("{% for side in ('from', 'to') %}")
    fragment = source[start:source.index("{% endfor %}", start) + len("{% endfor %}")]
    store = _store(tmp_path)
    text = jinja2.Environment(autoescape=True).from_string(fragment).render(
        comparison=_compare(store, VIEWER, "2026-W42", "2026-W50"))
    assert "2026-W42 has no saved Snapshot: nothing changed in it, so its column shows the readings of 2026-W41" in text
    assert "The nearest saved week after it is 2026-W43." in text
    assert "2026-W50 has not started: its column shows the live readings of 2026-W45." in text


# -- 3. calendar counts: the same event in the same week for everyone -------------------------

def _counts(store, principal):
    calendar = snapshot.calendar(principal, IDS["session"], uow=store.uow(), clock=store.clock)
    return {w["week"]: (w["status"], w["changes"], w["check_ins"]) for m in calendar["months"] for w in m["weeks"]
            if w["week"] <= "2026-W45"}


def test_a_late_check_in_counts_in_the_same_week_for_every_principal(tmp_path):
    store = _store(tmp_path)
    owner, viewer = _counts(store, OWNER), _counts(store, VIEWER)
    # The late Check-in (made on the 21st, in W43) counts where it counts on the week view: W45.
    assert owner["2026-W43"] == viewer["2026-W43"] == ("sealed", 1, 1)
    assert owner["2026-W44"] == viewer["2026-W44"] == ("sealed", 1, 1)
    assert owner["2026-W45"] == viewer["2026-W45"] == ("current", 1, 1)
    assert owner["2026-W42"] == viewer["2026-W42"] == ("no_snapshot", 0, 0)
    # W41: the viewer does not see Bob's private Objective and its Key Result (two events).
    assert owner["2026-W41"][1] - viewer["2026-W41"][1] == 2 and owner["2026-W41"][2] == viewer["2026-W41"][2] == 1
    w45 = _view(store, VIEWER, "2026-W45")
    assert [(c["comment"], c["late"]) for c in w45["check_ins"]] == [("late: signed on the 21st", True)]


def test_the_counts_are_the_same_whatever_order_the_events_arrive_in(tmp_path):
    late = [e for e in EVENTS if e.occurred_at == at(21)]
    early = [e for e in EVENTS if e not in late]
    store = _store(tmp_path / "late-first", late + early)  # the late Check-in before its week's closing
    in_order = _store(tmp_path / "in-order")
    for principal in (OWNER, VIEWER):
        assert _counts(store, principal) == _counts(in_order, principal)


def test_the_migration_moves_counts_kept_in_the_weeks_late_events_occurred_in(tmp_path):
    from alembic import command
    from alembic.config import Config

    from shared.db import make_engine
    from shared.migrations import upgrade

    store = _store(tmp_path)
    target = store.settings.database_for("snapshot")
    counted = [_counts(store, principal) for principal in (OWNER, VIEWER)]
    store.database.dispose()
    engine = make_engine(target)
    with engine.begin() as connection:  # back to 0003: counts in the weeks the events occurred in
        config = Config()
        config.set_main_option("script_location", str(store.MIGRATIONS))
        config.attributes["connection"], config.attributes["schema"] = connection, target.schema
        command.downgrade(config, "0003")
    engine.dispose()
    with store.uow() as uow:  # the stored counts (today's views need today's schema)
        before = dict(uow.repo.activity(IDS["session"]))
    assert before["2026-W43"] == 2 and before.get("2026-W45", 0) == 0  # as 0003's code counted them
    upgrade(target, store.MIGRATIONS)
    assert [_counts(store, principal) for principal in (OWNER, VIEWER)] == counted
