"""Use cases of the live Session. Each owns one transaction; every change writes one event with
the entity's full new state to the outbox in that same transaction."""
from __future__ import annotations

import uuid
from datetime import datetime

from services.checkin.domain import commands, views
from services.checkin.domain.model import (
    Canvas,
    Conflict,
    DomainError,
    Initiative,
    KeyResult,
    Objective,
    Session,
    check_version,
    ensure_no_cycle,
    new_id,
    remove,
    weighted_progress,
)
from shared.access import (
    Forbidden,
    NotFound,
    can_read,
    ensure_readable,
    ensure_writable,
)
from shared.events import Event
from shared.tokens import Principal
from shared.weeks import session_weeks

ADMINS = ("owner", "admin")
KIND_NAMES = {"session": "Session", "objective": "Objective", "key_result": "Key Result",
              "initiative": "Initiative"}


def _actor(principal: Principal):
    return uuid.UUID(principal.user_id) if principal.user_id else None


def _event(uow, name: str, *, session: Session, entity_id, payload: dict, principal: Principal,
           at: datetime) -> None:
    uow.repo.add_event(Event.new(
        name, occurred_at=at, workspace_id=session.workspace_id, session_id=session.id,
        entity_id=entity_id, sequence=uow.repo.next_sequence(session.id),
        actor_id=_actor(principal), payload=payload,
    ))


def _readable_session(uow, principal: Principal, session_id) -> Session:
    session = uow.repo.get_session(session_id)
    if session is None:
        raise NotFound("Session")
    ensure_readable(principal, session.workspace_id, "Session")
    return session


def _get(uow, kind: str, item_id, *, for_update: bool = False):
    getter = {"session": uow.repo.get_session, "objective": uow.repo.get_objective,
              "key_result": uow.repo.get_key_result, "initiative": uow.repo.get_initiative}[kind]
    item = getter(item_id, for_update=for_update)
    if item is None:
        raise NotFound(KIND_NAMES[kind])
    return item


def _readable(uow, principal: Principal, kind: str, item_id, *, for_update: bool = False):
    """The item and its Session; anything the principal may not read is "not found" under the
    item's own name, so a foreign id and an unknown one answer alike."""
    item = _get(uow, kind, item_id, for_update=for_update)
    session = item if kind == "session" else uow.repo.get_session(item.session_id)
    if session is None or not can_read(principal, session.workspace_id):
        raise NotFound(KIND_NAMES[kind])
    return item, session


def _writable(uow, principal: Principal, kind: str, item_id, *, for_update: bool = False):
    item, session = _readable(uow, principal, kind, item_id, for_update=for_update)
    ensure_writable(principal, session.workspace_id, KIND_NAMES[kind])
    session.ensure_editable()
    return item, session


def _save(uow, kind: str, item) -> None:
    {"session": uow.repo.save_session, "objective": uow.repo.save_objective,
     "key_result": uow.repo.save_key_result, "initiative": uow.repo.save_initiative}[kind](item)


def _check_parent(uow, session: Session, objective_id, parent_id) -> None:
    if parent_id is None:
        return
    parent = uow.repo.get_objective(parent_id)
    if parent is None or parent.session_id != session.id:
        raise DomainError("The parent Objective is not in this Session.", "parent_id")
    ensure_no_cycle(objective_id, parent_id, uow.repo.parents(session.id))


def _check_members(members, principal: Principal, session: Session, named: dict) -> None:
    """Owners, visibility and canvas access lists name Workspace members only (one lookup)."""
    wanted = {field: {v for v in values if v is not None} for field, values in named.items()}
    strangers = members.non_members(principal, session.workspace_id, set().union(*wanted.values()))
    for field, ids in wanted.items():
        if ids & strangers:
            raise DomainError("Not a member of this Workspace.", field)


def _people(fields_: dict) -> dict:
    """The member ids a body names, by field."""
    named = {}
    if "owner_id" in fields_:
        named["owner_id"] = [fields_["owner_id"]]
    if "visible_to" in fields_:
        named["visible_to"] = list(fields_["visible_to"] or [])
    if fields_.get("canvas"):
        named["canvas.access"] = list(fields_["canvas"].get("access") or [])
    return named


def _canvas(value: dict | None) -> Canvas | None:
    return Canvas(value["title"], value["url"], list(value.get("access") or [])) if value else None


# --- Sessions ------------------------------------------------------------------------------

def create_session(cmd: commands.CreateSession, *, uow, clock) -> Session:
    ensure_writable(cmd.principal, cmd.workspace_id, "Workspace")
    now = clock.now()
    session = Session(new_id(), cmd.workspace_id, cmd.name, cmd.start_date, cmd.end_date, cmd.timezone,
                      cmd.week_start_day, cmd.checkin_cadence, cmd.checkin_weekday,
                      created_at=now, updated_at=now)
    with uow:
        uow.repo.add_session(session)
        _event(uow, "checkin.session.created", session=session, entity_id=session.id,
               payload=session.state(), principal=cmd.principal, at=now)
        uow.commit()
    return session


def archive_session(cmd: commands.ArchiveSession, *, uow, clock) -> Session:
    now = clock.now()
    with uow:
        session, _ = _writable(uow, cmd.principal, "session", cmd.session_id, for_update=True)
        if cmd.principal.workspaces.get(str(session.workspace_id)) not in ADMINS:
            raise Forbidden("Only a Workspace owner or admin may archive a Session.")
        session.archive(now)
        uow.repo.save_session(session)
        _event(uow, "checkin.session.archived", session=session, entity_id=session.id,
               payload=session.state(), principal=cmd.principal, at=now)
        uow.commit()
    return session


# --- Adding items ----------------------------------------------------------------------------
# The _new_* functions work inside a caller's transaction (a request, or a history import).

def _new_objective(uow, session: Session, principal: Principal, at: datetime, *, title: str,
                   description: str = "", owner_id=None, parent_id=None, private: bool = False,
                   visible_to=()) -> Objective:
    objective = Objective(new_id(), session.id, session.workspace_id, title, description, owner_id,
                          parent_id, private, list(visible_to), created_at=at, updated_at=at)
    _check_parent(uow, session, objective.id, parent_id)
    uow.repo.add_objective(objective)
    _event(uow, "checkin.objective.created", session=session, entity_id=objective.id,
           payload=objective.state(), principal=principal, at=at)
    return objective


def _new_key_result(uow, session: Session, objective: Objective, principal: Principal, at: datetime, *,
                    title: str, start_value: float = 0.0, target_value: float = 1.0,
                    current_value: float | None = None, unit: str = "", kind: str = "metric",
                    owner_id=None, status: str = "not_started", confidence: int | None = None,
                    weight: float = 1.0) -> KeyResult:
    if current_value is None:
        current_value = 0.0 if kind == "milestone" else start_value
    key_result = KeyResult(new_id(), objective.id, session.id, session.workspace_id, title, start_value,
                           target_value, current_value, unit, kind, status, confidence, weight, owner_id,
                           created_at=at, updated_at=at)
    uow.repo.add_key_result(key_result)
    _event(uow, "checkin.key_result.created", session=session, entity_id=key_result.id,
           payload=key_result.state(), principal=principal, at=at)
    return key_result


def _new_initiative(uow, session: Session, principal: Principal, at: datetime, *, title: str,
                    status: str = "not_started", owner_id=None, canvas: dict | None = None,
                    key_result_ids=()) -> Initiative:
    initiative = Initiative(new_id(), session.id, session.workspace_id, title, status, owner_id,
                            _canvas(canvas), created_at=at, updated_at=at)
    for key_result_id in dict.fromkeys(key_result_ids):
        key_result = uow.repo.get_key_result(key_result_id)
        if key_result is None or key_result.session_id != session.id:
            raise DomainError("The Key Result is not in this Session.", "key_result_ids")
        initiative.key_result_ids.append(key_result.id)
    uow.repo.add_initiative(initiative)
    _event(uow, "checkin.initiative.created", session=session, entity_id=initiative.id,
           payload=initiative.state(), principal=principal, at=at)
    return initiative


def _check_in(uow, session: Session, key_result: KeyResult, principal: Principal, at: datetime, *,
              value: float, status: str, confidence: int | None = None, comment: str = ""):
    entry = key_result.check_in(value=value, status=status, confidence=confidence, comment=comment,
                                author_id=_actor(principal), at=at)
    state = key_result.state()
    uow.repo.save_key_result(key_result)
    _event(uow, "checkin.key_result.checked_in", session=session, entity_id=key_result.id,
           payload={"check_in": entry.state(), "key_result": state}, principal=principal, at=at)
    return entry


def add_objective(cmd: commands.AddObjective, *, uow, clock, members) -> Objective:
    now = clock.now()
    with uow:
        session, _ = _writable(uow, cmd.principal, "session", cmd.session_id)
        _check_members(members, cmd.principal, session, {"owner_id": [cmd.owner_id], "visible_to": cmd.visible_to})
        objective = _new_objective(uow, session, cmd.principal, now, title=cmd.title,
                                   description=cmd.description, owner_id=cmd.owner_id,
                                   parent_id=cmd.parent_id, private=cmd.private, visible_to=cmd.visible_to)
        uow.commit()
    return objective


def add_key_result(cmd: commands.AddKeyResult, *, uow, clock, members) -> KeyResult:
    now = clock.now()
    with uow:
        objective, session = _writable(uow, cmd.principal, "objective", cmd.objective_id)
        _check_members(members, cmd.principal, session, {"owner_id": [cmd.owner_id]})
        key_result = _new_key_result(
            uow, session, objective, cmd.principal, now, title=cmd.title, start_value=cmd.start_value,
            target_value=cmd.target_value, current_value=cmd.current_value, unit=cmd.unit, kind=cmd.kind,
            owner_id=cmd.owner_id, status=cmd.status, confidence=cmd.confidence, weight=cmd.weight)
        uow.commit()
    return key_result


def add_initiative(cmd: commands.AddInitiative, *, uow, clock, members) -> Initiative:
    now = clock.now()
    with uow:
        session, _ = _writable(uow, cmd.principal, "session", cmd.session_id)
        _check_members(members, cmd.principal, session, _people({"owner_id": cmd.owner_id, "canvas": cmd.canvas}))
        initiative = _new_initiative(uow, session, cmd.principal, now, title=cmd.title, status=cmd.status,
                                     owner_id=cmd.owner_id, canvas=cmd.canvas,
                                     key_result_ids=cmd.key_result_ids)
        uow.commit()
    return initiative


# --- Editing and removing ------------------------------------------------------------------

def update_item(cmd: commands.UpdateItem, *, uow, clock, members):
    now = clock.now()
    with uow:
        item, session = _writable(uow, cmd.principal, cmd.kind, cmd.item_id, for_update=True)
        check_version(item, cmd.expected_version)
        changes = dict(cmd.changes)
        _check_members(members, cmd.principal, session, _people(changes))
        if cmd.kind == "objective" and "parent_id" in changes:
            _check_parent(uow, session, item.id, changes["parent_id"])
        if cmd.kind == "initiative" and "canvas" in changes:
            changes["canvas"] = _canvas(changes["canvas"])
        item.update(changes, now)
        _save(uow, cmd.kind, item)
        event_session = item if cmd.kind == "session" else session
        _event(uow, f"checkin.{cmd.kind}.updated", session=event_session, entity_id=item.id,
               payload=item.state(), principal=cmd.principal, at=now)
        uow.commit()
    return item


def remove_item(cmd: commands.RemoveItem, *, uow, clock) -> None:
    if cmd.kind == "session":
        raise DomainError("Sessions are archived, not removed.", "kind")
    now = clock.now()
    with uow:
        item, session = _writable(uow, cmd.principal, cmd.kind, cmd.item_id, for_update=True)
        check_version(item, cmd.expected_version)
        if cmd.kind == "objective" and uow.repo.has_children(item.id):
            raise Conflict("Remove or move its Key Results and child Objectives first.", "objective")
        remove(item, now)
        if cmd.kind == "key_result":
            for initiative in uow.repo.initiatives_of(item.id):  # connections go with it
                initiative.disconnect(item.id, now)
                uow.repo.save_initiative(initiative)
                _event(uow, "checkin.initiative.disconnected", session=session, entity_id=initiative.id,
                       payload=initiative.state(), principal=cmd.principal, at=now)
        _save(uow, cmd.kind, item)
        _event(uow, f"checkin.{cmd.kind}.removed", session=session, entity_id=item.id,
               payload=item.state(), principal=cmd.principal, at=now)
        uow.commit()


def connect(cmd: commands.Connect, *, uow, clock) -> Initiative:
    now = clock.now()
    with uow:
        initiative, session = _writable(uow, cmd.principal, "initiative", cmd.initiative_id, for_update=True)
        if cmd.connected:
            key_result = uow.repo.get_key_result(cmd.key_result_id)
            if key_result is None or key_result.session_id != session.id:
                raise NotFound("Key Result")
            initiative.connect(key_result, now)
        else:
            initiative.disconnect(cmd.key_result_id, now)
        uow.repo.save_initiative(initiative)
        name = "connected" if cmd.connected else "disconnected"
        _event(uow, f"checkin.initiative.{name}", session=session, entity_id=initiative.id,
               payload=initiative.state(), principal=cmd.principal, at=now)
        uow.commit()
    return initiative


# --- Check-ins -------------------------------------------------------------------------------

def record_check_in(cmd: commands.RecordCheckIn, *, uow, clock):
    now = clock.now()
    with uow:
        key_result, session = _writable(uow, cmd.principal, "key_result", cmd.key_result_id, for_update=True)
        entry = _check_in(uow, session, key_result, cmd.principal, now, value=cmd.value, status=cmd.status,
                          confidence=cmd.confidence, comment=cmd.comment)
        uow.commit()
    return entry, key_result


def record_initiative_check_in(cmd: commands.RecordInitiativeCheckIn, *, uow, clock):
    now = clock.now()
    with uow:
        initiative, session = _writable(uow, cmd.principal, "initiative", cmd.initiative_id, for_update=True)
        entry = initiative.check_in(status=cmd.status, comment=cmd.comment,
                                    author_id=_actor(cmd.principal), at=now)
        state = initiative.state()
        uow.repo.save_initiative(initiative)
        _event(uow, "checkin.initiative.checked_in", session=session, entity_id=initiative.id,
               payload={"check_in": entry.state(), "initiative": state}, principal=cmd.principal, at=now)
        uow.commit()
    return entry, initiative


# --- Closing weeks -----------------------------------------------------------------------------

def close_ended_weeks(*, uow, clock, grace_seconds: int) -> int:
    """Emit `week_closed` for every Session week that ended more than `grace_seconds` ago.

    Its sequence number is taken under the Session row's lock, so every event committed before
    it has a lower number: a consumer that has applied all lower numbers has the whole week."""
    now, closed = clock.now(), 0
    with uow:
        sessions = uow.repo.all_sessions()
    for session in sessions:
        with uow:
            marked = uow.repo.marked_weeks(session.id)
            for week in session_weeks(session.start_date, session.end_date, session.week_start_day):
                starts_at, ends_at = week.bounds(session.timezone)
                if (now - ends_at).total_seconds() < grace_seconds:
                    break
                if week.label in marked:
                    continue
                uow.repo.add_week_marker(session.id, week.label, now)
                uow.repo.add_event(Event.new(
                    "checkin.session.week_closed", occurred_at=now, workspace_id=session.workspace_id,
                    session_id=session.id, entity_id=session.id, sequence=uow.repo.next_sequence(session.id),
                    payload={"session_id": session.id, "week": week.label, "starts_at": starts_at,
                             "ends_at": ends_at}))
                closed += 1
            uow.commit()
    return closed


# --- History import --------------------------------------------------------------------------

def import_history(cmd: commands.ImportHistory, *, uow, clock, members) -> Session:
    """A Session's past, replayed in time order in one transaction: every event keeps its
    original time, so the Snapshots of the past weeks fill as if it had happened here."""
    ensure_writable(cmd.principal, cmd.workspace_id, "Workspace")
    if cmd.principal.workspaces.get(str(cmd.workspace_id)) not in ADMINS:
        raise Forbidden("Only a Workspace owner or admin may import history.")
    doc, now = cmd.document, clock.now()
    spec = dict(doc["session"])
    created_at = spec.pop("created_at")
    steps = []  # (time, order, kind, item) - ties keep the document's order, parents first
    for order, (kind, time_key) in enumerate((("objective", "created_at"), ("key_result", "created_at"),
                                              ("initiative", "created_at"), ("check_in", "checked_in_at"))):
        for position, item in enumerate(doc.get(f"{kind}s", [])):
            at = item[time_key]
            if at < created_at or at > now:
                raise DomainError("Times must lie between the Session's creation and now.",
                                  f"{kind}s.{position}.{time_key}")
            steps.append((at, order, position, kind, item))
    steps.sort(key=lambda step: step[:3])
    refs: dict[tuple[str, str], object] = {}

    def ref(kind: str, name: str, where: str):
        try:
            return refs[(kind, name)]
        except KeyError:
            raise DomainError(f"Unknown or later {kind} ref {name!r}.", where) from None

    with uow:
        session = Session(new_id(), cmd.workspace_id, created_at=created_at, updated_at=created_at, **spec)
        named: dict = {}
        for _, _, position, kind, item in steps:
            for field, ids in _people(item).items():
                named.setdefault(f"{kind}s.{position}.{field}", []).extend(ids)
        _check_members(members, cmd.principal, session, named)
        uow.repo.add_session(session)
        _event(uow, "checkin.session.created", session=session, entity_id=session.id,
               payload=session.state(), principal=cmd.principal, at=created_at)
        for at, _, position, kind, item in steps:
            where = f"{kind}s.{position}"
            fields_ = {k: v for k, v in item.items() if k not in ("ref", "created_at", "checked_in_at")}
            if kind == "objective":
                parent = fields_.pop("parent_ref")
                fields_["parent_id"] = ref("objective", parent, where + ".parent_ref").id if parent else None
                new = _new_objective(uow, session, cmd.principal, at, **fields_)
            elif kind == "key_result":
                objective = ref("objective", fields_.pop("objective_ref"), where + ".objective_ref")
                new = _new_key_result(uow, session, objective, cmd.principal, at, **fields_)
            elif kind == "initiative":
                fields_["key_result_ids"] = [ref("key_result", r, where + ".key_result_refs").id
                                             for r in fields_.pop("key_result_refs")]
                new = _new_initiative(uow, session, cmd.principal, at, **fields_)
            else:
                key_result = ref("key_result", fields_.pop("key_result_ref"), where + ".key_result_ref")
                _check_in(uow, session, key_result, cmd.principal, at, **fields_)
                continue
            if (kind, item["ref"]) in refs:
                raise DomainError(f"The ref {item['ref']!r} is used twice.", where + ".ref")
            refs[(kind, item["ref"])] = new
        uow.commit()
    return session


# --- Queries ---------------------------------------------------------------------------------

def get_item(principal: Principal, kind: str, item_id, *, uow):
    with uow:
        return _readable(uow, principal, kind, item_id)[0]


def list_sessions(principal: Principal, workspace_id, *, uow) -> list[Session]:
    ensure_readable(principal, workspace_id, "Workspace")
    with uow:
        return uow.repo.list_sessions(workspace_id)


def _session_items(uow, principal: Principal, session_id):
    session = _readable_session(uow, principal, session_id)
    return (session, uow.repo.list_objectives(session.id), uow.repo.list_key_results(session.id),
            uow.repo.list_initiatives(session.id))


def session_tree(principal: Principal, session_id, *, uow) -> dict:
    with uow:
        session, objectives, key_results, initiatives = _session_items(uow, principal, session_id)
    return views.tree(session, objectives, key_results, initiatives)


def session_list(principal: Principal, session_id, query: views.ListQuery, *, uow) -> dict:
    with uow:
        session, objectives, key_results, initiatives = _session_items(uow, principal, session_id)
    return views.list_items(objectives, key_results, initiatives, query)


def objective_detail(principal: Principal, objective_id, *, uow) -> dict:
    with uow:
        objective, session = _readable(uow, principal, "objective", objective_id)
        key_results = [kr for kr in uow.repo.list_key_results(session.id) if kr.objective_id == objective.id]
    return {"objective": objective, "progress": weighted_progress(key_results), "key_results": key_results}


def key_result_detail(principal: Principal, key_result_id, *, uow) -> dict:
    with uow:
        key_result, _ = _readable(uow, principal, "key_result", key_result_id)
        check_ins, total = uow.repo.list_check_ins(key_result.id, limit=10, offset=0)
        return {"key_result": key_result, "initiatives": uow.repo.initiatives_of(key_result.id),
                "check_ins": check_ins, "check_in_count": total}


def initiative_detail(principal: Principal, initiative_id, *, uow) -> dict:
    with uow:
        initiative, _ = _readable(uow, principal, "initiative", initiative_id)
        key_results = [uow.repo.get_key_result(k) for k in initiative.key_result_ids]
        check_ins, total = uow.repo.list_initiative_check_ins(initiative.id, limit=10, offset=0)
        return {"initiative": initiative, "key_results": [k for k in key_results if k],
                "check_ins": check_ins, "check_in_count": total}


def list_check_ins(principal: Principal, kind: str, item_id, *, uow, limit: int, offset: int):
    with uow:
        item, _ = _readable(uow, principal, kind, item_id)
        if kind == "key_result":
            return uow.repo.list_check_ins(item.id, limit=limit, offset=offset)
        return uow.repo.list_initiative_check_ins(item.id, limit=limit, offset=offset)
