"""The account page (display name, password, personal API tokens) and the invitation page, where
someone invited to a Workspace creates their account (or confirms an existing one) and is signed in.

Every form posts to its own URL with the session's CSRF token (sign_in_required checks it) and
answers 303 to the page on success; a refused form is shown again with the reason next to its
field. A new personal token's secret is in the response page only: never in a URL, a cookie or
the audit log. The invitation page has no session: its one-time token and rate limits guard it."""
from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from services.gateway.adapters import ratelimit
from services.gateway.domain.credentials import PAT_MAX_DAYS
from services.gateway.domain.members import MemberRuleError
from services.gateway.domain.model import DISPLAY_NAME_MAX, IdentityError
from services.gateway.service_layer import handlers
from services.gateway.web.pages import error_page, page
from services.gateway.web.session import SESSION_COOKIE, sign_in_required, signed_in
from shared.http import container

blueprint = Blueprint("account", __name__, template_folder="templates")


@blueprint.errorhandler(404)  # before the app's own 404 page, which Flask would prefer by code
@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException):  # e.g. 403 for a form without its CSRF token
    return error_page(exc.code or 500, exc.name, exc.description or exc.name)

NAME_FIELD_MAX = 1000     # read of a display name field at most; the handler says what is valid
TOKEN_NAME_MAX = 100      # as the API's PersonalTokenIn
PASSWORD_MAX = 1024       # as the API's LoginIn
INVITE_TOKEN_MAX = 200    # as the API's AcceptInviteIn

# Notices of this page beside pages.NOTICES (which the header shows for saved/created/deleted).
ACCOUNT_NOTICES = {
    "password": "Password changed. Your other browser sessions ended and your personal API tokens were revoked.",
    "revoked": "Token revoked: it stops working at once.",
}


def _client_ip() -> str:
    from services.gateway.entrypoints.app import client_ip  # the app imports the web: import late

    return client_ip()


def _ctx() -> handlers.RequestContext:
    return handlers.RequestContext(_client_ip(), request.headers.get("User-Agent"))


def _token_state(token, now) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and now >= token.expires_at:
        return "expired"
    return "active"


def _account_page(status: int = 200, *, errors: dict | None = None, values: dict | None = None,
                  new_token: dict | None = None):
    user = signed_in()
    c = container()
    now = c.wall_clock.now()
    found = handlers.personal_tokens(user.authenticated, uow=c.uow())
    rows = [{"token": t, "state": _token_state(t, now)} for t in found]
    # Usable ones first, each group newest first.
    rows.sort(key=lambda r: r["token"].created_at, reverse=True)
    rows.sort(key=lambda r: r["state"] != "active")
    values = {"display_name": user.user.display_name, **(values or {})}
    return page("account.html", title="Your account", tokens=rows, errors=errors or {}, values=values,
                new_token=new_token, pat_max_days=PAT_MAX_DAYS, name_max=DISPLAY_NAME_MAX,
                account_notice=ACCOUNT_NOTICES.get(request.args.get("done", ""))), status


@blueprint.get("/account")
@sign_in_required
def account():
    return _account_page()


@blueprint.post("/account/name")
@sign_in_required
def change_name():
    name = request.form.get("display_name", "")[:NAME_FIELD_MAX]
    values = {"display_name": name}
    c = container()
    try:
        handlers.set_display_name(signed_in().authenticated, name, uow=c.uow(), clock=c.wall_clock, ctx=_ctx())
    except IdentityError as exc:
        return _account_page(422, errors={"display_name": exc.message}, values=values)
    return redirect(url_for("account.account", done="saved"), code=303)


@blueprint.post("/account/password")
@sign_in_required
def change_password():
    form = request.form
    current, new, repeat = (form.get(k, "")[:PASSWORD_MAX] for k in ("current_password", "new_password",
                                                                      "repeat_password"))
    if not current:
        return _account_page(422, errors={"current_password": "Enter your current password."})
    if new != repeat:
        return _account_page(422, errors={"repeat_password": "The two new passwords differ."})
    user = signed_in()
    c = container()
    # Guessing the current password here is guessing a login: the same budget as signing in.
    retry_after = max(
        c.limiter.hit(ratelimit.key_for("login-email", user.user.email.lower()), c.settings.login_rate),
        c.limiter.hit(ratelimit.key_for("login-ip", _client_ip()), c.settings.login_ip_rate))
    if retry_after:
        return _account_page(429, errors={
            "current_password": f"Too many attempts: try again in {retry_after} seconds."})
    try:
        handlers.change_password(user.authenticated, current, new, uow=c.uow(), clock=c.wall_clock, ctx=_ctx())
    except handlers.LoginFailed:
        return _account_page(403, errors={"current_password": "This is not your current password."})
    except IdentityError as exc:
        field = "current_password" if exc.field == "current_password" else "new_password"
        return _account_page(422, errors={field: exc.message})
    return redirect(url_for("account.account", done="password"), code=303)


def _days(value: str) -> int | None | str:
    value = (value or "").strip()
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= PAT_MAX_DAYS:
        return "bad"
    return int(value)


@blueprint.post("/account/tokens")
@sign_in_required
def create_token():
    name = " ".join(request.form.get("token_name", "").split())
    days = _days(request.form.get("expires_in_days", ""))
    values = {"token_name": name, "expires_in_days": request.form.get("expires_in_days", "").strip()[:6]}
    errors = {}
    if not name:
        errors["token_name"] = "Give the token a name, e.g. the script that uses it."
    elif len(name) > TOKEN_NAME_MAX:
        errors["token_name"] = f"At most {TOKEN_NAME_MAX} characters."
    if days == "bad":
        errors["expires_in_days"] = f"A whole number of days from 1 to {PAT_MAX_DAYS}, or empty for 90 days."
    if errors:
        return _account_page(422, errors=errors, values=values)
    c = container()
    try:
        secret, token = handlers.create_personal_token(signed_in().authenticated, name, days, uow=c.uow(),
                                                       clock=c.wall_clock, ctx=_ctx())
    except MemberRuleError as exc:  # too many active tokens (409)
        return _account_page(exc.status, errors={"token_form": exc.message}, values=values)
    # Shown in this response only: the page is no-store, and nothing keeps the secret.
    return _account_page(201, new_token={"name": token.name, "secret": secret, "expires_at": token.expires_at})


@blueprint.post("/account/tokens/<uuid:token_id>/revoke")
@sign_in_required
def revoke_token(token_id):
    c = container()
    try:
        handlers.revoke_personal_token(signed_in().authenticated, token_id, uow=c.uow(), clock=c.wall_clock,
                                       ctx=_ctx())
    except MemberRuleError as exc:
        return error_page(exc.status, "Token not found", exc.message,
                          links=[(url_for("account.account"), "Back to your account")])
    return redirect(url_for("account.account", done="revoked"), code=303)


# -- accepting an invitation ---------------------------------------------------------------------

INVALID_INVITATION = "The invitation is unknown, used or expired: ask whoever invited you for a new one."


def _open_invitation(token: str):
    c = container()
    return handlers.invitation_preview(token, uow=c.uow(), clock=c.wall_clock)


def _invite_page(status: int, *, invitation, has_account: bool, errors: dict | None = None,
                 values: dict | None = None):
    user = signed_in()
    context = dict(title="Accept your invitation", invitation=invitation, has_account=has_account,
                   errors=errors or {}, values=values or {}, token=request.view_args["token"],
                   name_max=DISPLAY_NAME_MAX)
    if user is not None:
        return page("account_invite.html", **context), status
    return render_template("account_invite.html", user=None, workspaces=[], notice=None, workspace_id=None,
                           **context), status


def _too_many(retry_after: int):
    return error_page(429, "Too many attempts", f"Try again in {retry_after} seconds.")


@blueprint.route("/invite/<token>", methods=["GET", "POST"])
def invite(token):
    """No session here: the one-time token is the credential, so every attempt with it counts
    against the same limits as the API's accept-invite (per token, per client IP)."""
    c = container()
    limiter, settings = c.limiter, c.settings
    if request.method == "POST":
        retry_after = max(limiter.hit(ratelimit.key_for("invite", token[:INVITE_TOKEN_MAX]), settings.login_rate),
                          limiter.hit(ratelimit.key_for("login-ip", _client_ip()), settings.login_ip_rate))
        if retry_after:
            return _too_many(retry_after)
    invitation, has_account = _open_invitation(token) if len(token) <= INVITE_TOKEN_MAX else (None, False)
    if invitation is None:
        if request.method == "GET":  # guessing at links costs the address its sign-in budget too
            retry_after = limiter.hit(ratelimit.key_for("login-ip", _client_ip()), settings.login_ip_rate)
            if retry_after:
                return _too_many(retry_after)
        return error_page(404, "Invitation not valid", INVALID_INVITATION)
    if request.method == "GET":
        return _invite_page(200, invitation=invitation, has_account=has_account)

    form = request.form
    display_name = form.get("display_name", "")[:NAME_FIELD_MAX]
    password = form.get("password", "")[:PASSWORD_MAX]
    values = {"display_name": display_name}
    errors = {}
    if not has_account and password != form.get("repeat_password", "")[:PASSWORD_MAX]:
        errors["repeat_password"] = "The two passwords differ."
    if not password:
        errors["password"] = "Enter a password."
    if errors:
        return _invite_page(422, invitation=invitation, has_account=has_account, errors=errors, values=values)

    try:
        # A name only names a new account (optional: without one, people see the email before "@").
        _access_token, new_user = handlers.accept_invitation(
            token, password, uow=c.uow(), settings=settings, clock=c.wall_clock, ctx=_ctx(),
            display_name=display_name if display_name.strip() and not has_account else None)
    except handlers.InvitationInvalid:
        return error_page(404, "Invitation not valid", INVALID_INVITATION)
    except handlers.LoginFailed:
        return _invite_page(401, invitation=invitation, has_account=True, values=values,
                            errors={"password": f"An account exists for {invitation.email}: enter its password "
                                                "to accept."})
    except IdentityError as exc:
        field = exc.field if exc.field in ("display_name", "password") else "_form"
        return _invite_page(422, invitation=invitation, has_account=has_account, values=values,
                            errors={field: exc.message})

    previous = signed_in()
    try:
        secret, _session, _user = handlers.start_session(new_user.email, password, uow=c.uow(), settings=c.settings,
                                                         clock=c.wall_clock, ctx=_ctx())
    except handlers.LoginFailed:  # accepted, but signing in failed: the sign-in page takes over
        return redirect(url_for("web.login"), code=303)
    if previous is not None:  # the browser's earlier session is replaced: end it too
        try:
            handlers.logout(previous.authenticated, uow=c.uow(), clock=c.wall_clock, ctx=_ctx())
        except IdentityError:
            pass
        g.pop("web_user", None)
    response = redirect("/", code=303)
    response.set_cookie(SESSION_COOKIE, secret, max_age=c.settings.session_ttl, path="/",
                        secure=c.settings.public_url.lower().startswith("https://"), httponly=True, samesite="Lax")
    return response
