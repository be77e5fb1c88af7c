"""Use cases of the snapshot service: apply the live Session's events, answer week views."""
from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from services.snapshot.domain.review import (
    deltas,
    initiative_signals,
    key_result_signals,
    moved_late,
    owned_changes,
    stale_cutoff,
    summary,
)
from services.snapshot.domain.seal import SealedWeek, content_hash
from services.snapshot.domain.views import OwnerFilter, build_tree, week_status
from shared import access, observability
from shared.access import NotFound, Visibility, ensure, session_facts, visible_items
from shared.clock import SystemClock
from shared.events import Event, decode
from shared.messaging import Unprocessable
from shared.tokens import Principal
from shared.weeks import InvalidWeek, Week, session_weeks

log = logging.getLogger(__name__)
SESSION_EVENTS = ("checkin.session.created", "checkin.session.updated", "checkin.session.archived")
WEEK_CLOSED = "checkin.session.week_closed"


class WeekOutsideSession(Exception):
    pass


def apply_event(event: Event, *, uow, clock, parked: bool = False) -> bool:
    """Apply one event (see apply_events). Returns False for a duplicate, which changes nothing."""
    return apply_events([event], uow=uow, clock=clock, parked=parked) == 1


def apply_events(events: list[Event], *, uow, clock, parked: bool = False) -> int:
    """Apply events with their processed-event records, the parked events of their Sessions that
    can now be applied, and the sealing of whatever weeks they complete, in one transaction;
    returns how many were new. Order does not matter: each item version counts from its
    effective time and ranks by its per-Session sequence. A batch costs a handful of statements,
    whatever its size."""
    events = list({e.event_id: e for e in events}.values())  # a redelivery inside the batch
    for event in events:
        check_appliable(event)
    with uow:
        outcome = _apply(events, uow, clock, parked=parked)
        # Every Session seen, also after duplicates: a crash may have come before an older
        # release sealed (it sealed in a transaction of its own).
        _seal_ready(outcome.sessions, uow, clock)
        uow.commit()
    observability.events_applied("snapshot", parked=outcome.parked)
    if outcome.race_possible:
        # This batch parked events, or brought a Session: the other's commit may have come while
        # ours was open, unseen by both. Whoever looks after the other's commit applies them
        # (rarely anything; the sweep would, later).
        with uow:
            waiting = uow.repo.parked_for_known_sessions(among=outcome.seen)
        if waiting:
            apply_parked(uow=uow, clock=clock, among=outcome.seen)
    return outcome.fresh


@dataclass
class _Applied:
    fresh: int  # events applied that were not before
    sessions: dict  # the known Sessions among those seen, locked: id -> row
    seen: set  # every Session of the events, known or not
    race_possible: bool  # parked an event or brought a Session
    parked: int = 0  # events parked by this batch (not counting those parked before)


def _apply(events: list[Event], uow, clock, *, parked: bool) -> _Applied:
    """apply_events inside its open unit of work, without sealing."""
    done = uow.repo.processed_among([e.event_id for e in events])
    fresh = [e for e in events if str(e.event_id) not in done]
    _refuse_taken_sequences(fresh, uow)
    payloads = {e.event_id: e.load_payload() for e in fresh}
    brought = False
    for event in sorted(fresh, key=lambda e: e.sequence or 0):
        if event.event_type in SESSION_EVENTS:
            uow.repo.put_session(payloads[event.event_id])
            brought = True
    # Every Session seen, locked once in one statement (two workers never wait on each other
    # in a cycle): its events apply one batch at a time, and a week seals under the same lock.
    seen = {e.session_id for e in events}
    sessions = uow.repo.lock_sessions(seen)
    applied, parked_now = [], 0
    for event in fresh:
        if event.session_id not in sessions:  # its Session's event is still on its way
            # As received, signature included: dead-lettered later, it still verifies on a replay.
            uow.repo.park(event.event_id, event.session_id, event.received_wire(), clock.now())
            parked_now += 1
        else:
            applied.append(event)
    for event in applied:
        if event.event_type == WEEK_CLOSED:
            payload = payloads[event.event_id]
            moved = uow.repo.add_closure(event.session_id, payload["week"], payload["starts_at"],
                                         payload["ends_at"], event.sequence)
            if moved:  # applied before this marker, yet late for its week: counted where they now count
                session = sessions[event.session_id]
                target = _week_label(payload["ends_at"], session)
                moves: dict = {}
                for counted_at in moved:
                    key = (_week_label(counted_at, session), target)
                    moves[key] = moves.get(key, 0) + 1
                uow.repo.move_activity(event.session_id, moves)
    bounds = {sid: uow.repo.closure_bounds(sid) for sid in {e.session_id for e in applied}}
    versions, check_ins, activity = [], [], {}
    for event in applied:
        if event.event_type == WEEK_CLOSED:
            continue
        session = sessions[event.session_id]
        effective_at = _effective(event, bounds[event.session_id])
        if event.event_type not in SESSION_EVENTS:
            _, entity_type, action = event.event_type.split(".")
            versions.append({
                "session_id": event.session_id, "entity_type": entity_type, "entity_id": event.entity_id,
                "sequence": event.sequence, "occurred_at": event.occurred_at, "effective_at": effective_at,
                "event_id": event.event_id,  # stored as on the wire: JSON-ready strings
                "state": event.payload[entity_type] if action == "checked_in" else event.payload})
            if event.event_type == "checkin.key_result.checked_in":
                check_ins.append(dict(payloads[event.event_id]["check_in"], session_id=event.session_id,
                                      sequence=event.sequence, effective_at=effective_at))
        # An event counts in the week it counts in (a late one in a later week, as its Check-in
        # does): one rule for every principal's calendar, and a sealed week's count never grows.
        week = _week_label(effective_at, session)
        activity[(event.session_id, week)] = activity.get((event.session_id, week), 0) + 1
    uow.repo.add_versions(versions)
    uow.repo.keep_latest(versions)
    uow.repo.add_check_ins(check_ins)
    for (session_id, week), count in sorted(activity.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        uow.repo.count_activity(session_id, week, count)
    if applied:
        uow.repo.record_sequences([(e.session_id, e.sequence) for e in applied if e.sequence is not None])
        uow.repo.mark_processed_many([e.event_id for e in applied], clock.now())
    if parked:  # applied now, or already applied from another delivery
        for event in events:
            if event.session_id in sessions or str(event.event_id) in done:
                uow.repo.unpark(event.event_id)
    elif sessions:  # events parked for these Sessions before they were known: applied with this batch
        _apply_parked_inside(sessions, uow, clock)
    return _Applied(len(fresh), sessions, seen, bool(parked_now or brought), 0 if parked else parked_now)


def _apply_parked_inside(sessions: dict, uow, clock) -> None:
    """The parked events of these (known, locked) Sessions, applied in the open unit of work, in a
    savepoint: one that can never apply fails alone and stays parked (the sweep reports it), and
    the batch around it still commits."""
    bodies = uow.repo.parked_for_known_sessions(among=sessions)
    if not bodies:
        return
    try:
        with uow.session.begin_nested():
            _apply(list({e.event_id: e for e in map(decode, bodies)}.values()), uow, clock, parked=True)
    except (Unprocessable, IntegrityError):
        log.warning("parked events of Sessions %s could not be applied with the batch", sorted(map(str, sessions)),
                    exc_info=True)


def check_appliable(event: Event) -> None:
    """What no delivery can change: a Session's event stream is ordered by its sequence, so an
    event without a Session or a sequence can never be applied (nor sealed around)."""
    if not event.event_type.startswith("checkin."):
        raise Unprocessable(f"the snapshot service does not take {event.event_type!r}")
    if event.session_id is None:
        raise Unprocessable(f"{event.event_type} {event.event_id} has no session_id")
    if event.sequence is None or event.sequence < 1:
        raise Unprocessable(f"{event.event_type} {event.event_id} has no valid sequence ({event.sequence!r})")


def _refuse_taken_sequences(fresh: list[Event], uow) -> None:
    """A sequence number belongs to one event of its Session: another event with it (another
    event id, so no redelivery) would fail on the unique keys at every delivery."""
    seen: dict = {}
    for event in fresh:
        key = (event.session_id, event.sequence)
        if key in seen:
            raise Unprocessable(f"{event.event_id} and {seen[key]} both claim sequence {event.sequence} "
                                f"of Session {event.session_id}")
        seen[key] = event.event_id
    taken = uow.repo.applied_sequences_among(list(seen)) if seen else set()
    for key in taken:
        raise Unprocessable(f"sequence {key[1]} of Session {key[0]} is already applied from another event "
                            f"({seen[key]} claims it)")


def _week_label(moment, session: dict) -> str:
    return Week.of_instant(moment, session["timezone"], session["week_start_day"]).label


def _effective(event: Event, bounds: list[tuple[int, object]]):
    """When an event counts: the end of the last week closed before it in the Session's stream,
    if that is later than when it occurred (a late amendment)."""
    ends = [ends_at for close_sequence, ends_at in bounds if close_sequence < event.sequence]
    return max([event.occurred_at, *ends])


def apply_parked(session_id=None, *, uow, clock, among=None) -> int:
    """Apply the parked events whose Session is now known (of one Session, of those `among`,
    or all)."""
    with uow:
        bodies = uow.repo.parked_for_known_sessions(session_id, among=among)
    if not bodies:
        return 0
    try:
        apply_events([decode(body) for body in bodies], uow=uow, clock=clock, parked=True)
    except IntegrityError:  # another worker applied them at the same moment
        log.info("parked events of %s were applied elsewhere meanwhile", session_id or among)
        return 0
    return len(bodies)


def expire_parked(max_age_seconds: float, dead_letter, *, uow, clock) -> int:
    """Events whose Session never came, parked for longer than `max_age_seconds`: each is handed
    to `dead_letter(body, reason)` (which must raise if it could not) and then unparked. A crash
    between the two leaves a copy in the dead-letter queue, which a replay applies once."""
    cutoff = clock.now() - timedelta(seconds=max_age_seconds)
    with uow:
        expired = uow.repo.parked_unknown_since(cutoff)
        for event_id, session_id, body, parked_at in expired:
            waited = int((clock.now() - parked_at).total_seconds())
            dead_letter(body, f"unknown Session {session_id}: the event waited {waited} s for it "
                              f"(limit {int(max_age_seconds)} s)")
            uow.repo.unpark(event_id)
        uow.commit()
    if expired:
        log.warning("dead-lettered %d parked events whose Session never arrived", len(expired))
    return len(expired)


def stalled_weeks(waited_seconds: float, *, uow, clock) -> list[dict]:
    """Closed weeks still unsealed `waited_seconds` after their end because an event before the
    close marker has not been applied (a gap in the Session's sequence): which, and how many
    events are missing."""
    stalled = []
    with uow:
        for closure in uow.repo.unsealed_closures_ended_before(clock.now() - timedelta(seconds=waited_seconds)):
            applied = uow.repo.applied_below(closure["session_id"], closure["close_sequence"])
            missing = closure["close_sequence"] - 1 - applied
            if missing > 0:
                stalled.append({"session_id": closure["session_id"], "week": closure["week"],
                                "close_sequence": closure["close_sequence"], "missing": missing,
                                "waited_seconds": int((clock.now() - closure["ends_at"]).total_seconds())})
    return stalled


def pipeline_health(*, uow) -> dict:
    """What an operator looks at first: events parked for their Session, the oldest of them."""
    with uow:
        oldest = uow.repo.oldest_parked()
        return {"parked_events": uow.repo.parked_count(),
                "oldest_parked_at": oldest.isoformat() if oldest is not None else None}


def _week_content(uow, session_id, closure: dict) -> tuple[dict, list[dict]]:
    return (uow.repo.states_as_of(session_id, closure["ends_at"]),
            uow.repo.check_ins_between(session_id, closure["starts_at"], closure["ends_at"]))


def seal_ready_weeks(session_id, *, uow, clock) -> list[str]:
    """Seal, in order, each closed week whose every earlier event (by sequence) is applied."""
    with uow:
        sealed = _seal_ready(uow.repo.lock_sessions([session_id]), uow, clock)
        if sealed:
            uow.commit()
    return sealed


def _seal_ready(sessions: dict, uow, clock) -> list[str]:
    """seal_ready_weeks inside an open unit of work, for these locked Sessions (id -> row). Each
    sealed week's item states are stored with its seal: its views read them, never re-derive them."""
    if not sessions:
        return []
    pending: dict = {}
    for closure in uow.repo.pending_closures_among(sessions):
        pending.setdefault(closure["session_id"], []).append(closure)
    sealed = []
    for session_id, closures in pending.items():
        seals = uow.repo.seals(session_id)
        previous = seals[-1]["content_hash"] if seals else None
        for closure in closures:
            if uow.repo.applied_below(session_id, closure["close_sequence"]) != closure["close_sequence"] - 1:
                break  # an event before the marker is still on its way
            states, check_ins = _week_content(uow, session_id, closure)
            digest = content_hash(closure["week"], states, check_ins, previous)
            uow.repo.add_seal(session_id=session_id, week=closure["week"], ends_at=closure["ends_at"],
                              close_sequence=closure["close_sequence"], content_hash=digest,
                              previous_hash=previous, item_count=sum(len(v) for v in states.values()),
                              check_in_count=len(check_ins), sealed_at=clock.now())
            uow.repo.add_projection(session_id, closure["week"], states)
            previous = digest
            sealed.append(closure["week"])
    return sealed


def verify_chain(session_id, *, uow) -> dict:
    """Recompute every sealed week's hash from the stored history and compare. Reports tampering
    (a changed week, a missing close record), never fails on it."""
    with uow:
        weeks, previous, valid = [], None, True
        starts = {c["week"]: c["starts_at"] for c in uow.repo.closures(session_id)}
        for seal in uow.repo.seals(session_id):
            if seal["week"] not in starts:  # its close record was deleted: the week cannot be recomputed
                valid = False
                weeks.append({"week": seal["week"], "content_hash": seal["content_hash"], "recomputed": None,
                              "ok": False, "problem": "the week's close record is missing"})
                previous = seal["content_hash"]
                continue
            closure = {"week": seal["week"], "starts_at": starts[seal["week"]], "ends_at": seal["ends_at"]}
            states, check_ins = _week_content(uow, session_id, closure)
            recomputed = content_hash(seal["week"], states, check_ins, previous)
            ok = recomputed == seal["content_hash"] and seal["previous_hash"] == previous
            # What its views show: the states stored with the seal (older seals have none).
            shown = uow.repo.projection(session_id, seal["week"])
            shown_ok = shown is None or content_hash(seal["week"], shown, check_ins, previous) == seal["content_hash"]
            valid = valid and ok and shown_ok
            week = {"week": seal["week"], "content_hash": seal["content_hash"], "recomputed": recomputed,
                    "ok": ok and shown_ok}
            if not ok:
                week["problem"] = "the week's content no longer matches its seal"
            elif not shown_ok:
                week["problem"] = "the week's stored view no longer matches its seal"
            weeks.append(week)
            previous = recomputed
    return {"session_id": session_id, "valid": valid, "weeks": weeks}


def _readable_session(uow, principal: Principal, session_id) -> dict:
    session = uow.repo.get_session(session_id)
    if session is None:
        raise NotFound("Session")
    ensure(principal, access.VIEW, "Session", workspace_id=session["workspace_id"], session=session_facts(session))
    return session


class Audience:
    """Whom a view is for, when something may be hidden from them: the principal, their Session's
    facts, and the newest privacy of every Objective (access is today's, whatever week is read)."""

    def __init__(self, principal: Principal, session: dict, objectives: list[dict]):
        self.principal, self.facts, self.objectives = principal, session_facts(session), objectives

    def visibility(self, states: dict) -> Visibility:
        return visible_items(self.principal, self.facts, states["objective"], states["key_result"],
                             states["initiative"], privacy_objectives=self.objectives)


def _audience(uow, principal: Principal, session: dict) -> Audience | None:
    """None when nothing of the Session is hidden from the principal: an owner or admin, or a
    Session without a private Objective (the Session itself was checked on the way in)."""
    if principal.role_in(session["workspace_id"]) in access.ADMINS \
            or not uow.repo.has_private_objective(session["id"]):
        return None
    return Audience(principal, session, uow.repo.latest_states(session["id"], "objective")["objective"])


def _only_seen(states: dict, audience: Audience | None) -> dict:
    """A week's states without what the principal may not see (connections to hidden Key Results
    left out too), so no tree, count, delta or signal can show it."""
    if audience is None:
        return states
    seen = audience.visibility(states)
    if seen.everything:
        return states
    return {"objective": [o if o.get("parent_id") in seen.objectives or o.get("parent_id") is None
                          else dict(o, parent_id=None)  # moved out of a private Objective since
                          for o in states["objective"] if o["id"] in seen.objectives],
            "key_result": [k for k in states["key_result"] if k["id"] in seen.key_results],
            "initiative": [dict(i, key_result_ids=[k for k in i.get("key_result_ids", []) if k in seen.key_results])
                           for i in states["initiative"] if i["id"] in seen.initiatives]}


def _visible_activity(uow, session: dict, audience: Audience) -> tuple[dict, dict]:
    """Changes and Check-ins per week among what the principal sees: (week -> changes, week ->
    Check-ins). Only computed for a principal from whom something may be hidden. The changes are
    everyone's count (session_weeks, each event in the week it counts in) less the hidden items'
    versions in the same weeks: the same event counts in the same week for everyone."""
    seen = audience.visibility(uow.repo.latest_states(session["id"]))
    tz, start = session["timezone"], session["week_start_day"]
    shown = seen.objectives | seen.key_results | seen.initiatives
    changes: dict[str, int] = dict(uow.repo.activity(session["id"]))
    for entity_id, at in uow.repo.version_marks(session["id"]):
        if entity_id not in shown:
            label = Week.of_instant(at, tz, start).label
            changes[label] = changes.get(label, 0) - 1
    changes = {label: count for label, count in changes.items() if count > 0}
    check_ins: dict[str, int] = {}
    for key_result_id, at in uow.repo.check_in_marks(session["id"]):
        if key_result_id in seen.key_results:
            label = Week.of_instant(at, tz, start).label
            check_ins[label] = check_ins.get(label, 0) + 1
    return changes, check_ins


def get_session(principal: Principal, session_id, *, uow) -> dict:
    with uow:
        return _readable_session(uow, principal, session_id)


class InvalidComparison(Exception):
    pass


def _session_and_weeks(uow, principal: Principal, session_id):
    session = _readable_session(uow, principal, session_id)
    return session, _weeks_of(uow, session)


def _weeks_of(uow, session: dict) -> list[Week | SealedWeek]:
    """The Session's weeks, ordered by their start: those its dates and week start give now, and
    every sealed week with the bounds it was sealed with (in place of a week of the same label).
    A sealed week exists because it is sealed: a later change of the Session's dates or week
    start never hides it (issue 11)."""
    sealed_labels = {s["week"] for s in uow.repo.seals(session["id"])}
    sealed = {c["week"]: SealedWeek(c["week"], c["starts_at"], c["ends_at"])
              for c in (uow.repo.closures(session["id"]) if sealed_labels else ())
              if c["week"] in sealed_labels}
    weeks = [w for w in session_weeks(session["start_date"], session["end_date"], session["week_start_day"])
             if w.label not in sealed]
    return sorted([*weeks, *sealed.values()], key=lambda w: w.bounds(session["timezone"])[0])


def _week(session: dict, weeks: list, label: str) -> Week | SealedWeek:
    for week in weeks:
        if week.label == label:
            return week
    Week.parse(label, session["week_start_day"])  # InvalidWeek -> 422
    raise WeekOutsideSession(f"{label} is outside the Session ({weeks[0].label} to {weeks[-1].label}).")


def _any_week(session: dict, weeks: list, label: str) -> Week | SealedWeek:
    """A week of the Session by its label, or else the week of that label by its week start."""
    return next((w for w in weeks if w.label == label), None) or Week.parse(label, session["week_start_day"])


def _first_day(week, tz: str):
    return week.first_day(tz) if isinstance(week, SealedWeek) else week.start


class _SealedStates:
    """Sealed weeks' decoded states, per process, keyed by their seal's content hash: they never
    change, and the live week's view compares against the newest of them on every read after an
    event (decoding a 10,000 Key Result week's states cost a quarter of such a read). Few kept: a
    10,000 Key Result week is tens of megabytes decoded. Shared, so never mutated by a reader."""

    def __init__(self, keep: int = 2):
        self.keep, self._items, self._lock = keep, OrderedDict(), threading.Lock()

    def get(self, key: tuple):
        with self._lock:
            states = self._items.get(key)
            if states is not None:
                self._items.move_to_end(key)
            return states

    def put(self, key: tuple, states: dict) -> None:
        with self._lock:
            self._items[key] = states
            while len(self._items) > self.keep:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_SEALED_STATES = _SealedStates()


def _states(uow, session_id, week: Week | SealedWeek, tz: str, sealed: bool = False, seal: dict | None = None) -> dict:
    """A week's item states, from what is materialised where it can be: a sealed week's as
    stored with its seal (kept decoded per process when its `seal` is given); any other's from
    each item's newest version when all of them count before the week's end (the live week, and
    any later); else (or for a week sealed before its states were stored) derived from the item
    versions."""
    if seal is not None:
        key = (str(session_id), week.label, seal["content_hash"])
        states = _SEALED_STATES.get(key)
        if states is None:
            states = _states(uow, session_id, week, tz, sealed=True)
            _SEALED_STATES.put(key, states)
        return states
    ends_at = week.bounds(tz)[1]
    states = uow.repo.projection(session_id, week.label) if sealed else uow.repo.live_states(session_id, ends_at)
    return states if states is not None else uow.repo.states_as_of(session_id, ends_at)


def week_view(principal: Principal, session_id, week_label: str, owner: str, *, uow, clock) -> dict:
    with uow:
        session, weeks = _session_and_weeks(uow, principal, session_id)
        week = _week(session, weeks, week_label)
        tz = session["timezone"]
        starts_at, ends_at = week.bounds(tz)
        seen = _audience(uow, principal, session)
        saved = uow.repo.saved_weeks(session_id) if seen is None else sorted(_visible_activity(uow, session, seen)[0])
        seals = {s["week"]: s for s in uow.repo.seals(session_id)}
        seal = seals.get(week.label)
        now = clock.now()
        status = week_status(starts_at, ends_at, now, week.label in saved, seal is not None)
        before = max((w for w in saved if w < week.label), default=None)
        view = {
            "session": session, "week": week.label, "starts_at": starts_at, "ends_at": ends_at,
            "status": status, "owner": owner, "objectives": [], "check_ins": [], "late_amendments": [],
            "seal": seal,
            "nearest_saved": {"before": before, "after": min((w for w in saved if w > week.label), default=None)},
            "deltas": {"against": None, "new": [], "removed": []}, "signals": summary([]),
            # A sealed week is complete; any other shows how recent its reading is (a replica lags).
            "applied_through": None if seal is not None else uow.repo.applied_through(session_id),
        }
        if status in ("no_snapshot", "future"):
            return view
        states = _only_seen(_states(uow, session_id, week, tz, seal=seal), seen)
        previous = (_only_seen(_states(uow, session_id, _any_week(session, weeks, before), tz,
                                       seal=seals.get(before)), seen) if before else None)
        last_check_ins = uow.repo.last_check_ins(session_id, ends_at)
        changes = deltas(previous, states)
        as_of = min(now, ends_at)
        stale_before = stale_cutoff(as_of, session["checkin_cadence"])
        tree = build_tree(states["objective"], states["key_result"], states["initiative"], OwnerFilter(owner))
        moved = {kr_id for kr_id, d in changes["key_results"].items() if d["progress_points"]}
        shown_signals, with_signals = [], {}  # an Initiative under several Key Results: one dict, shared
        for objective in tree:
            for kr in objective["key_results"]:
                kr["delta"] = changes["key_results"].get(kr["id"])
                if kr["context"]:  # like a context Objective: there for orientation, no signals of its own
                    kr["signals"] = []
                else:
                    kr["signals"] = key_result_signals(kr, kr["delta"], last_check_ins.get(kr["id"]), as_of,
                                                       session["checkin_cadence"], stale_before)
                    shown_signals.append(kr["signals"])
                connected = []
                for initiative in kr["initiatives"]:
                    shown_initiative = with_signals.get(initiative["id"])
                    if shown_initiative is None:
                        shown_initiative = with_signals[initiative["id"]] = dict(
                            initiative, signals=initiative_signals(initiative, moved),
                            has_canvas=initiative.get("canvas") is not None)
                        shown_signals.append(shown_initiative["signals"])
                    connected.append(shown_initiative)
                kr["initiatives"] = connected
        shown = {kr["id"] for o in tree for kr in o["key_results"] if not kr["context"]}  # the owner's
        owned = owned_changes(changes, OwnerFilter(owner))
        view.update(
            objectives=tree,
            check_ins=[c for c in uow.repo.check_ins_between(session_id, starts_at, ends_at)
                       if str(c["key_result_id"]) in shown],
            late_amendments=[c for c in uow.repo.late_amendments(session_id, starts_at, ends_at)
                             if str(c["key_result_id"]) in shown],
            deltas={"against": before, **owned},
            signals=summary(shown_signals))
        return view


LIVE_VIEW_SECONDS = 60  # how long a live week's rendered view may be reused when nothing changed


def week_view_key(principal: Principal, session_id, week_label: str, owner: str, *, uow, clock) -> tuple | None:
    """What a week's view depends on, for reusing it rendered; None where it cannot be reused.
    A sealed week: the Session's version, its seal, the late amendments listed on it since and
    the saved weeks (its neighbours and baseline). The live week: the events applied so far,
    within a minute (the stale signal moves with the clock). Checks access like the view itself.
    A key whose first element is "sealed" is shared by every process (keep_rendered)."""
    with uow:
        session, weeks = _session_and_weeks(uow, principal, session_id)
        week = _week(session, weeks, week_label)
        starts_at, ends_at = week.bounds(session["timezone"])
        now = clock.now()
        live = starts_at <= now < ends_at
        everything = _audience(uow, principal, session) is None
        applied = uow.repo.applied_count(session_id) if live or not everything else None
        # Who reads it: whoever may see everything of the Session (owners, admins, anyone while no
        # Objective is private) shares one view; anyone else's is their own, rendered again after
        # any event (privacy, owners, parents and canvases may have changed with it).
        audience = ("everything",) if everything else (str(principal.user_id), applied)
        common = (str(session_id), week.label, owner, audience, session["version"])
        seal = next((s for s in uow.repo.seals(session_id) if s["week"] == week.label), None)
        if seal is not None:
            late = len(uow.repo.late_amendments(session_id, starts_at, ends_at))
            # Shared by every process only where one view serves many readers: a reader's own
            # view of a 10,000 Key Result week is megabytes, and is theirs until the next event.
            return ("sealed" if everything else "sealed-own", *common, seal["content_hash"], late,
                    tuple(uow.repo.saved_weeks(session_id)))
        if live:
            return ("live", *common, applied, int(now.timestamp() // LIVE_VIEW_SECONDS))
    return None


RENDERED_KEPT_PER_WEEK = 8  # owner filters and readers of a sealed week whose view is shared


def _digest(key: tuple) -> str:
    return hashlib.sha256(repr(key).encode()).hexdigest()


def rendered_view(key: tuple, *, uow) -> str | None:
    """A sealed week's view as some process rendered it for this key (see week_view_key)."""
    with uow:
        return uow.repo.rendered(_digest(key))


def keep_rendered(key: tuple, body: str, *, uow, clock) -> None:
    """Share a sealed week's rendered view with every process (a key from week_view_key)."""
    with uow:
        uow.repo.keep_rendered(_digest(key), uuid.UUID(key[1]), key[2], body, clock.now(), RENDERED_KEPT_PER_WEEK)
        uow.commit()


def calendar(principal: Principal, session_id, *, uow, clock) -> dict:
    """Every week of the Session, grouped by month (of the week's first day), for the month and
    week controls."""
    with uow:
        session, weeks = _session_and_weeks(uow, principal, session_id)
        seen = _audience(uow, principal, session)
        sealed = {s["week"]: s for s in uow.repo.seals(session_id)}
        if seen is None:
            activity = dict(uow.repo.activity(session_id))
            check_in_weeks: dict[str, int] = {}
            for moment in uow.repo.check_in_times(session_id):
                label = Week.of_instant(moment, session["timezone"], session["week_start_day"]).label
                check_in_weeks[label] = check_in_weeks.get(label, 0) + 1
        else:  # counted among what this principal sees
            activity, check_in_weeks = _visible_activity(uow, session, seen)
        now, months = clock.now(), {}
        for week in weeks:
            starts_at, ends_at = week.bounds(session["timezone"])
            status = week_status(starts_at, ends_at, now, week.label in activity, week.label in sealed)
            items = None
            if status == "sealed" and seen is None:
                items = sealed[week.label]["item_count"]
            elif status in ("current", "past", "sealed"):  # live, not sealed yet, or filtered: counted now
                moment = min(ends_at, now)  # a week under way: counted as of now
                states = (_states(uow, session_id, week, session["timezone"], status == "sealed") if moment == ends_at
                          else uow.repo.live_states(session_id, moment) or uow.repo.states_as_of(session_id, moment))
                items = sum(len(v) for v in _only_seen(states, seen).values())
            months.setdefault(_first_day(week, session["timezone"]).strftime("%Y-%m"), []).append({
                "week": week.label, "starts_at": starts_at, "ends_at": ends_at, "status": status, "items": items,
                "changes": activity.get(week.label, 0), "check_ins": check_in_weeks.get(week.label, 0)})
    return {"session": session, "months": [{"month": m, "weeks": w} for m, w in months.items()]}


def _readings(week: Week | SealedWeek, tz: str, week_start_day: str, saved: list[str], sealed: set, now) -> dict:
    """What a compared week's column holds: its status (as in the calendar), the week whose
    readings it shows, and the nearest saved weeks. A week with no saved Snapshot had no change:
    its readings are those of the nearest saved week before it (none: nothing yet); a week that
    has not started shows the live readings, those of the current week."""
    starts_at, ends_at = week.bounds(tz)
    status = week_status(starts_at, ends_at, now, week.label in saved, week.label in sealed)
    if status == "no_snapshot":
        readings = max((w for w in saved if w < week.label), default=None)
    elif status == "future":
        readings = Week.of_instant(now, tz, week_start_day).label
    else:
        readings = week.label
    return {"status": status, "readings_week": readings,
            "nearest_saved": {"before": max((w for w in saved if w < week.label), default=None),
                              "after": min((w for w in saved if w > week.label), default=None)}}


def compare(principal: Principal, session_id, from_label: str, to_label: str, *, uow, clock=None) -> dict:
    """Any two weeks side by side (start, middle and end of a Session, say). Each side says
    whether its week has a saved Snapshot and names the week whose readings it shows."""
    clock = clock or SystemClock()
    with uow:
        session, weeks = _session_and_weeks(uow, principal, session_id)
        first, second = _week(session, weeks, from_label), _week(session, weeks, to_label)
        if not first.bounds(session["timezone"])[0] < second.bounds(session["timezone"])[0]:
            raise InvalidComparison("`from` must be a week before `to`.")
        tz, seen = session["timezone"], _audience(uow, principal, session)
        saved = uow.repo.saved_weeks(session_id) if seen is None else sorted(_visible_activity(uow, session, seen)[0])
        sealed, moment = {s["week"] for s in uow.repo.seals(session_id)}, clock.now()
        sides = {label: _readings(week, tz, session["week_start_day"], saved, sealed, moment)
                 for label, week in (("from", first), ("to", second))}
        then = _only_seen(_states(uow, session_id, first, tz, first.label in sealed), seen)
        now = _only_seen(_states(uow, session_id, second, tz, second.label in sealed), seen)
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
            "new": changes["new"], "removed": changes["removed"],
            **{f"{side}_{field}": value for side, facts in sides.items() for field, value in facts.items()}}


def trend(principal: Principal, session_id, *, uow, clock) -> dict:
    """Each Key Result's progress at the end of every saved week, ready for a chart."""
    with uow:
        session, weeks = _session_and_weeks(uow, principal, session_id)
        seen = _audience(uow, principal, session)
        saved = set(uow.repo.saved_weeks(session_id) if seen is None else _visible_activity(uow, session, seen)[0])
        now, tz = clock.now(), session["timezone"]
        shown = [w for w in weeks if w.label in saved and w.bounds(tz)[0] <= now]
        sealed = {s["week"] for s in uow.repo.seals(session_id)}
        series: dict[str, dict] = {}
        for week in shown:
            ends_at = week.bounds(tz)[1]
            for kr in _only_seen(_states(uow, session_id, week, tz, week.label in sealed), seen)["key_result"]:
                entry = series.setdefault(kr["id"], {"id": kr["id"], "title": kr["title"], "points": []})
                entry["title"] = kr["title"]
                entry["points"].append({"week": week.label, "progress": kr["progress"], "ends_at": ends_at})
    start = weeks[0].bounds(tz)[0]
    end = weeks[-1].bounds(tz)[1]
    for entry in series.values():
        entry["moved_late"] = moved_late([(p["ends_at"], p["progress"]) for p in entry["points"]], start, end)
    return {"session": session, "weeks": [w.label for w in shown], "key_results": list(series.values())}


__all__ = ["apply_event", "apply_events", "seal_ready_weeks", "verify_chain", "week_view", "week_view_key",
           "rendered_view", "keep_rendered", "calendar", "compare", "trend", "get_session", "InvalidWeek", "expire_parked",
           "stalled_weeks", "pipeline_health",
           "WeekOutsideSession", "InvalidComparison", "apply_parked"]
