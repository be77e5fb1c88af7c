"""The access rules where the handlers apply them: canvases handed on, hidden connections,
Objectives moved out from under private ones, hidden parents in earlier weeks, sealed exports."""
from __future__ import annotations

import uuid

import pytest

from services.checkin.domain import commands
from services.checkin.service_layer import handlers
from services.export.adapters.snapshot_client import week_view_from
from services.snapshot.service_layer.handlers import Audience, _only_seen
from shared.access import AccessDenied, NotFound
from shared.tokens import Principal
from tests.unit.test_checkin_handlers import CLOCK, DIRECTORY, USER, WS, FakeUnitOfWork, _session

ADMIN = Principal(str(uuid.uuid4()), {str(WS): "admin"})
BOB_ID = uuid.uuid4()
BOB = Principal(str(BOB_ID), {str(WS): "member"})


@pytest.fixture(autouse=True)
def bob_is_a_member():
    DIRECTORY.members.update({BOB_ID, uuid.UUID(ADMIN.user_id)})
    yield
    DIRECTORY.members.difference_update({BOB_ID, uuid.UUID(ADMIN.user_id)})


def _world():
    uow = FakeUnitOfWork()
    session = _session(uow, ADMIN)
    secret = handlers.add_objective(commands.AddObjective(ADMIN, session.id, "Secret", owner_id=USER, private=True,
                                                          visible_to=[BOB_ID]), uow=uow, clock=CLOCK, members=DIRECTORY)
    child = handlers.add_objective(commands.AddObjective(ADMIN, session.id, "Child", parent_id=secret.id), uow=uow, clock=CLOCK, members=DIRECTORY)
    hidden_kr = handlers.add_key_result(commands.AddKeyResult(ADMIN, child.id, "Hidden KR", 0, 10),
                                        uow=uow, clock=CLOCK, members=DIRECTORY)
    public = handlers.add_objective(commands.AddObjective(ADMIN, session.id, "Public"), uow=uow, clock=CLOCK,
                                    members=DIRECTORY)
    open_kr = handlers.add_key_result(commands.AddKeyResult(ADMIN, public.id, "Open KR", 0, 10),
                                      uow=uow, clock=CLOCK, members=DIRECTORY)
    initiative = handlers.add_initiative(commands.AddInitiative(
        ADMIN, session.id, "Launch", canvas={"title": "Plan", "url": "https://docs.example/plan", "access": [USER]},
        key_result_ids=[open_kr.id, hidden_kr.id]), uow=uow, clock=CLOCK, members=DIRECTORY)
    return uow, session, secret, child, hidden_kr, initiative


def test_a_member_cannot_take_an_initiative_to_open_its_canvas():
    uow, _, _, _, _, initiative = _world()
    with pytest.raises(AccessDenied) as refused:
        handlers.update_item(commands.UpdateItem(BOB, "initiative", initiative.id, initiative.version,
                                                 {"owner_id": BOB_ID}), uow=uow, clock=CLOCK, members=DIRECTORY)
    assert refused.value.status == 403 and "canvas" in refused.value.message
    handed = handlers.update_item(commands.UpdateItem(ADMIN, "initiative", initiative.id, initiative.version,
                                                      {"owner_id": BOB_ID}), uow=uow, clock=CLOCK, members=DIRECTORY)
    assert handed.owner_id == BOB_ID


def test_a_hidden_connection_answers_like_an_unknown_key_result():
    uow, _, secret, _, hidden_kr, initiative = _world()
    outsider = Principal(str(uuid.uuid4()), {str(WS): "member"})
    for key_result_id in (hidden_kr.id, uuid.uuid4()):
        with pytest.raises(NotFound, match="Key Result not found."):
            handlers.connect(commands.Connect(outsider, initiative.id, key_result_id, False), uow=uow, clock=CLOCK)
    assert hidden_kr.id in uow.repo.get_initiative(initiative.id).key_result_ids


def test_only_the_private_objectives_owner_or_an_admin_moves_an_objective_out_from_under_it():
    uow, _, secret, child, _, _ = _world()
    with pytest.raises(AccessDenied) as refused:  # Bob sees the secret and may edit the unassigned child
        handlers.update_item(commands.UpdateItem(BOB, "objective", child.id, child.version, {"parent_id": None}),
                             uow=uow, clock=CLOCK, members=DIRECTORY)
    assert refused.value.status == 403 and "private Objective's owner" in refused.value.message
    owner = Principal(str(USER), {str(WS): "member"})
    moved = handlers.update_item(commands.UpdateItem(owner, "objective", child.id, child.version,
                                                     {"parent_id": None}), uow=uow, clock=CLOCK, members=DIRECTORY)
    assert moved.parent_id is None


def test_an_earlier_week_does_not_name_a_hidden_parent():
    secret, child = str(uuid.uuid4()), str(uuid.uuid4())
    then = {"objective": [{"id": secret, "parent_id": None, "private": True, "owner_id": str(USER), "visible_to": []},
                          {"id": child, "parent_id": secret, "private": False, "owner_id": None, "visible_to": []}],
            "key_result": [], "initiative": []}
    now = [dict(then["objective"][0]), dict(then["objective"][1], parent_id=None)]  # moved out since
    session = {"id": str(uuid.uuid4()), "workspace_id": str(WS), "status": "active"}
    shown = _only_seen(then, Audience(BOB, session, now))
    assert [(o["id"], o["parent_id"]) for o in shown["objective"]] == [(child, None)]


def test_a_sealed_week_can_be_exported():
    view = {"session": {"id": str(uuid.uuid4()), "workspace_id": str(WS), "name": "Q4"}, "week": "2026-W41",
            "status": "sealed", "owner": "all", "objectives": []}
    assert week_view_from(view)["status"] == "sealed"
