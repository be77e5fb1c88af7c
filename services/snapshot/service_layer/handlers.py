"""Use cases of the snapshot service: apply the live Session's events, answer week views."""
from __future__ import annotations

from services.snapshot.domain.views import OwnerFilter, build_tree, week_status
from services.snapshot.domain.weeks import InvalidWeek, Week, session_weeks
from shared.access import NotFound, ensure_readable
from shared.events import Event
from shared.messaging import RetryLater
from shared.tokens import Principal

SESSION_EVENTS = ("checkin.session.created", "checkin.session.updated", "checkin.session.archived")


class SessionNotYetKnown(RetryLater):
    """An item event arrived before its Session's: retried (requeued) until it is known."""


class WeekOutsideSession(Exception):
    pass


def apply_event(event: Event, *, uow, clock) -> bool:
    """Apply one event with its processed-event record in one transaction. Returns False for a
    duplicate (already applied), which changes nothing."""
    payload = event.load_payload()
    with uow:
        if uow.repo.already_processed(event.event_id):
            return False
        if event.event_type in SESSION_EVENTS:
            uow.repo.put_session(payload)
            session = uow.repo.get_session(payload["id"])
        else:
            session = uow.repo.get_session(event.session_id)
            if session is None:
                raise SessionNotYetKnown(str(event.session_id))
            _, entity_type, action = event.event_type.split(".")
            wire = event.payload  # stored as on the wire: JSON-ready strings
            _add_version(uow, event, entity_type, wire[entity_type] if action == "checked_in" else wire)
            if event.event_type == "checkin.key_result.checked_in":
                uow.repo.add_check_in(event.session_id, payload["check_in"])
        week = Week.of_instant(event.occurred_at, session["timezone"], session["week_start_day"])
        uow.repo.count_activity(event.session_id or payload["id"], week.label)
        uow.repo.mark_processed(event.event_id, clock.now())
        uow.commit()
    return True


def _add_version(uow, event: Event, entity_type: str, state: dict) -> None:
    uow.repo.add_version(session_id=event.session_id, entity_type=entity_type,
                         entity_id=event.entity_id, sequence=event.sequence or 0,
                         occurred_at=event.occurred_at, event_id=event.event_id, state=state)


def _readable_session(uow, principal: Principal, session_id) -> dict:
    session = uow.repo.get_session(session_id)
    if session is None:
        raise NotFound("Session")
    ensure_readable(principal, session["workspace_id"], "Session")
    return session


def get_session(principal: Principal, session_id, *, uow) -> dict:
    with uow:
        return _readable_session(uow, principal, session_id)


def week_view(principal: Principal, session_id, week_label: str, owner: str, *, uow, clock) -> dict:
    with uow:
        session = _readable_session(uow, principal, session_id)
        week = Week.parse(week_label, session["week_start_day"])  # InvalidWeek -> 422
        weeks = session_weeks(session["start_date"], session["end_date"], session["week_start_day"])
        if week not in weeks:
            raise WeekOutsideSession(
                f"{week_label} is outside the Session ({weeks[0].label} to {weeks[-1].label}).")
        starts_at, ends_at = week.bounds(session["timezone"])
        saved = uow.repo.saved_weeks(session_id)
        status = week_status(starts_at, ends_at, clock.now(), week.label in saved)
        view = {
            "session": session, "week": week.label, "starts_at": starts_at, "ends_at": ends_at,
            "status": status, "owner": owner, "objectives": [], "check_ins": [],
            "nearest_saved": {
                "before": max((w for w in saved if w < week.label), default=None),
                "after": min((w for w in saved if w > week.label), default=None),
            },
        }
        if status in ("no_snapshot", "future"):
            return view
        states = uow.repo.states_as_of(session_id, ends_at)
        view["objectives"] = build_tree(states["objective"], states["key_result"], states["initiative"],
                                        OwnerFilter(owner))
        shown = {kr["id"] for o in view["objectives"] for kr in o["key_results"]}
        view["check_ins"] = [c for c in uow.repo.check_ins_between(session_id, starts_at, ends_at)
                             if str(c["key_result_id"]) in shown]
        return view


__all__ = ["apply_event", "week_view", "get_session", "InvalidWeek", "WeekOutsideSession",
           "SessionNotYetKnown"]
