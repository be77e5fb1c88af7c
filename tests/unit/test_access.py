"""shared.access.decide against docs/permissions.md, cell by cell, and who sees which items."""
from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from shared import access
from shared.access import ItemFacts, PrivateGuard, SessionFacts, decide, visible_items
from shared.events import Event, decode
from shared.tokens import Principal

DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"
WS = str(uuid.uuid4())
ME, OTHER = str(uuid.uuid4()), str(uuid.uuid4())


def _role_table() -> list[tuple[str, bool, dict[str, str]]]:
    text = DOC.read_text()
    header = re.search(r"^\| action \| (.+) \|$", text, re.M)
    roles = [r.strip() for r in header.group(1).split("|")]
    rows = []
    for line in text[header.end():].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        action, archived = cells[0], cells[0].endswith("on an archived Session")
        rows.append((action.split(" on ")[0], archived, dict(zip(roles, cells[1:]))))
    return rows


ROWS = _role_table()


def test_the_table_names_every_action_and_role():
    assert {action for action, _, _ in ROWS} == set(access.ACTIONS) - {access.OPEN_CANVAS}  # per item, below
    assert all(set(cells) == set(access.ROLES) for _, _, cells in ROWS)


@pytest.mark.parametrize("action,archived,cells", ROWS, ids=[f"{a}{'-archived' if ar else ''}" for a, ar, _ in ROWS])
def test_decide_matches_every_cell_of_the_table(action, archived, cells):
    session = SessionFacts(WS, archived=archived)
    for role, expected in cells.items():
        me = Principal(ME, {WS: role})
        someone_elses = decide(me, action, workspace_id=WS, session=session, item=ItemFacts(owner_id=OTHER))
        mine = decide(me, action, workspace_id=WS, session=session, item=ItemFacts(owner_id=ME))
        unassigned = decide(me, action, workspace_id=WS, session=session, item=ItemFacts())
        if expected == "yes":
            assert someone_elses.allowed and mine.allowed and unassigned.allowed, (action, role)
        elif expected == "own":
            assert mine.allowed and unassigned.allowed, (action, role)
            assert (someone_elses.status, someone_elses.reason) == (403, "not_item_owner"), (action, role)
        elif expected == "409":
            assert (someone_elses.status, mine.status) == (409, 409), (action, role)
        else:
            assert expected == "no"
            assert mine.status == 403 and not mine.hidden, (action, role, mine)


def test_outsiders_are_told_nothing_exists():
    anonymous = Principal(None)
    stranger = Principal(ME, {str(uuid.uuid4()): "owner"})
    no_okr = Principal(ME, {}, frozenset({WS}))
    for who, reason in ((stranger, "not_member"), (no_okr, "no_okr_access")):
        decision = decide(who, access.VIEW, workspace_id=WS)
        assert (decision.status, decision.reason, decision.hidden) == (404, reason, True)
    assert decide(anonymous, access.VIEW, workspace_id=WS).status == 401


def test_a_restricted_session_admits_its_members_owners_and_admins():
    session = SessionFacts(WS, restricted=True, members=frozenset({ME}))
    assert decide(Principal(ME, {WS: "viewer"}), access.VIEW, workspace_id=WS, session=session).allowed
    assert decide(Principal(OTHER, {WS: "admin"}), access.VIEW, workspace_id=WS, session=session).allowed
    refused = decide(Principal(OTHER, {WS: "member"}), access.VIEW, workspace_id=WS, session=session)
    assert (refused.reason, refused.status) == ("session_restricted", 404)


def test_a_private_objective_hides_what_hangs_below_it():
    private = PrivateGuard(OTHER, frozenset({ME}))
    session = SessionFacts(WS)
    listed, third = Principal(ME, {WS: "member"}), Principal(str(uuid.uuid4()), {WS: "member"})
    item = ItemFacts(owner_id=None, private_guards=(private,))
    assert decide(listed, access.VIEW, workspace_id=WS, session=session, item=item).allowed
    assert decide(third, access.VIEW, workspace_id=WS, session=session, item=item).reason == "item_private"
    assert decide(Principal(OTHER, {WS: "viewer"}), access.VIEW, workspace_id=WS, session=session, item=item).allowed


def _objective(title, owner=None, parent=None, private=False, visible_to=()):
    return {"id": str(uuid.uuid4()), "title": title, "owner_id": owner, "parent_id": parent, "private": private,
            "visible_to": list(visible_to)}


def test_visible_items_follow_the_tree_connections_and_canvas_lists():
    top = _objective("Top")
    secret = _objective("Secret", owner=OTHER, parent=top["id"], private=True)
    below = _objective("Below secret", parent=secret["id"])
    kr_open = {"id": str(uuid.uuid4()), "objective_id": top["id"], "owner_id": None}
    kr_hidden = {"id": str(uuid.uuid4()), "objective_id": below["id"], "owner_id": ME}
    both = {"id": str(uuid.uuid4()), "owner_id": None, "key_result_ids": [kr_open["id"], kr_hidden["id"]],
            "canvas": {"title": "Plan", "url": "https://x.example", "access": [OTHER]}}
    only_hidden = {"id": str(uuid.uuid4()), "owner_id": ME, "key_result_ids": [kr_hidden["id"]], "canvas": None}
    loose = {"id": str(uuid.uuid4()), "owner_id": None, "key_result_ids": [], "canvas": None}
    items = ([top, secret, below], [kr_open, kr_hidden], [both, only_hidden, loose])

    seen = visible_items(Principal(ME, {WS: "member"}), SessionFacts(WS), *items)
    assert seen.objectives == {top["id"]} and seen.key_results == {kr_open["id"]}
    assert seen.initiatives == {both["id"], loose["id"]} and seen.canvases == {loose["id"]}
    assert not seen.everything

    admin = visible_items(Principal(ME, {WS: "admin"}), SessionFacts(WS), *items)
    assert admin.everything and admin.canvases == {both["id"], only_hidden["id"], loose["id"]}
    owner = visible_items(Principal(OTHER, {WS: "viewer"}), SessionFacts(WS), *items)
    assert owner.objectives == {o["id"] for o in items[0]} and both["id"] in owner.canvases


def test_a_version_1_session_event_is_upcast_on_read():
    session_id, workspace = uuid.uuid4(), uuid.uuid4()
    payload = {"id": session_id, "workspace_id": workspace, "name": "Q1", "start_date": date(2026, 1, 5),
               "end_date": date(2026, 3, 29), "timezone": "UTC", "week_start_day": "monday", "checkin_cadence": "weekly",
               "checkin_weekday": "friday", "status": "active", "version": 1}
    old = Event.new("checkin.session.created", occurred_at=datetime.now(timezone.utc), workspace_id=workspace,
                    entity_id=session_id, payload=payload, session_id=session_id, sequence=1, version=1)
    assert old.event_version == 1
    loaded = decode(old.to_wire()).load_payload()
    assert loaded["visibility"] == "workspace" and loaded["members"] == []
    new = Event.new("checkin.session.created", occurred_at=datetime.now(timezone.utc), workspace_id=workspace,
                    entity_id=session_id, payload=payload | {"visibility": "restricted", "members": [workspace]},
                    session_id=session_id, sequence=1)
    assert new.event_version == 2 and decode(new.to_wire()).load_payload()["visibility"] == "restricted"
