"""shared.events loads envelopes and payloads without marshmallow's machinery when it can: for
any input, what that fast path returns must be exactly what schema.load returns (and where the
fast path has a doubt, schema.load decides). Checked on real events and on each of them with one
value replaced, removed or added."""
from __future__ import annotations

import copy
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from shared.events import _ENVELOPE, _compiled, decode, fast_load, payload_schema
from tests.integration.test_weekly_review import EVENTS

ODD_VALUES = [
    None, True, False, 0, 1, -1, 11, 1.5, 10 ** 400, float("nan"), float("inf"), "", "x", "1.5", "7",
    "true", "2026-10-01", "20261001", "2026-10-01T10:00:00", "2026-10-01T10:00:00+02:00",
    "2026-10-01T10:00:00Z", "2026-W41", str(uuid.uuid4()), uuid.uuid4().hex, [], [str(uuid.uuid4())], ["x"],
    {}, {"title": "t", "url": "u", "access": []}, "on_track", "weekly", "monday",
]


def _cases():
    for event in EVENTS:
        wire = event.to_wire()
        yield _ENVELOPE, wire
        yield payload_schema(event.event_type, event.event_version), wire["payload"]


CASES = list(_cases())


def _paths(data, prefix=()):
    for key, value in data.items():
        yield prefix + (key,)
        if isinstance(value, dict):
            yield from _paths(value, prefix + (key,))


def _agrees(schema, data) -> None:
    loader = _compiled(schema)
    assert loader is not None
    try:
        expected = schema.load(copy.deepcopy(data))
    except ValidationError:
        expected = ValidationError
    try:
        fast = loader(copy.deepcopy(data))
    except Exception:  # noqa: BLE001 - a doubt: schema.load decides, checked below
        fast = None
    if fast is not None:
        assert fast == expected
    if expected is ValidationError:
        with pytest.raises(ValidationError):
            fast_load(schema, copy.deepcopy(data))
    else:
        assert fast_load(schema, copy.deepcopy(data)) == expected


def test_every_event_of_a_session_loads_the_same():
    assert {schema.__class__.__name__ for schema, _ in CASES} >= {"EnvelopeSchema", "KeyResultCheckedIn",
                                                                  "SessionStateV2", "WeekClosed"}
    for schema, data in CASES:
        assert _compiled(schema)(copy.deepcopy(data)) == schema.load(copy.deepcopy(data))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_one_changed_value_loads_the_same_or_is_left_to_marshmallow(data):
    schema, original = data.draw(st.sampled_from(CASES))
    changed = copy.deepcopy(original)
    path = data.draw(st.sampled_from(list(_paths(changed))))
    parent = changed
    for key in path[:-1]:
        parent = parent[key]
    action = data.draw(st.sampled_from(["replace", "remove", "add"]))
    if action == "replace":
        parent[path[-1]] = data.draw(st.sampled_from(ODD_VALUES))
    elif action == "remove":
        del parent[path[-1]]
    else:
        parent["unexpected"] = data.draw(st.sampled_from(ODD_VALUES))
    _agrees(schema, changed)


def test_an_invalid_event_is_still_refused_with_marshmallows_reason():
    wire = EVENTS[0].to_wire()
    wire["event_version"] = True
    try:
        decode(wire)
    except ValidationError as error:
        assert "event_version" in error.messages
    else:
        raise AssertionError("a boolean version was accepted")
