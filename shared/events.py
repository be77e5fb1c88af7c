"""The event catalogue: stable wire names, integer versions, UTC times, one schema per version.

Producers and consumers both validate with these schemas, so the wire contract lives here only.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate


class UTCDateTime(fields.AwareDateTime):
    """An ISO-8601 instant that must carry an offset; always loaded and dumped as UTC."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=None, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).astimezone(timezone.utc)

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return super()._serialize(value.astimezone(timezone.utc), attr, obj, **kwargs)


STATUSES = ("not_started", "on_track", "at_risk", "off_track", "done")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class SessionState(Schema):
    class Meta:
        unknown = RAISE

    id = fields.UUID(required=True)
    workspace_id = fields.UUID(required=True)
    name = fields.String(required=True)
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    timezone = fields.String(required=True)
    week_start_day = fields.String(required=True, validate=validate.OneOf(WEEKDAYS))


class ObjectiveState(Schema):
    class Meta:
        unknown = RAISE

    id = fields.UUID(required=True)
    session_id = fields.UUID(required=True)
    title = fields.String(required=True)
    owner_id = fields.UUID(allow_none=True, required=True)
    parent_id = fields.UUID(allow_none=True, required=True)


class KeyResultState(Schema):
    class Meta:
        unknown = RAISE

    id = fields.UUID(required=True)
    objective_id = fields.UUID(required=True)
    title = fields.String(required=True)
    owner_id = fields.UUID(allow_none=True, required=True)
    start_value = fields.Float(required=True)
    target_value = fields.Float(required=True)
    current_value = fields.Float(required=True)
    unit = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    progress = fields.Float(required=True, validate=validate.Range(0, 1))


class CheckInState(Schema):
    class Meta:
        unknown = RAISE

    id = fields.UUID(required=True)
    key_result_id = fields.UUID(required=True)
    value = fields.Float(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    comment = fields.String(required=True)
    author_id = fields.UUID(allow_none=True, required=True)
    checked_in_at = UTCDateTime(required=True)


class KeyResultCheckedIn(Schema):
    class Meta:
        unknown = RAISE

    check_in = fields.Nested(CheckInState, required=True)
    key_result = fields.Nested(KeyResultState, required=True)


class ExportRequested(Schema):
    class Meta:
        unknown = RAISE

    job_id = fields.UUID(required=True)


# (name, version) -> payload schema. A schema change adds a version; old ones stay readable.
CATALOGUE: dict[tuple[str, int], type[Schema]] = {
    ("checkin.session.created", 1): SessionState,
    ("checkin.objective.created", 1): ObjectiveState,
    ("checkin.key_result.created", 1): KeyResultState,
    ("checkin.key_result.checked_in", 1): KeyResultCheckedIn,
    ("export.job.requested", 1): ExportRequested,
}


class EnvelopeSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # newer producers may add envelope fields; readers ignore them

    event_id = fields.UUID(required=True)
    event_type = fields.String(required=True, validate=validate.Length(1, 200))
    event_version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    occurred_at = UTCDateTime(required=True)
    workspace_id = fields.UUID(required=True)
    session_id = fields.UUID(allow_none=True, load_default=None)
    entity_id = fields.UUID(required=True)
    sequence = fields.Integer(allow_none=True, load_default=None, strict=True)
    actor_id = fields.UUID(allow_none=True, load_default=None)
    payload = fields.Dict(required=True)


@dataclass(frozen=True)
class Event:
    event_id: uuid.UUID
    event_type: str
    event_version: int
    occurred_at: datetime
    workspace_id: uuid.UUID
    entity_id: uuid.UUID
    payload: dict[str, Any]
    session_id: uuid.UUID | None = None
    sequence: int | None = None
    actor_id: uuid.UUID | None = None

    @classmethod
    def new(cls, event_type: str, *, occurred_at: datetime, workspace_id, entity_id, payload: dict,
            session_id=None, sequence=None, actor_id=None, version: int = 1) -> "Event":
        schema = payload_schema(event_type, version)
        # Validate what we are about to promise on the wire, then keep the wire form.
        wire_payload = schema.dump(schema.load(schema.dump(payload)))
        return cls(uuid.uuid4(), event_type, version, occurred_at, workspace_id, entity_id,
                   wire_payload, session_id, sequence, actor_id)

    def to_wire(self) -> dict[str, Any]:
        return EnvelopeSchema().dump(self.__dict__)

    def load_payload(self) -> dict[str, Any]:
        return payload_schema(self.event_type, self.event_version).load(self.payload)


def payload_schema(event_type: str, version: int) -> Schema:
    try:
        return CATALOGUE[(event_type, version)]()
    except KeyError:
        raise ValidationError(f"unknown event {event_type!r} version {version}", "event_type") from None


def decode(body: Any) -> Event:
    """Wire dict -> validated Event; raises ValidationError with the reason."""
    if not isinstance(body, dict):
        raise ValidationError("message body is not a JSON object")
    envelope = EnvelopeSchema().load(body)
    event = Event(**envelope)
    event.load_payload()  # validates against the catalogue; raises on mismatch
    return event
