from marshmallow import Schema, ValidationError, fields, validate

from shared.schemas import StrictSchema

# Added to answers by the gateway, which owns the people directory: documented here so the
# merged OpenAPI document shows the shape clients get. This service never fills it.
NAME_DOC = {"description": "display name, added by the gateway (null: unassigned, or no longer a member)"}


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


SIGNALS_DOC = {"description": "review signals: status_changed, moved, at_risk, off_track, stale, unassigned, "
                              "active_without_impact"}


class InitiativeOut(Schema):
    id = fields.String()
    title = fields.String()
    has_canvas = fields.Boolean(metadata={"description": "whether it links a canvas (its link: GET "
                                                         "/initiatives/{id}/canvas, with canvas permission)"})
    owner_id = fields.String(allow_none=True)
    owner_name = fields.String(allow_none=True, dump_only=True, metadata=NAME_DOC)
    status = fields.String()
    signals = fields.List(fields.String(), metadata=SIGNALS_DOC)


class Delta(Schema):
    new = fields.Boolean(metadata={"description": "not there in the week compared against"})
    progress_points = fields.Float(allow_none=True, metadata={"description": "progress change, in points (0-100)"})
    value = fields.Float(allow_none=True)
    status_from = fields.String(allow_none=True)
    status_to = fields.String()


class KeyResultOut(Schema):
    id = fields.String()
    objective_id = fields.String()
    title = fields.String()
    owner_id = fields.String(allow_none=True)
    owner_name = fields.String(allow_none=True, dump_only=True, metadata=NAME_DOC)
    start_value = fields.Float()
    target_value = fields.Float()
    current_value = fields.Float()
    unit = fields.String()
    status = fields.String()
    progress = fields.Float()
    confidence = fields.Integer(allow_none=True)
    context = fields.Boolean()
    initiatives = fields.List(fields.Nested(InitiativeOut))
    delta = fields.Nested(Delta, allow_none=True)
    signals = fields.List(fields.String(), metadata=SIGNALS_DOC)


class ObjectiveOut(Schema):
    id = fields.String()
    title = fields.String()
    owner_id = fields.String(allow_none=True)
    owner_name = fields.String(allow_none=True, dump_only=True, metadata=NAME_DOC)
    parent_id = fields.String(allow_none=True)
    depth = fields.Integer(metadata={"description": "0 for a top Objective; the list is the tree in outline order"})
    private = fields.Boolean(metadata={"description": "seen only by its owner, its listed members and admins"})
    progress = fields.Float(allow_none=True)
    context = fields.Boolean(metadata={"description": "shown only as context of a filtered owner's items"})
    key_results = fields.List(fields.Nested(KeyResultOut))


class CheckInOut(Schema):
    late = fields.Boolean(metadata={"description": "made in an earlier week, arrived after it was closed"})
    id = fields.UUID()
    key_result_id = fields.UUID()
    value = fields.Float()
    status = fields.String()
    confidence = fields.Integer(allow_none=True)
    comment = fields.String()
    author_id = fields.UUID(allow_none=True)
    author_name = fields.String(allow_none=True, dump_only=True, metadata=NAME_DOC)
    checked_in_at = fields.AwareDateTime()


class NearestSaved(Schema):
    before = fields.String(allow_none=True)
    after = fields.String(allow_none=True)


class ItemRef(Schema):
    type = fields.String()
    id = fields.String()
    title = fields.String()


class WeekDeltas(Schema):
    against = fields.String(allow_none=True, metadata={"description": "the saved week compared against"})
    new = fields.List(fields.Nested(ItemRef))
    removed = fields.List(fields.Nested(ItemRef))


class WeekView(Schema):
    session = fields.Nested(SessionOut)
    week = fields.String()
    starts_at = fields.AwareDateTime()
    ends_at = fields.AwareDateTime()
    status = fields.String(metadata={"description": "current, sealed, past (ended, being sealed), future or no_snapshot"})
    nearest_saved = fields.Nested(NearestSaved)
    owner = fields.String()
    objectives = fields.List(fields.Nested(ObjectiveOut))
    check_ins = fields.List(fields.Nested(CheckInOut))
    late_amendments = fields.List(fields.Nested(CheckInOut), metadata={
        "description": "Check-ins made this week that arrived after it was closed: they count in a later week"})
    seal = fields.Nested(lambda: Seal(), allow_none=True)
    deltas = fields.Nested(WeekDeltas)
    signals = fields.Dict(keys=fields.String(), values=fields.Integer(),
                          metadata={"description": "how many shown items carry each review signal"})
    applied_through = fields.AwareDateTime(allow_none=True, metadata={
        "description": "when the newest change this reading reflects counts from; null for a sealed week. "
                       "Read from a replica, it says how far behind the primary the reading may be"})


class Seal(Schema):
    content_hash = fields.String()
    previous_hash = fields.String(allow_none=True)
    sealed_at = fields.AwareDateTime()


class ChainWeek(Schema):
    week = fields.String()
    content_hash = fields.String()
    recomputed = fields.String(allow_none=True, metadata={"description": "null when it cannot be recomputed"})
    ok = fields.Boolean()
    problem = fields.String(metadata={"description": "what is wrong with a week that is not ok"})


class Chain(Schema):
    session_id = fields.UUID()
    valid = fields.Boolean()
    weeks = fields.List(fields.Nested(ChainWeek))


class CalendarWeek(Schema):
    week = fields.String()
    starts_at = fields.AwareDateTime()
    ends_at = fields.AwareDateTime()
    status = fields.String(metadata={"description": "sealed, current, past (ended, being sealed), future or no_snapshot"})
    items = fields.Integer(allow_none=True, metadata={"description": "Objectives, Key Results and Initiatives at its end"})
    changes = fields.Integer(metadata={"description": "events that count in the week (a late amendment counts in "
                                                      "the later week it counts in, like its Check-in), the same "
                                                      "for every principal, less what they may not see"})
    check_ins = fields.Integer()


class CalendarMonth(Schema):
    month = fields.String()
    weeks = fields.List(fields.Nested(CalendarWeek))


class Calendar(Schema):
    session = fields.Nested(SessionOut)
    months = fields.List(fields.Nested(CalendarMonth))


class CompareQuery(StrictSchema):
    from_ = fields.String(required=True, data_key="from", validate=validate.Length(max=8))
    to = fields.String(required=True, validate=validate.Length(max=8))


class Reading(Schema):
    value = fields.Float()
    progress = fields.Float()
    status = fields.String()


class ComparedKeyResult(Schema):
    id = fields.String()
    title = fields.String()
    owner_id = fields.String(allow_none=True)
    owner_name = fields.String(allow_none=True, dump_only=True, metadata=NAME_DOC)
    from_ = fields.Nested(Reading, data_key="from", attribute="from", allow_none=True)
    to = fields.Nested(Reading)
    delta = fields.Nested(Delta)


COMPARED_STATUS_DOC = {"description": "the week's status, as in the calendar: sealed, past (ended, being sealed), "
                                      "current, future or no_snapshot. A no_snapshot week had no change: its "
                                      "readings are those of the nearest saved week before it (see *_readings_week)"}
READINGS_WEEK_DOC = {"description": "the week whose readings this side shows: the week itself when it has a "
                                    "Snapshot (or is the current week); for a no_snapshot week the nearest saved "
                                    "week before it (null: none, nothing existed yet); for a future week the "
                                    "current week (live readings)"}
NEAREST_DOC = {"description": "the nearest saved weeks before and after this week"}


class Comparison(Schema):
    session = fields.Nested(SessionOut)
    from_ = fields.String(data_key="from", attribute="from")
    to = fields.String()
    from_status = fields.String(metadata=COMPARED_STATUS_DOC)
    from_readings_week = fields.String(allow_none=True, metadata=READINGS_WEEK_DOC)
    from_nearest_saved = fields.Nested(NearestSaved, metadata=NEAREST_DOC)
    to_status = fields.String(metadata=COMPARED_STATUS_DOC)
    to_readings_week = fields.String(allow_none=True, metadata=READINGS_WEEK_DOC)
    to_nearest_saved = fields.Nested(NearestSaved, metadata=NEAREST_DOC)
    key_results = fields.List(fields.Nested(ComparedKeyResult))
    new = fields.List(fields.Nested(ItemRef))
    removed = fields.List(fields.Nested(ItemRef))


class TrendPoint(Schema):
    week = fields.String()
    progress = fields.Float()


class KeyResultTrend(Schema):
    id = fields.String()
    title = fields.String()
    points = fields.List(fields.Nested(TrendPoint))
    moved_late = fields.Boolean(metadata={"description": "most of its progress came in the Session's last third"})


class Trend(Schema):
    session = fields.Nested(SessionOut)
    weeks = fields.List(fields.String())
    key_results = fields.List(fields.Nested(KeyResultTrend))
