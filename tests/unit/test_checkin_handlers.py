"""Check-in use cases against a fake unit of work (no I/O)."""
import copy
import dataclasses
import uuid
from datetime import date, datetime, timezone

import pytest

from services.checkin.domain import commands
from services.checkin.domain.model import Conflict, DomainError, VersionRequired
from services.checkin.service_layer import handlers
from shared.access import AccessDenied, NotFound
from shared.clock import FixedClock
from shared.events import decode
from shared.tokens import Principal


class FakeRepository:
    """In memory, with the real repository's optimistic version check."""

    def __init__(self):
        self.items: dict = {}
        self.check_ins, self.initiative_check_ins, self.events, self.sequences = [], [], [], {}
        self.markers = set()

    def _get(self, kind, item_id):
        item = self.items.get((kind, item_id))
        return copy.deepcopy(item) if item and getattr(item, "removed_at", None) is None else None

    def _put(self, kind, item, new=False):
        stored = self.items.get((kind, item.id))
        if not new and stored.version != item.version - 1:
            raise Conflict("changed meanwhile", "If-Match")
        self.items[(kind, item.id)] = copy.deepcopy(item)

    def add_session(self, s): self._put("session", s, new=True)
    def get_session(self, i, for_update=False): return self._get("session", i)
    def save_session(self, s): self._put("session", s)
    def list_sessions(self, ws): return [v for (k, _), v in self.items.items() if k == "session" and v.workspace_id == ws]
    def add_objective(self, o): self._put("objective", o, new=True)
    def get_objective(self, i, for_update=False): return self._get("objective", i)
    def save_objective(self, o): self._put("objective", o)

    def list_objectives(self, session_id):
        return [v for (k, _), v in self.items.items() if k == "objective" and v.session_id == session_id and not v.removed_at]

    def list_key_results(self, session_id):
        return [v for (k, _), v in self.items.items() if k == "key_result" and v.session_id == session_id and not v.removed_at]

    def parents(self, session_id): return {o.id: o.parent_id for o in self.list_objectives(session_id)}

    def objective_lineage(self, objective_id):
        found, current = [], self._get("objective", objective_id)
        while current is not None and not current.removed_at and current not in found:
            found.append(current)
            current = self._get("objective", current.parent_id) if current.parent_id else None
        return found

    def has_children(self, objective_id):
        return any(getattr(v, "parent_id", None) == objective_id or getattr(v, "objective_id", None) == objective_id
                   for v in self.items.values() if not getattr(v, "removed_at", None))

    def add_key_result(self, k): self._put("key_result", k, new=True)
    def get_key_result(self, i, for_update=False): return self._get("key_result", i)

    def save_key_result(self, k):
        self.check_ins += k.check_ins
        k.check_ins = []
        self._put("key_result", k)

    def check_in_context(self, key_result_id):
        key_result = self._get("key_result", key_result_id)
        if key_result is None:
            return None, None, []
        return key_result, self._get("session", key_result.session_id), self.objective_lineage(key_result.objective_id)

    def save_check_in(self, key_result, event):
        self.save_key_result(key_result)
        event = dataclasses.replace(event, sequence=self.next_sequence(event.session_id))
        self.add_event(event)
        return event

    def add_history(self, *, objectives, key_results, initiatives, check_ins, events):
        for kind, items in (("objective", objectives), ("key_result", key_results), ("initiative", initiatives)):
            for item in items:
                self._put(kind, item, new=True)
        self.check_ins += check_ins
        self.events += events

    def save_checked_in(self, key_results):
        for k in key_results:
            self.items[("key_result", k.id)] = copy.deepcopy(k)

    def set_last_sequence(self, session_id, sequence): self.sequences[session_id] = sequence

    def add_initiative(self, i): self._put("initiative", i, new=True)
    def get_initiative(self, i, for_update=False): return self._get("initiative", i)

    def save_initiative(self, i):
        self.initiative_check_ins += i.check_ins
        i.check_ins = []
        self._put("initiative", i)

    def initiatives_of(self, key_result_id):
        return [copy.deepcopy(v) for (k, _), v in self.items.items()
                if k == "initiative" and key_result_id in v.key_result_ids and not v.removed_at]

    def next_sequence(self, session_id):
        self.sequences[session_id] = self.sequences.get(session_id, 0) + 1
        return self.sequences[session_id]

    def add_event(self, e): self.events.append(e)

    def all_sessions(self): return [v for (k, _), v in self.items.items() if k == "session"]
    def marked_weeks(self, session_id): return {w for (s, w) in self.markers if s == session_id}
    def add_week_marker(self, session_id, week, at): self.markers.add((session_id, week))


class FakeUnitOfWork:
    def __init__(self):
        self.repo = FakeRepository()
        self.committed = False

    def __enter__(self): return self
    def __exit__(self, *exc): pass
    def commit(self): self.committed = True


class FakeDirectory:
    """Members of the Workspace: USER and anyone added to `members`."""

    def __init__(self):
        self.members = set()

    def non_members(self, principal, workspace_id, user_ids):
        return {u for u in user_ids if u != USER and u not in self.members}


DIRECTORY = FakeDirectory()
WS, USER = uuid.uuid4(), uuid.uuid4()
MEMBER = Principal(str(USER), {str(WS): "member"})
CLOCK = FixedClock(datetime(2026, 11, 25, 9, tzinfo=timezone.utc))


def _session(uow, principal=MEMBER):
    return handlers.create_session(commands.CreateSession(
        principal, WS, "Q4", date(2026, 10, 1), date(2026, 12, 31), "Europe/Berlin"), uow=uow, clock=CLOCK)


def test_every_change_emits_one_versioned_event_with_a_session_sequence():
    uow = FakeUnitOfWork()
    session = _session(uow)
    objective = handlers.add_objective(commands.AddObjective(MEMBER, session.id, "Grow"), uow=uow, clock=CLOCK, members=DIRECTORY)
    kr = handlers.add_key_result(commands.AddKeyResult(MEMBER, objective.id, "ARR", 10, 20), uow=uow, clock=CLOCK, members=DIRECTORY)
    entry, updated = handlers.record_check_in(
        commands.RecordCheckIn(MEMBER, kr.id, 15, "on_track", "why"), uow=uow, clock=CLOCK)
    assert uow.committed and updated.current_value == 15 and updated.progress == 0.5
    assert [e.event_type for e in uow.repo.events] == [
        "checkin.session.created", "checkin.objective.created", "checkin.key_result.created",
        "checkin.key_result.checked_in"]
    assert [e.sequence for e in uow.repo.events] == [1, 2, 3, 4]
    wire = decode(uow.repo.events[-1].to_wire())  # what the consumer will see validates
    assert wire.payload["key_result"]["progress"] == 0.5
    assert wire.payload["check_in"]["author_id"] == str(USER)
    assert wire.occurred_at == CLOCK.now()


def test_another_workspace_sees_not_found_and_viewers_cannot_write():
    uow = FakeUnitOfWork()
    session = _session(uow)
    stranger = Principal(str(uuid.uuid4()), {str(uuid.uuid4()): "owner"})
    with pytest.raises(NotFound):
        handlers.add_objective(commands.AddObjective(stranger, session.id, "x"), uow=uow, clock=CLOCK, members=DIRECTORY)
    viewer = Principal(str(uuid.uuid4()), {str(WS): "viewer"})
    with pytest.raises(AccessDenied):
        handlers.add_objective(commands.AddObjective(viewer, session.id, "x"), uow=uow, clock=CLOCK, members=DIRECTORY)
    assert len(uow.repo.events) == 1  # only the Session's


def test_rules_of_the_session_are_checked_before_anything_is_written():
    uow = FakeUnitOfWork()
    with pytest.raises(DomainError) as error:
        handlers.create_session(commands.CreateSession(
            MEMBER, WS, "Q4", date(2026, 12, 31), date(2026, 10, 1), "Europe/Berlin"), uow=uow, clock=CLOCK)
    assert error.value.field == "end_date"
    with pytest.raises(DomainError) as error:
        handlers.create_session(commands.CreateSession(
            MEMBER, WS, "Q4", date(2026, 10, 1), date(2026, 12, 31), "Mars/Olympus"), uow=uow, clock=CLOCK)
    assert error.value.field == "timezone"
    assert uow.repo.events == [] and not uow.committed


def test_parent_objective_must_be_in_the_same_session():
    uow = FakeUnitOfWork()
    one, two = _session(uow), _session(uow)
    parent = handlers.add_objective(commands.AddObjective(MEMBER, one.id, "Parent"), uow=uow, clock=CLOCK, members=DIRECTORY)
    with pytest.raises(DomainError) as error:
        handlers.add_objective(commands.AddObjective(MEMBER, two.id, "Child", parent_id=parent.id),
                               uow=uow, clock=CLOCK, members=DIRECTORY)
    assert error.value.field == "parent_id"


def _objective(uow, session, title, parent=None):
    return handlers.add_objective(commands.AddObjective(MEMBER, session.id, title, parent_id=parent),
                                  uow=uow, clock=CLOCK, members=DIRECTORY)


def test_a_parent_that_would_make_a_cycle_is_refused():
    uow = FakeUnitOfWork()
    session = _session(uow)
    root = _objective(uow, session, "root")
    child = _objective(uow, session, "child", root.id)
    grandchild = _objective(uow, session, "grandchild", child.id)
    with pytest.raises(DomainError, match="cycle"):
        handlers.update_item(commands.UpdateItem(MEMBER, "objective", root.id, root.version,
                                                 {"parent_id": grandchild.id}), uow=uow, clock=CLOCK, members=DIRECTORY)
    moved = handlers.update_item(commands.UpdateItem(MEMBER, "objective", grandchild.id, 1, {"parent_id": root.id}),
                                 uow=uow, clock=CLOCK, members=DIRECTORY)
    assert moved.parent_id == root.id and moved.version == 2


def test_edits_need_the_current_version():
    uow = FakeUnitOfWork()
    objective = _objective(uow, _session(uow), "Grow")
    edit = lambda version: commands.UpdateItem(MEMBER, "objective", objective.id, version, {"title": "Grow more"})
    with pytest.raises(VersionRequired):
        handlers.update_item(edit(None), uow=uow, clock=CLOCK, members=DIRECTORY)
    assert handlers.update_item(edit(1), uow=uow, clock=CLOCK, members=DIRECTORY).version == 2
    with pytest.raises(Conflict):
        handlers.update_item(edit(1), uow=uow, clock=CLOCK, members=DIRECTORY)  # stale: someone already made version 2
    assert [e.event_type for e in uow.repo.events][-1] == "checkin.objective.updated"


def test_an_archived_session_refuses_edits_but_stays_readable():
    uow = FakeUnitOfWork()
    session = _session(uow)
    objective = _objective(uow, session, "Grow")
    admin = Principal(str(USER), {str(WS): "admin"})
    with pytest.raises(AccessDenied):
        handlers.archive_session(commands.ArchiveSession(MEMBER, session.id), uow=uow, clock=CLOCK)
    handlers.archive_session(commands.ArchiveSession(admin, session.id), uow=uow, clock=CLOCK)
    with pytest.raises(Conflict, match="archived"):
        _objective(uow, session, "More")
    with pytest.raises(Conflict, match="archived"):
        handlers.update_item(commands.UpdateItem(MEMBER, "objective", objective.id, 1, {"title": "x"}),
                             uow=uow, clock=CLOCK, members=DIRECTORY)
    assert handlers.get_item(MEMBER, "objective", objective.id, uow=uow).title == "Grow"


def test_initiatives_connect_and_disconnect_with_events_and_removal_cleans_up():
    uow = FakeUnitOfWork()
    session = _session(uow)
    objective = _objective(uow, session, "Grow")
    kr1, kr2 = (handlers.add_key_result(commands.AddKeyResult(MEMBER, objective.id, t, 0, 10), uow=uow, clock=CLOCK, members=DIRECTORY)
                for t in ("a", "b"))
    initiative = handlers.add_initiative(commands.AddInitiative(
        MEMBER, session.id, "Launch", canvas={"title": "Plan", "url": "https://docs.example/plan"},
        key_result_ids=[kr1.id]), uow=uow, clock=CLOCK, members=DIRECTORY)
    handlers.connect(commands.Connect(MEMBER, initiative.id, kr2.id), uow=uow, clock=CLOCK)
    with pytest.raises(Conflict):
        handlers.connect(commands.Connect(MEMBER, initiative.id, kr2.id), uow=uow, clock=CLOCK)
    handlers.remove_item(commands.RemoveItem(MEMBER, "key_result", kr1.id, 1), uow=uow, clock=CLOCK)
    assert uow.repo.get_initiative(initiative.id).key_result_ids == [kr2.id]
    assert [e.event_type for e in uow.repo.events][-3:] == [
        "checkin.initiative.connected", "checkin.initiative.disconnected", "checkin.key_result.removed"]
    with pytest.raises(DomainError) as error:
        handlers.add_initiative(commands.AddInitiative(MEMBER, session.id, "x", canvas={
            "title": "x", "url": "javascript:alert(1)"}), uow=uow, clock=CLOCK, members=DIRECTORY)
    assert error.value.field == "canvas.url"


def test_history_import_keeps_original_times_in_order():
    uow = FakeUnitOfWork()
    t0 = datetime(2026, 10, 5, 9, tzinfo=timezone.utc)
    doc = {"session": {"name": "Past", "start_date": date(2026, 10, 5), "end_date": date(2026, 12, 27),
                       "timezone": "UTC", "created_at": t0},
           "objectives": [{"ref": "o", "title": "O", "parent_ref": None, "created_at": t0}],
           "key_results": [{"ref": "k", "objective_ref": "o", "title": "K", "start_value": 0, "target_value": 10,
                            "created_at": t0}],
           "check_ins": [{"key_result_ref": "k", "value": 5, "status": "on_track", "checked_in_at": datetime(2026, 10, 20, tzinfo=timezone.utc)},
                         {"key_result_ref": "k", "value": 3, "status": "at_risk", "checked_in_at": datetime(2026, 10, 12, tzinfo=timezone.utc)}]}
    owner = Principal(str(USER), {str(WS): "owner"})
    with pytest.raises(AccessDenied):
        handlers.import_history(commands.ImportHistory(MEMBER, WS, doc), uow=uow, clock=CLOCK, members=DIRECTORY)
    handlers.import_history(commands.ImportHistory(owner, WS, doc), uow=uow, clock=CLOCK, members=DIRECTORY)
    times = [e.occurred_at for e in uow.repo.events]
    assert times == sorted(times) and times[-1] == datetime(2026, 10, 20, tzinfo=timezone.utc)
    assert [e.sequence for e in uow.repo.events] == [1, 2, 3, 4, 5]
    [kr] = uow.repo.list_key_results(uow.repo.events[0].entity_id)
    assert kr.current_value == 5  # the later Check-in wins, whatever the document's order
    doc["check_ins"][0]["checked_in_at"] = datetime(2030, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(DomainError, match="between"):
        handlers.import_history(commands.ImportHistory(owner, WS, doc), uow=FakeUnitOfWork(), clock=CLOCK, members=DIRECTORY)


def test_owners_and_access_lists_name_workspace_members_only():
    uow = FakeUnitOfWork()
    session = _session(uow)
    stranger = uuid.uuid4()
    with pytest.raises(DomainError) as error:
        handlers.add_objective(commands.AddObjective(MEMBER, session.id, "x", owner_id=stranger),
                               uow=uow, clock=CLOCK, members=DIRECTORY)
    assert error.value.field == "owner_id"
    with pytest.raises(DomainError) as error:
        handlers.add_initiative(commands.AddInitiative(MEMBER, session.id, "x", canvas={
            "title": "c", "url": "https://example.com", "access": [USER, stranger]}), uow=uow, clock=CLOCK,
            members=DIRECTORY)
    assert error.value.field == "canvas.access"
    assert len(uow.repo.events) == 1  # only the Session's
    objective = handlers.add_objective(commands.AddObjective(MEMBER, session.id, "x", owner_id=USER),
                                       uow=uow, clock=CLOCK, members=DIRECTORY)
    assert objective.owner_id == USER


def test_ended_weeks_are_closed_once_in_order_after_the_grace():
    uow = FakeUnitOfWork()
    session = _session(uow)  # 2026-10-01 .. 2026-12-31, Europe/Berlin, weeks from Monday
    clock = FixedClock(datetime(2026, 10, 18, 22, 30, tzinfo=timezone.utc))  # W43 began 22:00 UTC (CEST)
    assert handlers.close_ended_weeks(uow=uow, clock=clock, grace_seconds=3600) == 2  # W40, W41; W42 in grace
    clock.advance(hours=1)
    assert handlers.close_ended_weeks(uow=uow, clock=clock, grace_seconds=3600) == 1  # now W42 too
    assert handlers.close_ended_weeks(uow=uow, clock=clock, grace_seconds=3600) == 0
    markers = [e for e in uow.repo.events if e.event_type == "checkin.session.week_closed"]
    assert [e.payload["week"] for e in markers] == ["2026-W40", "2026-W41", "2026-W42"]
    assert [e.sequence for e in markers] == [2, 3, 4] and markers[0].entity_id == session.id
