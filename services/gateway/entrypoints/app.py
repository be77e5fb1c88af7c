"""The gateway: the only public entry point, under /api/v1. It authenticates every request,
checks Workspace membership, and forwards to the internal service with a signed token."""
from __future__ import annotations

import json
import logging
import uuid
from urllib.parse import quote

from flask import Response, after_this_request, g, request, stream_with_context
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import RAISE, Schema, fields

from services.gateway.adapters import ratelimit
from services.gateway.adapters.openapi import RULE_PARAM, merge
from services.gateway.adapters.upstream import CHUNK, RESPONSE_HEADERS, UpstreamUnavailable
from services.gateway.bootstrap import Gateway, bootstrap
from services.gateway.domain import credentials
from services.gateway.domain.members import MemberRuleError
from services.gateway.domain.model import IdentityError
from services.gateway.entrypoints import schemas
from services.gateway.entrypoints.routes import ROUTES, Route
from services.gateway.service_layer import handlers
from shared import tokens
from shared.http import Blueprint, container, error_response
from shared.http import create_app as create_base_app

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
SESSION_COOKIE = "okrsnap_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SCOPE_REFUSALS = {"read": "This personal API token is read-only (scope read).",
                  "check_in": "This personal API token may only read and record Check-ins (scope check_in)."}

auth = Blueprint("auth", __name__, url_prefix=PREFIX,
                 description="Log in and out: bearer access tokens, browser sessions, invitations")
directory = Blueprint("directory", __name__, url_prefix="/internal",
                      description="For internal services only (signed internal token): Workspace members")
me = Blueprint("me", __name__, url_prefix=PREFIX, description="The signed-in user")
personal_tokens = Blueprint("personal_tokens", __name__, url_prefix=PREFIX,
                            description="Personal API tokens for scripts (Authorization: Bearer okrsnap_pat_...)")
members = Blueprint("members", __name__, url_prefix=PREFIX,
                    description="A Workspace's members and invitations (owners and admins manage them)")
audit = Blueprint("audit", __name__, url_prefix=PREFIX,
                  description="A Workspace's audit log (owners and admins)")


# -- who is asking -------------------------------------------------------------------------------

def client_ip() -> str:
    """The socket's peer; X-Forwarded-For counts only behind OKRSNAP_TRUSTED_PROXIES proxies, and
    then only the entry the outermost trusted proxy wrote (anything left of it is the client's word)."""
    trusted = container().settings.trusted_proxies
    if trusted:
        hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
        if hops:
            return hops[-trusted] if len(hops) >= trusted else hops[0]
    return request.remote_addr or ""


def _context() -> handlers.RequestContext:
    return handlers.RequestContext(client_ip(), request.headers.get("User-Agent"))


def _authenticate(needs: str | None = None) -> handlers.Authenticated:
    """The request's credential: Authorization: Bearer (an access token or a personal API token)
    or else the browser session cookie, which needs X-CSRF-Token on unsafe methods. A personal
    token must have a scope that allows what the request `needs` (read, check_in or write; by
    default read for GET and HEAD, write otherwise)."""
    c = container()
    header = request.headers.get("Authorization", "")
    cookie = request.cookies.get(SESSION_COOKIE)
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            abort(401, message="Sign in first: send Authorization: Bearer <access token>.",
                  headers={"WWW-Authenticate": "Bearer"})
        try:
            authenticated = handlers.authenticate_bearer(token.strip(), uow=c.uow(), settings=c.settings,
                                                         clock=c.wall_clock)
        except tokens.InvalidToken:
            abort(401, message="The access token is invalid or expired.",
                  headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    elif cookie:
        try:
            authenticated = handlers.authenticate_session(cookie, uow=c.uow(), clock=c.wall_clock)
        except tokens.InvalidToken:
            abort(401, message="Your session has ended: sign in again.")
        if request.method in UNSAFE_METHODS and not credentials.csrf_matches(
                c.settings.verification_keys("access_token"), cookie, request.headers.get(CSRF_HEADER)):
            abort(403, message=f"Send the {CSRF_HEADER} header with your session's CSRF token "
                               f"(from POST or GET {PREFIX}/auth/session).")
    else:
        abort(401, message="Sign in first: send Authorization: Bearer <access token>.",
              headers={"WWW-Authenticate": "Bearer"})
    if authenticated.method == "pat":
        needs = needs or (credentials.WRITE if request.method in UNSAFE_METHODS else credentials.READ)
        if not credentials.scope_allows(authenticated.scope, needs):
            abort(403, message=SCOPE_REFUSALS.get(authenticated.scope, "This personal API token's scope "
                                                                       "does not allow this."))
    g.authenticated = authenticated
    return authenticated


def _rate_limit(*checks: tuple[str, tuple[int, int]]) -> None:
    limiter = container().limiter
    retry_after = max(limiter.hit(key, rate) for key, rate in checks)
    if retry_after:
        abort(429, message=f"Too many requests: try again in {retry_after} seconds.",
              headers={"Retry-After": str(retry_after)})


def _login_rate_limit(email: str) -> None:
    settings = container().settings
    _rate_limit((ratelimit.key_for("login-email", email.strip().lower()), settings.login_rate),
                (ratelimit.key_for("login-ip", client_ip()), settings.login_ip_rate))


def _rule_error(exc: MemberRuleError):
    retry_after = getattr(exc, "retry_after", None)
    abort(exc.status, message=exc.message, headers={"Retry-After": str(retry_after)} if retry_after else {})


def _identity_error(exc: IdentityError):
    field = exc.field or "_schema"
    abort(422, message=f"The request is invalid: {field}: {exc.message}",
          errors={"json": {field: [exc.message]}})


def _user_out(identity_user, workspaces) -> dict:
    return {"id": identity_user.id, "email": identity_user.email,
            "display_name": handlers.display_name_of(identity_user),
            "workspaces": [{"id": w.id, "name": w.name, "role": m.role, "okr_access": m.okr_access}
                           for w, m in workspaces]}


def _token_out(token: str, user) -> dict:
    c = container()
    return {"access_token": token, "token_type": "Bearer", "expires_in": c.settings.access_token_ttl,
            "user": _user_out(user, handlers.workspaces_of(user.id, uow=c.uow()))}


# -- auth ------------------------------------------------------------------------------------------

@auth.route("/auth/login")
class Login(MethodView):
    @auth.arguments(schemas.LoginIn)
    @auth.response(200, schemas.TokenOut)
    @auth.alt_response(429, description="Too many attempts (Retry-After says when to try again)")
    def post(self, body):
        """Exchange email and password for a bearer access token"""
        _login_rate_limit(body["email"])
        c = container()
        try:
            token, user = handlers.login(body["email"], body["password"], uow=c.uow(), settings=c.settings,
                                         clock=c.wall_clock, ctx=_context())
        except handlers.LoginFailed:
            abort(401, message="Email or password is wrong.")
        return _token_out(token, user)


@auth.route("/auth/logout")
class Logout(MethodView):
    @auth.response(204)
    def post(self):
        """Revoke the access token (or end the browser session) this request carries, at once"""
        authenticated = _authenticate(credentials.READ)  # a personal token hears how it is revoked
        c = container()
        try:
            handlers.logout(authenticated, uow=c.uow(), clock=c.wall_clock, ctx=_context())
        except IdentityError as exc:
            abort(400, message=exc.message)
        if authenticated.method == "session":
            after_this_request(_clear_session_cookie)


def _session_cookie_secure() -> bool:
    return container().settings.public_url.lower().startswith("https://")


# The web pages at / and the API under /api/v1 share one browser session.
SESSION_COOKIE_PATH = "/"


def _clear_session_cookie(response):
    response.delete_cookie(SESSION_COOKIE, path=SESSION_COOKIE_PATH, secure=_session_cookie_secure(), httponly=True,
                           samesite="Lax")
    return response


@auth.route("/auth/session")
class BrowserSession(MethodView):
    @auth.arguments(schemas.LoginIn)
    @auth.response(201, schemas.SessionOut)
    @auth.alt_response(429, description="Too many attempts (Retry-After says when to try again)")
    def post(self, body):
        """Sign in the web app: sets an HttpOnly session cookie and returns its CSRF token"""
        _login_rate_limit(body["email"])
        c = container()
        try:
            secret, session, user = handlers.start_session(body["email"], body["password"], uow=c.uow(),
                                                           settings=c.settings, clock=c.wall_clock,
                                                           ctx=_context())
        except handlers.LoginFailed:
            abort(401, message="Email or password is wrong.")

        @after_this_request
        def _set_cookie(response):
            response.set_cookie(SESSION_COOKIE, secret, max_age=c.settings.session_ttl, path=SESSION_COOKIE_PATH,
                                secure=_session_cookie_secure(), httponly=True, samesite="Lax")
            return response

        return {"csrf_token": credentials.csrf_token(c.settings.access_token_secret, secret),
                "expires_at": session.expires_at,
                "user": _user_out(user, handlers.workspaces_of(user.id, uow=c.uow()))}

    @auth.response(200, schemas.SessionOut)
    def get(self):
        """The current browser session, with its CSRF token again (after a page reload)"""
        authenticated = _authenticate()
        if authenticated.method != "session":
            abort(400, message="This request carries no browser session cookie.")
        c = container()
        secret = request.cookies[SESSION_COOKIE]
        return {"csrf_token": credentials.csrf_token(c.settings.access_token_secret, secret),
                "expires_at": authenticated.expires_at,
                "user": _user_out(authenticated.identity.user,
                                  handlers.workspaces_of(authenticated.identity.user.id, uow=c.uow()))}

    @auth.response(204)
    def delete(self):
        """Sign out the web app: ends the session and clears its cookie"""
        authenticated = _authenticate()
        if authenticated.method != "session":
            abort(400, message="This request carries no browser session cookie.")
        c = container()
        handlers.logout(authenticated, uow=c.uow(), clock=c.wall_clock, ctx=_context())
        after_this_request(_clear_session_cookie)


@auth.route("/auth/accept-invite")
class AcceptInvite(MethodView):
    @auth.arguments(schemas.AcceptInviteIn)
    @auth.response(201, schemas.TokenOut)
    @auth.alt_response(429, description="Too many attempts (Retry-After says when to try again)")
    def post(self, body):
        """Accept an invitation: creates the account (with this password) and the membership"""
        c = container()
        _rate_limit((ratelimit.key_for("invite", body["token"]), c.settings.login_rate),
                    (ratelimit.key_for("login-ip", client_ip()), c.settings.login_ip_rate))
        try:
            token, user = handlers.accept_invitation(body["token"], body["password"], uow=c.uow(),
                                                     settings=c.settings, clock=c.wall_clock, ctx=_context(),
                                                     display_name=body.get("display_name"))
        except handlers.InvitationInvalid:
            abort(404, message="The invitation is unknown, used or expired: ask for a new one.")
        except handlers.LoginFailed:
            abort(401, message="An account exists for this email: give its password to accept.")
        except IdentityError as exc:
            _identity_error(exc)
        return _token_out(token, user)


# -- me ------------------------------------------------------------------------------------------

@me.route("/me")
class Me(MethodView):
    @me.response(200, schemas.UserOut)
    def get(self):
        """Who I am and my Workspaces"""
        identity = _authenticate().identity
        return _user_out(identity.user, handlers.workspaces_of(identity.user.id, uow=container().uow()))

    @me.arguments(schemas.MePatchIn)
    @me.response(200, schemas.UserOut)
    def patch(self, body):
        """Change my display name (what others see beside my Objectives, Key Results and Check-ins)"""
        authenticated = _authenticate()
        c = container()
        try:
            user = handlers.set_display_name(authenticated, body["display_name"], uow=c.uow(), clock=c.wall_clock,
                                             ctx=_context())
        except IdentityError as exc:
            _identity_error(exc)
        return _user_out(user, handlers.workspaces_of(user.id, uow=c.uow()))


@me.route("/me/password")
class Password(MethodView):
    @me.arguments(schemas.PasswordChangeIn)
    @me.response(204)
    @me.alt_response(403, description="The current password is wrong")
    @me.alt_response(429, description="Too many attempts (Retry-After says when to try again)")
    def post(self, body):
        """Change my password: ends my other browser sessions, all my personal API tokens and all my
        access tokens (this one too); a browser session that asks stays signed in"""
        authenticated = _authenticate()
        _login_rate_limit(authenticated.identity.user.email)  # a guess here counts like a login attempt
        c = container()
        try:
            handlers.change_password(authenticated, body["current_password"], body["new_password"], uow=c.uow(),
                                     clock=c.wall_clock, ctx=_context())
        except handlers.LoginFailed:
            abort(403, message="The current password is wrong.")
        except IdentityError as exc:
            _identity_error(exc)


@me.route("/me/sign-out-everywhere")
class SignOutEverywhere(MethodView):
    @me.response(204)
    def post(self):
        """Sign me out everywhere: ends all my access tokens, browser sessions and personal API
        tokens at once (this request's credential too)"""
        authenticated = _authenticate()
        c = container()
        try:
            handlers.sign_out_everywhere(authenticated, uow=c.uow(), clock=c.wall_clock, ctx=_context())
        except MemberRuleError as exc:
            _rule_error(exc)
        if authenticated.method == "session":
            after_this_request(_clear_session_cookie)


def _pat_out(token, secret: str | None = None) -> dict:
    out = {"id": token.id, "name": token.name, "created_at": token.created_at,
           "last_used_at": token.last_used_at, "expires_at": token.ends_at, "scope": token.scope,
           "revoked": token.revoked_at is not None}
    if secret is not None:
        out["token"] = secret
    return out


@personal_tokens.route("/me/tokens")
class PersonalTokens(MethodView):
    @personal_tokens.response(200, schemas.PersonalTokensOut)
    def get(self):
        """My personal API tokens (never their secrets)"""
        authenticated = _authenticate()
        return {"tokens": [_pat_out(t) for t in handlers.personal_tokens(authenticated, uow=container().uow())]}

    @personal_tokens.arguments(schemas.PersonalTokenIn)
    @personal_tokens.response(201, schemas.PersonalTokenCreatedOut)
    def post(self, body):
        """Create a personal API token; its secret is shown this once (not with a personal token)"""
        authenticated = _authenticate()
        c = container()
        try:
            secret, token = handlers.create_personal_token(authenticated, body["name"], body["expires_in_days"],
                                                           uow=c.uow(), clock=c.wall_clock, ctx=_context(),
                                                           scope=body["scope"])
        except MemberRuleError as exc:
            _rule_error(exc)
        except IdentityError as exc:
            _identity_error(exc)
        return _pat_out(token, secret)


@personal_tokens.route("/me/tokens/<uuid:token_id>")
class PersonalToken(MethodView):
    @personal_tokens.response(204)
    def delete(self, token_id):
        """Revoke a personal API token, at once"""
        authenticated = _authenticate()
        c = container()
        try:
            handlers.revoke_personal_token(authenticated, token_id, uow=c.uow(), clock=c.wall_clock,
                                           ctx=_context())
        except MemberRuleError as exc:
            _rule_error(exc)


# -- members ---------------------------------------------------------------------------------------

def _member_out(user, membership) -> dict:
    return {"id": user.id, "email": user.email, "display_name": handlers.display_name_of(user),
            "role": membership.role, "okr_access": membership.okr_access}


@members.route("/workspaces/<uuid:workspace_id>/members")
class WorkspaceMembers(MethodView):
    @members.response(200, schemas.MemberListOut)
    def get(self, workspace_id):
        """The Workspace's members"""
        identity = _authenticate().identity
        try:
            found = handlers.list_members(identity, workspace_id, uow=container().uow())
        except MemberRuleError as exc:
            _rule_error(exc)
        return {"members": [_member_out(u, m) for u, m in found]}

    @members.arguments(schemas.MemberInviteIn)
    @members.response(201, schemas.MemberInvitedOut)
    def post(self, body, workspace_id):
        """Invite someone: a one-time invitation (7 days) that they accept with POST /auth/accept-invite,
        whether or not their email has an account (nobody is added without accepting)"""
        identity = _authenticate().identity
        c = container()
        try:
            invited = handlers.invite_member(identity, workspace_id, body["email"], body["role"], body["okr_access"],
                                             uow=c.uow(), clock=c.wall_clock, ctx=_context(),
                                             rate=c.settings.invite_rate)
        except MemberRuleError as exc:
            _rule_error(exc)
        except IdentityError as exc:
            _identity_error(exc)
        inv = invited.invitation
        return {"member": None, "invitation": {"email": inv.email, "role": inv.role, "okr_access": inv.okr_access,
                                               "token": invited.token, "expires_at": inv.expires_at}}


@members.route("/workspaces/<uuid:workspace_id>/members/<uuid:user_id>")
class WorkspaceMember(MethodView):
    @members.arguments(schemas.MemberPatchIn)
    @members.response(200, schemas.MemberOut)
    def patch(self, body, workspace_id, user_id):
        """Change a member's role or Goals/OKRs access (effective at their next request)"""
        identity = _authenticate().identity
        c = container()
        try:
            user, membership = handlers.change_member(identity, workspace_id, user_id, role=body.get("role"),
                                                      okr_access=body.get("okr_access"), uow=c.uow(),
                                                      clock=c.wall_clock, ctx=_context())
        except MemberRuleError as exc:
            _rule_error(exc)
        return _member_out(user, membership)

    @members.response(204)
    def delete(self, workspace_id, user_id):
        """Remove a member (effective at their next request)"""
        identity = _authenticate().identity
        c = container()
        try:
            handlers.remove_member(identity, workspace_id, user_id, uow=c.uow(), clock=c.wall_clock,
                                   ctx=_context())
        except MemberRuleError as exc:
            _rule_error(exc)


@members.route("/workspaces/<uuid:workspace_id>/members/<uuid:user_id>/sign-out")
class WorkspaceMemberSignOut(MethodView):
    @members.response(204)
    def post(self, workspace_id, user_id):
        """Sign a member out everywhere (owners and admins; only an owner signs out an owner): ends all
        their access tokens, browser sessions and personal API tokens at once"""
        identity = _authenticate().identity
        c = container()
        try:
            handlers.sign_out_member(identity, workspace_id, user_id, uow=c.uow(), clock=c.wall_clock,
                                     ctx=_context())
        except MemberRuleError as exc:
            _rule_error(exc)


# -- audit -----------------------------------------------------------------------------------------

@audit.route("/workspaces/<uuid:workspace_id>/audit")
class AuditLog(MethodView):
    @audit.arguments(schemas.AuditQuery, location="query", unknown=RAISE)
    @audit.response(200, schemas.AuditPageOut)
    def get(self, query, workspace_id):
        """Newest first; page with before=<next_before>"""
        identity = _authenticate().identity
        try:
            events = handlers.audit_page(identity, workspace_id, limit=query["limit"], before=query.get("before"),
                                         uow=container().uow())
        except MemberRuleError as exc:
            _rule_error(exc)
        return {"events": [vars(e) for e in events],
                "next_before": events[-1].id if len(events) == query["limit"] else None}


# -- internal directory ----------------------------------------------------------------------------
# For okrsnap's own services only: the signed internal token is checked before anything else
# (an outsider learns nothing of the routes' parameters), and these routes are left out of the
# public OpenAPI document. A reverse proxy in front of the gateway should not pass /internal/.

@directory.before_request
def _internal_only():
    g.internal_principal = _internal_principal()


@directory.route("/workspaces/<uuid:workspace_id>/members")
class Members(MethodView):
    @directory.arguments(schemas.MembersQuery, location="query", unknown=RAISE)
    @directory.response(200, schemas.MembersOut)
    def get(self, query, workspace_id):
        """Which of the given users are members of the Workspace"""
        principal = g.internal_principal
        members = handlers.members_among(principal, workspace_id, query["id"], uow=container().uow())
        return {"members": sorted(members, key=str)}


@directory.route("/users/<uuid:user_id>/principal")
class CurrentPrincipal(MethodView):
    @directory.response(200, schemas.CurrentPrincipalOut)
    def get(self, user_id):
        """A user's Workspace roles as of now (the export worker builds with these, not with the
        roles its requester had when asking); an unknown user has none"""
        principal = handlers.current_principal(user_id, uow=container().uow())
        return {"user_id": user_id, "workspaces": principal.workspaces,
                "without_okr_access": sorted(principal.without_okr_access)}


class _PeopleQuery(schemas.MembersQuery):
    pass


class _Person(Schema):
    id = fields.UUID()
    name = fields.String()
    email = fields.String()


class _WorkspaceRef(Schema):
    id = fields.UUID()
    name = fields.String()


class _PeopleOut(Schema):
    workspace = fields.Nested(_WorkspaceRef)
    people = fields.List(fields.Nested(_Person), metadata={"description": "only ids of members"})


@directory.route("/workspaces/<uuid:workspace_id>/people")
class People(MethodView):
    @directory.arguments(_PeopleQuery, location="query", unknown=RAISE)
    @directory.response(200, _PeopleOut)
    def get(self, query, workspace_id):
        """Display names and emails of those of the given users who are members of the Workspace,
        and its name (for exports, built for a requester who may read the Workspace's Goals/OKRs)"""
        principal = g.internal_principal
        answer = handlers.workspace_people(principal, workspace_id, query["id"], uow=container().uow())
        if answer is None:
            abort(404, message="Workspace not found.")
        return answer


def _internal_principal() -> tokens.Principal:
    try:
        claims = tokens.verify(container().settings.verification_keys("internal"),
                               request.headers.get(tokens.INTERNAL_HEADER, ""), typ=tokens.INTERNAL,
                               audience=tokens.internal_audience("gateway"))
    except tokens.InvalidToken:
        abort(401, message="This route is for okrsnap's internal services only.")
    return tokens.Principal.from_claims(claims)


# -- forwarded routes ------------------------------------------------------------------------------

def _needs(route: Route) -> str:
    """What a forwarded request does, for a personal token's scope: asking for an export reads a
    week; recording a Check-in is check_in; any other change is write."""
    if request.method not in UNSAFE_METHODS or route.resource == "exports":
        return credentials.READ
    if route.resource == "check_ins" and request.method == "POST":
        return credentials.CHECK_IN
    return credentials.WRITE


def _forwarder(index: int, route: Route):
    def forward(**path_params):
        user = None
        if route.authenticated:
            identity = _authenticate(_needs(route)).identity
            user = identity.user
            principal = tokens.Principal(str(user.id), identity.workspace_roles(),
                                         identity.workspaces_without_okr_access())
            if route.workspace_param and not principal.member_of(path_params[route.workspace_param]):
                abort(404, message="Workspace not found.")
            if route.expensive:
                settings = container().settings
                _rate_limit((ratelimit.key_for("expensive-user", str(user.id)), settings.export_rate),
                            (ratelimit.key_for("expensive-ip", client_ip()), settings.export_ip_rate))
        else:
            principal = tokens.Principal(None, {})
        g.principal = principal
        request.max_content_length = route.max_body
        # Rebuilt from the route and its converted parameters, never from the raw path: an
        # encoded "?" or ".." in a parameter cannot reach another internal route.
        path = RULE_PARAM.sub(lambda m: quote(str(path_params[m.group(1)]), safe=""), route.rule)
        try:
            upstream = container().upstream.forward(
                route.service, request.method, path, principal=principal, params=request.query_string,
                body=request.get_data(cache=False), headers=request.headers)
        except UpstreamUnavailable as exc:
            return error_response(503, str(exc))
        if route.link_holder_check and upstream.status_code == 200 and not _requester_still_reads(upstream):
            upstream.close()  # a link outlives nobody's access: removed members' links stop at once
            return error_response(404, "Export not found.")
        headers = {name: upstream.headers[name] for name in RESPONSE_HEADERS if name in upstream.headers}
        if route.names and principal.user_id and 200 <= upstream.status_code < 300 \
                and upstream.headers.get("Content-Type", "").startswith("application/json"):
            headers.pop("Content-Length", None)
            return Response(_with_names(upstream, principal, user), status=upstream.status_code, headers=headers)
        body = stream_with_context(upstream.iter_content(CHUNK))
        if route.audit and 200 <= upstream.status_code < 300:
            body = _audit_forwarded(route, upstream, user, path_params, body)
        response = Response(body, status=upstream.status_code, headers=headers)
        response.call_on_close(upstream.close)  # also when the client goes away mid-download
        return response

    forward.__name__ = f"forward_{index}_{route.service}"
    return forward


def _with_names(upstream, principal: tokens.Principal, requester) -> bytes:
    """The service's JSON answer with owner_name and author_name beside every owner_id and
    author_id (handlers.name_people_json)."""
    try:
        raw = b"".join(upstream.iter_content(CHUNK))
    finally:
        upstream.close()
    return handlers.name_people_json(raw, principal.workspaces, uow=container().uow(),
                                     requester=requester) if raw else raw


def _requester_still_reads(upstream) -> bool:
    workspace_id = _uuid_or_none(upstream.headers.get(tokens.FILE_WORKSPACE_HEADER))
    requester = _uuid_or_none(upstream.headers.get(tokens.FILE_REQUESTER_HEADER))
    if workspace_id is None or requester is None:
        return False
    return handlers.still_reads(requester, workspace_id, uow=container().uow())


def _audit_forwarded(route: Route, upstream, user, path_params: dict, body):
    """Records a forwarded request the service accepted. A small JSON answer (a new export job)
    is read whole for its ids; a file is streamed untouched. Never the link's token."""
    # A file answer names its Workspace in a header the gateway keeps to itself.
    target, workspace_id, detail = path_params.get("job_id"), upstream.headers.get(tokens.FILE_WORKSPACE_HEADER), None
    if "json" in upstream.headers.get("Content-Type", ""):
        body = b"".join(body)
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if isinstance(answer, dict):
            target = answer.get("id", target)
            workspace_id = answer.get("workspace_id") or workspace_id
            detail = {k: answer[k] for k in ("session_id", "week", "owner", "format") if k in answer} or None
    c = container()
    try:
        handlers.record(handlers.audit_event(
            c.wall_clock.now(), route.audit, _context(), actor_user_id=user.id if user else None,
            actor_email=user.email if user else None, workspace_id=_uuid_or_none(workspace_id),
            target=target, detail=detail), uow=c.uow())
    except Exception:  # noqa: BLE001 - the service already acted: answer, and say the audit failed
        log.exception("audit: could not record %s", route.audit)
    return body


def _uuid_or_none(value):
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


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

    api.register_blueprint(auth)
    api.register_blueprint(me)
    api.register_blueprint(personal_tokens)
    api.register_blueprint(members)
    api.register_blueprint(audit)
    app.register_blueprint(directory)  # served, but never in the public document
    for blueprint in _resource_blueprints():
        api.register_blueprint(blueprint)
    from services.gateway.web import register_web

    register_web(app, api, openapi_url=f"{PREFIX}/openapi.json", docs_url=f"{PREFIX}/docs")
    app.after_request(_security_headers)
    return app


HSTS = "max-age=31536000; includeSubDomains"


def _security_headers(response):
    """On every answer: nosniff; HSTS when okrsnap is served over https. API answers are never
    stored by a browser or proxy unless the service said otherwise (several carry a token: an
    access token, a CSRF token, an invitation, a personal token's secret, a download link)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.is_secure or container().settings.public_url.lower().startswith("https://"):
        headers.setdefault("Strict-Transport-Security", HSTS)
    if request.path.startswith(f"{PREFIX}/") or request.path.startswith("/internal/"):
        if request.path.startswith(f"{PREFIX}/auth/") or "Cache-Control" not in headers:
            headers["Cache-Control"] = "no-store"
    return response
