"""The event catalogue: stable wire names, integer versions, UTC times, one schema per version.

Producers and consumers both validate with these schemas, so the wire contract lives here only.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, missing, validate

from shared.schemas import StrictSchema as Strict
from shared.weeks import WEEKDAYS  # noqa: F401 - part of the wire vocabulary


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
INITIATIVE_STATUSES = ("not_started", "in_progress", "blocked", "done", "cancelled")
CADENCES = ("weekly", "biweekly", "monthly")
KEY_RESULT_KINDS = ("metric", "milestone")




class SessionState(Strict):
    id = fields.UUID(required=True)
    workspace_id = fields.UUID(required=True)
    name = fields.String(required=True)
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    timezone = fields.String(required=True)
    week_start_day = fields.String(required=True, validate=validate.OneOf(WEEKDAYS))
    checkin_cadence = fields.String(required=True, validate=validate.OneOf(CADENCES))
    checkin_weekday = fields.String(required=True, validate=validate.OneOf(WEEKDAYS))
    status = fields.String(required=True, validate=validate.OneOf(("active", "archived")))
    version = fields.Integer(required=True, strict=True)


class SessionStateV2(SessionState):
    """v2 adds who may see the Session: the whole Workspace, or only the listed members (and
    the Workspace's owners and admins)."""

    visibility = fields.String(required=True, validate=validate.OneOf(("workspace", "restricted")))
    members = fields.List(fields.UUID(), required=True)


def _session_v1_to_v2(payload: dict) -> dict:
    return payload | {"visibility": "workspace", "members": []}


class ObjectiveState(Strict):
    id = fields.UUID(required=True)
    session_id = fields.UUID(required=True)
    workspace_id = fields.UUID(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    owner_id = fields.UUID(allow_none=True, required=True)
    parent_id = fields.UUID(allow_none=True, required=True)
    private = fields.Boolean(required=True)
    visible_to = fields.List(fields.UUID(), required=True)
    version = fields.Integer(required=True, strict=True)
    removed = fields.Boolean(required=True)


class KeyResultState(Strict):
    id = fields.UUID(required=True)
    objective_id = fields.UUID(required=True)
    session_id = fields.UUID(required=True)
    workspace_id = fields.UUID(required=True)
    title = fields.String(required=True)
    owner_id = fields.UUID(allow_none=True, required=True)
    kind = fields.String(required=True, validate=validate.OneOf(KEY_RESULT_KINDS))
    start_value = fields.Float(required=True)
    target_value = fields.Float(required=True)
    current_value = fields.Float(required=True)
    unit = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    confidence = fields.Integer(allow_none=True, required=True, validate=validate.Range(0, 10))
    weight = fields.Float(required=True)
    progress = fields.Float(required=True, validate=validate.Range(0, 1))
    version = fields.Integer(required=True, strict=True)
    removed = fields.Boolean(required=True)


class CanvasState(Strict):
    title = fields.String(required=True)
    url = fields.String(required=True)
    access = fields.List(fields.UUID(), required=True)


class InitiativeState(Strict):
    id = fields.UUID(required=True)
    session_id = fields.UUID(required=True)
    workspace_id = fields.UUID(required=True)
    title = fields.String(required=True)
    owner_id = fields.UUID(allow_none=True, required=True)
    status = fields.String(required=True, validate=validate.OneOf(INITIATIVE_STATUSES))
    canvas = fields.Nested(CanvasState, allow_none=True, required=True)
    key_result_ids = fields.List(fields.UUID(), required=True)
    version = fields.Integer(required=True, strict=True)
    removed = fields.Boolean(required=True)


class CheckInState(Strict):
    id = fields.UUID(required=True)
    key_result_id = fields.UUID(required=True)
    value = fields.Float(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    confidence = fields.Integer(allow_none=True, required=True, validate=validate.Range(0, 10))
    comment = fields.String(required=True)
    author_id = fields.UUID(allow_none=True, required=True)
    checked_in_at = UTCDateTime(required=True)


class InitiativeCheckInState(Strict):
    id = fields.UUID(required=True)
    initiative_id = fields.UUID(required=True)
    status = fields.String(required=True, validate=validate.OneOf(INITIATIVE_STATUSES))
    comment = fields.String(required=True)
    author_id = fields.UUID(allow_none=True, required=True)
    checked_in_at = UTCDateTime(required=True)


class WeekClosed(Strict):
    """Travels in the Session's own event stream after every event that occurred before the
    week's end: a consumer that has applied everything before it may seal the week."""

    session_id = fields.UUID(required=True)
    week = fields.String(required=True, validate=validate.Regexp(r"^\d{4}-W\d{2}$"))
    starts_at = UTCDateTime(required=True)
    ends_at = UTCDateTime(required=True)


class KeyResultCheckedIn(Strict):
    check_in = fields.Nested(CheckInState, required=True)
    key_result = fields.Nested(KeyResultState, required=True)


class InitiativeCheckedIn(Strict):
    check_in = fields.Nested(InitiativeCheckInState, required=True)
    initiative = fields.Nested(InitiativeState, required=True)


class ExportRequested(Strict):
    job_id = fields.UUID(required=True)


# (name, version) -> payload schema. A schema change adds a version; old ones stay readable.
CATALOGUE: dict[tuple[str, int], type[Schema]] = {
    ("checkin.session.created", 1): SessionState,
    ("checkin.session.updated", 1): SessionState,
    ("checkin.session.archived", 1): SessionState,
    ("checkin.session.created", 2): SessionStateV2,
    ("checkin.session.updated", 2): SessionStateV2,
    ("checkin.session.archived", 2): SessionStateV2,
    ("checkin.session.week_closed", 1): WeekClosed,
    ("checkin.objective.created", 1): ObjectiveState,
    ("checkin.objective.updated", 1): ObjectiveState,
    ("checkin.objective.removed", 1): ObjectiveState,
    ("checkin.key_result.created", 1): KeyResultState,
    ("checkin.key_result.updated", 1): KeyResultState,
    ("checkin.key_result.removed", 1): KeyResultState,
    ("checkin.key_result.checked_in", 1): KeyResultCheckedIn,
    ("checkin.initiative.created", 1): InitiativeState,
    ("checkin.initiative.updated", 1): InitiativeState,
    ("checkin.initiative.removed", 1): InitiativeState,
    ("checkin.initiative.connected", 1): InitiativeState,
    ("checkin.initiative.disconnected", 1): InitiativeState,
    ("checkin.initiative.checked_in", 1): InitiativeCheckedIn,
    ("export.job.requested", 1): ExportRequested,
}

# (name, old version) -> (new version, function): a reader upcasts an old event, never edits it.
UPCASTERS = {
    ("checkin.session.created", 1): (2, _session_v1_to_v2),
    ("checkin.session.updated", 1): (2, _session_v1_to_v2),
    ("checkin.session.archived", 1): (2, _session_v1_to_v2),
}
LATEST = {name: max(v for n, v in CATALOGUE if n == name) for name, _ in CATALOGUE}


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
            session_id=None, sequence=None, actor_id=None, version: int | None = None) -> "Event":
        version = version or LATEST.get(event_type, 1)
        schema = payload_schema(event_type, version)
        # Validate what we are about to promise on the wire, then keep the wire form.
        wire_payload = schema.dump(schema.load(schema.dump(payload)))
        return cls(uuid.uuid4(), event_type, version, occurred_at, workspace_id, entity_id,
                   wire_payload, session_id, sequence, actor_id)

    def to_wire(self) -> dict[str, Any]:
        return _ENVELOPE.dump({k: v for k, v in self.__dict__.items() if not k.startswith("_")})

    def received_wire(self) -> dict[str, Any]:
        """The body exactly as it came off the broker, signature included (decode() keeps it):
        what a consumer stores to apply or dead-letter later, so a replay still verifies. An
        event made here, never received, gives its (unsigned) wire form."""
        return self.__dict__.get("_received") or self.to_wire()

    def load_payload(self) -> dict[str, Any]:
        """The payload validated against its own version, then upcast to the latest one; done
        once per event (decode() already did it), the result shared read-only."""
        loaded = self.__dict__.get("_loaded")
        if loaded is None:
            loaded = fast_load(payload_schema(self.event_type, self.event_version), self.payload)
            version = self.event_version
            while (self.event_type, version) in UPCASTERS:
                version, upcast = UPCASTERS[(self.event_type, version)]
                loaded = upcast(loaded)
            object.__setattr__(self, "_loaded", loaded)  # a cache, not part of the event's value
        return loaded


_SCHEMAS: dict[tuple[str, int], Schema] = {}


def payload_schema(event_type: str, version: int) -> Schema:
    """One schema object per event type and version: building one (with its nested schemas)
    costs more than the validation itself, and loading keeps no state on the schema."""
    key = (event_type, version)
    schema = _SCHEMAS.get(key)
    if schema is None:
        try:
            schema = _SCHEMAS[key] = CATALOGUE[key]()
        except KeyError:
            raise ValidationError(f"unknown event {event_type!r} version {version}", "event_type") from None
    return schema


_ENVELOPE = EnvelopeSchema()


# --- loading without marshmallow's machinery ----------------------------------------------------
# A consumer loads every event twice (envelope, payload), and marshmallow's per-field machinery
# was most of a consumer's own cost per event (issue 13). The schemas above stay the contract:
# a loader is compiled from each schema's fields, applies the same conversions (the same
# fromisoformat, UUID, float calls) and the schema's own validators, and gives up at the first
# doubt - any input it does not take as is goes to schema.load, which accepts it the same way or
# raises with marshmallow's messages. So what it returns is what schema.load returns.

class _Doubt(Exception):
    """The fast loader leaves this input to marshmallow."""


def _exact(kind: type) -> Callable[[Any], Any]:
    def convert(value):
        if type(value) is not kind:
            raise _Doubt
        return value
    return convert


def _from_text(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    def convert(value):
        if type(value) is not str:
            raise _Doubt
        return parse(value)
    return convert


def _as_float(value):
    if type(value) is float:
        if not math.isfinite(value):
            raise _Doubt
        return value
    if type(value) is int:
        return float(value)
    raise _Doubt


def _utc_datetime(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        raise _Doubt
    return moment.astimezone(timezone.utc)


def _as_dict(value):
    if type(value) is not dict:
        raise _Doubt
    return dict(value)


def _field_loader(field: fields.Field) -> Callable[[Any], Any] | None:
    """The conversion of one field's value (None where the fast path does not know the field)."""
    kind = type(field)
    if getattr(field, "format", None) not in (None, "iso"):
        return None
    if kind is fields.String:
        return _exact(str)
    if kind is fields.UUID:
        return _from_text(uuid.UUID)
    if kind is fields.Integer:
        return _exact(int)  # a bool is not `int` by type, so it goes to marshmallow (which refuses it)
    if kind is fields.Float and not field.allow_nan:
        return _as_float
    if kind is fields.Boolean:
        return _exact(bool)
    if kind is fields.Date:
        return _from_text(date.fromisoformat)
    if kind is UTCDateTime:
        return _from_text(_utc_datetime)
    if kind is fields.Dict and field.key_field is None and field.value_field is None:
        return _as_dict
    if kind is fields.List:
        inner = field.inner
        item = _field_loader(inner)
        if item is None or inner.validators or inner.allow_none:
            return None

        def as_list(value):
            if type(value) is not list:
                raise _Doubt
            return [item(v) for v in value]
        return as_list
    if kind is fields.Nested and not field.many:
        nested = _compiled(field.schema)
        return None if nested is None else nested
    return None


def _compile(schema: Schema) -> Callable[[Any], dict] | None:
    if any(schema._hooks.values()) or schema.unknown not in (RAISE, EXCLUDE) or schema.many:
        return None
    steps = []
    for name, field in schema.load_fields.items():
        if field.data_key not in (None, name) or field.attribute not in (None, name):
            return None
        convert = _field_loader(field)
        if convert is None:
            return None
        steps.append((name, convert, tuple(field.validators), field.required, field.allow_none,
                      field.load_default))
    known = frozenset(schema.load_fields)
    refuse_unknown = schema.unknown == RAISE

    def load(data):
        if type(data) is not dict or (refuse_unknown and not known.issuperset(data)):
            raise _Doubt
        loaded = {}
        for name, convert, validators, required, allow_none, default in steps:
            value = data.get(name, missing)
            if value is missing:
                if required:
                    raise _Doubt
                if default is not missing:
                    loaded[name] = default() if callable(default) else default
                continue
            if value is None:
                if not allow_none:
                    raise _Doubt
                loaded[name] = None
                continue
            value = convert(value)
            for validator in validators:
                if validator(value) is False:  # marshmallow's rule for a plain function
                    raise _Doubt
            loaded[name] = value
        return loaded
    return load


_LOADERS: dict[int, tuple[Schema, Callable[[Any], dict] | None]] = {}


def _compiled(schema: Schema) -> Callable[[Any], dict] | None:
    entry = _LOADERS.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = _LOADERS[id(schema)] = (schema, _compile(schema))
    return entry[1]


def fast_load(schema: Schema, data) -> dict:
    """schema.load(data), fast for the well-formed input producers send (see above)."""
    loader = _compiled(schema)
    if loader is not None:
        try:
            return loader(data)
        except (_Doubt, ValidationError, ValueError, TypeError, AttributeError, OverflowError):
            pass
    return schema.load(data)


def decode(body: Any) -> Event:
    """Wire dict -> validated Event; raises ValidationError with the reason."""
    if not isinstance(body, dict):
        raise ValidationError("message body is not a JSON object")
    envelope = fast_load(_ENVELOPE, body)
    event = Event(**envelope)
    event.load_payload()  # validates against the catalogue; raises on mismatch
    object.__setattr__(event, "_received", body)  # not part of the event's value, like _loaded
    return event


# --- signatures -------------------------------------------------------------------------------
# Every event on the wire carries an HMAC-SHA256 by okrsnap's event-signing key
# (OKRSNAP_EVENT_SIGNING_KEY), so a consumer applies only what an okrsnap producer published
# (docs/events.md, "Signature"; docs/security.md). The signed bytes:
#
#   b"okrsnap-event-v1\n" + json.dumps(envelope, sort_keys=True, separators=(",", ":"),
#                                      ensure_ascii=True, allow_nan=False).encode("ascii")
#
# where `envelope` is the message's JSON object without its "signature" member: every other
# member (event_id, event_type, event_version, occurred_at, workspace_id, session_id, entity_id,
# sequence, actor_id, payload, and any member a newer producer adds) is covered, nested objects
# with their keys sorted too, non-ASCII characters as \uXXXX escapes. The "signature" member:
#   {"alg": "HMAC-SHA256", "key_id": "<16 hex digits>", "value": "<base64url of the MAC, no padding>"}
# key_id = the first 16 hex digits of SHA-256(b"okrsnap-event-key-id\n" + key): it names a key
# without revealing it, so a consumer finds the key an event was signed with among the current
# one and those being rotated out (OKRSNAP_EVENT_SIGNING_KEY_PREVIOUS).

SIGNATURE = "signature"
SIGNATURE_ALGORITHM = "HMAC-SHA256"
_SIGNED_PREFIX = b"okrsnap-event-v1\n"
_KEY_ID_PREFIX = b"okrsnap-event-key-id\n"


class InvalidSignature(ValueError):
    """An event without a valid signature by a known key: it will never verify, whoever delivers it."""


def key_id(key: str) -> str:
    return hashlib.sha256(_KEY_ID_PREFIX + key.encode("utf-8")).hexdigest()[:16]


def canonical_bytes(body: dict) -> bytes:
    """The bytes an event's signature covers (see above). Raises InvalidSignature for a body that
    has no canonical form (not a JSON object, NaN or infinite numbers, keys that are not strings)."""
    if not isinstance(body, dict):
        raise InvalidSignature("message body is not a JSON object")
    unsigned = {k: v for k, v in body.items() if k != SIGNATURE}
    try:
        text = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidSignature(f"the event has no canonical form: {exc}") from None
    return _SIGNED_PREFIX + text.encode("ascii")


def _mac(key: str, body: dict) -> bytes:
    return hmac.new(key.encode("utf-8"), canonical_bytes(body), hashlib.sha256).digest()


class EventSigner:
    """Signs wire bodies with one key (the current OKRSNAP_EVENT_SIGNING_KEY)."""

    def __init__(self, key: str):
        if not key:
            raise ValueError("an event-signing key is needed")
        self._key, self.key_id = key, key_id(key)

    def sign(self, body: dict) -> dict:
        """The body with its "signature" member (a new dict; an old signature is replaced)."""
        value = base64.urlsafe_b64encode(_mac(self._key, body)).rstrip(b"=").decode("ascii")
        unsigned = {k: v for k, v in body.items() if k != SIGNATURE}
        return unsigned | {SIGNATURE: {"alg": SIGNATURE_ALGORITHM, "key_id": self.key_id, "value": value}}


class EventVerifier:
    """Checks a wire body's signature against the keys it accepts (the current key first, then
    those being rotated out), chosen by the key id the signature names."""

    def __init__(self, keys):
        keys = [k for k in ((keys,) if isinstance(keys, str) else tuple(keys)) if k]
        if not keys:
            raise ValueError("at least one event-signing key is needed")
        self._keys = {}
        for key in keys:
            self._keys.setdefault(key_id(key), key)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def verify(self, body) -> None:
        """Returns if `body` carries a valid signature by one of the keys; raises
        InvalidSignature with the reason otherwise."""
        if not isinstance(body, dict):
            raise InvalidSignature("message body is not a JSON object")
        signature = body.get(SIGNATURE)
        if signature is None:
            raise InvalidSignature("unsigned event: no signature")
        if not isinstance(signature, dict) or not all(isinstance(signature.get(f), str)
                                                      for f in ("alg", "key_id", "value")):
            raise InvalidSignature("malformed signature: want {alg, key_id, value} strings")
        if signature["alg"] != SIGNATURE_ALGORITHM:
            raise InvalidSignature(f"signature algorithm {signature['alg'][:40]!r} is not {SIGNATURE_ALGORITHM}")
        key = self._keys.get(signature["key_id"])
        if key is None:
            raise InvalidSignature(f"signed with an unknown key id {signature['key_id'][:40]!r} "
                                   f"(accepted: {', '.join(self._keys)})")
        try:
            given = base64.urlsafe_b64decode(signature["value"] + "=" * (-len(signature["value"]) % 4))
        except (ValueError, TypeError):
            raise InvalidSignature("malformed signature: the value is not base64url") from None
        if not hmac.compare_digest(given, _mac(key, body)):
            raise InvalidSignature(f"wrong signature: the event does not match its signature "
                                   f"(key id {signature['key_id']})")
