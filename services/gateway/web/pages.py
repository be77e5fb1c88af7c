"""The web app's pages: sign in, Workspaces and Sessions, the Snapshot view (the heart), compare,
trend, exports, and the live Session (List, Tree, details, forms, Check-ins)."""
from __future__ import annotations

import hmac
import logging
import math
import secrets
import uuid
from datetime import date

from flask import Blueprint, abort, after_this_request, make_response, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from services.gateway.adapters import ratelimit
from services.gateway.service_layer import handlers
from services.gateway.web import charts, client, review
from services.gateway.web.client import ServiceError
from services.gateway.web.people import People
from services.gateway.web.session import (
    SESSION_COOKIE,
    check_csrf,
    safe_next,
    sign_in_required,
    signed_in,
)
from shared.http import container

blueprint = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                      static_url_path="/assets")

MANAGERS = ("owner", "admin")
NOTICES = {
    "checked_in": "Check-in saved. The Snapshot shows it within moments.",
    "saved": "Saved.",
    "created": "Created.",
    "deleted": "Removed.",
    "archived": "The Session is archived: read-only, still reviewable.",
    "cancelled": "The export is cancelled.",
    "already_ended": "The export had already ended; nothing was cancelled.",
}


# -- shared page plumbing ------------------------------------------------------------------------

def error_page(status: int, title: str, message: str, *, links: list[tuple[str, str]] | None = None):
    return render_template("error.html", status=status, title=title, message=message, links=links or [],
                           user=signed_in()), status


@blueprint.errorhandler(ServiceError)
def _service_error(exc: ServiceError):
    titles = {401: "Sign in again", 403: "Not allowed", 404: "Not found", 409: "Conflict", 410: "Gone",
              422: "Not valid",
              429: "Too many requests", 503: "Service unavailable"}
    return error_page(exc.status if exc.status in titles else 502, titles.get(exc.status, "Something failed"),
                      exc.message)


@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return error_page(exc.code or 500, exc.name, exc.description or exc.name)


def _uuid(value) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError):
        return None


def role_in(workspace_id) -> str | None:
    membership = signed_in().identity.membership_in(workspace_id)
    return membership.role if membership and membership.okr_access else None


def can_manage(workspace_id) -> bool:
    return role_in(workspace_id) in MANAGERS


def may_edit_item(workspace_id, owner_id) -> bool:
    """Mirrors docs/permissions.md (check_in and edit): the service decides, the page only hides
    forms someone cannot use."""
    role = role_in(workspace_id)
    if role in MANAGERS:
        return True
    return role == "member" and (owner_id is None or str(owner_id) == str(signed_in().user.id))


def workspaces():
    return handlers.workspaces_of(signed_in().user.id, uow=container().uow())


def page(template: str, **context):
    user = signed_in()
    context.setdefault("workspace_id", None)
    notice = NOTICES.get(request.args.get("done", ""))
    return render_template(template, user=user, workspaces=workspaces(), notice=notice, **context)


def session_context(session_id, known: dict | None = None) -> dict:
    """The Session (the live one, or as the snapshot service already answered it), its
    Workspace's people and what the viewer may do there."""
    user = signed_in()
    live = known or client.get(user, "checkin", f"/sessions/{session_id}")
    workspace_id = live["workspace_id"]
    return {"session": live, "workspace_id": workspace_id, "people": People.of(user.identity, workspace_id),
            "manager": can_manage(workspace_id), "role": role_in(workspace_id),
            "archived": live["status"] == "archived"}


def _visibility(form) -> dict:
    """A Session's visibility from its form, when the form showed it (owners and admins)."""
    if "visibility" not in form:
        return {}
    restricted = form.get("visibility") == "restricted"
    return {"visibility": "restricted" if restricted else "workspace",
            "members": [m for m in form.getlist("members") if _uuid(m)] if restricted else []}


def form_errors(exc: ServiceError) -> dict[str, str]:
    errors = exc.field_errors()
    return errors or {"_schema": exc.message}


def _blank_to_none(value):
    value = (value or "").strip()
    return value or None


def _number(value):
    """A typed number as the service expects it: '8.85', or '8,85' with a decimal comma. Anything
    else ('1,200', 'lots', 'nan') goes as typed, and the service names the field and the reason."""
    text = (value or "").strip().replace("\u00a0", "").replace(" ", "")
    if not text:
        return None
    if "," in text and "." not in text and text.count(",") == 1 and len(text.split(",")[1]) != 3:
        text = text.replace(",", ".")
    try:
        number = float(text)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


# -- sign in, out, home ----------------------------------------------------------------------------

@blueprint.route("/login", methods=["GET", "POST"])
def login():
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        if signed_in():
            return redirect(target or url_for("web.home"))
        return _login_form(target, "", None, 200)
    # Login CSRF (a forged form signing the victim into the attacker's account): the form must
    # carry the value of a cookie only this site's own sign-in page set (double submit).
    presented, expected = request.form.get(LOGIN_CSRF_COOKIE, ""), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(presented, expected):
        return _login_form(target, "", "The sign-in form expired: please sign in again.", 400)
    email = request.form.get("email", "").strip()[:254]
    password = request.form.get("password", "")
    c = container()
    limiter, settings = c.limiter, c.settings
    from services.gateway.entrypoints.app import client_ip

    retry_after = max(limiter.hit(ratelimit.key_for("login-email", email.lower()), settings.login_rate),
                      limiter.hit(ratelimit.key_for("login-ip", client_ip()), settings.login_ip_rate))
    if retry_after:
        return _login_form(target, email, f"Too many attempts: try again in {retry_after} seconds.", 429)
    try:
        secret, _session, _user = handlers.start_session(
            email, password, uow=c.uow(), settings=settings, clock=c.wall_clock,
            ctx=handlers.RequestContext(client_ip(), request.headers.get("User-Agent")))
    except handlers.LoginFailed:
        return _login_form(target, email, "Email or password is wrong.", 401)
    response = redirect(target or url_for("web.home"), code=303)
    response.set_cookie(SESSION_COOKIE, secret, max_age=settings.session_ttl, path="/",
                        secure=settings.public_url.lower().startswith("https://"), httponly=True, samesite="Lax")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


LOGIN_CSRF_COOKIE = "okrsnap_login_csrf"


def _login_form(target, email: str, error: str | None, status: int):
    token = secrets.token_urlsafe(24)
    response = make_response(render_template("login.html", next=target, email=email, error=error, user=None,
                                             login_csrf=token, login_csrf_field=LOGIN_CSRF_COOKIE), status)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, path="/login", httponly=True, samesite="Strict",
                        secure=container().settings.public_url.lower().startswith("https://"))
    return response


@blueprint.post("/logout")
def logout():
    user = signed_in()
    response = redirect(url_for("web.login"), code=303)
    if user is not None:
        check_csrf(user)
        c = container()
        from services.gateway.entrypoints.app import client_ip

        handlers.logout(user.authenticated, uow=c.uow(), clock=c.wall_clock,
                        ctx=handlers.RequestContext(client_ip(), request.headers.get("User-Agent")))
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Lax",
                           secure=container().settings.public_url.lower().startswith("https://"))
    return response


@blueprint.get("/")
@sign_in_required
def home():
    """The first Workspace's newest active Session's Snapshot: where a review starts."""
    spaces = [(w, m) for w, m in workspaces() if m.okr_access]
    if not spaces:
        return page("empty.html", title="No Workspace yet")
    chosen = request.cookies.get("okrsnap_workspace")
    workspace = next((w for w, _ in spaces if str(w.id) == chosen), spaces[0][0])
    sessions = client.get(signed_in(), "checkin", f"/workspaces/{workspace.id}/sessions")
    active = [s for s in sessions if s["status"] == "active"]
    if not active:
        return redirect(url_for("web.sessions", workspace_id=workspace.id))
    newest = max(active, key=lambda s: (s["start_date"], s["created_at"]))
    return redirect(url_for("web.snapshot", session_id=newest["id"]))


# -- Workspaces and Sessions ------------------------------------------------------------------------

def _member_of(workspace_id) -> None:
    if not signed_in().principal.member_of(str(workspace_id)):
        abort(404, description="Workspace not found.")


@blueprint.route("/workspaces/<uuid:workspace_id>", methods=["GET", "POST"])
@sign_in_required
def sessions(workspace_id):
    _member_of(workspace_id)
    user = signed_in()
    errors, values = {}, {}
    if request.method == "POST":
        values = {**request.form.to_dict(), "members": request.form.getlist("members")}
        body = {"name": values.get("name", "").strip(), "start_date": values.get("start_date"),
                "end_date": values.get("end_date"), "timezone": values.get("timezone", "").strip(),
                "week_start_day": values.get("week_start_day") or "monday",
                "checkin_cadence": values.get("checkin_cadence") or "weekly", **_visibility(request.form)}
        try:
            created = client.call(user, "checkin", "POST", f"/workspaces/{workspace_id}/sessions", body=body).data
            return redirect(url_for("web.snapshot", session_id=created["id"], done="created"), code=303)
        except ServiceError as exc:
            if exc.status not in (400, 403, 409, 422):
                raise
            errors = form_errors(exc)
    found = client.get(user, "checkin", f"/workspaces/{workspace_id}/sessions")
    workspace = next((w for w, _ in workspaces() if w.id == workspace_id), None)
    today = date.today()
    defaults = {"start_date": today.isoformat(), "end_date": date.fromordinal(today.toordinal() + 90).isoformat(),
                "timezone": "UTC", "week_start_day": "monday", "checkin_cadence": "weekly"}
    people = People.of(user.identity, workspace_id) if can_manage(workspace_id) else None
    response = page("sessions.html", title=f"Sessions · {workspace.name if workspace else ''}", people=people,
                    workspace=workspace, workspace_id=str(workspace_id),
                    active=[s for s in found if s["status"] == "active"],
                    archived=[s for s in found if s["status"] == "archived"],
                    may_create=role_in(workspace_id) in ("owner", "admin", "member"),
                    manager=can_manage(workspace_id), errors=errors, values={**defaults, **values})

    @after_this_request
    def _remember(resp):  # the Workspace switcher: / opens this Workspace next time
        resp.set_cookie("okrsnap_workspace", str(workspace_id), max_age=365 * 86400, path="/",
                        httponly=True, samesite="Lax")
        return resp

    return response, (422 if errors else 200)


@blueprint.route("/sessions/<uuid:session_id>/edit", methods=["GET", "POST"])
@sign_in_required
def edit_session(session_id):
    ctx = session_context(session_id)
    errors, values = {}, dict(ctx["session"])
    if request.method == "POST":
        values = {**values, **request.form.to_dict(), "members": request.form.getlist("members")}
        body = {k: values.get(k) for k in ("name", "start_date", "end_date", "timezone", "week_start_day",
                                            "checkin_cadence")}
        wanted = _visibility(request.form)
        if wanted and (wanted["visibility"], sorted(wanted["members"])) != \
                (ctx["session"].get("visibility"), sorted(map(str, ctx["session"].get("members") or []))):
            body.update(wanted)  # restricting is its own right (owners and admins): sent only when changed
        try:
            client.call(signed_in(), "checkin", "PATCH", f"/sessions/{session_id}", body=body,
                        headers={"If-Match": f'"{request.form.get("version", "")}"'})
            return redirect(url_for("web.edit_session", session_id=session_id, done="saved"), code=303)
        except ServiceError as exc:
            if exc.status == 409:
                fresh = session_context(session_id)
                return page("session_edit.html", title="Edit Session", **fresh, values=values,
                            errors={}, stale=True, fresh=fresh["session"]), 409
            if exc.status not in (400, 403, 422, 428):
                raise
            errors = form_errors(exc)
    return page("session_edit.html", title="Edit Session", **ctx, values=values, errors=errors, stale=False,
                fresh=None), (422 if errors else 200)


@blueprint.post("/sessions/<uuid:session_id>/archive")
@sign_in_required
def archive_session(session_id):
    client.call(signed_in(), "checkin", "POST", f"/sessions/{session_id}/archive")
    return redirect(url_for("web.snapshot", session_id=session_id, done="archived"), code=303)


@blueprint.get("/sessions/<uuid:session_id>")
@sign_in_required
def session_home(session_id):
    return redirect(url_for("web.snapshot", session_id=session_id))


# -- the Snapshot view -------------------------------------------------------------------------------

@blueprint.get("/sessions/<uuid:session_id>/snapshot")
@sign_in_required
def snapshot(session_id):
    user = signed_in()
    calendar = client.get(user, "snapshot", f"/sessions/{session_id}/snapshots")
    weeks = review.all_weeks(calendar)
    week = request.args.get("week") or review.default_week(weeks)
    if week not in {w["week"] for w in weeks}:
        return error_page(404, "Week not in this Session",
                          f"The Session has no week {week[:10]!r}: pick one of its weeks.",
                          links=[(url_for("web.snapshot", session_id=session_id), "Open the Session's Snapshot")])
    owner = request.args.get("owner") or "all"
    if owner not in ("all", "unassigned") and _uuid(owner) is None:
        owner = "all"
    ctx = session_context(session_id, calendar["session"])  # the calendar names the Session: no second call
    view = client.get(user, "snapshot", f"/sessions/{session_id}/snapshots/{week}", owner=owner)
    signal = request.args.get("signal") or None
    page_number = request.args.get("page", "1")
    narrowed, paging = review.page_of(review.narrow(view, signal), int(page_number) if page_number.isdigit() else 1)
    shown = review.present(narrowed, ctx["people"], review.check_ins_by_key_result(view))
    canvases = review.canvases(user, session_id, view)
    tz = ctx["session"]["timezone"]
    selected = next(w for w in weeks if w["week"] == week)
    return page("snapshot.html", title=f"Snapshot {week} · {ctx['session']['name']}", **ctx, view=view,
                shown=shown, weeks=weeks, months=calendar["months"], week=selected, owner=owner, signal=signal,
                tz=tz, canvases=canvases, neighbours=review.neighbours(weeks, week),
                live=view["status"] == "current" and not ctx["archived"],
                collapsed=review.key_result_count(view) > review.COLLAPSE_ABOVE,
                paging=paging, export_formats=review.EXPORT_FORMATS, statuses=review.STATUSES)


@blueprint.get("/sessions/<uuid:session_id>/verify")
@sign_in_required
def verify(session_id):
    """The sealed weeks' hash chain recomputed; the Snapshot page loads it as a fragment."""
    chain = client.get(signed_in(), "snapshot", f"/sessions/{session_id}/snapshots/verify")
    week = request.args.get("week")
    template = "partials/verify.html" if request.args.get("fragment") else "verify.html"
    ctx = {} if request.args.get("fragment") else session_context(session_id)
    return page(template, title="Verify sealed weeks", chain=chain, week=week, session_id=str(session_id), **ctx)


# -- compare and trend -----------------------------------------------------------------------------

@blueprint.get("/sessions/<uuid:session_id>/compare")
@sign_in_required
def compare(session_id):
    user = signed_in()
    ctx = session_context(session_id)
    calendar = client.get(user, "snapshot", f"/sessions/{session_id}/snapshots")
    saved = review.saved_weeks(review.all_weeks(calendar))
    shortcuts = review.shortcuts(saved)
    from_week = request.args.get("from") or (shortcuts.get("start") or {}).get("week")
    to_week = request.args.get("to") or (shortcuts.get("end") or {}).get("week")
    comparison, error = None, None
    if from_week and to_week:
        try:
            comparison = client.get(user, "snapshot", f"/sessions/{session_id}/snapshots/compare",
                                    **{"from": from_week[:8], "to": to_week[:8]})
        except ServiceError as exc:
            if exc.status not in (404, 422):
                raise
            error = exc.message
    compared = sorted((comparison or {}).get("key_results", []),
                      key=lambda k: -((k.get("delta") or {}).get("progress_points") or 0))  # who moved most first
    return page("compare.html", title=f"Compare · {ctx['session']['name']}", **ctx, saved=saved, compared=compared,
                shortcuts=shortcuts, from_week=from_week, to_week=to_week, comparison=comparison, error=error,
                tz=ctx["session"]["timezone"])


@blueprint.get("/sessions/<uuid:session_id>/trend")
@sign_in_required
def trend(session_id):
    user = signed_in()
    ctx = session_context(session_id)
    data = client.get(user, "snapshot", f"/sessions/{session_id}/snapshots/trend")
    tree = client.get(user, "checkin", f"/sessions/{session_id}/tree")
    series = charts.trend_series(data, tree)
    return page("trend.html", title=f"Trend · {ctx['session']['name']}", **ctx, trend=data, series=series)


# -- exports ---------------------------------------------------------------------------------------

EXPORTS_PER_PAGE = 20

@blueprint.post("/sessions/<uuid:session_id>/exports")
@sign_in_required
def request_export(session_id):
    user = signed_in()
    c = container()
    from services.gateway.entrypoints.app import client_ip

    retry_after = max(
        c.limiter.hit(ratelimit.key_for("expensive-user", str(user.user.id)), c.settings.export_rate),
        c.limiter.hit(ratelimit.key_for("expensive-ip", client_ip()), c.settings.export_ip_rate))
    if retry_after:
        return error_page(429, "Too many exports", f"Try again in {retry_after} seconds.")
    body = {"session_id": str(session_id), "week": request.form.get("week", "")[:8],
            "owner": request.form.get("owner") or "all", "format": request.form.get("format") or "csv"}
    job = client.call(user, "export", "POST", "/exports", body=body).data
    _audit_export(user, "export.requested", job)
    return redirect(url_for("web.export_job", job_id=job["id"]), code=303)


def _audit_export(user, action: str, job: dict) -> None:
    """What the API's forwarder records for the same request, recorded for a page."""
    c = container()
    from services.gateway.entrypoints.app import client_ip

    try:
        handlers.record(handlers.audit_event(
            c.wall_clock.now(), action, handlers.RequestContext(client_ip(), request.headers.get("User-Agent")),
            actor_user_id=user.user.id, actor_email=user.user.email, workspace_id=_uuid(job.get("workspace_id")),
            target=job.get("id"), detail={k: job[k] for k in ("session_id", "week", "owner", "format") if k in job}),
            uow=c.uow())
    except Exception:  # noqa: BLE001 - the change is made: go on, the log says the audit failed
        logging.getLogger(__name__).exception("audit: could not record %s", action)


@blueprint.get("/exports")
@sign_in_required
def export_list():
    """The signed-in user's exports, newest first, across their Workspaces."""
    user = signed_in()
    raw = request.args.get("offset", "0")
    offset = min(int(raw), 1_000_000) if raw.isascii() and raw.isdigit() else 0
    found = client.get(user, "export", "/exports", limit=EXPORTS_PER_PAGE, offset=offset)
    sessions: dict[str, dict | None] = {}
    people: dict[str, People] = {}
    for job in found["items"]:
        if job["session_id"] not in sessions:
            try:
                sessions[job["session_id"]] = client.get(user, "checkin", f"/sessions/{job['session_id']}")
            except ServiceError:
                sessions[job["session_id"]] = None  # gone, or no longer readable: the job still shows
        if job["workspace_id"] not in people:
            people[job["workspace_id"]] = People.of(user.identity, job["workspace_id"])
    return page("exports.html", title="Your exports", found=found, sessions=sessions, people=people)


@blueprint.post("/exports/<uuid:job_id>/cancel")
@sign_in_required
def cancel_export(job_id):
    user = signed_in()
    try:
        job = client.call(user, "export", "POST", f"/exports/{job_id}/cancel").data
    except ServiceError as exc:
        if exc.status != 409:
            raise
        return redirect(url_for("web.export_job", job_id=job_id, done="already_ended"), code=303)
    _audit_export(user, "export.cancelled", job)
    return redirect(url_for("web.export_job", job_id=job_id, done="cancelled"), code=303)


@blueprint.get("/exports/<uuid:job_id>")
@sign_in_required
def export_job(job_id):
    user = signed_in()
    job = client.get(user, "export", f"/exports/{job_id}")
    ctx = session_context(job["session_id"])
    if request.args.get("fragment"):
        return render_template("partials/export_status.html", job=job, user=user, tz=ctx["session"]["timezone"], **ctx)
    return page("export.html", title="Export", job=job, tz=ctx["session"]["timezone"], **ctx)


# -- why can't I? ------------------------------------------------------------------------------------

@blueprint.get("/explain")
@sign_in_required
def explain():
    resource = request.args.get("resource", "")[:80]
    answer = client.get(signed_in(), "checkin", "/access/explain", resource=resource)
    return page("explain.html", title="Why can't I open this?", answer=answer, resource=resource)


# -- the live Session: List, Tree, details, forms ----------------------------------------------------

LIST_SORTS = (("title", "Title A–Z"), ("-progress", "Progress, highest first"), ("progress", "Progress, lowest first"),
              ("-updated_at", "Recently changed"))


@blueprint.get("/sessions/<uuid:session_id>/list")
@sign_in_required
def item_list(session_id):
    ctx = session_context(session_id)
    args = request.args
    query = {"q": args.get("q") or None, "owner": args.get("owner") or None, "status": args.get("status") or None,
             "type": args.get("type") or None, "sort": args.get("sort") or None}
    raw = args.get("offset", "0")
    offset = min(int(raw), 1_000_000) if raw.isascii() and raw.isdigit() else 0  # "²".isdigit() too
    error = None
    try:
        found = client.get(signed_in(), "checkin", f"/sessions/{session_id}/items", limit=50, offset=offset,
                           **{k: v for k, v in query.items() if v})
    except ServiceError as exc:
        if exc.status != 422:
            raise
        found, error = {"items": [], "total": 0, "limit": 50, "offset": 0}, exc.message
    return page("list.html", title=f"List · {ctx['session']['name']}", **ctx, found=found, query=query,
                page_query={k: v for k, v in query.items() if v},
                sorts=LIST_SORTS, error=error, statuses=review.STATUSES)


@blueprint.get("/sessions/<uuid:session_id>/tree")
@sign_in_required
def tree(session_id):
    ctx = session_context(session_id)
    data = client.get(signed_in(), "checkin", f"/sessions/{session_id}/tree")
    return page("tree.html", title=f"Tree · {ctx['session']['name']}", **ctx, tree=data)


ITEM_PATHS = {"objective": "objectives", "key_result": "key-results", "initiative": "initiatives"}


def _item(kind: str, item_id) -> dict:
    """The item itself out of its detail answer ({kind: item, ...related})."""
    detail = client.get(signed_in(), "checkin", f"/{ITEM_PATHS[kind]}/{item_id}")
    return {**detail[kind], "progress": detail[kind].get("progress", detail.get("progress"))}


def _item_body(kind: str, form) -> dict:
    owner = _blank_to_none(form.get("owner_id"))
    if kind == "objective":
        body = {"title": form.get("title", "").strip(), "description": form.get("description", ""),
                "owner_id": owner, "parent_id": _blank_to_none(form.get("parent_id"))}
        if "privacy" in form:  # the form shows privacy: send it (only who may change it sees a difference)
            body["private"] = form.get("private") == "yes"
            body["visible_to"] = [v for v in form.getlist("visible_to") if _uuid(v)] if body["private"] else []
    elif kind == "key_result":
        body = {"title": form.get("title", "").strip(), "owner_id": owner, "unit": form.get("unit", "").strip(),
                "start_value": _number(form.get("start_value")), "target_value": _number(form.get("target_value"))}
        body = {k: v for k, v in body.items() if v is not None or k == "owner_id"}
    else:
        body = {"title": form.get("title", "").strip(), "owner_id": owner,
                "status": form.get("status") or "not_started"}
    return body


@blueprint.route("/sessions/<uuid:session_id>/new/<any(objective, key_result, initiative):kind>",
                 methods=["GET", "POST"])
@sign_in_required
def new_item(session_id, kind):
    ctx = session_context(session_id)
    user = signed_in()
    parent = request.values.get("parent") or None
    errors, values = {}, request.form.to_dict() if request.method == "POST" else {"parent_id": parent}
    if request.method == "POST":
        body = _item_body(kind, request.form)
        try:
            if kind == "objective":
                path = f"/sessions/{session_id}/objectives"
            elif kind == "key_result":
                objective_id = _uuid(request.form.get("objective_id"))
                if objective_id is None:
                    raise ServiceError(422, "Choose the Objective it measures.",
                                       [{"field": "objective_id", "reason": "Choose an Objective."}])
                path = f"/objectives/{objective_id}/key-results"
            else:
                path = f"/sessions/{session_id}/initiatives"
                body["key_result_ids"] = [k for k in request.form.getlist("key_result_ids") if _uuid(k)]
            created = client.call(user, "checkin", "POST", path, body=body).data
            return redirect(url_for("web.item", kind=kind, item_id=created["id"], done="created"), code=303)
        except ServiceError as exc:
            if exc.status not in (400, 403, 404, 409, 422):
                raise
            errors = form_errors(exc)
    data = client.get(user, "checkin", f"/sessions/{session_id}/tree")
    return page("item_new.html", title=f"New {kind.replace('_', ' ')}", **ctx, kind=kind, values=values,
                errors=errors, options=review.tree_options(data)), (422 if errors else 200)


@blueprint.route("/<any(objective, key_result, initiative):kind>s/<uuid:item_id>", methods=["GET", "POST"])
@sign_in_required
def item(kind, item_id):
    user = signed_in()
    found = _item(kind, item_id)
    ctx = session_context(found["session_id"])
    errors, stale, values = {}, False, dict(found)
    if request.method == "POST":
        values = {**found, **request.form.to_dict()}
        try:
            body = _item_body(kind, request.form)
            if body.get("private") == found.get("private") and \
                    sorted(body.get("visible_to", [])) == sorted(map(str, found.get("visible_to") or [])):
                body.pop("private", None), body.pop("visible_to", None)  # unchanged: not asked to change it
            client.call(user, "checkin", "PATCH", f"/{ITEM_PATHS[kind]}/{item_id}", body=body,
                        headers={"If-Match": f'"{request.form.get("version", "")}"'})
            return redirect(url_for("web.item", kind=kind, item_id=item_id, done="saved"), code=303)
        except ServiceError as exc:
            if exc.status == 409 and "version" in exc.message.lower() or exc.status == 428:
                stale, found = True, _item(kind, item_id)
            elif exc.status in (400, 403, 409, 422):
                errors = form_errors(exc)
            else:
                raise
    check_ins = None
    if kind in ("key_result", "initiative"):
        check_ins = client.get(user, "checkin", f"/{ITEM_PATHS[kind]}/{item_id}/check-ins", limit=20)
    tree_data = client.get(user, "checkin", f"/sessions/{found['session_id']}/tree")
    status = 409 if stale else 422 if errors else 200
    return page("item.html", title=found["title"], **ctx, kind=kind, item=found, values=values, errors=errors,
                stale=stale, check_ins=check_ins, related=review.related(tree_data, kind, str(item_id)),
                may_edit=may_edit_item(ctx["workspace_id"], found.get("owner_id")) and not ctx["archived"],
                options=review.tree_options(tree_data), statuses=review.STATUSES,
                initiative_statuses=review.INITIATIVE_STATUSES), status


@blueprint.post("/initiatives/<uuid:item_id>/connections")
@sign_in_required
def connect(item_id):
    """Connect or disconnect a Key Result (the service decides who may)."""
    key_result_id = _uuid(request.form.get("key_result_id"))
    if key_result_id is None:
        return redirect(url_for("web.item", kind="initiative", item_id=item_id), code=303)
    method = "DELETE" if request.form.get("action") == "disconnect" else "PUT"
    try:
        client.call(signed_in(), "checkin", method, f"/initiatives/{item_id}/key-results/{key_result_id}")
    except ServiceError as exc:
        if exc.status not in (403, 404, 409, 422):
            raise
        return error_page(exc.status, "The connection was not changed", exc.message,
                          links=[(url_for("web.item", kind="initiative", item_id=item_id), "Back to the Initiative")])
    return redirect(url_for("web.item", kind="initiative", item_id=item_id, done="saved"), code=303)


@blueprint.post("/initiatives/<uuid:item_id>/canvas")
@sign_in_required
def set_canvas(item_id):
    """Set, change or remove an Initiative's canvas (needs canvas permission: the service decides)."""
    form = request.form
    if form.get("action") == "remove":
        body = {"canvas": None}
    else:
        body = {"canvas": {"title": form.get("canvas_title", "").strip(), "url": form.get("canvas_url", "").strip(),
                           "access": [a for a in form.getlist("canvas_access") if _uuid(a)]}}
    back = url_for("web.item", kind="initiative", item_id=item_id)
    try:
        client.call(signed_in(), "checkin", "PATCH", f"/initiatives/{item_id}", body=body,
                    headers={"If-Match": f'"{form.get("version", "")}"'})
    except ServiceError as exc:
        if exc.status not in (400, 403, 404, 409, 422, 428):
            raise
        return error_page(exc.status, "The canvas was not saved", exc.message, links=[(back, "Back to the Initiative")])
    return redirect(f"{back}?done=saved", code=303)


@blueprint.post("/<any(objective, key_result, initiative):kind>s/<uuid:item_id>/delete")
@sign_in_required
def delete_item(kind, item_id):
    user = signed_in()
    found = _item(kind, item_id)
    client.call(user, "checkin", "DELETE", f"/{ITEM_PATHS[kind]}/{item_id}",
                headers={"If-Match": f'"{request.form.get("version", "")}"'})
    return redirect(url_for("web.tree", session_id=found["session_id"], done="deleted"), code=303)


@blueprint.post("/<any(key_result, initiative):kind>s/<uuid:item_id>/check-ins")
@sign_in_required
def check_in(kind, item_id):
    user = signed_in()
    form = request.form
    body = {"status": form.get("status") or None, "comment": form.get("comment", "")}
    if kind == "key_result":
        body["value"] = _number(form.get("value"))
        confidence = (form.get("confidence") or "").strip()
        body["confidence"] = int(confidence) if confidence.isdigit() else (confidence or None)
    body = {k: v for k, v in body.items() if v is not None}
    back = safe_next(form.get("next")) or url_for("web.item", kind=kind, item_id=item_id)
    try:
        client.call(user, "checkin", "POST", f"/{ITEM_PATHS[kind]}/{item_id}/check-ins", body=body)
    except ServiceError as exc:
        if exc.status not in (400, 403, 409, 422):
            raise
        return error_page(exc.status, "The Check-in was not saved", exc.message,
                          links=[(back, "Back")])
    return redirect(with_notice(back, "checked_in"), code=303)


def with_notice(path: str, notice: str) -> str:
    """The path with done=<notice> in its query, before any #fragment."""
    path, hash_, fragment = path.partition("#")
    separator = "&" if "?" in path else "?"
    return f"{path}{separator}done={notice}{hash_}{fragment}"
