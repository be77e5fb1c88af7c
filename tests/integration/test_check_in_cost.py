"""A Check-in's cost does not grow with the size of its Session (issue 13): deciding whether a
private Objective hides the Key Result reads that Objective's lineage, not every Objective of the
Session. Counted in SQL statements and in Objective rows read, on PostgreSQL."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import event

from services.checkin.bootstrap import bootstrap
from services.checkin.domain import commands
from services.checkin.service_layer import handlers
from shared.access import NotFound
from shared.clock import FixedClock
from shared.tokens import Principal

pytestmark = pytest.mark.integration

WS, LEAD, ANN = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
OWNER = Principal(str(LEAD), {str(WS): "owner"})
MEMBER = Principal(str(ANN), {str(WS): "member"})


class Everyone:
    def non_members(self, principal, workspace_id, user_ids):
        return set()


@pytest.fixture
def checkin(pg_settings):
    container = bootstrap(pg_settings, FixedClock(datetime(2026, 11, 4, 10, tzinfo=timezone.utc)))
    container.migrate()
    yield container
    container.database.dispose()


def session_with(checkin, objectives: int):
    """A Session of `objectives` Objectives in chains of three; a Key Result under the last one,
    whose grandparent is private to its owner, the lead."""
    clock, members = checkin.clock, Everyone()
    session = handlers.create_session(commands.CreateSession(
        OWNER, WS, "Q4", date(2026, 10, 5), date(2026, 12, 27), "UTC"), uow=checkin.uow(), clock=clock)
    parent = None
    for n in range(objectives):
        private = n == objectives - 3
        parent = handlers.add_objective(commands.AddObjective(
            OWNER, session.id, f"O{n}", owner_id=LEAD, parent_id=None if n % 3 == 0 else parent.id,
            private=private), uow=checkin.uow(), clock=clock, members=members)
    return handlers.add_key_result(commands.AddKeyResult(OWNER, parent.id, "KR", 0, 100, owner_id=LEAD),
                                   uow=checkin.uow(), clock=clock, members=members)


def traced_check_in(checkin, key_result_id, principal=OWNER):
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = checkin.database.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        handlers.record_check_in(commands.RecordCheckIn(principal, key_result_id, 5, "on_track", "moved"),
                                 uow=checkin.uow(), clock=checkin.clock)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return statements


def test_a_check_in_costs_the_same_in_a_small_and_a_large_session(checkin):
    small = traced_check_in(checkin, session_with(checkin, 6).id)
    large = traced_check_in(checkin, session_with(checkin, 300).id)

    assert len(large) == len(small)
    reads_every_objective = [s for s in large if "FROM objectives" in s and "WHERE objectives.session_id" in s]
    assert reads_every_objective == []


def test_the_lineage_still_hides_a_key_result_under_a_private_objective(checkin):
    key_result = session_with(checkin, 9)
    with pytest.raises(NotFound):
        traced_check_in(checkin, key_result.id, MEMBER)  # the private grandparent hides it from Ann
    with checkin.uow() as uow:
        lineage = uow.repo.objective_lineage(key_result.objective_id)
    assert [o.title for o in sorted(lineage, key=lambda o: o.title)] == ["O6", "O7", "O8"]
