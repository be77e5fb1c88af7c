"""Who is signed in to the web app: the gateway's browser session cookie (HttpOnly, SameSite=Lax),
the same one the API accepts, and its CSRF token in every form."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import abort, g, redirect, request, url_for

from services.gateway.domain import credentials
from services.gateway.service_layer import handlers
from shared import tokens
from shared.http import container

SESSION_COOKIE = "okrsnap_session"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class WebUser:
    authenticated: handlers.Authenticated
    principal: tokens.Principal
    csrf_token: str

    @property
    def user(self):
        return self.authenticated.identity.user

    @property
    def identity(self):
        return self.authenticated.identity


def signed_in() -> WebUser | None:
    """The signed-in user of this request, or None (no cookie, or an ended session)."""
    if "web_user" in g:
        return g.web_user
    g.web_user = None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        c = container()
        try:
            authenticated = handlers.authenticate_session(cookie, uow=c.uow(), clock=c.wall_clock)
        except tokens.InvalidToken:
            return None
        identity = authenticated.identity
        principal = tokens.Principal(str(identity.user.id), identity.workspace_roles(),
                                     identity.workspaces_without_okr_access())
        g.web_user = WebUser(authenticated, principal,
                             credentials.csrf_token(c.settings.access_token_secret, cookie))
        g.principal = principal
    return g.web_user


def safe_next(target: str | None) -> str | None:
    """A place to go back to after sign-in: a path on this site only (no scheme, host or //)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(ch) < 32 for ch in target):
        return None
    return target


def sign_in_required(view):
    """Pages need a signed-in user; a visitor is sent to sign in and brought back. Every form
    post must carry the session's CSRF token."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        user = signed_in()
        if user is None:
            if request.method == "GET":
                return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
            return redirect(url_for("web.login"))
        if request.method == "POST":
            check_csrf(user)
        return view(*args, **kwargs)

    return wrapper


def check_csrf(user: WebUser) -> None:
    c = container()
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if not credentials.csrf_matches(c.settings.access_token_secret, cookie, request.form.get(CSRF_FIELD)):
        abort(403, description="This form has expired: reload the page and try again.")
