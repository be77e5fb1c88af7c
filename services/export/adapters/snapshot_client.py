"""HTTP client of the snapshot service, acting for a given principal with an internal token.

Only the configured base URL is ever fetched (no redirects), and path parts are validated ids,
so no request can be steered elsewhere.
"""
from __future__ import annotations

import logging
import uuid

import requests
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from shared import tokens

log = logging.getLogger(__name__)

TIMEOUT = (3.05, 30)  # (connect, read) seconds


class SnapshotError(Exception):
    pass


class SnapshotUnavailable(SnapshotError):
    """The service did not answer usefully (down, timeout, 5xx): worth retrying later."""


class SnapshotRejected(SnapshotError):
    """The service refused the request or answered outside the contract: retrying won't help."""


class SnapshotNotFound(SnapshotError):
    """404: the Session does not exist or the principal may not read it."""


class _Contract(Schema):
    class Meta:
        unknown = EXCLUDE  # the snapshot service may add fields; we read what we need


class SessionRef(_Contract):
    id = fields.UUID(required=True)
    workspace_id = fields.UUID(required=True)


class WeekSession(SessionRef):
    name = fields.String(required=True)
    timezone = fields.String(load_default="UTC")


class InitiativeView(_Contract):
    id = fields.String(required=True)
    title = fields.String(required=True)
    owner_id = fields.UUID(allow_none=True, load_default=None)
    status = fields.String(allow_none=True, load_default=None)
    signals = fields.List(fields.String(), load_default=list)
    context = fields.Boolean(load_default=False)


class Delta(_Contract):
    new = fields.Boolean(load_default=False)
    progress_points = fields.Float(allow_none=True, load_default=None)
    value = fields.Float(allow_none=True, load_default=None)
    status_from = fields.String(allow_none=True, load_default=None)
    status_to = fields.String(allow_none=True, load_default=None)


class KeyResultView(_Contract):
    id = fields.String(load_default=None)
    title = fields.String(required=True)
    owner_id = fields.UUID(required=True, allow_none=True)
    start_value = fields.Float(required=True)
    target_value = fields.Float(required=True)
    current_value = fields.Float(required=True)
    unit = fields.String(required=True)
    status = fields.String(required=True)
    progress = fields.Float(required=True, allow_none=True)
    confidence = fields.Integer(allow_none=True, load_default=None)
    context = fields.Boolean(load_default=False)
    initiatives = fields.List(fields.Nested(InitiativeView), load_default=list)
    delta = fields.Nested(Delta, allow_none=True, load_default=None)
    signals = fields.List(fields.String(), load_default=list)


class ObjectiveView(_Contract):
    id = fields.String(load_default=None)
    title = fields.String(required=True)
    owner_id = fields.UUID(required=True, allow_none=True)
    parent_id = fields.String(allow_none=True, load_default=None)
    depth = fields.Integer(load_default=0)
    progress = fields.Float(allow_none=True, load_default=None)
    context = fields.Boolean(load_default=False)
    key_results = fields.List(fields.Nested(KeyResultView), required=True)


class CheckInView(_Contract):
    id = fields.UUID(load_default=None)
    key_result_id = fields.UUID(required=True)
    value = fields.Float(required=True)
    status = fields.String(required=True)
    confidence = fields.Integer(allow_none=True, load_default=None)
    comment = fields.String(allow_none=True, load_default="")
    author_id = fields.UUID(allow_none=True, load_default=None)
    checked_in_at = fields.AwareDateTime(required=True)
    late = fields.Boolean(load_default=False)


class NearestSaved(_Contract):
    before = fields.String(allow_none=True, load_default=None)
    after = fields.String(allow_none=True, load_default=None)


class SealView(_Contract):
    content_hash = fields.String(allow_none=True, load_default=None)
    previous_hash = fields.String(allow_none=True, load_default=None)
    sealed_at = fields.AwareDateTime(allow_none=True, load_default=None)


class ItemRef(_Contract):
    type = fields.String(load_default="")
    id = fields.String(load_default="")
    title = fields.String(load_default="")


class WeekDeltas(_Contract):
    against = fields.String(allow_none=True, load_default=None)
    new = fields.List(fields.Nested(ItemRef), load_default=list)
    removed = fields.List(fields.Nested(ItemRef), load_default=list)


class WeekView(_Contract):
    session = fields.Nested(WeekSession, required=True)
    week = fields.String(required=True)
    starts_at = fields.AwareDateTime(allow_none=True, load_default=None)
    ends_at = fields.AwareDateTime(allow_none=True, load_default=None)
    status = fields.String(required=True, validate=validate.OneOf(("current", "past", "sealed", "future", "no_snapshot")))
    nearest_saved = fields.Nested(NearestSaved, load_default=dict)
    owner = fields.String(required=True)
    objectives = fields.List(fields.Nested(ObjectiveView), load_default=list)
    check_ins = fields.List(fields.Nested(CheckInView), load_default=list)
    late_amendments = fields.List(fields.Nested(CheckInView), load_default=list)
    seal = fields.Nested(SealView, allow_none=True, load_default=None)
    deltas = fields.Nested(WeekDeltas, load_default=lambda: {"against": None, "new": [], "removed": []})


class SnapshotClient:
    def __init__(self, base_url: str, internal_secret: str, *, timeout=TIMEOUT):
        self.base_url = base_url.rstrip("/")
        self.internal_secret = internal_secret
        self.timeout = timeout

    def session(self, session_id: uuid.UUID, principal: tokens.Principal) -> dict:
        """{"id", "workspace_id"} of a Session the principal may read."""
        return self._get(f"/sessions/{uuid.UUID(str(session_id))}", principal, SessionRef())

    def week_view(self, session_id: uuid.UUID, week: str, owner: str, principal: tokens.Principal) -> dict:
        return self._get(f"/sessions/{uuid.UUID(str(session_id))}/snapshots/{week}", principal,
                         WeekView(), params={"owner": owner})

    def _get(self, path: str, principal: tokens.Principal, schema: Schema, params=None) -> dict:
        headers = {tokens.INTERNAL_HEADER: tokens.internal_token(self.internal_secret, "snapshot", principal),
                   "Accept": "application/json"}
        try:
            response = requests.get(self.base_url + path, params=params, headers=headers,
                                    timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            log.warning("snapshot service unreachable on GET %s: %r", path, exc)
            raise SnapshotUnavailable("The snapshot service did not answer.") from exc
        if response.status_code == 404:
            raise SnapshotNotFound(path)
        if response.status_code >= 500 or response.status_code in (401, 403, 429):
            # 401/403 to an internal call mean a misconfigured secret, not the user's fault.
            log.warning("snapshot service answered %s on GET %s", response.status_code, path)
            raise SnapshotUnavailable(f"The snapshot service answered {response.status_code}.")
        if response.status_code != 200:
            log.warning("snapshot service refused GET %s: %s %s", path, response.status_code,
                        response.text[:500])
            raise SnapshotRejected(_message(response)
                                   or f"The snapshot service answered {response.status_code}.")
        try:
            return schema.load(response.json())
        except (ValueError, ValidationError) as exc:
            log.warning("snapshot service answer to GET %s breaks the contract: %s", path, exc)
            raise SnapshotRejected("The snapshot service sent an answer the export cannot read.") from exc


def _message(response: requests.Response) -> str | None:
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        return None
    return message if isinstance(message, str) else None
