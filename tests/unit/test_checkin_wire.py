"""The Check-in event built without marshmallow is the event Event.new builds, field for field."""
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from services.checkin.domain import wire
from services.checkin.domain.model import KeyResult
from shared.events import Event, decode

BERLIN = timezone(timedelta(hours=1))


@pytest.mark.parametrize("kind, value, confidence, author, owner, at", [
    ("metric", 15, 7, uuid.uuid4(), uuid.uuid4(), datetime(2026, 11, 4, 10, 30, 1, 5, tzinfo=timezone.utc)),
    ("metric", -3.25, None, None, None, datetime(2026, 11, 4, 11, tzinfo=BERLIN)),
    ("milestone", 1, 0, uuid.uuid4(), None, datetime(2026, 3, 29, 1, 59, 59, tzinfo=timezone.utc)),
    ("metric", 250, 10, uuid.uuid4(), uuid.uuid4(), datetime(2026, 12, 31, 23, 0, tzinfo=timezone.utc)),
])
def test_the_direct_wire_form_is_what_marshmallow_makes(kind, value, confidence, author, owner, at):
    key_result = KeyResult(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "Ärger «mit» \"Zeichen\"",
                           10, 20, kind=kind, owner_id=owner, confidence=3, weight=2)
    entry = key_result.check_in(value=value, status="at_risk", confidence=confidence, comment="why\n\u2028",
                                author_id=author, at=at)
    fast = wire.checked_in_event(entry, key_result, actor_id=author, sequence=41)
    slow = Event.new(wire.CHECKED_IN, occurred_at=at, workspace_id=key_result.workspace_id,
                     session_id=key_result.session_id, entity_id=key_result.id, actor_id=author, sequence=41,
                     payload={"check_in": entry.state(), "key_result": key_result.state()})
    assert wire.envelope(fast) | {"event_id": None} == slow.to_wire() | {"event_id": None}
    assert fast.to_wire() == wire.envelope(fast)
    assert decode(wire.envelope(fast)).load_payload()["key_result"]["current_value"] == float(value)


def test_a_key_result_created_event_is_what_marshmallow_makes():
    key_result = KeyResult(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "Revenue", 100, 50, 80,
                           unit="k€", owner_id=None, confidence=None, weight=0.5)
    at = datetime(2026, 10, 5, 9, tzinfo=BERLIN)
    fast = wire.key_result_event("checkin.key_result.created", key_result, at=at, actor_id=None, sequence=3)
    slow = Event.new("checkin.key_result.created", occurred_at=at, workspace_id=key_result.workspace_id,
                     session_id=key_result.session_id, entity_id=key_result.id, sequence=3, payload=key_result.state())
    assert wire.envelope(fast) | {"event_id": None} == slow.to_wire() | {"event_id": None}
