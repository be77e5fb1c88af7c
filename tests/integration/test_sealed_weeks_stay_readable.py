"""Issue 11 (Low): after a Session's dates or week start change, its sealed weeks answered 404 for
everyone. A sealed week exists because it is sealed: it answers with the bounds and content it
was sealed with, whatever the Session's dates and week start say now."""
from __future__ import annotations

import dataclasses
import uuid
from datetime import date

import pytest

from services.snapshot.service_layer import handlers as snapshot
from shared.tokens import Principal
from tests.integration.test_weekly_review import ANN, EVENTS, IDS, NOW, WS, _store

VIEWER = Principal(str(ANN), {str(WS): "viewer"})
SEALED = ("2026-W41", "2026-W42", "2026-W43", "2026-W44")


def _session_changed(**changes):
    created = EVENTS[0]
    assert created.event_type == "checkin.session.created"
    return dataclasses.replace(
        created, event_id=uuid.uuid4(), event_type="checkin.session.updated", occurred_at=NOW,
        sequence=max(e.sequence for e in EVENTS) + 1,
        payload=dict(created.payload, version=created.payload["version"] + 1, **changes))


def _view(store, week):
    return snapshot.week_view(VIEWER, uuid.UUID(IDS["session"]), week, "all", uow=store.uow(), clock=store.clock)


@pytest.mark.parametrize("changes", [
    {"start_date": date(2026, 11, 2).isoformat()},                          # the sealed weeks now lie before it
    {"week_start_day": "sunday"},                                           # every week's bounds move
    {"start_date": date(2026, 11, 1).isoformat(), "end_date": date(2027, 1, 31).isoformat(),
     "week_start_day": "wednesday"},
], ids=["later-start", "week-start", "both"])
def test_sealed_weeks_answer_as_sealed_after_the_session_changes(tmp_path, changes):
    store = _store(tmp_path, EVENTS)
    sid = uuid.UUID(IDS["session"])
    before = {week: _view(store, week) for week in SEALED}
    assert [v["status"] for v in before.values()] == ["sealed", "no_snapshot", "sealed", "sealed"]  # W42: quiet
    store.apply(_session_changed(**changes))
    with store.uow() as uow:
        assert all(uow.repo.get_session(sid)[k] == v for k, v in changes.items() if k != "start_date" and
                   k != "end_date")
    for week in SEALED:
        after = _view(store, week)
        assert after["status"] == before[week]["status"], week
        assert (after["starts_at"], after["ends_at"]) == (before[week]["starts_at"], before[week]["ends_at"])
        assert after["seal"]["content_hash"] == before[week]["seal"]["content_hash"]
        assert after["objectives"] == before[week]["objectives"]
        assert after["check_ins"] == before[week]["check_ins"]
    calendar = snapshot.calendar(VIEWER, sid, uow=store.uow(), clock=store.clock)
    listed = {w["week"]: w for m in calendar["months"] for w in m["weeks"]}
    assert [listed[week]["status"] for week in SEALED] == [before[week]["status"] for week in SEALED]
    assert listed["2026-W43"]["items"] == 4
    compared = snapshot.compare(VIEWER, sid, "2026-W41", "2026-W44", uow=store.uow(), clock=store.clock)
    assert compared["from_status"] == "sealed" and compared["to_status"] == "sealed"
    key = snapshot.week_view_key(VIEWER, sid, "2026-W43", "all", uow=store.uow(), clock=store.clock)
    assert key is not None and before["2026-W43"]["seal"]["content_hash"] in key
    store.database.dispose()


def test_a_week_neither_sealed_nor_in_the_session_is_still_outside_it(tmp_path):
    store = _store(tmp_path, EVENTS)
    store.apply(_session_changed(start_date=date(2026, 11, 2).isoformat()))
    with pytest.raises(snapshot.WeekOutsideSession):
        _view(store, "2026-W40")
    store.database.dispose()
