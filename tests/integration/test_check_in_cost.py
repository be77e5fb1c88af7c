"""A Check-in's cost does not grow with the size of its Session (issue 13): deciding whether a
private Objective hides the Key Result reads that Objective's lineage, not every Objective of the
Session, and the whole Check-in is one read and one write. A history import's statements do not
grow with its items (bulk writes per batch, no per-item reads or updates). Counted in SQL
statements, round trips and Objective rows read, on PostgreSQL."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import event, text

from bench.checkin import Wire, history
from services.checkin.bootstrap import bootstrap
from services.checkin.domain import commands
from services.checkin.entrypoints.app import create_app
from services.checkin.service_layer import handlers
from shared import tokens
from shared.access import NotFound
from shared.clock import FixedClock
from shared.events import decode
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


def traced(checkin, work) -> list[str]:
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = checkin.database.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        work()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return statements


def traced_check_in(checkin, key_result_id, principal=OWNER):
    return traced(checkin, lambda: handlers.record_check_in(
        commands.RecordCheckIn(principal, key_result_id, 5, "on_track", "moved"), uow=checkin.uow(), clock=checkin.clock))


def test_a_check_in_costs_the_same_in_a_small_and_a_large_session(checkin):
    small = traced_check_in(checkin, session_with(checkin, 6).id)
    large = traced_check_in(checkin, session_with(checkin, 300).id)

    assert len(large) == len(small) == 2  # one read, one write
    reads_every_objective = [s for s in large if "FROM objectives" in s and "WHERE objectives.session_id" in s]
    assert reads_every_objective == []


def test_the_lineage_still_hides_a_key_result_under_a_private_objective(checkin):
    key_result = session_with(checkin, 9)
    with pytest.raises(NotFound):
        traced_check_in(checkin, key_result.id, MEMBER)  # the private grandparent hides it from Ann
    with checkin.uow() as uow:
        lineage = uow.repo.objective_lineage(key_result.objective_id)
    assert [o.title for o in sorted(lineage, key=lambda o: o.title)] == ["O6", "O7", "O8"]


def test_through_the_http_api_a_check_in_is_two_statements_and_four_round_trips_at_any_size(checkin, tmp_path):
    client = create_app(checkin).test_client()
    headers = {tokens.INTERNAL_HEADER: tokens.internal_token(checkin.settings.internal_secret, "checkin", OWNER)}

    def check_in(key_result) -> None:
        response = client.post(f"/key-results/{key_result.id}/check-ins", headers=headers,
                               json={"value": 7, "status": "at_risk", "comment": "moved"})
        assert response.status_code == 201, response.get_data(as_text=True)

    small, large = session_with(checkin, 3), session_with(checkin, 300)
    wire = Wire(checkin.database.engine, str(tmp_path))
    counts = []
    for key_result in (small, large):
        check_in(key_result)  # the pool's connection is made before counting
        wire.statements = 0
        wire.start()
        check_in(key_result)
        counts.append((wire.statements, wire.stop()))
        wire.traces.clear()
    assert counts[0] == counts[1] == (2, 4)  # BEGIN, read, write, COMMIT


def imported(checkin, directory, key_results: int, weeks: int):
    """The Session a history import made, and its statements and round trips (COPY included)."""
    document = history(key_results, weeks, [str(LEAD)])
    wire = Wire(checkin.database.engine, str(directory))
    wire.start()
    session = handlers.import_history(commands.ImportHistory(OWNER, WS, document), uow=checkin.uow(),
                                      clock=FixedClock(datetime(2027, 1, 10, tzinfo=timezone.utc)), members=Everyone())
    round_trips = wire.stop()
    return session, wire.statements, round_trips


def test_a_history_import_takes_the_same_statements_for_ten_times_the_items(checkin, tmp_path):
    _, *small = imported(checkin, tmp_path / "small", 20, 3)
    _, *large = imported(checkin, tmp_path / "large", 200, 3)  # 60 and 600 Check-ins, both one batch
    assert large == small


def test_a_large_import_writes_in_batches_and_numbers_its_events_without_a_gap(checkin, tmp_path, monkeypatch):
    monkeypatch.setattr(handlers, "IMPORT_BATCH", 100)
    _, _, one_batch = imported(checkin, tmp_path / "one", 30, 0)  # 34 events
    session, _, four_batches = imported(checkin, tmp_path / "four", 30, 10)  # 334 events
    assert four_batches - one_batch <= 3 * 6 + 1  # a COPY per table and batch, one update of the Key Results
    with checkin.database.engine.connect() as conn:
        bodies = [decode(b) for (b,) in conn.execute(text("SELECT body FROM outbox ORDER BY id"))]
        last, = conn.execute(text("SELECT last_sequence FROM sessions WHERE id = :id"), {"id": session.id}).one()
        state = conn.execute(text("SELECT current_value, version FROM key_results WHERE session_id = :id "
                                  "AND title = 'Key Result 29'"), {"id": session.id}).one()
    events = [e for e in bodies if e.session_id == session.id]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1)) and last == len(events) == 1 + 3 + 30 + 300
    check_in = [e for e in events if e.event_type.endswith("checked_in")][-1].load_payload()["key_result"]
    assert check_in["title"] == "Key Result 29" and tuple(state) == (check_in["current_value"], 11)
    traced_check_in(checkin, check_in["id"])  # a live Check-in carries on the count
    with checkin.database.engine.connect() as conn:
        body, = conn.execute(text("SELECT body FROM outbox ORDER BY id DESC LIMIT 1")).one()
    assert decode(body).sequence == last + 1
