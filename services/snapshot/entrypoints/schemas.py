from marshmallow import Schema, ValidationError, fields, validate

from shared.schemas import StrictSchema


def _owner(value: str) -> None:
    if value in ("all", "unassigned"):
        return
    try:
        fields.UUID()._deserialize(value, None, None)
    except ValidationError:
        raise ValidationError("Must be all, unassigned or a member id.") from None


class WeekQuery(StrictSchema):
    owner = fields.String(load_default="all", validate=[validate.Length(max=36), _owner])


class SessionOut(Schema):
    id = fields.UUID()
    workspace_id = fields.UUID()
    name = fields.String()
    start_date = fields.Date()
    end_date = fields.Date()
    timezone = fields.String()
    week_start_day = fields.String()
    checkin_cadence = fields.String()
    status = fields.String()


class InitiativeOut(Schema):
    id = fields.String()
    title = fields.String()
    owner_id = fields.String(allow_none=True)
    status = fields.String()


class KeyResultOut(Schema):
    id = fields.String()
    objective_id = fields.String()
    title = fields.String()
    owner_id = fields.String(allow_none=True)
    start_value = fields.Float()
    target_value = fields.Float()
    current_value = fields.Float()
    unit = fields.String()
    status = fields.String()
    progress = fields.Float()
    confidence = fields.Integer(allow_none=True)
    context = fields.Boolean()
    initiatives = fields.List(fields.Nested(InitiativeOut))


class ObjectiveOut(Schema):
    id = fields.String()
    title = fields.String()
    owner_id = fields.String(allow_none=True)
    parent_id = fields.String(allow_none=True)
    progress = fields.Float(allow_none=True)
    context = fields.Boolean(metadata={"description": "shown only as context of a filtered owner's items"})
    key_results = fields.List(fields.Nested(KeyResultOut))


class CheckInOut(Schema):
    id = fields.UUID()
    key_result_id = fields.UUID()
    value = fields.Float()
    status = fields.String()
    confidence = fields.Integer(allow_none=True)
    comment = fields.String()
    author_id = fields.UUID(allow_none=True)
    checked_in_at = fields.AwareDateTime()


class NearestSaved(Schema):
    before = fields.String(allow_none=True)
    after = fields.String(allow_none=True)


class WeekView(Schema):
    session = fields.Nested(SessionOut)
    week = fields.String()
    starts_at = fields.AwareDateTime()
    ends_at = fields.AwareDateTime()
    status = fields.String(metadata={"description": "current, past, future or no_snapshot"})
    nearest_saved = fields.Nested(NearestSaved)
    owner = fields.String()
    objectives = fields.List(fields.Nested(ObjectiveOut))
    check_ins = fields.List(fields.Nested(CheckInOut))
