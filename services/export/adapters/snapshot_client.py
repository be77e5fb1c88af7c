"""HTTP client of the snapshot service, acting for a given principal with an internal token.

Only the configured base URL is ever fetched (no redirects), and path parts are validated ids,
so no request can be steered elsewhere.
"""
from __future__ import annotations

import logging
import operator
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import requests
import urllib3
from marshmallow import EXCLUDE, Schema, ValidationError, fields

from services.export.adapters.gc_pause import cyclic_gc_paused
from shared import tokens

log = logging.getLogger(__name__)

TIMEOUT = (3.05, 30)  # (connect, read) seconds
# msgspec rather than json or orjson: as fast as orjson and builds the objects straight from the
# bytes, where orjson's intermediate document took 100 MB more at the peak of a 40 MB week.
_decode = msgspec.json.Decoder().decode


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


# The week view's contract, checked by type rather than loaded through a schema: a 100,000-row
# week is 40 MB of JSON, which marshmallow took seconds to load and msgspec parses in a fraction
# of one. Each spec lists (key, accepted types, required) of the fields the export reads; a value of
# another type (a bool is not a number) breaks the contract, and an optional field may be missing or
# null. Ids are checked once per distinct id.
_NONE = type(None)
TEXT, TEXT_OR_NONE, FLAG = {str}, {str, _NONE}, {bool}
NUMBER, NUMBER_OR_NONE, INTEGER_OR_NONE = {int, float}, {int, float, _NONE}, {int, _NONE}
LIST, OBJECT, OBJECT_OR_NONE = {list}, {dict}, {dict, _NONE}
WEEK_STATES = {"current", "past", "sealed", "future", "no_snapshot"}


class _Spec:
    def __init__(self, *fields):
        self.keys = tuple(key for key, _, _ in fields)
        self.accepted = tuple(frozenset(types if required else types | {_NONE}) for _, types, required in fields)


SESSION = _Spec(("id", TEXT, True), ("workspace_id", TEXT, True), ("name", TEXT, True),
                ("timezone", TEXT, False))
WEEK = _Spec(("session", OBJECT, True), ("week", TEXT, True), ("status", TEXT, True), ("owner", TEXT, True),
             ("starts_at", TEXT, False), ("ends_at", TEXT, False), ("nearest_saved", OBJECT, False),
             ("objectives", LIST, False), ("check_ins", LIST, False), ("late_amendments", LIST, False),
             ("seal", OBJECT, False), ("deltas", OBJECT, False))
NEAREST = _Spec(("before", TEXT, False), ("after", TEXT, False))
SEAL = _Spec(("content_hash", TEXT, False), ("previous_hash", TEXT, False), ("sealed_at", TEXT, False))
DELTAS = _Spec(("against", TEXT, False), ("new", LIST, False), ("removed", LIST, False))
ITEM_REF = _Spec(("type", TEXT, False), ("id", TEXT, False), ("title", TEXT, False))
OBJECTIVE = _Spec(("title", TEXT, True), ("owner_id", TEXT_OR_NONE, True), ("key_results", LIST, True),
                  ("id", TEXT, False), ("parent_id", TEXT, False), ("depth", INTEGER_OR_NONE, False),
                  ("progress", NUMBER, False), ("context", FLAG, False))
KEY_RESULT = _Spec(("title", TEXT, True), ("owner_id", TEXT_OR_NONE, True), ("start_value", NUMBER, True),
                   ("target_value", NUMBER, True), ("current_value", NUMBER, True), ("unit", TEXT, True),
                   ("status", TEXT, True), ("progress", NUMBER_OR_NONE, True), ("id", TEXT, False),
                   ("confidence", INTEGER_OR_NONE, False), ("context", FLAG, False), ("initiatives", LIST, False),
                   ("delta", OBJECT, False), ("signals", LIST, False))
DELTA = _Spec(("new", FLAG, False), ("progress_points", NUMBER, False), ("value", NUMBER, False),
              ("status_from", TEXT, False), ("status_to", TEXT, False))
INITIATIVE = _Spec(("id", TEXT, True), ("title", TEXT, True), ("owner_id", TEXT, False), ("status", TEXT, False),
                   ("signals", LIST, False), ("context", FLAG, False))
CHECK_IN = _Spec(("key_result_id", TEXT, True), ("value", NUMBER, True), ("status", TEXT, True),
                 ("checked_in_at", TEXT, True), ("id", TEXT, False), ("confidence", INTEGER_OR_NONE, False),
                 ("comment", TEXT, False), ("author_id", TEXT, False), ("late", FLAG, False))


class _Broken(Exception):
    """Where the week view breaks its contract."""


def _check(item, spec: _Spec, where: str) -> None:
    """One call per row, its work in C (a missing field reads as null, which only an optional or
    nullable field accepts); the field to blame is looked for only when the row is broken."""
    if item.__class__ is not dict or not all(map(operator.contains, spec.accepted,
                                                 map(type, map(item.get, spec.keys)))):
        raise _Broken(_blame(item, spec, where))


def _blame(item, spec: _Spec, where: str) -> str:
    if item.__class__ is not dict:
        return f"{where} (not an object)"
    for key, accepted in zip(spec.keys, spec.accepted):
        if type(item.get(key)) not in accepted:
            return f"{where}.{key}" if key in item else f"{where}.{key} (missing)"
    return where


def _texts(values, where: str) -> None:
    if values and not {*map(type, values)} <= TEXT:
        raise _Broken(where)


def _moment(value, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _Broken(where) from None
    if moment.tzinfo is None:
        raise _Broken(f"{where} has no timezone")
    return moment


def week_view_from(view) -> dict:
    """The parsed week view, checked against the contract (_Broken says where it breaks it), its
    datetimes as datetimes and its optional parts filled in. One pass in plain Python."""
    try:
        _check(view, WEEK, "view")
        session = view["session"]
        _check(session, SESSION, "session")
        if view["status"] not in WEEK_STATES:
            raise _Broken("status")
        ZoneInfo(session.get("timezone") or "UTC")
        for key in ("starts_at", "ends_at"):
            view[key] = _moment(view.get(key), key)
        view["nearest_saved"] = view.get("nearest_saved") or {}
        _check(view["nearest_saved"], NEAREST, "nearest_saved")
        seal = view["seal"] = view.get("seal")
        if seal is not None:
            _check(seal, SEAL, "seal")
            seal["sealed_at"] = _moment(seal.get("sealed_at"), "seal.sealed_at")
        deltas = view["deltas"] = view.get("deltas") or {"against": None}
        _check(deltas, DELTAS, "deltas")
        for key in ("new", "removed"):
            deltas[key] = deltas.get(key) or []
            for ref in deltas[key]:
                _check(ref, ITEM_REF, f"deltas.{key}")
        for key in ("objectives", "check_ins", "late_amendments"):
            view[key] = view.get(key) or []
        people = set()
        for objective in view["objectives"]:
            _check(objective, OBJECTIVE, "objective")
            people.add(objective.get("owner_id"))
            for kr in objective["key_results"]:
                _check(kr, KEY_RESULT, "key result")
                people.add(kr.get("owner_id"))
                _texts(kr.get("signals") or (), "key result.signals")
                if kr.get("delta") is not None:
                    _check(kr["delta"], DELTA, "key result.delta")
                for initiative in kr.get("initiatives") or ():
                    _check(initiative, INITIATIVE, "initiative")
                    people.add(initiative.get("owner_id"))
                    _texts(initiative.get("signals") or (), "initiative.signals")
        key_results = set()
        for key in ("check_ins", "late_amendments"):
            for check_in in view[key]:
                _check(check_in, CHECK_IN, key)
                check_in["checked_in_at"] = _moment(check_in["checked_in_at"], f"{key}.checked_in_at")
                people.add(check_in.get("author_id"))
                key_results.add(check_in["key_result_id"])
        people.discard(None)
        for value in (session["id"], session["workspace_id"], *people, *key_results):
            uuid.UUID(value)  # a few hundred people, one per Key Result at most: not one per row
    except (ValueError, ZoneInfoNotFoundError) as exc:
        raise _Broken(str(exc)) from None
    return view


class SnapshotClient:
    def __init__(self, base_url: str, internal_secret: str, *, timeout=TIMEOUT):
        self.base_url = base_url.rstrip("/")
        self.internal_secret = internal_secret
        self.timeout = timeout

    def session(self, session_id: uuid.UUID, principal: tokens.Principal) -> dict:
        """{"id", "workspace_id"} of a Session the principal may read."""
        path = f"/sessions/{uuid.UUID(str(session_id))}"
        answer = self._get(path, principal)
        try:
            return SessionRef().load(answer)
        except ValidationError as exc:
            raise _contract_broken(path, exc) from None

    def week_view(self, session_id: uuid.UUID, week: str, owner: str, principal: tokens.Principal) -> dict:
        path = f"/sessions/{uuid.UUID(str(session_id))}/snapshots/{week}"
        with cyclic_gc_paused():
            view = self._get(path, principal, params={"owner": owner})
            try:
                return week_view_from(view)
            except _Broken as exc:
                raise _contract_broken(path, exc) from None

    def _get(self, path: str, principal: tokens.Principal, params=None):
        """The parsed JSON answer. The body is read whole into one buffer and dropped once parsed:
        a large week is held as bytes and as objects only while it is parsed."""
        headers = {tokens.INTERNAL_HEADER: tokens.internal_token(self.internal_secret, "snapshot", principal),
                   "Accept": "application/json"}
        try:
            response = requests.get(self.base_url + path, params=params, headers=headers,
                                    timeout=self.timeout, allow_redirects=False, stream=True)
        except requests.RequestException as exc:
            log.warning("snapshot service unreachable on GET %s: %r", path, exc)
            raise SnapshotUnavailable("The snapshot service did not answer.") from exc
        with response:  # streamed: whatever the answer, the connection goes back once it is read
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
                body = response.raw.read(decode_content=True)
            except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                log.warning("snapshot service answer to GET %s broke off: %r", path, exc)
                raise SnapshotUnavailable("The snapshot service did not answer.") from exc
        try:
            return _decode(body)
        except msgspec.DecodeError as exc:
            raise _contract_broken(path, exc) from None


def _contract_broken(path: str, exc: Exception) -> SnapshotRejected:
    log.warning("snapshot service answer to GET %s breaks the contract: %s", path, exc)
    return SnapshotRejected("The snapshot service sent an answer the export cannot read.")


def _message(response: requests.Response) -> str | None:
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        return None
    return message if isinstance(message, str) else None
