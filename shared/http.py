"""What every okrsnap HTTP service shares: the flask-smorest Api with one JSON error shape,
the internal-token check, health and request limits."""
from __future__ import annotations

import json
import logging
from datetime import date, datetime
from uuid import UUID

import marshmallow as ma
from flask import Flask, g, request
from flask_smorest import Api, abort
from flask_smorest import Blueprint as SmorestBlueprint
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

from shared import observability, tokens

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024


MAX_JSON_DEPTH = 64
INT64_MAX = 2 ** 63 - 1  # the widest integer column: anything beyond is refused, never sent to a database


def unsafe_json(value) -> tuple[str, str] | None:
    """(dotted field, reason) of the first thing in a parsed JSON document no service should
    take in: nesting deeper than MAX_JSON_DEPTH, a NUL character (PostgreSQL text cannot hold
    one), an unpaired UTF-16 surrogate (not encodable as UTF-8), a whole number beyond 64 bits.
    None if it holds none. Iterative: a deep document cannot exhaust the stack here."""
    stack = [(value, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return path.split(".", 1)[0] or "_schema", f"Nested more than {MAX_JSON_DEPTH} levels deep."
        if isinstance(node, dict):
            for key, item in node.items():
                field = f"{path}.{key}" if path else str(key)
                reason = _unsafe_text(key)
                if reason:
                    return path or "_schema", f"A key: {reason}"
                stack.append((item, field, depth + 1))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                stack.append((item, f"{path}.{index}" if path else str(index), depth + 1))
        elif isinstance(node, str):
            reason = _unsafe_text(node)
            if reason:
                return path or "_schema", reason
        elif isinstance(node, int) and not isinstance(node, bool) and not -INT64_MAX - 1 <= node <= INT64_MAX:
            return path or "_schema", "Out of range: whole numbers lie between -2^63 and 2^63-1."
    return None


def _unsafe_text(text: str) -> str | None:
    if "\x00" in text:
        return "NUL characters are not allowed."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "Unpaired UTF-16 surrogates are not allowed."
    return None


class StrictQueryParser(FlaskParser):
    """Query strings are validated like bodies: the schema decides, and ours refuse unknown
    fields (webargs would silently drop them). Bodies and query strings that no service should
    take in (unsafe_json; a query value with a NUL, or an integer field beyond 64 bits) are a
    4xx naming the field, in the one error shape, before any schema or database sees them."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None, "querystring": None}

    def _raw_load_json(self, req):
        from webargs import core
        from webargs.flaskparser import abort as webargs_abort
        from webargs.flaskparser import is_json_request

        if not is_json_request(req):
            return core.missing
        try:
            data = core.parse_json(req.get_data(cache=True))
        except RecursionError:
            webargs_abort(400, messages={"json": {"_schema": [
                f"The JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels)."]}})
        except json.JSONDecodeError:
            raise  # webargs answers 400 "Invalid JSON body."
        except ValueError as exc:  # e.g. a number with more digits than Python parses
            webargs_abort(400, messages={"json": {"_schema": [f"Invalid JSON body: {exc}"[:200]]}})
        problem = unsafe_json(data)
        if problem:
            webargs_abort(422, messages={"json": {problem[0]: [problem[1]]}})
        return data

    def load_querystring(self, req, schema):
        for key, value in req.args.items(multi=True):
            reason = _unsafe_text(key) or _unsafe_text(value) or _out_of_range(schema, key, value)
            if reason:
                from webargs.flaskparser import abort as webargs_abort

                webargs_abort(422, messages={"query": {key: [reason]}})
        return super().load_querystring(req, schema)


def _out_of_range(schema: ma.Schema, key: str, value: str) -> str | None:
    field = schema.fields.get(key) if schema is not None else None
    if isinstance(field, ma.fields.List):
        field = field.inner
    if isinstance(field, ma.fields.Integer):
        digits = value.strip().lstrip("+-")
        if digits.isdigit() and (len(digits) > 19 or not -INT64_MAX - 1 <= int(value) <= INT64_MAX):
            return "Out of range: whole numbers lie between -2^63 and 2^63-1."
    return None


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = StrictQueryParser()


class FieldError(ma.Schema):
    location = ma.fields.String(metadata={"description": "json, query, path or headers"})
    field = ma.fields.String(metadata={"description": "dotted path of the field"})
    reason = ma.fields.String()


class ErrorBody(ma.Schema):
    """The one error body of every okrsnap response that is not a success."""

    code = ma.fields.Integer(metadata={"description": "HTTP status code"})
    status = ma.fields.String(metadata={"description": "HTTP status name"})
    message = ma.fields.String()
    errors = ma.fields.List(ma.fields.Nested(FieldError))


def _flatten(messages, location: str, prefix: str = "") -> list[dict]:
    out = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out += _flatten(value, location, name)
    elif isinstance(messages, list):
        for item in messages:
            if isinstance(item, (dict, list)):
                out += _flatten(item, location, prefix)
            else:
                out.append({"location": location, "field": prefix or "_schema", "reason": str(item)})
    else:
        out.append({"location": location, "field": prefix or "_schema", "reason": str(messages)})
    return out


class OkrsnapApi(Api):
    ERROR_SCHEMA = ErrorBody

    def handle_http_exception(self, error: HTTPException):
        data = getattr(error, "data", None) or {}
        messages = data.get("errors") or data.get("messages") or {}
        errors = []
        if isinstance(messages, dict):
            for location, fields_ in messages.items():
                errors += _flatten(fields_, location)
        message = data.get("message")
        if message is None:
            message = ("The request is invalid: " + "; ".join(
                f"{e['field']}: {e['reason']}" for e in errors)) if errors else error.description
        if error.code >= 500:
            log.error("server error on %s %s", request.method, request.path,
                      exc_info=getattr(error, "original_exception", None))
            message = "Internal server error."
        payload = {"code": error.code, "status": error.name, "message": message, "errors": errors}
        return payload, error.code, data.get("headers", {})


def create_app(name: str, *, title: str, api_prefix: str = "", openapi_json_path: str = "openapi.json",
               health=None) -> tuple[Flask, OkrsnapApi]:
    """health: an optional callable whose dict /healthz adds (it must be quick and never raise)."""
    app = Flask(name)
    app.config.update(
        API_TITLE=title, API_VERSION="v1", OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=api_prefix or "/", OPENAPI_JSON_PATH=openapi_json_path,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES, JSON_SORT_KEYS=False,
    )
    api = OkrsnapApi(app)
    service = name.split(".")[1] if name.startswith("services.") else name
    observability.configure_logging(service)
    instrument(app, service)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", **(health() if health is not None else {})}

    @app.get("/readyz")
    def readyz():
        """Ready to serve: its database reachable with migrations at head, its broker reachable
        (the gateway has none). 503 in the one error shape, a check per field, otherwise."""
        ready, checks = observability.readiness(container(), broker=service != "gateway")
        if ready:
            return {"status": "ready", "checks": checks}
        failing = [{"location": "readiness", "field": k, "reason": v} for k, v in checks.items() if v != "ok"]
        body, code = error_response(503, "Not ready: " + ", ".join(e["field"] for e in failing), failing)
        return body, code, {"Retry-After": str(RETRY_AFTER_SECONDS)}

    @app.after_request
    def _nosniff(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")  # every answer, every service
        return response

    register_unavailable_errors(app)
    return app, api


RETRY_AFTER_SECONDS = 5
PROBE_PATHS = ("/healthz", "/readyz")  # answered without an internal token, on every service


def instrument(app: Flask, service: str) -> None:
    """Per request: the correlation id (the gateway takes X-Request-ID only when trusted, a
    service takes the gateway's), echoed in X-Request-ID, and the HTTP metrics by route
    template (never the raw path, whose ids would make a series per item). Issue 13 counts
    per-request CPU: two hooks, the request object fetched once in each, state in the WSGI
    environ rather than flask.g (bench/http_metrics.py measures what is left)."""
    from time import perf_counter

    trust_header = service != "gateway"
    header = observability.REQUEST_ID_HEADER

    @app.before_request
    def _begin():
        req = request._get_current_object()
        cid = None
        if trust_header or _trusts_request_id():
            cid = observability.usable_correlation_id(req.headers.get(header))
        cid = cid or observability.new_correlation_id()
        observability.set_correlation_id(cid)
        req.environ["okrsnap.request"] = (perf_counter(), cid)

    @app.after_request
    def _finish(response):
        req = request._get_current_object()
        begun = req.environ.get("okrsnap.request")
        if begun is not None:
            rule = req.url_rule
            route = rule.rule if rule is not None else "unmatched"
            status = response.status_code
            observability.observe_http(service, route, req.method, status, perf_counter() - begun[0])
            if status == 429:
                observability.rate_limit_refused(service, route)
            response.headers[header] = begun[1]
            # No teardown hook: the next request of this thread sets its own; until then none.
            observability.set_correlation_id(None)
        return response


def _trusts_request_id() -> bool:
    from flask import current_app

    settings = getattr(current_app.extensions.get("okrsnap"), "settings", None)
    return bool(settings is not None and settings.trust_request_id)


def database_unreachable(exc: BaseException) -> bool:
    """The database is away (down, cut, restarting, its pool exhausted), not the request wrong."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def register_unavailable_errors(app: Flask) -> None:
    """A database outage answers 503 with Retry-After, never 500: nothing was stored, and the
    client may send the same request again (the gateway passes both on)."""
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    def _unavailable(exc):
        if not database_unreachable(exc):
            raise exc  # not an outage: the ordinary 500 path
        log.warning("database unreachable on %s %s: %s", request.method, request.path, exc.__class__.__name__)
        body, code = error_response(503, "The service's database is unreachable; try again shortly.")
        return body, code, {"Retry-After": str(RETRY_AFTER_SECONDS)}

    app.register_error_handler(DBAPIError, _unavailable)
    app.register_error_handler(PoolTimeout, _unavailable)


def require_internal_token(app: Flask, *, service: str, secret: str,
                           open_paths: tuple[str, ...] = PROBE_PATHS) -> None:
    """Internal services answer only requests that carry the gateway's signed token for them."""
    audience = tokens.internal_audience(service)

    @app.before_request
    def _verify_internal_token():
        if request.path in open_paths or request.path in PROBE_PATHS:
            return None
        token = request.headers.get(tokens.INTERNAL_HEADER)
        if not token:
            abort(401, message="This service is reached through the okrsnap gateway only.")
        try:
            claims = tokens.verify(_internal_keys(secret), token, typ=tokens.INTERNAL, audience=audience)
        except tokens.InvalidToken:
            abort(401, message="The internal token is invalid or expired.")
        g.principal = tokens.Principal.from_claims(claims)
        return None


def _internal_keys(secret: str) -> tuple[str, ...]:
    """The service's internal key, and those being rotated out (OKRSNAP_INTERNAL_SECRET_PREVIOUS)."""
    from flask import current_app

    settings = getattr(current_app.extensions.get("okrsnap"), "settings", None)
    previous = settings.previous_secrets.get("internal", ()) if settings is not None else ()
    return (secret, *previous)


def current_principal() -> tokens.Principal:
    return g.principal


def container():
    """The service's composition root, as create_app() was given it."""
    from flask import current_app

    return current_app.extensions["okrsnap"]


def error_response(code: int, message: str, errors: list[dict] | None = None):
    from werkzeug.http import HTTP_STATUS_CODES

    return {"code": code, "status": HTTP_STATUS_CODES.get(code, "Error"), "message": message,
            "errors": errors or []}, code


def register_access_errors(app: Flask) -> None:
    from shared.access import AccessDenied

    @app.errorhandler(AccessDenied)
    def _denied(exc: AccessDenied):
        return error_response(exc.status, exc.message)


_PLANS: dict[int, tuple] = {}


def _plan(schema: ma.Schema) -> tuple:
    """What to copy from a dict for a schema: (field name, output key, nested plan, many), built
    once per schema object."""
    plan = _PLANS.get(id(schema))
    if plan is None:
        steps = []
        for name, field in schema.fields.items():
            if field.load_only:
                continue
            nested, many = None, False
            if isinstance(field, ma.fields.Nested):
                nested, many = field.schema, field.many
            elif isinstance(field, ma.fields.List) and isinstance(field.inner, ma.fields.Nested):
                nested, many = field.inner.schema, True
            steps.append((name, field.data_key or name, nested, many))
        plan = _PLANS[id(schema)] = (schema, tuple(steps))  # the schema kept alive: its id stays unique
    return plan[1]


def _project(obj, schema: ma.Schema, done: dict | None = None):
    """The schema's fields of a JSON-ready dict, nested schemas followed: what schema.dump()
    would keep, without converting values that are already JSON-ready. A dict that appears
    several times (an Initiative under each of its Key Results) is projected once."""
    if done is None:
        done = {}
    key_ = (id(obj), id(schema))
    projected = done.get(key_)
    if projected is not None:
        return projected
    out = {}
    for name, key, nested, many in _plan(schema):
        if name not in obj:
            continue
        value = obj[name]
        if nested is not None and value is not None:
            value = [_project(v, nested, done) for v in value] if many else _project(value, nested, done)
        out[key] = value
    done[key_] = out
    return out


def _json_default(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def fast_json(schema: ma.Schema, obj: dict, status: int = 200):
    """For large read models already in wire form (a week of 10,000 Key Results): the documented
    schema's shape, serialised by the json module instead of field by field."""
    from flask import Response

    body = json.dumps(_project(obj, schema), default=_json_default, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status=status, mimetype="application/json")
