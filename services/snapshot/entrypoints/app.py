"""The snapshot service's HTTP API (internal: reached through the gateway only)."""
from __future__ import annotations

import ctypes
import gc
import os
import threading
import time
from collections import OrderedDict
from operator import itemgetter

import orjson
from flask import Response
from flask.views import MethodView

from services.snapshot.bootstrap import Snapshot, bootstrap
from services.snapshot.entrypoints import schemas
from services.snapshot.service_layer import handlers
from shared.http import (
    Blueprint,
    container,
    current_principal,
    _plan,
    error_response,
    register_access_errors,
    require_internal_token,
)
from shared.http import create_app as create_base_app



def _compile(schema):
    """A function giving the schema's fields of a JSON-ready dict, in the schema's order, nested
    schemas followed (what shared.http.fast_json keeps), built once. The plain fields are
    copied by one C-level itemgetter when the dict has them all (a 10,000 Key Result week is
    over 20,000 dicts), else field by field. dump_only fields are the gateway's to add. A dict
    that appears several times (an Initiative under each of its Key Results) is shaped once."""
    steps = [(name, key, _compile(nested) if nested is not None else None, many)
             for name, key, nested, many in _plan(schema) if not schema.fields[name].dump_only]
    nested = tuple((name, key, sub, many) for name, key, sub, many in steps if sub is not None)
    order = tuple(key for _, key, _, _ in steps)
    get_ordered = _getter([name for name, _, _, _ in steps])
    exact = order if not nested and all(name == key for name, key, _, _ in steps) else None
    # Only a dict that can appear more than once (an Initiative under each of its Key Results)
    # is worth remembering: the lookups cost a 10,000 Key Result week a tenth of its shaping.
    shared = schema.__class__.__name__ in SHARED_SCHEMAS

    def shape(obj: dict, done: dict) -> dict:
        if exact is not None and tuple(obj) == exact:  # already the schema's shape (a delta)
            return obj
        if shared:
            memo = (id(obj), id(shape))
            out = done.get(memo)
            if out is not None:
                return out
        try:  # every field there: one copy in the schema's order, nested ones shaped in place
            out = dict(zip(order, get_ordered(obj)))
        except KeyError:
            out = None
        if out is not None:
            for name, key, sub, many in nested:
                value = out[key]
                if value is not None:
                    out[key] = [sub(v, done) for v in value] if many else sub(value, done)
        else:
            out = {}
            for name, key, sub, many in steps:
                if name in obj:
                    value = obj[name]
                    out[key] = value if sub is None or value is None else \
                        [sub(v, done) for v in value] if many else sub(value, done)
        if shared:
            done[memo] = out
        return out

    return shape


SHARED_SCHEMAS = ("InitiativeOut",)  # shown under several parents: one shaped dict, once


def _getter(keys):
    """A function giving the values of these keys of a dict as a tuple (KeyError if one is missing)."""
    keys = tuple(keys)
    if len(keys) == 1:
        return lambda obj: (obj[keys[0]],)
    return itemgetter(*keys) if keys else (lambda obj: ())


_SHAPE_WEEK_VIEW = _compile(schemas.WeekView())


def render_week_view(view: dict) -> bytes:
    """The week view as JSON in the documented schema's shape. orjson: a 10,000 Key Result week
    is several megabytes, which the json module took most of a request to write."""
    return orjson.dumps(_SHAPE_WEEK_VIEW(view, {}))


class RenderedViews:
    """Rendered week views, per process, keyed by what they depend on (see week_view_key), kept
    up to a total size: the work behind a view is materialised in the database for every worker
    (a sealed week's states, each item's newest version), so this only spares re-encoding a view
    read again, and must not grow a process by the size of every week it served."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024):
        self.max_bytes, self.size = max_bytes, 0
        self._items, self._lock = OrderedDict(), threading.Lock()

    def get(self, key):
        with self._lock:
            body = self._items.get(key)
            if body is not None:
                self._items.move_to_end(key)
            return body

    def put(self, key, body: bytes) -> None:
        if len(body) > self.max_bytes // 4:  # one huge view must not evict all the others
            return
        with self._lock:
            old = self._items.pop(key, None)
            self.size += len(body) - (len(old) if old is not None else 0)
            self._items[key] = body
            while self.size > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self.size -= len(evicted)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.size = 0


_RENDERED = RenderedViews()
snapshots = Blueprint("snapshots", __name__, description="Weekly Snapshots of a Session")




@snapshots.route("/sessions/<uuid:session_id>")
class SessionInfo(MethodView):
    @snapshots.response(200, schemas.SessionOut)
    def get(self, session_id):
        """The Session as the snapshot service knows it"""
        return handlers.get_session(current_principal(), session_id, uow=container().read_uow())


@snapshots.route("/sessions/<uuid:session_id>/snapshots")
class SnapshotCalendar(MethodView):
    @snapshots.response(200, schemas.Calendar)
    def get(self, session_id):
        """Every week of the Session by month: current, past, future or no_snapshot, with counts"""
        c = container()
        return handlers.calendar(current_principal(), session_id, uow=c.read_uow(), clock=c.clock)


@snapshots.route("/sessions/<uuid:session_id>/snapshots/compare")
class SnapshotCompare(MethodView):
    @snapshots.arguments(schemas.CompareQuery, location="query")
    @snapshots.response(200, schemas.Comparison)
    def get(self, query, session_id):
        """Two weeks side by side, with the differences

        Each side says whether its week has a saved Snapshot (`from_status`, `to_status`) and names
        the week whose readings it shows (`from_readings_week`, `to_readings_week`): a week with no
        saved Snapshot had no change, so it shows the readings of the nearest saved week before it."""
        c = container()
        return handlers.compare(current_principal(), session_id, query["from_"], query["to"], uow=c.read_uow(),
                                clock=c.clock)


@snapshots.route("/sessions/<uuid:session_id>/snapshots/verify")
class SnapshotChain(MethodView):
    @snapshots.response(200, schemas.Chain)
    def get(self, session_id):
        """Recompute the sealed weeks' hash chain and compare it with what was sealed"""
        handlers.get_session(current_principal(), session_id, uow=container().read_uow())  # access first
        return handlers.verify_chain(session_id, uow=container().read_uow())


@snapshots.route("/sessions/<uuid:session_id>/snapshots/trend")
class SnapshotTrend(MethodView):
    @snapshots.response(200, schemas.Trend)
    def get(self, session_id):
        """Each Key Result's progress per saved week, for a chart"""
        c = container()
        return handlers.trend(current_principal(), session_id, uow=c.read_uow(), clock=c.clock)


@snapshots.route("/sessions/<uuid:session_id>/snapshots/<string:week>")
class WeekSnapshot(MethodView):
    @snapshots.arguments(schemas.WeekQuery, location="query")
    @snapshots.response(200, schemas.WeekView)
    def get(self, query, session_id, week):
        """The Session as it looked at the end of a week"""
        c = container()
        principal = current_principal()
        key = handlers.week_view_key(principal, session_id, week, query["owner"], uow=c.read_uow(), clock=c.clock)
        body = _RENDERED.get(key) if key else None
        shared = key is not None and key[0] == "sealed"  # rendered once for every process
        if body is None and shared:
            stored = handlers.rendered_view(key, uow=c.read_uow())
            body = stored.encode() if stored is not None else None
            if body is not None:
                _RENDERED.put(key, body)
        if body is None:
            view = handlers.week_view(principal, session_id, week, query["owner"], uow=c.read_uow(), clock=c.clock)
            body = render_week_view(view)
            if key:
                _RENDERED.put(key, body)
            if shared:  # on the primary: a replica is read-only
                handlers.keep_rendered(key, body.decode(), uow=c.uow(), clock=c.clock)
            del view
            _release_freed_memory()
        return Response(body, mimetype="application/json")


def _release_freed_memory() -> None:
    """Hand the memory a rendered view used back to the system. A 10,000 Key Result view builds
    over 50,000 dicts, most too large for Python's small-object allocator; glibc keeps what they
    freed inside the process, which grew a worker by hundreds of megabytes over a few weeks read."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def _large_blocks_apart() -> None:
    """Blocks of a megabyte or more (a rendered view, a week's JSON) in their own mappings, given
    back when freed: glibc otherwise raises this threshold as such blocks are freed, and a kept
    view then pins the heap around it, so malloc_trim cannot return what lies below."""
    if _LIBC is not None:
        _LIBC.mallopt(M_MMAP_THRESHOLD, 1 << 20)


try:
    _LIBC = ctypes.CDLL("libc.so.6")
    _LIBC.malloc_trim, _LIBC.mallopt  # noqa: B018 - glibc only
except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to hand back this way
    _LIBC = None


# A week view builds tens of thousands of dicts (and rendered views are kept): with CPython's
# default thresholds a collection walks them every few requests, which cost a 10,000 Key Result
# week view up to half its time (bench). Its dicts are freed by reference counting; cycles are
# rare, so the collector may run far less often.
GC_THRESHOLDS = (100_000, 50, 100)


class PipelineHealth:
    """/healthz's view of the pipeline: parked events (the oldest), and the dead-letter queue's
    depth, read by a background thread every HEALTH_REFRESH_SECONDS (a broker or database that
    is away must not slow the health check down, and /healthz reads no database: issue 14)."""

    def __init__(self, container: Snapshot):
        self.container = container
        self.dead_letters: int | None = None
        self.parked = {"parked_events": None, "oldest_parked_at": None}
        self._lock = threading.Lock()
        self._pid: int | None = None

    def _refresh(self) -> None:
        from shared.deadletters import depth

        while True:
            try:
                self.parked = handlers.pipeline_health(uow=self.container.uow())
            except Exception:  # noqa: BLE001 - unknown while the database is away
                self.parked = {"parked_events": None, "oldest_parked_at": None}
            try:
                self.dead_letters = depth(self.container.settings)
            except Exception:  # noqa: BLE001 - unknown while the broker is away
                self.dead_letters = None
            time.sleep(HEALTH_REFRESH_SECONDS)

    def __call__(self) -> dict:
        with self._lock:
            if self._pid != os.getpid():  # after gunicorn's fork: a thread of this process
                self._pid = os.getpid()
                threading.Thread(target=self._refresh, daemon=True).start()
        return {**self.parked, "dead_letters": self.dead_letters}


HEALTH_REFRESH_SECONDS = 15


def create_app(container: Snapshot | None = None):
    gc.set_threshold(*GC_THRESHOLDS)
    _large_blocks_apart()
    container = container or bootstrap()
    app, api = create_base_app(__name__, title="okrsnap snapshot service", health=PipelineHealth(container))
    app.extensions["okrsnap"] = container
    require_internal_token(app, service="snapshot", secret=container.settings.internal_secret)
    register_access_errors(app)

    @app.errorhandler(handlers.InvalidWeek)
    def _invalid_week(exc):
        return error_response(422, str(exc), [{"location": "path", "field": "week", "reason": str(exc)}])

    @app.errorhandler(handlers.InvalidComparison)
    def _invalid_comparison(exc):
        return error_response(422, str(exc), [{"location": "query", "field": "from", "reason": str(exc)}])

    @app.errorhandler(handlers.WeekOutsideSession)
    def _outside(exc):
        return error_response(404, str(exc), [{"location": "path", "field": "week", "reason": str(exc)}])

    api.register_blueprint(snapshots)
    return app
