"""The gateway: the only public entry point, under /api/v1. It authenticates every request,
checks Workspace membership, and forwards to the internal service with a signed token."""
from __future__ import annotations

from urllib.parse import quote

from flask import Response, g, request, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from services.gateway.adapters.openapi import RULE_PARAM, merge
from services.gateway.adapters.upstream import RESPONSE_HEADERS, UpstreamUnavailable
from services.gateway.bootstrap import Gateway, bootstrap
from services.gateway.domain.model import Identity
from services.gateway.entrypoints import schemas
from services.gateway.entrypoints.routes import ROUTES, Route
from services.gateway.service_layer import handlers
from shared import tokens
from shared.http import container, error_response
from shared.http import create_app as create_base_app

PREFIX = "/api/v1"

auth = Blueprint("auth", __name__, url_prefix=PREFIX, description="Log in")
directory = Blueprint("directory", __name__, url_prefix="/internal",
                      description="For internal services only (signed internal token): Workspace members")
me = Blueprint("me", __name__, url_prefix=PREFIX, description="The signed-in user")




def _authenticate() -> Identity:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        abort(401, message="Sign in first: send Authorization: Bearer <access token>.",
              headers={"WWW-Authenticate": "Bearer"})
    c = container()
    try:
        return handlers.identity_for_token(token.strip(), uow=c.uow(), settings=c.settings)
    except tokens.InvalidToken:
        abort(401, message="The access token is invalid or expired.",
              headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _user_out(identity_user, workspaces) -> dict:
    return {"id": identity_user.id, "email": identity_user.email,
            "workspaces": [{"id": w.id, "name": w.name, "role": m.role, "okr_access": m.okr_access}
                           for w, m in workspaces]}


@auth.route("/auth/login")
class Login(MethodView):
    @auth.arguments(schemas.LoginIn)
    @auth.response(200, schemas.TokenOut)
    def post(self, body):
        """Exchange email and password for a bearer access token"""
        c = container()
        try:
            token, user = handlers.login(body["email"], body["password"], uow=c.uow(), settings=c.settings)
        except handlers.LoginFailed:
            abort(401, message="Email or password is wrong.")
        return {"access_token": token, "token_type": "Bearer", "expires_in": c.settings.access_token_ttl,
                "user": _user_out(user, handlers.workspaces_of(user.id, uow=c.uow()))}


@me.route("/me")
class Me(MethodView):
    @me.response(200, schemas.UserOut)
    def get(self):
        """Who I am and my Workspaces"""
        identity = _authenticate()
        return _user_out(identity.user, handlers.workspaces_of(identity.user.id, uow=container().uow()))


@directory.route("/workspaces/<uuid:workspace_id>/members")
class Members(MethodView):
    @directory.arguments(schemas.MembersQuery, location="query")
    @directory.response(200, schemas.MembersOut)
    def get(self, query, workspace_id):
        """Which of the given users are members of the Workspace"""
        principal = _internal_principal()
        members = handlers.members_among(principal, workspace_id, query["id"], uow=container().uow())
        return {"members": sorted(members, key=str)}


def _internal_principal() -> tokens.Principal:
    try:
        claims = tokens.verify(container().settings.internal_secret,
                               request.headers.get(tokens.INTERNAL_HEADER, ""), typ=tokens.INTERNAL,
                               audience=tokens.internal_audience("gateway"))
    except tokens.InvalidToken:
        abort(401, message="This route is for okrsnap's internal services only.")
    return tokens.Principal.from_claims(claims)


def _forwarder(index: int, route: Route):
    def forward(**path_params):
        if route.authenticated:
            identity = _authenticate()
            principal = tokens.Principal(str(identity.user.id), identity.workspace_roles())
            if route.workspace_param and not principal.member_of(path_params[route.workspace_param]):
                abort(404, message="Workspace not found.")
        else:
            principal = tokens.Principal(None, {})
        g.principal = principal
        request.max_content_length = route.max_body
        # Rebuilt from the route and its converted parameters, never from the raw path: an
        # encoded "?" or ".." in a parameter cannot reach another internal route.
        path = RULE_PARAM.sub(lambda m: quote(str(path_params[m.group(1)]), safe=""), route.rule)
        try:
            upstream = container().upstream.forward(
                route.service, request.method, path, principal=principal, params=request.args,
                body=request.get_data(cache=False), headers=request.headers)
        except UpstreamUnavailable as exc:
            return error_response(503, str(exc))
        headers = {name: upstream.headers[name] for name in RESPONSE_HEADERS if name in upstream.headers}
        response = Response(stream_with_context(upstream.iter_content(64 * 1024)),
                            status=upstream.status_code, headers=headers)
        response.call_on_close(upstream.close)  # also when the client goes away mid-download
        return response

    forward.__name__ = f"forward_{index}_{route.service}"
    return forward


def _resource_blueprints() -> list:
    """One Blueprint per forwarded resource."""
    blueprints: dict[str, Blueprint] = {}
    for index, route in enumerate(ROUTES):
        blueprint = blueprints.get(route.resource)
        if blueprint is None:
            blueprint = blueprints[route.resource] = Blueprint(
                route.resource, __name__, url_prefix=PREFIX,
                description=f"{route.resource.replace('_', ' ')} (served by the {route.service} service)")
        blueprint.add_url_rule(route.rule, view_func=_forwarder(index, route), methods=list(route.methods))
    return list(blueprints.values())


DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>okrsnap API</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="{spec}"></redoc>
<script src="https://cdn.redoc.ly/redoc/v2.1.5/bundles/redoc.standalone.js"></script></body></html>
"""


def _public_openapi(app, api) -> dict:
    """The merged document, built once per process when every service answered."""
    cached = app.extensions.get("okrsnap.openapi")
    if cached is not None:
        return cached
    upstream = container().upstream
    specs = {}
    for service in sorted({route.service for route in ROUTES}):
        try:
            response = upstream.forward(service, "GET", "/openapi.json", principal=tokens.Principal(None),
                                        params={}, body=b"", headers={"Accept": "application/json"})
            if response.status_code == 200:
                specs[service] = response.json()
        except (UpstreamUnavailable, ValueError):
            pass
    spec = merge(api.spec.to_dict(), specs, ROUTES, PREFIX)
    if len(specs) == len({route.service for route in ROUTES}):
        app.extensions["okrsnap.openapi"] = spec
    return spec


def create_app(container: Gateway | None = None):
    container = container or bootstrap()
    # The gateway's own part of the document; /openapi.json serves the merged whole.
    app, api = create_base_app(__name__, title="okrsnap API", api_prefix=PREFIX,
                               openapi_json_path="gateway-openapi.json")
    app.extensions["okrsnap"] = container

    @app.get(f"{PREFIX}/openapi.json")
    def openapi_document():
        return _public_openapi(app, api)

    @app.get(f"{PREFIX}/docs")
    def docs_page():
        return Response(DOCS_PAGE.format(spec=f"{PREFIX}/openapi.json"), mimetype="text/html")

    api.register_blueprint(auth)
    api.register_blueprint(me)
    api.register_blueprint(directory)
    for blueprint in _resource_blueprints():
        api.register_blueprint(blueprint)
    return app
