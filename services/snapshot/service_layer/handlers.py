"""Use cases of the snapshot service: apply the live Session's events, answer week views."""
from __future__ import annotations

from services.snapshot.domain.review import deltas, initiative_signals, key_result_signals, moved_late, summary
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


class InvalidComparison(Exception):
    pass


def _session_and_weeks(uow, principal: Principal, session_id):
    session = _readable_session(uow, principal, session_id)
    weeks = session_weeks(session["start_date"], session["end_date"], session["week_start_day"])
    return session, weeks


def _week(session: dict, weeks: list[Week], label: str) -> Week:
    week = Week.parse(label, session["week_start_day"])  # InvalidWeek -> 422
    if week not in weeks:
        raise WeekOutsideSession(f"{label} is outside the Session ({weeks[0].label} to {weeks[-1].label}).")
    return week


def _states(uow, session_id, week: Week, tz: str) -> dict:
    return uow.repo.states_as_of(session_id, week.bounds(tz)[1])


def week_view(principal: Principal, session_id, week_label: str, owner: str, *, uow, clock) -> dict:
    with uow:
        session, weeks = _session_and_weeks(uow, principal, session_id)
        week = _week(session, weeks, week_label)
        tz = session["timezone"]
        starts_at, ends_at = week.bounds(tz)
        saved = uow.repo.saved_weeks(session_id)
        now = clock.now()
        status = week_status(starts_at, ends_at, now, week.label in saved)
        before = max((w for w in saved if w < week.label), default=None)
        view = {
            "session": session, "week": week.label, "starts_at": starts_at, "ends_at": ends_at,
            "status": status, "owner": owner, "objectives": [], "check_ins": [],
            "nearest_saved": {"before": before, "after": min((w for w in saved if w > week.label), default=None)},
            "deltas": {"against": None, "new": [], "removed": []}, "signals": summary([]),
        }
        if status in ("no_snapshot", "future"):
            return view
        states = uow.repo.states_as_of(session_id, ends_at)
        previous = _states(uow, session_id, Week.parse(before, session["week_start_day"]), tz) if before else None
        last_check_ins = uow.repo.last_check_ins(session_id, ends_at)
        changes = deltas(previous, states)
        as_of = min(now, ends_at)
        tree = build_tree(states["objective"], states["key_result"], states["initiative"], OwnerFilter(owner))
        moved = {kr_id for kr_id, d in changes["key_results"].items() if d["progress_points"]}
        shown_signals, seen_initiatives = [], set()
        for objective in tree:
            for kr in objective["key_results"]:
                kr["delta"] = changes["key_results"].get(kr["id"])
                kr["signals"] = key_result_signals(kr, kr["delta"], last_check_ins.get(kr["id"]), as_of,
                                                   session["checkin_cadence"])
                shown_signals.append(kr["signals"])
                kr["initiatives"] = [dict(i, signals=initiative_signals(i, moved)) for i in kr["initiatives"]]
                for initiative in kr["initiatives"]:
                    if initiative["id"] not in seen_initiatives:
                        seen_initiatives.add(initiative["id"])
                        shown_signals.append(initiative["signals"])
        shown = {kr["id"] for o in tree for kr in o["key_results"]}
        view.update(
            objectives=tree,
            check_ins=[c for c in uow.repo.check_ins_between(session_id, starts_at, ends_at)
                       if str(c["key_result_id"]) in shown],
            deltas={"against": before,
                    "new": [i for i in changes["new"] if owner == "all" or i["id"] in shown],
                    "removed": [i for i in changes["removed"] if owner == "all"]},
            signals=summary(shown_signals))
        return view


def calendar(principal: Principal, session_id, *, uow, clock) -> dict:
    """Every week of the Session, grouped by month (of the week's first day), for the month and
    week controls."""
    with uow:
        session, weeks = _session_and_weeks(uow, principal, session_id)
        activity = dict(uow.repo.activity(session_id))
        check_in_weeks: dict[str, int] = {}
        for moment in uow.repo.check_in_times(session_id):
            label = Week.of_instant(moment, session["timezone"], session["week_start_day"]).label
            check_in_weeks[label] = check_in_weeks.get(label, 0) + 1
    now, months = clock.now(), {}
    for week in weeks:
        starts_at, ends_at = week.bounds(session["timezone"])
        months.setdefault(week.start.strftime("%Y-%m"), []).append({
            "week": week.label, "starts_at": starts_at, "ends_at": ends_at,
            "status": week_status(starts_at, ends_at, now, week.label in activity),
            "changes": activity.get(week.label, 0), "check_ins": check_in_weeks.get(week.label, 0)})
    return {"session": session, "months": [{"month": m, "weeks": w} for m, w in months.items()]}


def compare(principal: Principal, session_id, from_label: str, to_label: str, *, uow) -> dict:
    """Any two weeks side by side (start, middle and end of a Session, say)."""
    with uow:
        session, weeks = _session_and_weeks(uow, principal, session_id)
        first, second = _week(session, weeks, from_label), _week(session, weeks, to_label)
        if not first < second:
            raise InvalidComparison("`from` must be a week before `to`.")
        tz = session["timezone"]
        then, now = _states(uow, session_id, first, tz), _states(uow, session_id, second, tz)
    changes = deltas(then, now)
    earlier = {kr["id"]: kr for kr in then["key_result"]}
    key_results = []
    for kr in now["key_result"]:
        old = earlier.get(kr["id"])
        key_results.append({
            "id": kr["id"], "title": kr["title"], "owner_id": kr.get("owner_id"),
            "from": {"value": old["current_value"], "progress": old["progress"], "status": old["status"]} if old else None,
            "to": {"value": kr["current_value"], "progress": kr["progress"], "status": kr["status"]},
            "delta": changes["key_results"][kr["id"]]})
    return {"session": session, "from": first.label, "to": second.label, "key_results": key_results,
            "new": changes["new"], "removed": changes["removed"]}


def trend(principal: Principal, session_id, *, uow, clock) -> dict:
    """Each Key Result's progress at the end of every saved week, ready for a chart."""
    with uow:
        session, weeks = _session_and_weeks(uow, principal, session_id)
        saved = set(uow.repo.saved_weeks(session_id))
        now, tz = clock.now(), session["timezone"]
        shown = [w for w in weeks if w.label in saved and w.bounds(tz)[0] <= now]
        series: dict[str, dict] = {}
        for week in shown:
            ends_at = week.bounds(tz)[1]
            for kr in uow.repo.states_as_of(session_id, ends_at)["key_result"]:
                entry = series.setdefault(kr["id"], {"id": kr["id"], "title": kr["title"], "points": []})
                entry["title"] = kr["title"]
                entry["points"].append({"week": week.label, "progress": kr["progress"], "ends_at": ends_at})
    start = weeks[0].bounds(tz)[0]
    end = weeks[-1].bounds(tz)[1]
    for entry in series.values():
        entry["moved_late"] = moved_late([(p["ends_at"], p["progress"]) for p in entry["points"]], start, end)
    return {"session": session, "weeks": [w.label for w in shown], "key_results": list(series.values())}


__all__ = ["apply_event", "week_view", "calendar", "compare", "trend", "get_session", "InvalidWeek",
           "WeekOutsideSession", "InvalidComparison", "SessionNotYetKnown"]
