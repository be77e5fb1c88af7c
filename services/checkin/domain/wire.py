"""The `checkin.key_result.checked_in` event (and the Key Result's own events) in wire form,
built directly.

The most frequent event (every Check-in, and most of a history import's events). Event.new
validates a payload by dumping, loading and dumping it again with marshmallow: about 0.3 ms
a Check-in, and 80 s for the quarter of a 10,000-Key-Result Session. The domain has already
validated everything the schema checks (status, confidence, milestone values; progress is
clamped), so this builds the same dict in plain Python. tests/unit/test_checkin_wire.py holds
it equal to Event.new(...).to_wire() field for field."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from functools import lru_cache

from shared.events import LATEST, Event

CHECKED_IN = "checkin.key_result.checked_in"
CHECKED_IN_VERSION = LATEST[CHECKED_IN]


def _id(value) -> str | None:
    return None if value is None else str(value)


@lru_cache(maxsize=16_384)
def _text(value: uuid.UUID) -> str:
    return str(value)


def _instant(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat()


@lru_cache(maxsize=16_384)
def _key_result_ids(key_result_id, objective_id, session_id, workspace_id, owner_id) -> dict:
    """A Key Result's ids as text: the same for each of its Check-ins (an import's 26 weeks of
    Check-ins would otherwise format each id 26 times; str(UUID) is the costliest step here)."""
    return {"id": str(key_result_id), "objective_id": str(objective_id), "session_id": str(session_id),
            "workspace_id": str(workspace_id), "owner_id": _id(owner_id)}


def key_result_state(key_result) -> dict:
    """What KeyResultState dumps for this Key Result."""
    ids = _key_result_ids(key_result.id, key_result.objective_id, key_result.session_id, key_result.workspace_id,
                          key_result.owner_id)
    return ids | {
        "title": key_result.title, "kind": key_result.kind,
        "start_value": float(key_result.start_value), "target_value": float(key_result.target_value),
        "current_value": float(key_result.current_value), "unit": key_result.unit, "status": key_result.status,
        "confidence": None if key_result.confidence is None else int(key_result.confidence),
        "weight": float(key_result.weight), "progress": float(key_result.progress),
        "version": int(key_result.version), "removed": key_result.removed_at is not None,
    }


def checked_in_payload(entry, key_result) -> dict:
    """What KeyResultCheckedIn dumps for this Check-in and the Key Result after it."""
    state = key_result_state(key_result)
    return {
        "check_in": {
            "id": str(entry.id), "key_result_id": state["id"], "value": float(entry.value),
            "status": entry.status, "confidence": None if entry.confidence is None else int(entry.confidence),
            "comment": entry.comment, "author_id": _id(entry.author_id), "checked_in_at": _instant(entry.checked_in_at),
        },
        "key_result": state,
    }


def checked_in_event(entry, key_result, *, actor_id, sequence: int | None = None) -> Event:
    """The event, its payload already in wire form (what Event.new would have kept)."""
    return Event(uuid.uuid4(), CHECKED_IN, CHECKED_IN_VERSION, entry.checked_in_at, key_result.workspace_id,
                 key_result.id, checked_in_payload(entry, key_result), key_result.session_id, sequence, actor_id)


def key_result_event(name: str, key_result, *, at: datetime, actor_id, sequence: int | None = None) -> Event:
    """An event whose payload is the Key Result's state (`checkin.key_result.created`, ...)."""
    return Event(uuid.uuid4(), name, LATEST[name], at, key_result.workspace_id, key_result.id,
                 key_result_state(key_result), key_result.session_id, sequence, actor_id)


def envelope(event: Event) -> dict:
    """What Event.to_wire() gives for an event whose payload is already in wire form."""
    return {"event_id": str(event.event_id), "event_type": event.event_type, "event_version": event.event_version,
            "occurred_at": _instant(event.occurred_at), "workspace_id": _text(event.workspace_id),
            "session_id": None if event.session_id is None else _text(event.session_id), "entity_id": _text(event.entity_id),
            "sequence": event.sequence,
            "actor_id": _id(event.actor_id), "payload": event.payload}
