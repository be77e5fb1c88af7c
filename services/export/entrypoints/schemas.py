"""HTTP bodies of the export service. Unknown fields are refused: ids, requesters, statuses and
times are never taken from a client."""
from marshmallow import Schema, ValidationError, fields, validate

from services.export.domain.model import FORMATS, WEEK_PATTERN, normalise_owner_filter
from shared.schemas import StrictSchema as Strict


def _owner_filter(value: str) -> None:
    try:
        normalise_owner_filter(value)
    except ValueError:
        raise ValidationError('Must be "all", "unassigned" or a member id.') from None


class ExportCreate(Strict):
    session_id = fields.UUID(required=True)
    week = fields.String(required=True, validate=validate.Regexp(
        WEEK_PATTERN, error="Must be a week like 2026-W48."))
    owner = fields.String(load_default="all", validate=[validate.Length(max=36), _owner_filter])
    format = fields.String(load_default="csv", validate=validate.OneOf(FORMATS))


class ExportOut(Schema):
    id = fields.UUID()
    workspace_id = fields.UUID()
    session_id = fields.UUID()
    week = fields.String()
    owner = fields.String(attribute="owner_filter")
    format = fields.String()
    status = fields.String(metadata={"description": "queued, running, done, failed, cancelled or expired "
                                                    "(done, then its file deleted after the retention period)"})
    progress = fields.Integer(metadata={"description": "Percent of the build done (100 when done)"})
    created_at = fields.AwareDateTime()
    finished_at = fields.AwareDateTime(allow_none=True)
    row_count = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    download_url = fields.String(allow_none=True, metadata={
        "description": "Set when done: a link that works without signing in until download_expires_at"})
    download_expires_at = fields.AwareDateTime(allow_none=True)
    file_expires_at = fields.AwareDateTime(allow_none=True, metadata={
        "description": "When done: the moment the file is deleted (OKRSNAP_EXPORT_RETENTION_DAYS after it was built)"})


class ExportListQuery(Strict):
    session_id = fields.UUID(load_default=None, metadata={"description": "Only the exports of this Session"})
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 1_000_000))


class ExportPage(Schema):
    items = fields.List(fields.Nested(ExportOut))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()


class DownloadQuery(Strict):
    token = fields.String(required=True, validate=validate.Length(1, 4096))
