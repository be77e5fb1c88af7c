"""Issue 11, the live Session's part: who may change an Objective's privacy, an Initiative's canvas,
and the calendar of a Session with sealed weeks (fake unit of work, no I/O)."""
import uuid
from datetime import date

import pytest

from services.checkin.domain import commands
from services.checkin.domain.model import Conflict
from services.checkin.service_layer import handlers
from shared.access import AccessDenied
from shared.tokens import Principal
from tests.unit.test_checkin_handlers import CLOCK, USER, WS, FakeUnitOfWork

OTHER = uuid.uuid4()
ADMIN = Principal(str(uuid.uuid4()), {str(WS): "admin"})
MEMBER = Principal(str(USER), {str(WS): "member"})
LISTED = Principal(str(OTHER), {str(WS): "member"})


class Everyone:
    def non_members(self, principal, workspace_id, user_ids):
        return set()


EVERYONE = Everyone()


def _session(uow, principal=ADMIN):
    return handlers.create_session(commands.CreateSession(
        principal, WS, "Q4", date(2026, 10, 1), date(2026, 12, 31), "Europe/Berlin"), uow=uow, clock=CLOCK)


def _update(principal, kind, item, changes, uow):
    current = handlers.get_item(ADMIN, kind, item.id, uow=uow)
    return handlers.update_item(commands.UpdateItem(principal, kind, item.id, current.version, changes),
                                uow=uow, clock=CLOCK, members=EVERYONE)


# -- private Objectives: privacy is the owner's or an admin's ------------------------------------

def _private(uow, session, owner=None):
    return handlers.add_objective(commands.AddObjective(ADMIN, session.id, "Secret", owner_id=owner, private=True,
                                                        visible_to=[OTHER]), uow=uow, clock=CLOCK, members=EVERYONE)


@pytest.mark.parametrize("changes", [{"private": False}, {"visible_to": [OTHER, uuid.uuid4()]},
                                     {"owner_id": OTHER}])
def test_a_listed_member_cannot_open_or_claim_an_unassigned_private_objective(changes):
    uow = FakeUnitOfWork()
    objective = _private(uow, _session(uow))
    events = len(uow.repo.events)
    with pytest.raises(AccessDenied) as refused:
        _update(LISTED, "objective", objective, changes, uow)
    assert refused.value.status == 403 and "owner or an admin" in refused.value.message
    assert len(uow.repo.events) == events
    stored = handlers.get_item(ADMIN, "objective", objective.id, uow=uow)
    assert stored.private and stored.visible_to == [OTHER] and stored.owner_id is None
    # The title stays theirs to edit, and sending the same privacy back changes nothing.
    assert _update(LISTED, "objective", objective, {"title": "Still secret", "private": True,
                                                    "visible_to": [OTHER]}, uow).title == "Still secret"


def test_the_owner_and_admins_change_an_objectives_privacy():
    uow = FakeUnitOfWork()
    session = _session(uow)
    owned = _private(uow, session, owner=USER)
    assert _update(MEMBER, "objective", owned, {"visible_to": []}, uow).visible_to == []
    assert _update(MEMBER, "objective", owned, {"private": False}, uow).private is False
    unassigned = _private(uow, session)
    assert _update(ADMIN, "objective", unassigned, {"private": False}, uow).private is False


# -- canvases: changing one takes canvas permission ----------------------------------------------

@pytest.mark.parametrize("canvas", [None, {"title": "Mine now", "url": "https://evil.example/x", "access": [OTHER]}])
def test_a_member_without_canvas_permission_cannot_replace_or_remove_the_canvas(canvas):
    uow = FakeUnitOfWork()
    session = _session(uow)
    initiative = handlers.add_initiative(commands.AddInitiative(
        ADMIN, session.id, "Launch", canvas={"title": "Plan", "url": "https://docs.example/plan", "access": []}),
        uow=uow, clock=CLOCK, members=EVERYONE)
    with pytest.raises(AccessDenied) as refused:
        _update(LISTED, "initiative", initiative, {"canvas": canvas}, uow)
    assert refused.value.status == 403 and "canvas" in refused.value.message
    assert handlers.get_item(ADMIN, "initiative", initiative.id, uow=uow).canvas.url == "https://docs.example/plan"
    with pytest.raises(AccessDenied):
        handlers.open_canvas(LISTED, initiative.id, uow=uow)
    # With canvas permission (on its access list) the same change is allowed.
    _update(ADMIN, "initiative", initiative, {"canvas": {"title": "Plan", "url": "https://docs.example/plan",
                                                         "access": [OTHER]}}, uow)
    assert _update(LISTED, "initiative", initiative, {"canvas": canvas}, uow).version > 1


def test_adding_a_canvas_where_there_is_none_stays_an_edit():
    uow = FakeUnitOfWork()
    initiative = handlers.add_initiative(commands.AddInitiative(ADMIN, _session(uow).id, "Launch"),
                                         uow=uow, clock=CLOCK, members=EVERYONE)
    changed = _update(LISTED, "initiative", initiative, {"canvas": {"title": "Plan", "url": "https://x.example/"}},
                      uow)
    assert changed.canvas.url == "https://x.example/"


# -- a Session with sealed weeks: its calendar is the owners' and admins', and keeps them ----------

def _sealed(uow):
    session = _session(uow)
    uow.repo.add_week_marker(session.id, "2026-W41", CLOCK.now())
    return session


@pytest.mark.parametrize("changes", [{"start_date": date(2026, 10, 12)}, {"week_start_day": "sunday"},
                                     {"timezone": "America/New_York"}, {"end_date": date(2026, 11, 30)}])
def test_a_member_cannot_change_the_calendar_of_a_session_with_sealed_weeks(changes):
    uow = FakeUnitOfWork()
    session = _sealed(uow)
    with pytest.raises(AccessDenied) as refused:
        _update(MEMBER, "session", session, changes, uow)
    assert refused.value.status == 403 and "sealed" in refused.value.message
    assert _update(MEMBER, "session", session, {"name": "Q4 2026"}, uow).name == "Q4 2026"


@pytest.mark.parametrize("changes, field", [({"start_date": date(2026, 10, 12)}, "start_date"),
                                            ({"week_start_day": "sunday"}, "week_start_day"),
                                            ({"timezone": "America/New_York"}, "timezone")])
def test_even_an_admin_cannot_move_a_sealed_week_out_of_its_session(changes, field):
    uow = FakeUnitOfWork()
    session = _sealed(uow)
    with pytest.raises(Conflict) as refused:
        _update(ADMIN, "session", session, changes, uow)
    assert refused.value.field == field and "2026-W41" in refused.value.message
    assert handlers.get_item(ADMIN, "session", session.id, uow=uow).version == 1


def test_an_admin_may_extend_a_session_with_sealed_weeks_and_a_member_any_unsealed_one():
    uow = FakeUnitOfWork()
    session = _sealed(uow)
    assert _update(ADMIN, "session", session, {"end_date": date(2027, 1, 31)}, uow).end_date == date(2027, 1, 31)
    fresh = _session(uow)
    assert _update(MEMBER, "session", fresh, {"week_start_day": "sunday"}, uow).week_start_day == "sunday"
