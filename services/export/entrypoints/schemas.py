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
    status = fields.String(metadata={"description": "queued, running, done or failed"})
    created_at = fields.AwareDateTime()
    finished_at = fields.AwareDateTime(allow_none=True)
    row_count = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    download_url = fields.String(allow_none=True, metadata={
        "description": "Set when done: a link that works without signing in until download_expires_at"})
    download_expires_at = fields.AwareDateTime(allow_none=True)


class DownloadQuery(Strict):
    token = fields.String(required=True, validate=validate.Length(1, 4096))
