"""HTTP bodies of the check-in service. Unknown fields are refused: ids, authors, times and
sequence numbers are never taken from a client."""
from marshmallow import RAISE, Schema, fields, validate

from shared.events import STATUSES, WEEKDAYS

TITLE = validate.Length(min=1, max=500)
NUMBER = dict(allow_nan=False, validate=validate.Range(min=-1e15, max=1e15))


class Strict(Schema):
    class Meta:
        unknown = RAISE


class SessionCreate(Strict):
    name = fields.String(required=True, validate=TITLE)
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    timezone = fields.String(required=True, validate=validate.Length(1, 64))
    week_start_day = fields.String(load_default="monday", validate=validate.OneOf(WEEKDAYS))


class SessionOut(Schema):
    id = fields.UUID()
    workspace_id = fields.UUID()
    name = fields.String()
    start_date = fields.Date()
    end_date = fields.Date()
    timezone = fields.String()
    week_start_day = fields.String()
    created_at = fields.AwareDateTime()


class ObjectiveCreate(Strict):
    title = fields.String(required=True, validate=TITLE)
    owner_id = fields.UUID(load_default=None, allow_none=True)
    parent_id = fields.UUID(load_default=None, allow_none=True)


class ObjectiveOut(Schema):
    id = fields.UUID()
    session_id = fields.UUID()
    title = fields.String()
    owner_id = fields.UUID(allow_none=True)
    parent_id = fields.UUID(allow_none=True)
    created_at = fields.AwareDateTime()


class KeyResultCreate(Strict):
    title = fields.String(required=True, validate=TITLE)
    owner_id = fields.UUID(load_default=None, allow_none=True)
    start_value = fields.Float(required=True, **NUMBER)
    target_value = fields.Float(required=True, **NUMBER)
    current_value = fields.Float(load_default=None, allow_none=True, **NUMBER)
    unit = fields.String(load_default="", validate=validate.Length(max=32))


class KeyResultOut(Schema):
    id = fields.UUID()
    objective_id = fields.UUID()
    session_id = fields.UUID()
    title = fields.String()
    owner_id = fields.UUID(allow_none=True)
    start_value = fields.Float()
    target_value = fields.Float()
    current_value = fields.Float()
    unit = fields.String()
    status = fields.String()
    progress = fields.Float()
    updated_at = fields.AwareDateTime()


class ObjectiveTree(ObjectiveOut):
    key_results = fields.List(fields.Nested(KeyResultOut))


class SessionTree(SessionOut):
    objectives = fields.List(fields.Nested(ObjectiveTree))


class CheckInCreate(Strict):
    value = fields.Float(required=True, **NUMBER)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    comment = fields.String(load_default="", validate=validate.Length(max=5000))


class CheckInOut(Schema):
    id = fields.UUID()
    key_result_id = fields.UUID()
    value = fields.Float()
    status = fields.String()
    comment = fields.String()
    author_id = fields.UUID(allow_none=True)
    checked_in_at = fields.AwareDateTime()


class CheckInRecorded(Schema):
    check_in = fields.Nested(CheckInOut)
    key_result = fields.Nested(KeyResultOut)


class Page(Strict):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 1_000_000))
