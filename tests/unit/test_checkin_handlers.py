"""Check-in use cases against a fake unit of work (no I/O)."""
import uuid
from datetime import date, datetime, timezone

import pytest

from services.checkin.domain import commands
from services.checkin.domain.model import DomainError
from services.checkin.service_layer import handlers
from shared.access import Forbidden, NotFound
from shared.clock import FixedClock
from shared.events import decode
from shared.tokens import Principal


class FakeRepository:
    def __init__(self):
        self.sessions, self.objectives, self.key_results = {}, {}, {}
        self.check_ins, self.events, self.sequences = [], [], {}

    def add_session(self, s): self.sessions[s.id] = s
    def get_session(self, i): return self.sessions.get(i)
    def list_sessions(self, ws): return [s for s in self.sessions.values() if s.workspace_id == ws]
    def add_objective(self, o): self.objectives[o.id] = o
    def get_objective(self, i): return self.objectives.get(i)
    def add_key_result(self, k): self.key_results[k.id] = k
    def get_key_result(self, i, for_update=False): return self.key_results.get(i)

    def next_sequence(self, session_id):
        self.sequences[session_id] = self.sequences.get(session_id, 0) + 1
        return self.sequences[session_id]

    def save_key_result(self, k):
        self.check_ins += k.check_ins
        k.check_ins = []

    def add_event(self, e): self.events.append(e)


class FakeUnitOfWork:
    def __init__(self):
        self.repo = FakeRepository()
        self.committed = False

    def __enter__(self): return self
    def __exit__(self, *exc): pass
    def commit(self): self.committed = True


WS, USER = uuid.uuid4(), uuid.uuid4()
MEMBER = Principal(str(USER), {str(WS): "member"})
CLOCK = FixedClock(datetime(2026, 11, 25, 9, tzinfo=timezone.utc))


def _session(uow, principal=MEMBER):
    return handlers.create_session(commands.CreateSession(
        principal, WS, "Q4", date(2026, 10, 1), date(2026, 12, 31), "Europe/Berlin"), uow=uow, clock=CLOCK)


def test_every_change_emits_one_versioned_event_with_a_session_sequence():
    uow = FakeUnitOfWork()
    session = _session(uow)
    objective = handlers.add_objective(commands.AddObjective(MEMBER, session.id, "Grow"), uow=uow, clock=CLOCK)
    kr = handlers.add_key_result(commands.AddKeyResult(MEMBER, objective.id, "ARR", 10, 20), uow=uow, clock=CLOCK)
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
        handlers.add_objective(commands.AddObjective(stranger, session.id, "x"), uow=uow, clock=CLOCK)
    viewer = Principal(str(uuid.uuid4()), {str(WS): "viewer"})
    with pytest.raises(Forbidden):
        handlers.add_objective(commands.AddObjective(viewer, session.id, "x"), uow=uow, clock=CLOCK)
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
    parent = handlers.add_objective(commands.AddObjective(MEMBER, one.id, "Parent"), uow=uow, clock=CLOCK)
    with pytest.raises(NotFound):
        handlers.add_objective(commands.AddObjective(MEMBER, two.id, "Child", parent_id=parent.id),
                               uow=uow, clock=CLOCK)
