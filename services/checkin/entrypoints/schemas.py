"""HTTP bodies of the check-in service. Unknown fields are refused: ids, authors, times, versions
and sequence numbers are never taken from a client."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.checkin.domain.text import TextRefused, clean_canvas_url, clean_title
from shared.events import (
    CADENCES,
    INITIATIVE_STATUSES,
    KEY_RESULT_KINDS,
    STATUSES,
    WEEKDAYS,
)
from shared.schemas import StrictSchema as Strict

TITLE = validate.Length(min=1, max=500)


class Title(fields.String):
    """A title as stored: NFC, stripped; no control or bidi-override characters, something visible."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return clean_title(text)
        except TextRefused as exc:
            raise ValidationError(exc.message) from None


class CanvasUrl(fields.Url):
    """An http(s) link without credentials, quotes, angle brackets or look-alike hosts."""

    def _deserialize(self, value, attr, data, **kwargs):
        url = super()._deserialize(value, attr, data, **kwargs)
        try:
            return clean_canvas_url(url)
        except TextRefused as exc:
            raise ValidationError(exc.message) from None

TEXT = validate.Length(max=5000)
NUMBER = dict(allow_nan=False, validate=validate.Range(min=-1e15, max=1e15))
MEMBERS = dict(validate=validate.Length(max=500))
# Added to answers by the gateway, which owns the people directory: documented here so the
# merged OpenAPI document shows the shape clients get. This service never fills it.
NAME_DOC = {"description": "display name, added by the gateway (null: unassigned, or no longer a member)"}




class AtLeastOne(Strict):
    @validates_schema
    def _not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Name at least one field to change.")


# --- Sessions ------------------------------------------------------------------------------

class SessionFields(Strict):
    name = Title(validate=TITLE)
    start_date = fields.Date()
    end_date = fields.Date()
    timezone = fields.String(validate=validate.Length(1, 64))
    week_start_day = fields.String(validate=validate.OneOf(WEEKDAYS))
    checkin_cadence = fields.String(validate=validate.OneOf(CADENCES))
    checkin_weekday = fields.String(validate=validate.OneOf(WEEKDAYS))
    visibility = fields.String(validate=validate.OneOf(("workspace", "restricted")),
                               metadata={"description": "workspace: every member; restricted: the listed "
                                                        "members, owners and admins (owners and admins set it)"})
    members = fields.List(fields.UUID(), **MEMBERS)


class SessionCreate(SessionFields):
    name = Title(required=True, validate=TITLE)
    start_date = fields.Date(required=True)
    end_date = fields.Date(required=True)
    timezone = fields.String(required=True, validate=validate.Length(1, 64))
    week_start_day = fields.String(load_default="monday", validate=validate.OneOf(WEEKDAYS))
    checkin_cadence = fields.String(load_default="weekly", validate=validate.OneOf(CADENCES))
    checkin_weekday = fields.String(load_default="friday", validate=validate.OneOf(WEEKDAYS))
    visibility = fields.String(load_default="workspace", validate=validate.OneOf(("workspace", "restricted")))
    members = fields.List(fields.UUID(), load_default=list, **MEMBERS)


class SessionPatch(SessionFields, AtLeastOne):
    pass


class SessionOut(Schema):
    id = fields.UUID()
    workspace_id = fields.UUID()
    name = fields.String()
    start_date = fields.Date()
    end_date = fields.Date()
    timezone = fields.String()
    week_start_day = fields.String()
    checkin_cadence = fields.String()
    checkin_weekday = fields.String()
    status = fields.String(metadata={"description": "active or archived (read-only, still reviewable)"})
    visibility = fields.String()
    members = fields.List(fields.UUID())
    version = fields.Integer()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


# --- Objectives ----------------------------------------------------------------------------

class ObjectiveFields(Strict):
    title = Title(validate=TITLE)
    description = fields.String(validate=TEXT)
    owner_id = fields.UUID(allow_none=True)
    parent_id = fields.UUID(allow_none=True)
    private = fields.Boolean()
    visible_to = fields.List(fields.UUID(), **MEMBERS)


class ObjectiveCreate(ObjectiveFields):
    title = Title(required=True, validate=TITLE)
    description = fields.String(load_default="", validate=TEXT)
    owner_id = fields.UUID(load_default=None, allow_none=True)
    parent_id = fields.UUID(load_default=None, allow_none=True)
    private = fields.Boolean(load_default=False)
    visible_to = fields.List(fields.UUID(), load_default=list, **MEMBERS)


class ObjectivePatch(ObjectiveFields, AtLeastOne):
    pass


class ObjectiveOut(Schema):
    id = fields.UUID()
    session_id = fields.UUID()
    title = fields.String()
    description = fields.String()
    owner_id = fields.UUID(allow_none=True)
    owner_name = fields.String(allow_none=True, dump_only=True, metadata=NAME_DOC)
    parent_id = fields.UUID(allow_none=True)
    private = fields.Boolean()
    visible_to = fields.List(fields.UUID())
    version = fields.Integer()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


# --- Key Results ---------------------------------------------------------------------------

class KeyResultFields(Strict):
    title = Title(validate=TITLE)
    owner_id = fields.UUID(allow_none=True)
    start_value = fields.Float(**NUMBER)
    target_value = fields.Float(**NUMBER)
    unit = fields.String(validate=validate.Length(max=32))
    status = fields.String(validate=validate.OneOf(STATUSES))
    confidence = fields.Integer(allow_none=True, strict=True, validate=validate.Range(0, 10))
    weight = fields.Float(allow_nan=False, validate=validate.Range(min=0, max=1000, min_inclusive=False))


class KeyResultCreate(KeyResultFields):
    title = Title(required=True, validate=TITLE)
    kind = fields.String(load_default="metric", validate=validate.OneOf(KEY_RESULT_KINDS),
                         metadata={"description": "metric (start, target, current) or milestone (done / not done)"})
    owner_id = fields.UUID(load_default=None, allow_none=True)
    start_value = fields.Float(load_default=0.0, **NUMBER)
    target_value = fields.Float(load_default=1.0, **NUMBER)
    current_value = fields.Float(load_default=None, allow_none=True, **NUMBER)
    unit = fields.String(load_default="", validate=validate.Length(max=32))
    status = fields.String(load_default="not_started", validate=validate.OneOf(STATUSES))
    confidence = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(0, 10))
    weight = fields.Float(load_default=1.0, allow_nan=False,
                          validate=validate.Range(min=0, max=1000, min_inclusive=False))


class KeyResultPatch(KeyResultFields, AtLeastOne):
    pass


class KeyResultOut(Schema):
    id = fields.UUID()
    objective_id = fields.UUID()
    session_id = fields.UUID()
    title = fields.String()
    owner_id = fields.UUID(allow_none=True)
    owner_name = fields.String(allow_none=True, dump_only=True, metadata=NAME_DOC)
    kind = fields.String()
    start_value = fields.Float()
    target_value = fields.Float()
    current_value = fields.Float()
    unit = fields.String()
    status = fields.String()
    confidence = fields.Integer(allow_none=True)
    weight = fields.Float()
    progress = fields.Float(metadata={"description": "computed: (current - start) / (target - start), 0..1"})
    version = fields.Integer()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


# --- Initiatives ---------------------------------------------------------------------------

class CanvasIn(Strict):
    title = Title(required=True, validate=TITLE)
    url = CanvasUrl(required=True, schemes={"http", "https"}, validate=validate.Length(max=2000))
    access = fields.List(fields.UUID(), load_default=list, **MEMBERS)


class CanvasOut(Schema):
    title = fields.String()
    url = fields.String(allow_none=True, metadata={"description": "null without canvas permission"})
    access = fields.List(fields.UUID(), metadata={"description": "empty without canvas permission"})
    can_open = fields.Boolean(dump_default=True, metadata={"description": "whether you may open the canvas"})


class InitiativeFields(Strict):
    title = Title(validate=TITLE)
    status = fields.String(validate=validate.OneOf(INITIATIVE_STATUSES))
    owner_id = fields.UUID(allow_none=True)
    canvas = fields.Nested(CanvasIn, allow_none=True)


class InitiativeCreate(InitiativeFields):
    title = Title(required=True, validate=TITLE)
    status = fields.String(load_default="not_started", validate=validate.OneOf(INITIATIVE_STATUSES))
    owner_id = fields.UUID(load_default=None, allow_none=True)
    canvas = fields.Nested(CanvasIn, load_default=None, allow_none=True)
    key_result_ids = fields.List(fields.UUID(), load_default=list, validate=validate.Length(max=100))


class InitiativePatch(InitiativeFields, AtLeastOne):
    pass


class InitiativeOut(Schema):
    id = fields.UUID()
    session_id = fields.UUID()
    title = fields.String()
    status = fields.String()
    owner_id = fields.UUID(allow_none=True)
    owner_name = fields.String(allow_none=True, dump_only=True, metadata=NAME_DOC)
    canvas = fields.Nested(CanvasOut, allow_none=True)
    key_result_ids = fields.List(fields.UUID())
    version = fields.Integer()
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


# --- Check-ins -----------------------------------------------------------------------------

class CanvasView(Schema):
    initiative_id = fields.UUID()
    title = fields.String()
    url = fields.String()
    access = fields.List(fields.UUID())


class AccessQuery(Strict):
    resource = fields.String(required=True, validate=validate.Regexp(
        r"^(workspace|session|objective|key_result|initiative|canvas):[0-9a-fA-F-]{36}$",
        error="Name a resource as <kind>:<id>, kind one of workspace, session, objective, key_result, "
              "initiative, canvas."), metadata={"description": "e.g. objective:3f2c…"})


class AccessReason(Schema):
    code = fields.String()
    message = fields.String()


class AccessExplained(Schema):
    resource = fields.String()
    can_view = fields.Boolean()
    can_check_in = fields.Boolean()
    can_edit = fields.Boolean()
    can_open_canvas = fields.Boolean(allow_none=True)
    reasons = fields.List(fields.Nested(AccessReason))


class CheckInCreate(Strict):
    value = fields.Float(required=True, **NUMBER)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    confidence = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(0, 10))
    comment = fields.String(load_default="", validate=TEXT)


class CheckInOut(Schema):
    id = fields.UUID()
    key_result_id = fields.UUID()
    value = fields.Float()
    status = fields.String()
    confidence = fields.Integer(allow_none=True)
    comment = fields.String()
    author_id = fields.UUID(allow_none=True)
    author_name = fields.String(allow_none=True, dump_only=True, metadata=NAME_DOC)
    checked_in_at = fields.AwareDateTime()


class CheckInRecorded(Schema):
    check_in = fields.Nested(CheckInOut)
    key_result = fields.Nested(KeyResultOut)


class InitiativeCheckInCreate(Strict):
    status = fields.String(required=True, validate=validate.OneOf(INITIATIVE_STATUSES))
    comment = fields.String(load_default="", validate=TEXT)


class InitiativeCheckInOut(Schema):
    id = fields.UUID()
    initiative_id = fields.UUID()
    status = fields.String()
    comment = fields.String()
    author_id = fields.UUID(allow_none=True)
    author_name = fields.String(allow_none=True, dump_only=True, metadata=NAME_DOC)
    checked_in_at = fields.AwareDateTime()


class InitiativeCheckInRecorded(Schema):
    check_in = fields.Nested(InitiativeCheckInOut)
    initiative = fields.Nested(InitiativeOut)


class Page(Strict):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 1_000_000))


class CheckInPage(Schema):
    items = fields.List(fields.Nested(CheckInOut))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()


class InitiativeCheckInPage(CheckInPage):
    items = fields.List(fields.Nested(InitiativeCheckInOut))


# --- Views ---------------------------------------------------------------------------------

def _owner(value: str) -> None:
    if value in ("all", "unassigned"):
        return
    fields.UUID().deserialize(value)


class ListQueryIn(Page):
    type = fields.List(fields.String(validate=validate.OneOf(("objective", "key_result", "initiative"))),
                       load_default=lambda: ["objective", "key_result", "initiative"],
                       validate=validate.Length(max=3))
    q = fields.String(load_default="", validate=validate.Length(max=200))
    owner = fields.String(load_default="all", validate=[validate.Length(max=36), _owner])
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES + INITIATIVE_STATUSES))
    sort = fields.String(load_default="title", validate=validate.OneOf(
        [s for name in ("title", "progress", "status", "owner", "updated_at") for s in (name, f"-{name}")]))


class ListItem(Schema):
    type = fields.String()
    id = fields.UUID()
    title = fields.String()
    owner_id = fields.UUID(allow_none=True)
    owner_name = fields.String(allow_none=True, dump_only=True, metadata=NAME_DOC)
    status = fields.String()
    progress = fields.Float(allow_none=True)
    parent_id = fields.UUID(allow_none=True)
    version = fields.Integer()
    updated_at = fields.AwareDateTime()


class ListOut(Schema):
    items = fields.List(fields.Nested(ListItem))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()


class TreeKeyResult(Schema):
    key_result = fields.Nested(KeyResultOut)
    initiatives = fields.List(fields.Nested(InitiativeOut))


class TreeNode(Schema):
    objective = fields.Nested(ObjectiveOut)
    progress = fields.Float(allow_none=True)
    key_results = fields.List(fields.Nested(TreeKeyResult))
    children = fields.List(fields.Nested(lambda: TreeNode()))


class TreeOut(Schema):
    session = fields.Nested(SessionOut)
    objectives = fields.List(fields.Nested(TreeNode))
    unconnected_initiatives = fields.List(fields.Nested(InitiativeOut))


class InitiativeCanvas(Schema):
    initiative_id = fields.UUID()
    title = fields.String()
    url = fields.String(allow_none=True, metadata={"description": "null without canvas permission"})
    can_open = fields.Boolean()


class CanvasesOut(Schema):
    canvases = fields.List(fields.Nested(InitiativeCanvas))


class ObjectiveDetail(Schema):
    objective = fields.Nested(ObjectiveOut)
    progress = fields.Float(allow_none=True)
    key_results = fields.List(fields.Nested(KeyResultOut))


class KeyResultDetail(Schema):
    key_result = fields.Nested(KeyResultOut)
    initiatives = fields.List(fields.Nested(InitiativeOut))
    check_ins = fields.List(fields.Nested(CheckInOut), metadata={"description": "the 10 newest"})
    check_in_count = fields.Integer()


class InitiativeDetail(Schema):
    initiative = fields.Nested(InitiativeOut)
    key_results = fields.List(fields.Nested(KeyResultOut))
    check_ins = fields.List(fields.Nested(InitiativeCheckInOut), metadata={"description": "the 10 newest"})
    check_in_count = fields.Integer()


# --- History import ------------------------------------------------------------------------

REF = validate.Length(1, 64)
MAX_IMPORT_ITEMS = 20_000


class ImportSession(SessionCreate):
    created_at = fields.AwareDateTime(required=True)


class ImportObjective(Strict):
    ref = fields.String(required=True, validate=REF)
    title = Title(required=True, validate=TITLE)
    description = fields.String(load_default="", validate=TEXT)
    owner_id = fields.UUID(load_default=None, allow_none=True)
    parent_ref = fields.String(load_default=None, allow_none=True, validate=REF)
    created_at = fields.AwareDateTime(required=True)


class ImportKeyResult(Strict):
    ref = fields.String(required=True, validate=REF)
    objective_ref = fields.String(required=True, validate=REF)
    title = Title(required=True, validate=TITLE)
    kind = fields.String(load_default="metric", validate=validate.OneOf(KEY_RESULT_KINDS))
    owner_id = fields.UUID(load_default=None, allow_none=True)
    start_value = fields.Float(load_default=0.0, **NUMBER)
    target_value = fields.Float(load_default=1.0, **NUMBER)
    unit = fields.String(load_default="", validate=validate.Length(max=32))
    weight = fields.Float(load_default=1.0, allow_nan=False,
                          validate=validate.Range(min=0, max=1000, min_inclusive=False))
    created_at = fields.AwareDateTime(required=True)


class ImportInitiative(Strict):
    ref = fields.String(required=True, validate=REF)
    title = Title(required=True, validate=TITLE)
    status = fields.String(load_default="not_started", validate=validate.OneOf(INITIATIVE_STATUSES))
    owner_id = fields.UUID(load_default=None, allow_none=True)
    canvas = fields.Nested(CanvasIn, load_default=None, allow_none=True)
    key_result_refs = fields.List(fields.String(validate=REF), load_default=list, validate=validate.Length(max=100))
    created_at = fields.AwareDateTime(required=True)


class ImportCheckIn(Strict):
    key_result_ref = fields.String(required=True, validate=REF)
    value = fields.Float(required=True, **NUMBER)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    confidence = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(0, 10))
    comment = fields.String(load_default="", validate=TEXT)
    checked_in_at = fields.AwareDateTime(required=True)
    author_id = fields.UUID(load_default=None, allow_none=True, metadata={
        "description": "the member who made the Check-in (a member of the Workspace); default: the importer"})


class HistoryImport(Strict):
    session = fields.Nested(ImportSession, required=True)
    objectives = fields.List(fields.Nested(ImportObjective), load_default=list,
                             validate=validate.Length(max=MAX_IMPORT_ITEMS))
    key_results = fields.List(fields.Nested(ImportKeyResult), load_default=list,
                              validate=validate.Length(max=MAX_IMPORT_ITEMS))
    initiatives = fields.List(fields.Nested(ImportInitiative), load_default=list,
                              validate=validate.Length(max=MAX_IMPORT_ITEMS))
    check_ins = fields.List(fields.Nested(ImportCheckIn), load_default=list,
                            validate=validate.Length(max=MAX_IMPORT_ITEMS * 10))
