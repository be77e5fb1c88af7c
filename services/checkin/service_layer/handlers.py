"""Use cases of the live Session. Each owns one transaction; every change writes one event with
the entity's full new state to the outbox in that same transaction."""
from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

from services.checkin.domain import commands, views, wire
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
from shared import access
from shared.access import (
    AccessDenied,
    Decision,
    NotFound,
    ensure,
    item_facts,
    private_guards,
    session_facts,
    visible_items,
)
from shared.events import Event
from shared.tokens import Principal
from shared.weeks import session_weeks

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
    ensure(principal, access.VIEW, "Session", workspace_id=session.workspace_id, session=session_facts(session))
    return session


def _get(uow, kind: str, item_id, *, for_update: bool = False):
    getter = {"session": uow.repo.get_session, "objective": uow.repo.get_objective,
              "key_result": uow.repo.get_key_result, "initiative": uow.repo.get_initiative}[kind]
    item = getter(item_id, for_update=for_update)
    if item is None:
        raise NotFound(KIND_NAMES[kind])
    return item


def _facts(uow, principal: Principal, kind: str, item, session: Session):
    """What `decide` needs to know of an item: its owner, the private Objectives above it, its
    canvas. An Initiative is seen through the Key Results it connects to (any one will do)."""
    if kind == "session":
        return None
    if kind in ("objective", "key_result"):
        objective_id = item.id if kind == "objective" else item.objective_id
        guards = private_guards(uow.repo.objective_lineage(objective_id))  # not the whole Session
        return item_facts(item.owner_id, guards.get(str(objective_id), ()))
    connected = [kr for kr in (uow.repo.get_key_result(k) for k in item.key_result_ids) if kr is not None]
    seen = visible_items(principal, session_facts(session), [], connected, [item],
                         privacy_objectives=uow.repo.list_objectives(session.id))
    if str(item.id) not in seen.initiatives:
        return access.ItemFacts(item.owner_id and str(item.owner_id), reachable=False)
    return item_facts(item.owner_id, (), item.canvas)


def _allowed(uow, principal: Principal, action: str, kind: str, item_id, *, for_update: bool = False):
    """The item and its Session, if `decide` allows the action; anything the principal may not
    see is "not found" under the item's own name, so a foreign id and an unknown one answer alike."""
    item = _get(uow, kind, item_id, for_update=for_update)
    session = item if kind == "session" else uow.repo.get_session(item.session_id)
    if session is None:
        raise NotFound(KIND_NAMES[kind])
    _ensure(principal, action, kind, session, _facts(uow, principal, kind, item, session))
    return item, session


def _ensure(principal: Principal, action: str, kind: str, session: Session, item=None) -> None:
    try:
        ensure(principal, action, KIND_NAMES[kind], workspace_id=session.workspace_id,
               session=session_facts(session), item=item)
    except AccessDenied as denied:
        if denied.decision.reason == "archived":
            session.ensure_editable()  # 409 naming the Session
        raise


def _readable(uow, principal: Principal, kind: str, item_id, *, for_update: bool = False):
    return _allowed(uow, principal, access.VIEW, kind, item_id, for_update=for_update)


def _writable(uow, principal: Principal, kind: str, item_id, *, for_update: bool = False,
              action: str = access.EDIT):
    return _allowed(uow, principal, action, kind, item_id, for_update=for_update)


def _adding_to(uow, principal: Principal, kind: str, item_id):
    """Adding an item to a Session or under an Objective: the parent must be seen, and the
    principal's role must allow changes to the (unarchived) Session."""
    item, session = _readable(uow, principal, kind, item_id)
    _ensure(principal, access.EDIT, kind, session)
    return item, session


def _visible_key_result(uow, principal: Principal, session: Session, key_result_id) -> KeyResult:
    key_result = uow.repo.get_key_result(key_result_id)
    if key_result is None or key_result.session_id != session.id:
        raise NotFound("Key Result")
    guards = private_guards(uow.repo.objective_lineage(key_result.objective_id))
    if not access.can(principal, access.VIEW, workspace_id=session.workspace_id, session=session_facts(session),
                      item=item_facts(key_result.owner_id, guards.get(str(key_result.objective_id), ()))):
        raise NotFound("Key Result")
    return key_result


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


def _check_visible_parent(uow, principal: Principal, session: Session, parent_id) -> None:
    """A parent the principal cannot see answers like one that does not exist."""
    if parent_id is None:
        return
    parent = uow.repo.get_objective(parent_id)
    guards = private_guards(uow.repo.list_objectives(session.id))
    if parent is None or parent.session_id != session.id or not access.can(
            principal, access.VIEW, workspace_id=session.workspace_id, session=session_facts(session),
            item=item_facts(parent.owner_id, guards.get(str(parent.id), ()))):
        raise DomainError("The parent Objective is not in this Session.", "parent_id")


def _check_leaving_privacy(uow, principal: Principal, session: Session, objective: Objective) -> None:
    """Moving an Objective out from under a private one would show it (and its past weeks) to
    everyone: only the private Objective's owner or an admin may do that."""
    if objective.parent_id is None:
        return
    for guard in private_guards(uow.repo.list_objectives(session.id)).get(str(objective.parent_id), ()):
        if principal.role_in(session.workspace_id) not in access.ADMINS and str(principal.user_id) != guard.owner_id:
            raise AccessDenied(Decision(False, "leaves_private"), "Objective")


def _ensure_admin(principal: Principal, session: Session, reason: str, kind: str) -> None:
    if principal.role_in(session.workspace_id) not in access.ADMINS:
        raise AccessDenied(Decision(False, reason), kind)


def _check_privacy_change(principal: Principal, session: Session, objective: Objective, changes: dict) -> None:
    """Who sees an Objective (`private`, `visible_to`) is changed by its owner or an admin only,
    whoever else may edit it (a member listed on an unassigned private Objective may edit its
    title, not open it to everyone). Handing a private Objective to another owner hands on that
    control, so it takes the same."""
    changed = ("private" in changes and bool(changes["private"]) != objective.private) or \
        ("visible_to" in changes and {str(v) for v in changes["visible_to"] or ()}
         != {str(v) for v in objective.visible_to}) or \
        (objective.private and "owner_id" in changes and changes["owner_id"] != objective.owner_id)
    if not changed or principal.role_in(session.workspace_id) in access.ADMINS:
        return
    if objective.owner_id is None or str(objective.owner_id) != str(principal.user_id):
        raise AccessDenied(Decision(False, "privacy_owner"), "Objective")


CALENDAR_FIELDS = ("start_date", "end_date", "timezone", "week_start_day")


def _calendar(session: Session) -> tuple:
    return tuple(getattr(session, name) for name in CALENDAR_FIELDS)


def _calendar_changes(session: Session, changes: dict) -> bool:
    return any(name in changes and changes[name] != getattr(session, name) for name in CALENDAR_FIELDS)


def _keep_sealed_weeks(sealed: set[str], before: tuple, session: Session) -> None:
    """A Session's sealed weeks stay its weeks, with the same bounds, whatever its new dates:
    a sealed week never changes, and must stay readable."""
    if not sealed:
        return
    start, end, tz, week_start = before
    old = {w.label: w.bounds(tz) for w in session_weeks(start, end, week_start) if w.label in sealed}
    new = {w.label: w.bounds(session.timezone)
           for w in session_weeks(session.start_date, session.end_date, session.week_start_day)}
    for label in sorted(old):
        if new.get(label) != old[label]:
            field = next((name for name, a, b in zip(CALENDAR_FIELDS, before, _calendar(session)) if a != b),
                         "start_date")
            raise Conflict(f"The week {label} is sealed: the Session's dates, timezone and week start day must "
                           "keep every sealed week as it is.", field)


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
    if "members" in fields_:
        named["members"] = list(fields_["members"] or [])
    if "visible_to" in fields_:
        named["visible_to"] = list(fields_["visible_to"] or [])
    if fields_.get("author_id"):
        named["author_id"] = [fields_["author_id"]]
    if fields_.get("canvas"):
        named["canvas.access"] = list(fields_["canvas"].get("access") or [])
    return named


def _canvas(value: dict | None) -> Canvas | None:
    return Canvas(value["title"], value["url"], list(value.get("access") or [])) if value else None


# --- Sessions ------------------------------------------------------------------------------

def create_session(cmd: commands.CreateSession, *, uow, clock, members=None) -> Session:
    ensure(cmd.principal, access.CREATE_SESSION, "Workspace", workspace_id=cmd.workspace_id)
    if cmd.visibility != "workspace" or cmd.members:
        ensure(cmd.principal, access.RESTRICT, "Workspace", workspace_id=cmd.workspace_id)
    now = clock.now()
    session = Session(new_id(), cmd.workspace_id, cmd.name, cmd.start_date, cmd.end_date, cmd.timezone,
                      cmd.week_start_day, cmd.checkin_cadence, cmd.checkin_weekday,
                      visibility=cmd.visibility, members=list(cmd.members), created_at=now, updated_at=now)
    if members is not None and cmd.members:
        _check_members(members, cmd.principal, session, {"members": cmd.members})
    with uow:
        uow.repo.add_session(session)
        _event(uow, "checkin.session.created", session=session, entity_id=session.id,
               payload=session.state(), principal=cmd.principal, at=now)
        uow.commit()
    return session


def archive_session(cmd: commands.ArchiveSession, *, uow, clock) -> Session:
    now = clock.now()
    with uow:
        session, _ = _writable(uow, cmd.principal, "session", cmd.session_id, for_update=True,
                               action=access.ARCHIVE)
        session.archive(now)
        uow.repo.save_session(session)
        _event(uow, "checkin.session.archived", session=session, entity_id=session.id,
               payload=session.state(), principal=cmd.principal, at=now)
        uow.commit()
    return session


# --- Adding items ----------------------------------------------------------------------------
# The _new_* functions work inside a caller's transaction (a request); a history import builds
# the same items with the pure _objective / _key_result / _initiative and writes them in bulk.

def _objective(session: Session, at: datetime, *, title: str, description: str = "", owner_id=None,
               parent_id=None, private: bool = False, visible_to=()) -> Objective:
    return Objective(new_id(), session.id, session.workspace_id, title, description, owner_id,
                     parent_id, private, list(visible_to), created_at=at, updated_at=at)


def _key_result(session: Session, objective: Objective, at: datetime, *, title: str, start_value: float = 0.0,
                target_value: float = 1.0, current_value: float | None = None, unit: str = "",
                kind: str = "metric", owner_id=None, status: str = "not_started", confidence: int | None = None,
                weight: float = 1.0) -> KeyResult:
    if current_value is None:
        current_value = 0.0 if kind == "milestone" else start_value
    return KeyResult(new_id(), objective.id, session.id, session.workspace_id, title, start_value,
                     target_value, current_value, unit, kind, status, confidence, weight, owner_id,
                     created_at=at, updated_at=at)


def _initiative(session: Session, at: datetime, *, title: str, status: str = "not_started", owner_id=None,
                canvas: dict | None = None, key_result_ids=()) -> Initiative:
    """`key_result_ids`: Key Results of this Session (the caller has checked)."""
    return Initiative(new_id(), session.id, session.workspace_id, title, status, owner_id, _canvas(canvas),
                      created_at=at, updated_at=at, key_result_ids=list(dict.fromkeys(key_result_ids)))


def _new_objective(uow, session: Session, principal: Principal, at: datetime, **fields_) -> Objective:
    objective = _objective(session, at, **fields_)
    _check_parent(uow, session, objective.id, objective.parent_id)
    uow.repo.add_objective(objective)
    _event(uow, "checkin.objective.created", session=session, entity_id=objective.id,
           payload=objective.state(), principal=principal, at=at)
    return objective


def _new_key_result(uow, session: Session, objective: Objective, principal: Principal, at: datetime,
                    **fields_) -> KeyResult:
    key_result = _key_result(session, objective, at, **fields_)
    uow.repo.add_key_result(key_result)
    _event(uow, "checkin.key_result.created", session=session, entity_id=key_result.id,
           payload=key_result.state(), principal=principal, at=at)
    return key_result


def _new_initiative(uow, session: Session, principal: Principal, at: datetime, *, key_result_ids=(),
                    **fields_) -> Initiative:
    initiative = _initiative(session, at, key_result_ids=key_result_ids, **fields_)
    for key_result_id in initiative.key_result_ids:
        key_result = uow.repo.get_key_result(key_result_id)
        if key_result is None or key_result.session_id != session.id:
            raise DomainError("The Key Result is not in this Session.", "key_result_ids")
    uow.repo.add_initiative(initiative)
    _event(uow, "checkin.initiative.created", session=session, entity_id=initiative.id,
           payload=initiative.state(), principal=principal, at=at)
    return initiative


def add_objective(cmd: commands.AddObjective, *, uow, clock, members) -> Objective:
    now = clock.now()
    with uow:
        session, _ = _adding_to(uow, cmd.principal, "session", cmd.session_id)
        _check_members(members, cmd.principal, session, {"owner_id": [cmd.owner_id], "visible_to": cmd.visible_to})
        _check_visible_parent(uow, cmd.principal, session, cmd.parent_id)
        objective = _new_objective(uow, session, cmd.principal, now, title=cmd.title,
                                   description=cmd.description, owner_id=cmd.owner_id,
                                   parent_id=cmd.parent_id, private=cmd.private, visible_to=cmd.visible_to)
        uow.commit()
    return objective


def add_key_result(cmd: commands.AddKeyResult, *, uow, clock, members) -> KeyResult:
    now = clock.now()
    with uow:
        objective, session = _adding_to(uow, cmd.principal, "objective", cmd.objective_id)
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
        session, _ = _adding_to(uow, cmd.principal, "session", cmd.session_id)
        _check_members(members, cmd.principal, session, _people({"owner_id": cmd.owner_id, "canvas": cmd.canvas}))
        for position, key_result_id in enumerate(cmd.key_result_ids):
            try:
                _visible_key_result(uow, cmd.principal, session, key_result_id)
            except AccessDenied:
                raise DomainError("No such Key Result in this Session.", f"key_result_ids.{position}") from None
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
        if cmd.kind == "session" and set(changes) & set(Session.ACCESS_FIELDS):
            ensure(cmd.principal, access.RESTRICT, "Session", workspace_id=session.workspace_id,
                   session=session_facts(session))
        _check_members(members, cmd.principal, session, _people(changes))
        if cmd.kind == "objective" and "parent_id" in changes:
            _check_visible_parent(uow, cmd.principal, session, changes["parent_id"])
            _check_parent(uow, session, item.id, changes["parent_id"])
            _check_leaving_privacy(uow, cmd.principal, session, item)
        if cmd.kind == "initiative" and "owner_id" in changes and item.canvas is not None:
            # Owning an Initiative opens its canvas: only someone who may open it hands it on.
            _ensure(cmd.principal, access.OPEN_CANVAS, "initiative", session,
                    item_facts(item.owner_id, (), item.canvas))
        if cmd.kind == "objective":
            _check_privacy_change(cmd.principal, session, item, changes)
        if cmd.kind == "initiative" and "canvas" in changes and item.canvas is not None:
            # Replacing or removing a canvas (its link and access list) takes canvas permission:
            # otherwise a member could point it elsewhere, or rewrite who may open it.
            _ensure(cmd.principal, access.OPEN_CANVAS, "initiative", session,
                    item_facts(item.owner_id, (), item.canvas))
        if cmd.kind == "initiative" and "canvas" in changes:
            changes["canvas"] = _canvas(changes["canvas"])
        calendar_before = _calendar(item) if cmd.kind == "session" else None
        if cmd.kind == "session" and _calendar_changes(item, changes):
            sealed = uow.repo.marked_weeks(session.id)
            if sealed:
                _ensure_admin(cmd.principal, session, "sealed_calendar", "Session")
        item.update(changes, now)
        if cmd.kind == "session" and _calendar(item) != calendar_before:
            _keep_sealed_weeks(uow.repo.marked_weeks(session.id), calendar_before, item)
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
            initiative.connect(_visible_key_result(uow, cmd.principal, session, cmd.key_result_id),
                               now)
        else:  # a hidden Key Result answers like an unknown one, connected or not
            _visible_key_result(uow, cmd.principal, session, cmd.key_result_id)
            initiative.disconnect(cmd.key_result_id, now)
        uow.repo.save_initiative(initiative)
        name = "connected" if cmd.connected else "disconnected"
        _event(uow, f"checkin.initiative.{name}", session=session, entity_id=initiative.id,
               payload=initiative.state(), principal=cmd.principal, at=now)
        uow.commit()
    return initiative


# --- Check-ins -------------------------------------------------------------------------------

def record_check_in(cmd: commands.RecordCheckIn, *, uow, clock):
    """One read (the Key Result locked, its Session, its lineage) and one write (Key Result,
    Check-in, sequence, outbox): the same two statements whatever the Session's size (issue 13)."""
    now = clock.now()
    with uow:
        key_result, session, lineage = uow.repo.check_in_context(cmd.key_result_id)
        if key_result is None or session is None:
            raise NotFound("Key Result")
        guards = private_guards(lineage).get(str(key_result.objective_id), ())
        _ensure(cmd.principal, access.CHECK_IN, "key_result", session, item_facts(key_result.owner_id, guards))
        entry = key_result.check_in(value=cmd.value, status=cmd.status, confidence=cmd.confidence,
                                    comment=cmd.comment, author_id=_actor(cmd.principal), at=now)
        uow.repo.save_check_in(key_result, wire.checked_in_event(entry, key_result, actor_id=_actor(cmd.principal)))
        uow.commit()
    return entry, key_result


def record_initiative_check_in(cmd: commands.RecordInitiativeCheckIn, *, uow, clock):
    now = clock.now()
    with uow:
        initiative, session = _writable(uow, cmd.principal, "initiative", cmd.initiative_id, for_update=True,
                                        action=access.CHECK_IN)
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

IMPORT_BATCH = 5_000  # events per bulk write: a document of any size is held in memory once, not twice


class _History:
    """A history import's writes, in bulk and in order: each batch writes its items before the
    Check-ins and events that name them. Sequence numbers are counted here - the Session is new
    and not yet committed, so nobody else numbers its events - and stored once at the end, and
    a Key Result is written once and saved once more at the end if Check-ins changed it since:
    no statement per item, none that re-reads, none that updates one row over and over (each
    UPDATE of a row in one transaction leaves a version the next one walks past)."""

    def __init__(self, repo, session: Session, principal: Principal):
        self.repo, self.session, self.principal = repo, session, principal
        self.actor = _actor(principal)  # parsed once, not once per event
        self.sequence = 0
        self.items: dict[str, list] = {"objectives": [], "key_results": [], "initiatives": [], "check_ins": []}
        self.events: list[Event] = []
        self.written: dict = {}  # Key Result id -> (the Key Result, its version as written)

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    def add(self, kind: str, item, name: str, at: datetime) -> None:
        self.items[kind].append(item)
        if kind == "key_results":  # the most numerous items: their state in wire form directly
            self.event(wire.key_result_event(name, item, at=at, actor_id=self.actor,
                                             sequence=self.next_sequence()))
            return
        self.event(Event.new(name, occurred_at=at, workspace_id=self.session.workspace_id,
                             session_id=self.session.id, entity_id=item.id, sequence=self.next_sequence(),
                             actor_id=self.actor, payload=item.state()))

    def check_in(self, key_result: KeyResult, at: datetime, *, value: float, status: str,
                 confidence: int | None = None, comment: str = "", author_id=None) -> None:
        """`author_id`: who made it (a member, checked by the caller); default the importer."""
        entry = key_result.check_in(value=value, status=status, confidence=confidence, comment=comment,
                                    author_id=author_id or self.actor, at=at)
        key_result.check_ins.clear()  # written with this batch, not with the Key Result
        self.items["check_ins"].append(entry)
        self.event(wire.checked_in_event(entry, key_result, actor_id=self.actor,
                                         sequence=self.next_sequence()))

    def event(self, event: Event) -> None:
        self.events.append(event)
        if len(self.events) >= IMPORT_BATCH:
            self.flush()

    def flush(self) -> None:
        self.repo.add_history(events=self.events, **self.items)
        self.written.update((k.id, (k, k.version)) for k in self.items["key_results"])
        self.events = []
        self.items = {kind: [] for kind in self.items}

    def finish(self) -> None:
        self.flush()
        self.repo.save_checked_in([k for k, version in self.written.values() if k.version != version])
        self.repo.set_last_sequence(self.session.id, self.sequence)


def import_history(cmd: commands.ImportHistory, *, uow, clock, members) -> Session:
    """A Session's past, replayed in time order in one transaction: every event keeps its
    original time, so the Snapshots of the past weeks fill as if it had happened here. Written
    in bulk (see _History): its time grows with the document's size, linearly (issue 13)."""
    ensure(cmd.principal, access.IMPORT, "Workspace", workspace_id=cmd.workspace_id)
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
        history = _History(uow.repo, session, cmd.principal)
        history.event(Event.new("checkin.session.created", occurred_at=created_at, workspace_id=session.workspace_id,
                                session_id=session.id, entity_id=session.id, sequence=history.next_sequence(),
                                actor_id=_actor(cmd.principal), payload=session.state()))
        for at, _, position, kind, item in steps:
            where = f"{kind}s.{position}"
            fields_ = {k: v for k, v in item.items() if k not in ("ref", "created_at", "checked_in_at")}
            if kind == "check_in":
                key_result = ref("key_result", fields_.pop("key_result_ref"), where + ".key_result_ref")
                history.check_in(key_result, at, **fields_)
                continue
            if (kind, item["ref"]) in refs:
                raise DomainError(f"The ref {item['ref']!r} is used twice.", where + ".ref")
            if kind == "objective":
                # Its parent came earlier in this document: same Session, and no cycle possible.
                parent = fields_.pop("parent_ref")
                fields_["parent_id"] = ref("objective", parent, where + ".parent_ref").id if parent else None
                new = _objective(session, at, **fields_)
            elif kind == "key_result":
                new = _key_result(session, ref("objective", fields_.pop("objective_ref"), where + ".objective_ref"),
                                  at, **fields_)
            else:
                fields_["key_result_ids"] = [ref("key_result", r, where + ".key_result_refs").id
                                             for r in fields_.pop("key_result_refs")]
                new = _initiative(session, at, **fields_)
            history.add(f"{kind}s", new, f"checkin.{kind}.created", at)
            refs[(kind, item["ref"])] = new
        history.finish()
        uow.commit()
    return session


# --- Queries ---------------------------------------------------------------------------------

def get_item(principal: Principal, kind: str, item_id, *, uow):
    with uow:
        return _readable(uow, principal, kind, item_id)[0]


def list_sessions(principal: Principal, workspace_id, *, uow) -> list[Session]:
    ensure(principal, access.VIEW, "Workspace", workspace_id=workspace_id)
    with uow:
        return [s for s in uow.repo.list_sessions(workspace_id)
                if access.can(principal, access.VIEW, workspace_id=workspace_id, session=session_facts(s))]


def _present(initiative: Initiative, seen: access.Visibility) -> Initiative:
    """An Initiative as this principal may see it: connections to hidden Key Results left out,
    the canvas link only with canvas permission."""
    canvas = initiative.canvas
    if canvas is not None:
        opens = str(initiative.id) in seen.canvases
        canvas = {"title": canvas.title, "url": canvas.url if opens else None,
                  "access": list(canvas.access) if opens else [], "can_open": opens}
    return replace(initiative, canvas=canvas,
                   key_result_ids=[k for k in initiative.key_result_ids if str(k) in seen.key_results])


def _session_items(uow, principal: Principal, session_id):
    """The Session and the items of it the principal may see."""
    session = _readable_session(uow, principal, session_id)
    objectives = uow.repo.list_objectives(session.id)
    key_results = uow.repo.list_key_results(session.id)
    initiatives = uow.repo.list_initiatives(session.id)
    seen = visible_items(principal, session_facts(session), objectives, key_results, initiatives)
    return (session, [o for o in objectives if str(o.id) in seen.objectives],
            [k for k in key_results if str(k.id) in seen.key_results],
            [_present(i, seen) for i in initiatives if str(i.id) in seen.initiatives])


def session_tree(principal: Principal, session_id, *, uow) -> dict:
    with uow:
        session, objectives, key_results, initiatives = _session_items(uow, principal, session_id)
    return views.tree(session, objectives, key_results, initiatives)


def session_canvases(principal: Principal, session_id, *, uow) -> list[dict]:
    """The canvases of the Session's Initiatives as the principal sees them (the link only with
    canvas permission): what a Snapshot page needs, without reading the whole tree."""
    with uow:
        session = _readable_session(uow, principal, session_id)
        if not any(i.canvas is not None for i in uow.repo.list_initiatives(session.id)):
            return []  # most Sessions: no canvas, no need to judge every item's visibility
        _session, _objectives, _key_results, initiatives = _session_items(uow, principal, session_id)
    return [{"initiative_id": i.id, "title": i.canvas["title"], "url": i.canvas["url"], "can_open": i.canvas["can_open"]}
            for i in initiatives if i.canvas is not None]


def session_list(principal: Principal, session_id, query: views.ListQuery, *, uow) -> dict:
    with uow:
        session, objectives, key_results, initiatives = _session_items(uow, principal, session_id)
    return views.list_items(objectives, key_results, initiatives, query)


def _seen(uow, principal: Principal, session: Session, key_results, initiatives) -> access.Visibility:
    return visible_items(principal, session_facts(session), [], key_results, initiatives,
                         privacy_objectives=uow.repo.list_objectives(session.id))


def objective_detail(principal: Principal, objective_id, *, uow) -> dict:
    with uow:
        objective, session = _readable(uow, principal, "objective", objective_id)
        # Key Results share their Objective's visibility: whoever sees it sees them.
        key_results = [kr for kr in uow.repo.list_key_results(session.id) if kr.objective_id == objective.id]
    return {"objective": objective, "progress": weighted_progress(key_results), "key_results": key_results}


def key_result_detail(principal: Principal, key_result_id, *, uow) -> dict:
    with uow:
        key_result, session = _readable(uow, principal, "key_result", key_result_id)
        check_ins, total = uow.repo.list_check_ins(key_result.id, limit=10, offset=0)
        initiatives = uow.repo.initiatives_of(key_result.id)
        connected = {k for i in initiatives for k in i.key_result_ids}
        seen = _seen(uow, principal, session, [k for k in map(uow.repo.get_key_result, connected) if k],
                     initiatives)
        return {"key_result": key_result, "initiatives": [_present(i, seen) for i in initiatives],
                "check_ins": check_ins, "check_in_count": total}


def initiative_detail(principal: Principal, initiative_id, *, uow) -> dict:
    with uow:
        initiative, session = _readable(uow, principal, "initiative", initiative_id)
        key_results = [k for k in map(uow.repo.get_key_result, initiative.key_result_ids) if k]
        seen = _seen(uow, principal, session, key_results, [initiative])
        check_ins, total = uow.repo.list_initiative_check_ins(initiative.id, limit=10, offset=0)
        return {"initiative": _present(initiative, seen),
                "key_results": [k for k in key_results if str(k.id) in seen.key_results],
                "check_ins": check_ins, "check_in_count": total}


def open_canvas(principal: Principal, initiative_id, *, uow) -> dict:
    """An Initiative's canvas link: 403 that says so without canvas permission (the Initiative
    itself stays visible wherever its Key Results are)."""
    with uow:
        initiative, _ = _allowed(uow, principal, access.OPEN_CANVAS, "initiative", initiative_id)
    if initiative.canvas is None:
        raise NotFound("Canvas")
    return {"initiative_id": initiative.id, **initiative.canvas.state()}


def present_initiative(principal: Principal, initiative: Initiative, *, uow) -> Initiative:
    """A changed Initiative as its editor may see it (the canvas link needs canvas permission)."""
    with uow:
        session = uow.repo.get_session(initiative.session_id)
        key_results = [k for k in map(uow.repo.get_key_result, initiative.key_result_ids) if k]
        return _present(initiative, _seen(uow, principal, session, key_results, [initiative]))


# --- Explaining access -----------------------------------------------------------------------

EXPLAIN_KINDS = {"session": "session", "objective": "objective", "key_result": "key_result",
                 "initiative": "initiative", "canvas": "initiative"}


def explain_access(principal: Principal, resource: str, *, uow) -> dict:
    """Why the principal can or cannot see and change a resource. Someone outside its Workspace
    learns nothing, not even that it exists: they get the answer an unknown id gets."""
    kind, _, raw_id = resource.partition(":")
    unknown = {"resource": resource, "can_view": False, "can_check_in": False, "can_edit": False,
               "can_open_canvas": None, "reasons": [{"code": "not_found", "message":
                   "Nothing by that id is visible to you: it does not exist, or you are not a member of "
                   "its Workspace."}]}
    try:
        item_id = uuid.UUID(raw_id)
    except ValueError:
        return unknown

    def reason(decision: Decision) -> list[dict]:
        return [] if decision.allowed else [{"code": decision.reason, "message": decision.message}]

    with uow:
        if kind == "workspace":
            decision = access.decide(principal, access.VIEW, workspace_id=item_id)
            if decision.reason == "not_member":
                return unknown
            edit = access.decide(principal, access.CREATE_SESSION, workspace_id=item_id)
            return {"resource": resource, "can_view": decision.allowed, "can_check_in": edit.allowed,
                    "can_edit": edit.allowed, "can_open_canvas": None, "reasons": reason(decision) or reason(edit)}
        entity_kind = EXPLAIN_KINDS[kind]
        try:
            item = _get(uow, entity_kind, item_id)
        except AccessDenied:
            return unknown
        session = item if entity_kind == "session" else uow.repo.get_session(item.session_id)
        if session is None:
            return unknown
        facts = dict(workspace_id=session.workspace_id, session=session_facts(session),
                     item=_facts(uow, principal, entity_kind, item, session))
        view = access.decide(principal, access.VIEW, **facts)
        if view.reason in ("not_member", "not_signed_in"):
            return unknown
        edit = access.decide(principal, access.EDIT, **facts)
        check_in = access.decide(principal, access.CHECK_IN, **facts)
        canvas = None
        if entity_kind == "initiative":
            canvas = access.decide(principal, access.OPEN_CANVAS, **facts)
            if kind == "canvas" and item.canvas is None:
                return unknown
        reasons = reason(view) or (reason(canvas) if kind == "canvas" and canvas else []) \
            or reason(edit) or reason(check_in)
        return {"resource": resource, "can_view": view.allowed, "can_check_in": check_in.allowed,
                "can_edit": edit.allowed, "can_open_canvas": canvas.allowed if canvas else None,
                "reasons": reasons}


def list_check_ins(principal: Principal, kind: str, item_id, *, uow, limit: int, offset: int):
    with uow:
        item, _ = _readable(uow, principal, kind, item_id)
        if kind == "key_result":
            return uow.repo.list_check_ins(item.id, limit=limit, offset=offset)
        return uow.repo.list_initiative_check_ins(item.id, limit=limit, offset=offset)
