"""The check-in service's HTTP API (internal: reached through the gateway only)."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from services.checkin.bootstrap import Checkin, bootstrap
from services.checkin.domain import commands
from services.checkin.domain.model import DomainError
from services.checkin.entrypoints import schemas
from services.checkin.service_layer import handlers
from shared.http import (create_app as create_base_app, current_principal, error_response,
                         register_access_errors, require_internal_token)

sessions = Blueprint("sessions", __name__, description="OKR Sessions of a Workspace")
objectives = Blueprint("objectives", __name__, description="Objectives of a Session")
key_results = Blueprint("key_results", __name__, description="Key Results and their Check-ins")


def _container() -> Checkin:
    from flask import current_app

    return current_app.extensions["okrsnap"]


@sessions.route("/workspaces/<uuid:workspace_id>/sessions")
class WorkspaceSessions(MethodView):
    @sessions.arguments(schemas.SessionCreate)
    @sessions.response(201, schemas.SessionOut)
    def post(self, body, workspace_id):
        """Create a Session"""
        c = _container()
        return handlers.create_session(
            commands.CreateSession(current_principal(), workspace_id, **body), uow=c.uow(), clock=c.clock)

    @sessions.response(200, schemas.SessionOut(many=True))
    def get(self, workspace_id):
        """List the Workspace's Sessions"""
        return handlers.list_sessions(current_principal(), workspace_id, uow=_container().uow())


@sessions.route("/sessions/<uuid:session_id>")
class SessionTree(MethodView):
    @sessions.response(200, schemas.SessionTree)
    def get(self, session_id):
        """A Session with its Objectives and Key Results (Tree)"""
        session, objs, krs = handlers.session_tree(current_principal(), session_id, uow=_container().uow())
        by_objective: dict = {}
        for kr in krs:
            by_objective.setdefault(kr.objective_id, []).append(kr)
        tree = dict(vars(session))
        tree["objectives"] = [dict(vars(o), key_results=by_objective.get(o.id, [])) for o in objs]
        return tree


@objectives.route("/sessions/<uuid:session_id>/objectives")
class SessionObjectives(MethodView):
    @objectives.arguments(schemas.ObjectiveCreate)
    @objectives.response(201, schemas.ObjectiveOut)
    def post(self, body, session_id):
        """Add an Objective"""
        c = _container()
        return handlers.add_objective(commands.AddObjective(current_principal(), session_id, **body),
                                      uow=c.uow(), clock=c.clock)


@key_results.route("/objectives/<uuid:objective_id>/key-results")
class ObjectiveKeyResults(MethodView):
    @key_results.arguments(schemas.KeyResultCreate)
    @key_results.response(201, schemas.KeyResultOut)
    def post(self, body, objective_id):
        """Add a Key Result"""
        c = _container()
        return handlers.add_key_result(commands.AddKeyResult(current_principal(), objective_id, **body),
                                       uow=c.uow(), clock=c.clock)


@key_results.route("/key-results/<uuid:key_result_id>")
class KeyResultDetail(MethodView):
    @key_results.response(200, schemas.KeyResultOut)
    def get(self, key_result_id):
        """One Key Result"""
        return handlers.get_key_result(current_principal(), key_result_id, uow=_container().uow())


@key_results.route("/key-results/<uuid:key_result_id>/check-ins")
class KeyResultCheckIns(MethodView):
    @key_results.arguments(schemas.CheckInCreate)
    @key_results.response(201, schemas.CheckInRecorded)
    def post(self, body, key_result_id):
        """Record a Check-in: new value, status and why it moved"""
        c = _container()
        entry, key_result = handlers.record_check_in(
            commands.RecordCheckIn(current_principal(), key_result_id, **body), uow=c.uow(), clock=c.clock)
        return {"check_in": entry, "key_result": key_result}

    @key_results.arguments(schemas.Page, location="query")
    @key_results.response(200, schemas.CheckInOut(many=True))
    def get(self, page, key_result_id):
        """Check-ins of a Key Result, newest first"""
        return handlers.list_check_ins(current_principal(), key_result_id, uow=_container().uow(), **page)


def create_app(container: Checkin | None = None):
    container = container or bootstrap()
    app, api = create_base_app(__name__, title="okrsnap check-in service")
    app.extensions["okrsnap"] = container
    require_internal_token(app, service="checkin", secret=container.settings.internal_secret)
    register_access_errors(app)

    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError):
        return error_response(422, exc.message, [{"location": "json", "field": exc.field or "_schema",
                                                  "reason": exc.message}])

    for blueprint in (sessions, objectives, key_results):
        api.register_blueprint(blueprint)
    return app
