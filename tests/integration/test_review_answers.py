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
