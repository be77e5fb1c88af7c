"""Use cases of the live Session. Each owns one transaction; every change writes its event to
the outbox in that same transaction."""
from __future__ import annotations

import uuid

from services.checkin.domain import commands
from services.checkin.domain.model import KeyResult, Objective, Session, new_id
from shared.access import NotFound, ensure_readable, ensure_writable
from shared.events import Event
from shared.tokens import Principal


def _event(uow, name: str, *, session: Session, entity_id, payload: dict, principal: Principal, at) -> None:
    uow.repo.add_event(Event.new(
        name, occurred_at=at, workspace_id=session.workspace_id, session_id=session.id,
        entity_id=entity_id, sequence=uow.repo.next_sequence(session.id),
        actor_id=uuid.UUID(principal.user_id) if principal.user_id else None, payload=payload,
    ))


def create_session(cmd: commands.CreateSession, *, uow, clock) -> Session:
    ensure_writable(cmd.principal, cmd.workspace_id, "Workspace")
    now = clock.now()
    session = Session(new_id(), cmd.workspace_id, cmd.name, cmd.start_date, cmd.end_date,
                      cmd.timezone, cmd.week_start_day, created_at=now)
    with uow:
        uow.repo.add_session(session)
        _event(uow, "checkin.session.created", session=session, entity_id=session.id,
               payload=session.state(), principal=cmd.principal, at=now)
        uow.commit()
    return session


def _readable_session(uow, principal: Principal, session_id) -> Session:
    session = uow.repo.get_session(session_id)
    if session is None:
        raise NotFound("Session")
    ensure_readable(principal, session.workspace_id, "Session")
    return session


def add_objective(cmd: commands.AddObjective, *, uow, clock) -> Objective:
    now = clock.now()
    with uow:
        session = _readable_session(uow, cmd.principal, cmd.session_id)
        ensure_writable(cmd.principal, session.workspace_id, "Session")
        if cmd.parent_id is not None:
            parent = uow.repo.get_objective(cmd.parent_id)
            if parent is None or parent.session_id != session.id:
                raise NotFound("Parent Objective")
        objective = Objective(new_id(), session.id, session.workspace_id, cmd.title,
                              cmd.owner_id, cmd.parent_id, created_at=now)
        uow.repo.add_objective(objective)
        _event(uow, "checkin.objective.created", session=session, entity_id=objective.id,
               payload=objective.state(), principal=cmd.principal, at=now)
        uow.commit()
    return objective


def add_key_result(cmd: commands.AddKeyResult, *, uow, clock) -> KeyResult:
    now = clock.now()
    with uow:
        objective = uow.repo.get_objective(cmd.objective_id)
        if objective is None:
            raise NotFound("Objective")
        session = _readable_session(uow, cmd.principal, objective.session_id)
        ensure_writable(cmd.principal, session.workspace_id, "Objective")
        current = cmd.start_value if cmd.current_value is None else cmd.current_value
        key_result = KeyResult(new_id(), objective.id, session.id, session.workspace_id, cmd.title,
                               cmd.start_value, cmd.target_value, current, cmd.unit,
                               owner_id=cmd.owner_id, created_at=now, updated_at=now)
        uow.repo.add_key_result(key_result)
        _event(uow, "checkin.key_result.created", session=session, entity_id=key_result.id,
               payload=key_result.state(), principal=cmd.principal, at=now)
        uow.commit()
    return key_result


def record_check_in(cmd: commands.RecordCheckIn, *, uow, clock):
    now = clock.now()
    with uow:
        key_result = uow.repo.get_key_result(cmd.key_result_id, for_update=True)
        if key_result is None:
            raise NotFound("Key Result")
        session = _readable_session(uow, cmd.principal, key_result.session_id)
        ensure_writable(cmd.principal, session.workspace_id, "Key Result")
        author = uuid.UUID(cmd.principal.user_id) if cmd.principal.user_id else None
        entry = key_result.check_in(value=cmd.value, status=cmd.status, comment=cmd.comment,
                                    author_id=author, at=now)
        state = key_result.state()
        uow.repo.save_key_result(key_result)
        _event(uow, "checkin.key_result.checked_in", session=session, entity_id=key_result.id,
               payload={"check_in": entry.state(), "key_result": state},
               principal=cmd.principal, at=now)
        uow.commit()
    return entry, key_result


# --- queries ------------------------------------------------------------------------------

def get_session(principal: Principal, session_id, *, uow) -> Session:
    with uow:
        return _readable_session(uow, principal, session_id)


def list_sessions(principal: Principal, workspace_id, *, uow) -> list[Session]:
    ensure_readable(principal, workspace_id, "Workspace")
    with uow:
        return uow.repo.list_sessions(workspace_id)


def session_tree(principal: Principal, session_id, *, uow) -> tuple[Session, list[Objective], list[KeyResult]]:
    with uow:
        session = _readable_session(uow, principal, session_id)
        return session, uow.repo.list_objectives(session.id), uow.repo.list_key_results(session.id)


def get_key_result(principal: Principal, key_result_id, *, uow) -> KeyResult:
    with uow:
        key_result = uow.repo.get_key_result(key_result_id)
        if key_result is None:
            raise NotFound("Key Result")
        _readable_session(uow, principal, key_result.session_id)
        return key_result


def list_check_ins(principal: Principal, key_result_id, *, uow, limit: int, offset: int):
    with uow:
        key_result = uow.repo.get_key_result(key_result_id)
        if key_result is None:
            raise NotFound("Key Result")
        _readable_session(uow, principal, key_result.session_id)
        return uow.repo.list_check_ins(key_result_id, limit=limit, offset=offset)
