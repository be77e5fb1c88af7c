"""The snapshot service's HTTP API (internal: reached through the gateway only)."""
from __future__ import annotations

import gc
import os
import threading
import time
from collections import OrderedDict

from flask import Response
from flask.views import MethodView

from services.snapshot.bootstrap import Snapshot, bootstrap
from services.snapshot.entrypoints import schemas
from services.snapshot.service_layer import handlers
from shared.http import (
    Blueprint,
    container,
    current_principal,
    error_response,
    fast_json,
    register_access_errors,
    require_internal_token,
)
from shared.http import create_app as create_base_app

WEEK_VIEW = schemas.WeekView()


class RenderedViews:
    """Rendered week views, per process, keyed by what they depend on (see week_view_key), kept
    up to a total size: the work behind a view is materialised in the database for every worker
    (a sealed week's states, each item's newest version), so this only spares re-encoding a view
    read again, and must not grow a process by the size of every week it served."""

    def __init__(self, max_bytes: int = 48 * 1024 * 1024):
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
        return handlers.get_session(current_principal(), session_id, uow=container().uow())


@snapshots.route("/sessions/<uuid:session_id>/snapshots")
class SnapshotCalendar(MethodView):
    @snapshots.response(200, schemas.Calendar)
    def get(self, session_id):
        """Every week of the Session by month: current, past, future or no_snapshot, with counts"""
        c = container()
        return handlers.calendar(current_principal(), session_id, uow=c.uow(), clock=c.clock)


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
        return handlers.compare(current_principal(), session_id, query["from_"], query["to"], uow=c.uow(),
                                clock=c.clock)


@snapshots.route("/sessions/<uuid:session_id>/snapshots/verify")
class SnapshotChain(MethodView):
    @snapshots.response(200, schemas.Chain)
    def get(self, session_id):
        """Recompute the sealed weeks' hash chain and compare it with what was sealed"""
        handlers.get_session(current_principal(), session_id, uow=container().uow())  # access first
        return handlers.verify_chain(session_id, uow=container().uow())


@snapshots.route("/sessions/<uuid:session_id>/snapshots/trend")
class SnapshotTrend(MethodView):
    @snapshots.response(200, schemas.Trend)
    def get(self, session_id):
        """Each Key Result's progress per saved week, for a chart"""
        c = container()
        return handlers.trend(current_principal(), session_id, uow=c.uow(), clock=c.clock)


@snapshots.route("/sessions/<uuid:session_id>/snapshots/<string:week>")
class WeekSnapshot(MethodView):
    @snapshots.arguments(schemas.WeekQuery, location="query")
    @snapshots.response(200, schemas.WeekView)
    def get(self, query, session_id, week):
        """The Session as it looked at the end of a week"""
        c = container()
        principal = current_principal()
        key = handlers.week_view_key(principal, session_id, week, query["owner"], uow=c.uow(), clock=c.clock)
        body = _RENDERED.get(key) if key else None
        if body is None:
            view = handlers.week_view(principal, session_id, week, query["owner"], uow=c.uow(), clock=c.clock)
            response = fast_json(WEEK_VIEW, view)
            if key:
                _RENDERED.put(key, response.get_data())
            return response
        return Response(body, mimetype="application/json")


# A week view builds tens of thousands of dicts (and rendered views are kept): with CPython's
# default thresholds a collection walks them every few requests, which cost a 10,000 Key Result
# week view up to half its time (bench). Its dicts are freed by reference counting; cycles are
# rare, so the collector may run far less often.
GC_THRESHOLDS = (100_000, 50, 100)


class PipelineHealth:
    """/healthz's view of the pipeline: parked events (the oldest), and the dead-letter queue's
    depth, read by a background thread every HEALTH_REFRESH_SECONDS (a broker that is away must
    not slow the health check down)."""

    def __init__(self, container: Snapshot):
        self.container = container
        self.dead_letters: int | None = None
        self._lock = threading.Lock()
        self._pid: int | None = None

    def _refresh(self) -> None:
        from shared.deadletters import depth

        while True:
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
        try:
            parked = handlers.pipeline_health(uow=self.container.uow())
        except Exception:  # noqa: BLE001 - the database is away: say so, stay quick
            parked = {"parked_events": None, "oldest_parked_at": None}
        return {**parked, "dead_letters": self.dead_letters}


HEALTH_REFRESH_SECONDS = 15


def create_app(container: Snapshot | None = None):
    gc.set_threshold(*GC_THRESHOLDS)
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
