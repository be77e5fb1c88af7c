"""The check-in service's HTTP API (internal: reached through the gateway only)."""
from __future__ import annotations

from flask import request
from flask.views import MethodView

from services.checkin.adapters.directory import DirectoryUnavailable
from services.checkin.bootstrap import Checkin, bootstrap
from services.checkin.domain import commands
from services.checkin.domain.model import Conflict, DomainError, VersionRequired
from services.checkin.domain.views import ListQuery
from services.checkin.entrypoints import schemas
from services.checkin.service_layer import handlers
from shared.http import (
    Blueprint,
    container,
    current_principal,
    error_response,
    register_access_errors,
    require_internal_token,
)
from shared.http import create_app as create_base_app

IMPORT_MAX_BYTES = 8 * 1024 * 1024

sessions = Blueprint("sessions", __name__, description="OKR Sessions of a Workspace, their List and Tree")
objectives = Blueprint("objectives", __name__, description="Objectives (a cascading tree)")
key_results = Blueprint("key_results", __name__, description="Key Results")
initiatives = Blueprint("initiatives", __name__, description="Initiatives and their connected Key Results")
check_ins = Blueprint("check_ins", __name__, description="Check-ins: why progress moved")
access_blp = Blueprint("access", __name__, description="Why you can or cannot reach something")

IF_MATCH = {"If-Match": {"description": "the item's version (its ETag); required", "required": True,
                         "schema": {"type": "string"}}}




def _expected_version() -> int | None:
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not value.isdigit() or len(value) > 9:
        raise DomainError('If-Match must be an item version such as "3".', "If-Match")
    return int(value)


def _tagged(item, status: int = 200):
    return item, status, {"ETag": f'"{item.version}"'}


def _update(kind: str, item_id, changes: dict):
    c = container()
    item = handlers.update_item(commands.UpdateItem(current_principal(), kind, item_id, _expected_version(),
                                                    changes), uow=c.uow(), clock=c.clock, members=c.members)
    return _tagged(_shown(item) if kind == "initiative" else item)


def _shown(initiative):
    """A changed Initiative as its editor may see it (no canvas link without canvas permission)."""
    return handlers.present_initiative(current_principal(), initiative, uow=container().uow())


def _remove(kind: str, item_id):
    c = container()
    handlers.remove_item(commands.RemoveItem(current_principal(), kind, item_id, _expected_version()),
                         uow=c.uow(), clock=c.clock)


def _detail(result: dict, kind: str):
    return result, 200, {"ETag": f'"{result[kind].version}"'}


# --- Sessions ------------------------------------------------------------------------------

@sessions.route("/workspaces/<uuid:workspace_id>/sessions")
class WorkspaceSessions(MethodView):
    @sessions.arguments(schemas.SessionCreate)
    @sessions.response(201, schemas.SessionOut)
    def post(self, body, workspace_id):
        """Create a Session"""
        c = container()
        return _tagged(handlers.create_session(commands.CreateSession(current_principal(), workspace_id, **body),
                                               uow=c.uow(), clock=c.clock, members=c.members), 201)

    @sessions.response(200, schemas.SessionOut(many=True))
    def get(self, workspace_id):
        """The Workspace's Sessions"""
        return handlers.list_sessions(current_principal(), workspace_id, uow=container().uow())


@sessions.route("/workspaces/<uuid:workspace_id>/sessions/import")
class SessionImport(MethodView):
    @sessions.arguments(schemas.HistoryImport)
    @sessions.response(201, schemas.SessionOut)
    def post(self, body, workspace_id):
        """Import a Session's past (admins): items and dated Check-ins keep their times"""
        c = container()
        return _tagged(handlers.import_history(commands.ImportHistory(current_principal(), workspace_id, body),
                                               uow=c.uow(), clock=c.clock, members=c.members), 201)


@sessions.route("/sessions/<uuid:session_id>")
class SessionDetail(MethodView):
    @sessions.response(200, schemas.SessionOut)
    def get(self, session_id):
        """One Session"""
        return _tagged(handlers.get_item(current_principal(), "session", session_id, uow=container().uow()))

    @sessions.arguments(schemas.SessionPatch)
    @sessions.response(200, schemas.SessionOut)
    @sessions.doc(parameters=[{"in": "header", "name": "If-Match", **IF_MATCH["If-Match"]}])
    def patch(self, body, session_id):
        """Edit a Session (If-Match: its version)"""
        return _update("session", session_id, body)


@sessions.route("/sessions/<uuid:session_id>/archive")
class SessionArchive(MethodView):
    @sessions.response(200, schemas.SessionOut)
    def post(self, session_id):
        """Archive a Session: read-only from now on, still reviewable (owners and admins)"""
        c = container()
        return _tagged(handlers.archive_session(commands.ArchiveSession(current_principal(), session_id),
                                                uow=c.uow(), clock=c.clock))


@sessions.route("/sessions/<uuid:session_id>/tree")
class SessionTree(MethodView):
    @sessions.response(200, schemas.TreeOut)
    def get(self, session_id):
        """Tree view: cascading Objectives, their Key Results and connected Initiatives"""
        return handlers.session_tree(current_principal(), session_id, uow=container().uow())


@sessions.route("/sessions/<uuid:session_id>/canvases")
class SessionCanvases(MethodView):
    @sessions.response(200, schemas.CanvasesOut)
    def get(self, session_id):
        """The canvases of the Session's Initiatives: the link only for those who may open it"""
        return {"canvases": handlers.session_canvases(current_principal(), session_id, uow=container().uow())}


@sessions.route("/sessions/<uuid:session_id>/items")
class SessionList(MethodView):
    @sessions.arguments(schemas.ListQueryIn, location="query")
    @sessions.response(200, schemas.ListOut)
    def get(self, query, session_id):
        """List view: search, filter by owner and status, sort, page"""
        return handlers.session_list(current_principal(), session_id, ListQuery(
            types=tuple(query["type"]), search=query["q"], owner=query["owner"], status=query["status"],
            sort=query["sort"], limit=query["limit"], offset=query["offset"]), uow=container().uow())


# --- Objectives ----------------------------------------------------------------------------

@objectives.route("/sessions/<uuid:session_id>/objectives")
class SessionObjectives(MethodView):
    @objectives.arguments(schemas.ObjectiveCreate)
    @objectives.response(201, schemas.ObjectiveOut)
    def post(self, body, session_id):
        """Add an Objective"""
        c = container()
        return _tagged(handlers.add_objective(commands.AddObjective(current_principal(), session_id, **body),
                                              uow=c.uow(), clock=c.clock, members=c.members), 201)


@objectives.route("/objectives/<uuid:objective_id>")
class ObjectiveDetail(MethodView):
    @objectives.response(200, schemas.ObjectiveDetail)
    def get(self, objective_id):
        """One Objective with its progress and Key Results"""
        return _detail(handlers.objective_detail(current_principal(), objective_id, uow=container().uow()), "objective")

    @objectives.arguments(schemas.ObjectivePatch)
    @objectives.response(200, schemas.ObjectiveOut)
    @objectives.doc(parameters=[{"in": "header", "name": "If-Match", **IF_MATCH["If-Match"]}])
    def patch(self, body, objective_id):
        """Edit an Objective (If-Match: its version); a parent that makes a cycle is refused"""
        return _update("objective", objective_id, body)

    @objectives.response(204)
    @objectives.doc(parameters=[{"in": "header", "name": "If-Match", **IF_MATCH["If-Match"]}])
    def delete(self, objective_id):
        """Remove an Objective without Key Results or child Objectives"""
        _remove("objective", objective_id)


# --- Key Results ---------------------------------------------------------------------------

@key_results.route("/objectives/<uuid:objective_id>/key-results")
class ObjectiveKeyResults(MethodView):
    @key_results.arguments(schemas.KeyResultCreate)
    @key_results.response(201, schemas.KeyResultOut)
    def post(self, body, objective_id):
        """Add a Key Result"""
        c = container()
        return _tagged(handlers.add_key_result(commands.AddKeyResult(current_principal(), objective_id, **body),
                                               uow=c.uow(), clock=c.clock, members=c.members), 201)


@key_results.route("/key-results/<uuid:key_result_id>")
class KeyResultDetail(MethodView):
    @key_results.response(200, schemas.KeyResultDetail)
    def get(self, key_result_id):
        """One Key Result with its Initiatives and newest Check-ins"""
        return _detail(handlers.key_result_detail(current_principal(), key_result_id, uow=container().uow()), "key_result")

    @key_results.arguments(schemas.KeyResultPatch)
    @key_results.response(200, schemas.KeyResultOut)
    @key_results.doc(parameters=[{"in": "header", "name": "If-Match", **IF_MATCH["If-Match"]}])
    def patch(self, body, key_result_id):
        """Edit a Key Result (If-Match: its version); progress moves through Check-ins"""
        return _update("key_result", key_result_id, body)

    @key_results.response(204)
    @key_results.doc(parameters=[{"in": "header", "name": "If-Match", **IF_MATCH["If-Match"]}])
    def delete(self, key_result_id):
        """Remove a Key Result (its Initiative connections go with it)"""
        _remove("key_result", key_result_id)


# --- Initiatives ---------------------------------------------------------------------------

@initiatives.route("/sessions/<uuid:session_id>/initiatives")
class SessionInitiatives(MethodView):
    @initiatives.arguments(schemas.InitiativeCreate)
    @initiatives.response(201, schemas.InitiativeOut)
    def post(self, body, session_id):
        """Add an Initiative, optionally connected to Key Results"""
        c = container()
        return _tagged(_shown(handlers.add_initiative(commands.AddInitiative(current_principal(), session_id, **body),
                                                      uow=c.uow(), clock=c.clock, members=c.members)), 201)


@initiatives.route("/initiatives/<uuid:initiative_id>")
class InitiativeDetail(MethodView):
    @initiatives.response(200, schemas.InitiativeDetail)
    def get(self, initiative_id):
        """One Initiative with its Key Results and newest Check-ins"""
        return _detail(handlers.initiative_detail(current_principal(), initiative_id, uow=container().uow()), "initiative")

    @initiatives.arguments(schemas.InitiativePatch)
    @initiatives.response(200, schemas.InitiativeOut)
    @initiatives.doc(parameters=[{"in": "header", "name": "If-Match", **IF_MATCH["If-Match"]}])
    def patch(self, body, initiative_id):
        """Edit an Initiative (If-Match: its version)"""
        return _update("initiative", initiative_id, body)

    @initiatives.response(204)
    @initiatives.doc(parameters=[{"in": "header", "name": "If-Match", **IF_MATCH["If-Match"]}])
    def delete(self, initiative_id):
        """Remove an Initiative"""
        _remove("initiative", initiative_id)


@initiatives.route("/initiatives/<uuid:initiative_id>/canvas")
class InitiativeCanvas(MethodView):
    @initiatives.response(200, schemas.CanvasView)
    def get(self, initiative_id):
        """Open an Initiative's canvas: its link, for members with canvas permission (else 403)"""
        return handlers.open_canvas(current_principal(), initiative_id, uow=container().uow())


@initiatives.route("/initiatives/<uuid:initiative_id>/key-results/<uuid:key_result_id>")
class InitiativeConnection(MethodView):
    @initiatives.response(200, schemas.InitiativeOut)
    def put(self, initiative_id, key_result_id):
        """Connect a Key Result"""
        c = container()
        return _tagged(_shown(handlers.connect(commands.Connect(current_principal(), initiative_id, key_result_id),
                                               uow=c.uow(), clock=c.clock)))

    @initiatives.response(200, schemas.InitiativeOut)
    def delete(self, initiative_id, key_result_id):
        """Disconnect a Key Result"""
        c = container()
        return _tagged(_shown(handlers.connect(commands.Connect(current_principal(), initiative_id, key_result_id,
                                                               False), uow=c.uow(), clock=c.clock)))


# --- Check-ins -----------------------------------------------------------------------------

@check_ins.route("/key-results/<uuid:key_result_id>/check-ins")
class KeyResultCheckIns(MethodView):
    @check_ins.arguments(schemas.CheckInCreate)
    @check_ins.response(201, schemas.CheckInRecorded)
    def post(self, body, key_result_id):
        """Record a Check-in: new value, status, confidence and why it moved"""
        c = container()
        entry, key_result = handlers.record_check_in(
            commands.RecordCheckIn(current_principal(), key_result_id, **body), uow=c.uow(), clock=c.clock)
        return {"check_in": entry, "key_result": key_result}

    @check_ins.arguments(schemas.Page, location="query")
    @check_ins.response(200, schemas.CheckInPage)
    def get(self, page, key_result_id):
        """A Key Result's Check-ins, newest first"""
        items, total = handlers.list_check_ins(current_principal(), "key_result", key_result_id,
                                               uow=container().uow(), **page)
        return {"items": items, "total": total, **page}


@check_ins.route("/initiatives/<uuid:initiative_id>/check-ins")
class InitiativeCheckIns(MethodView):
    @check_ins.arguments(schemas.InitiativeCheckInCreate)
    @check_ins.response(201, schemas.InitiativeCheckInRecorded)
    def post(self, body, initiative_id):
        """Record an Initiative Check-in: status and comment"""
        c = container()
        entry, initiative = handlers.record_initiative_check_in(
            commands.RecordInitiativeCheckIn(current_principal(), initiative_id, **body), uow=c.uow(), clock=c.clock)
        return {"check_in": entry, "initiative": _shown(initiative)}

    @check_ins.arguments(schemas.Page, location="query")
    @check_ins.response(200, schemas.InitiativeCheckInPage)
    def get(self, page, initiative_id):
        """An Initiative's Check-ins, newest first"""
        items, total = handlers.list_check_ins(current_principal(), "initiative", initiative_id,
                                               uow=container().uow(), **page)
        return {"items": items, "total": total, **page}


@access_blp.route("/access/explain")
class AccessExplain(MethodView):
    @access_blp.arguments(schemas.AccessQuery, location="query")
    @access_blp.response(200, schemas.AccessExplained)
    def get(self, query):
        """Why you can or cannot see, check in on, change, or open a resource (kind:id)"""
        return handlers.explain_access(current_principal(), query["resource"], uow=container().uow())


BLUEPRINTS = (sessions, objectives, key_results, initiatives, check_ins, access_blp)


def create_app(container: Checkin | None = None):
    container = container or bootstrap()
    app, api = create_base_app(__name__, title="okrsnap check-in service")
    app.extensions["okrsnap"] = container
    require_internal_token(app, service="checkin", secret=container.settings.internal_secret)
    register_access_errors(app)

    @app.before_request
    def _allow_large_imports():
        if request.path.endswith("/sessions/import"):
            request.max_content_length = IMPORT_MAX_BYTES

    def _field_error(code: int, exc: DomainError):
        return error_response(code, exc.message, [{"location": "header" if exc.field == "If-Match" else "json",
                                                   "field": exc.field or "_schema", "reason": exc.message}])

    app.register_error_handler(DomainError, lambda exc: _field_error(422, exc))
    app.register_error_handler(Conflict, lambda exc: _field_error(409, exc))
    app.register_error_handler(VersionRequired, lambda exc: _field_error(428, exc))
    app.register_error_handler(DirectoryUnavailable, lambda exc: error_response(503, str(exc)))
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    return app
