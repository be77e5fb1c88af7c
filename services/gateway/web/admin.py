"""Admin pages for owners and admins: a Workspace's members (roles, Goals/OKRs access, removal,
invitations) and its audit log.

The decisions are the API's: the same handlers, the same rules (docs/permissions.md). Someone
outside the Workspace gets 404 as if it did not exist; a member who may not manage gets 403."""
from __future__ import annotations

from flask import Blueprint, abort, redirect, request, url_for
from werkzeug.exceptions import HTTPException

from services.gateway.domain.members import MemberRuleError, WorkspaceHidden
from services.gateway.domain.model import IdentityError
from services.gateway.service_layer import handlers
from services.gateway.web.pages import error_page, page, workspaces
from services.gateway.web.people import display_name
from services.gateway.web.session import sign_in_required, signed_in
from shared import tokens
from shared.access import MANAGE_MEMBERS, ROLES, decide
from shared.http import container

blueprint = Blueprint("admin", __name__, template_folder="templates")


@blueprint.errorhandler(404)  # before the app's own 404 page, which Flask would prefer by code
@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException):  # 404 outside the Workspace, 403 for a form without its CSRF token
    return error_page(exc.code or 500, "Not found" if exc.code == 404 else exc.name, exc.description or exc.name)

AUDIT_PAGE = 50
DETAIL_MAX = 160
ADMIN_NOTICES = {
    "added": "Added: they can open the Workspace now.",
    "changed": "Saved: it takes effect at their next request.",
    "removed": "Removed: they lose access at their next request.",
}
ROLE_HINTS = {
    "owner": "everything, including owners",
    "admin": "everything but owners",
    "member": "edits own and unassigned items",
    "viewer": "reads only",
}
# Never shown in the audit log's detail, whatever a future event puts there.
SECRET_WORDS = ("token", "secret", "password", "hash")


def _ctx() -> handlers.RequestContext:
    from services.gateway.entrypoints.app import client_ip

    return handlers.RequestContext(client_ip(), request.headers.get("User-Agent"))


def _require_manager(workspace_id):
    """The signed-in user's membership if they manage the Workspace: 404 outside it, 403 inside
    without the right (the decision the member handlers make, through shared.access.decide)."""
    user = signed_in()
    membership = user.identity.membership_in(workspace_id)
    if membership is None:
        abort(404, description="Workspace not found.")
    principal = tokens.Principal(str(user.user.id), {str(workspace_id): membership.role})
    if not decide(principal, MANAGE_MEMBERS, workspace_id=workspace_id).allowed:
        return membership, error_page(403, "Not allowed", "Only owners and admins manage this Workspace's members.")
    return membership, None


def _workspace_name(workspace_id) -> str:
    return next((w.name for w, _ in workspaces() if w.id == workspace_id), "this Workspace")


def _members_page(workspace_id, membership, status: int = 200, *, errors: dict | None = None,
                  values: dict | None = None, invitation: dict | None = None, action_error: str | None = None):
    found = handlers.list_members(signed_in().identity, workspace_id, uow=container().uow())
    rows = sorted(({"id": str(u.id), "name": display_name(u), "email": u.email, "role": m.role,
                    "okr_access": m.okr_access, "you": u.id == signed_in().user.id} for u, m in found),
                  key=lambda r: (ROLES.index(r["role"]) if r["role"] in ROLES else 9, r["name"].lower()))
    is_owner = membership.role == "owner"
    return page("admin_members.html", title=f"Members · {_workspace_name(workspace_id)}",
                workspace_id=str(workspace_id), manager=True, workspace_name=_workspace_name(workspace_id),
                members=rows, is_owner=is_owner, roles=[r for r in ROLES if is_owner or r != "owner"],
                all_roles=ROLES, role_hints=ROLE_HINTS, errors=errors or {},
                values={"role": "member", "okr_access": True, **(values or {})}, invitation=invitation,
                action_error=action_error, admin_notice=ADMIN_NOTICES.get(request.args.get("done", ""))), status


@blueprint.get("/workspaces/<uuid:workspace_id>/members")
@sign_in_required
def members(workspace_id):
    membership, refused = _require_manager(workspace_id)
    if refused:
        return refused
    try:
        return _members_page(workspace_id, membership)
    except MemberRuleError as exc:
        return error_page(exc.status, "Not allowed" if exc.status == 403 else "Not found", exc.message)


def _checked(form, name: str, default: bool | None) -> bool | None:
    """A checkbox with a hidden "0" before it: checked sends both values; a form without the
    field at all leaves the default."""
    if name not in form:
        return default
    return "1" in form.getlist(name)


@blueprint.post("/workspaces/<uuid:workspace_id>/members/invite")
@sign_in_required
def invite(workspace_id):
    membership, refused = _require_manager(workspace_id)
    if refused:
        return refused
    form = request.form
    email = form.get("email", "").strip()[:254]
    role = form.get("role", "")
    okr_access = _checked(form, "okr_access", True)
    values = {"email": email, "role": role, "okr_access": okr_access}
    if role not in ROLES:
        return _members_page(workspace_id, membership, 422, errors={"role": f"Choose one of {', '.join(ROLES)}."},
                             values=values)
    c = container()
    try:
        invited = handlers.invite_member(signed_in().identity, workspace_id, email, role, okr_access, uow=c.uow(),
                                         clock=c.wall_clock, ctx=_ctx(), rate=c.settings.invite_rate)
    except IdentityError as exc:
        field = exc.field if exc.field in ("email", "role") else "email"
        return _members_page(workspace_id, membership, 422, errors={field: exc.message}, values=values)
    except MemberRuleError as exc:
        if exc.status == 404:
            abort(404, description="Workspace not found.")
        field = "role" if exc.status == 403 else "email"  # owner-only role; already a member
        return _members_page(workspace_id, membership, exc.status, errors={field: exc.message}, values=values)
    if invited.member:
        return redirect(url_for("admin.members", workspace_id=workspace_id, done="added"), code=303)
    inv = invited.invitation
    link = f"{c.settings.public_url}{url_for('account.invite', token=invited.token)}"
    # The link is in this response only (no-store): the invitation keeps just its hash.
    return _members_page(workspace_id, membership, 201, invitation={
        "email": inv.email, "role": inv.role, "okr_access": inv.okr_access, "expires_at": inv.expires_at,
        "link": link})


@blueprint.post("/workspaces/<uuid:workspace_id>/members/<uuid:user_id>")
@sign_in_required
def change(workspace_id, user_id):
    membership, refused = _require_manager(workspace_id)
    if refused:
        return refused
    role = request.form.get("role") or None
    if role is not None and role not in ROLES:
        return _members_page(workspace_id, membership, 422, action_error=f"Choose a role: {', '.join(ROLES)}.")
    c = container()
    try:
        handlers.change_member(signed_in().identity, workspace_id, user_id, role=role,
                               okr_access=_checked(request.form, "okr_access", None), uow=c.uow(), clock=c.wall_clock,
                               ctx=_ctx())
    except MemberRuleError as exc:
        return _rule_refusal(workspace_id, membership, exc)
    return redirect(url_for("admin.members", workspace_id=workspace_id, done="changed"), code=303)


def _rule_refusal(workspace_id, membership, exc: MemberRuleError):
    """A manager's change the rules refuse (last owner, owner-only, gone meanwhile): the members
    page again, with the reason."""
    if isinstance(exc, WorkspaceHidden):
        abort(404, description="Workspace not found.")
    try:
        return _members_page(workspace_id, membership, exc.status, action_error=exc.message)
    except MemberRuleError as again:  # the manager lost their own right meanwhile
        return error_page(again.status, "Not allowed", again.message)


def _target(workspace_id, user_id):
    found = handlers.list_members(signed_in().identity, workspace_id, uow=container().uow())
    return next(((u, m) for u, m in found if u.id == user_id), None)


@blueprint.route("/workspaces/<uuid:workspace_id>/members/<uuid:user_id>/remove", methods=["GET", "POST"])
@sign_in_required
def remove(workspace_id, user_id):
    """GET asks to confirm (no script needed); POST from that page removes."""
    membership, refused = _require_manager(workspace_id)
    if refused:
        return refused
    target = _target(workspace_id, user_id)
    if target is None:
        return error_page(404, "Member not found", "This person is not a member of the Workspace (any more).",
                          links=[(url_for("admin.members", workspace_id=workspace_id), "Back to the members")])
    if request.method == "GET" or request.form.get("confirm") != "yes":
        target_user, target_membership = target
        return page("admin_remove.html", title="Remove a member", workspace_id=str(workspace_id), manager=True,
                    workspace_name=_workspace_name(workspace_id), target_name=display_name(target_user),
                    target_email=target_user.email, target_role=target_membership.role, target_id=str(user_id),
                    you=target_user.id == signed_in().user.id)
    c = container()
    try:
        handlers.remove_member(signed_in().identity, workspace_id, user_id, uow=c.uow(), clock=c.wall_clock,
                               ctx=_ctx())
    except MemberRuleError as exc:
        return _rule_refusal(workspace_id, membership, exc)
    if user_id == signed_in().user.id:  # removed oneself: nothing here to manage any more
        return redirect(url_for("web.home"), code=303)
    return redirect(url_for("admin.members", workspace_id=workspace_id, done="removed"), code=303)


# -- audit log -------------------------------------------------------------------------------------

def _short(value, limit: int = DETAIL_MAX) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def detail_text(detail) -> str:
    """An event's detail as one short line: 'role: member → viewer', 'email: a@b.c, role: member'."""
    if not detail:
        return ""
    if not isinstance(detail, dict):
        return _short(detail)

    def safe(items):
        return [(k, v) for k, v in items if not any(word in str(k).lower() for word in SECRET_WORDS)]

    def shown(value):
        if isinstance(value, bool):
            return "yes" if value else "no"
        return "–" if value is None else value

    before, after = detail.get("before"), detail.get("after")
    if isinstance(before, dict) and isinstance(after, dict):
        parts = [f"{k}: {shown(before.get(k))} → {shown(after.get(k))}" for k, _ in safe(after.items())
                 if before.get(k) != after.get(k)]
        return _short(", ".join(parts) or "no change")
    parts = []
    for key, value in safe(detail.items()):
        if isinstance(value, dict):
            value = " ".join(f"{k}={shown(v)}" for k, v in safe(value.items()))
        elif isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        parts.append(f"{key}: {shown(value)}")
    return _short(", ".join(parts))


def _before(value) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() and 0 < int(value) < 2 ** 63 else None


@blueprint.get("/workspaces/<uuid:workspace_id>/audit")
@sign_in_required
def audit(workspace_id):
    membership = signed_in().identity.membership_in(workspace_id)
    if membership is None:
        abort(404, description="Workspace not found.")
    before = _before(request.args.get("before"))
    c = container()
    try:
        events = handlers.audit_page(signed_in().identity, workspace_id, limit=AUDIT_PAGE, before=before,
                                     uow=c.uow())
    except MemberRuleError as exc:
        return error_page(exc.status, "Not allowed" if exc.status == 403 else "Not found", exc.message)
    try:
        people = {str(u.id): (display_name(u), u.email)
                  for u, _ in handlers.list_members(signed_in().identity, workspace_id, uow=c.uow())}
    except MemberRuleError:
        people = {}
    rows = [{"id": e.id, "at": e.at, "action": e.action, "actor": e.actor_email or "",
             "actor_name": people.get(str(e.actor_user_id), (None, None))[0] if e.actor_user_id else None,
             "target": e.target or "", "target_name": people.get(e.target or "", (None, None))[0],
             "ip": e.ip or "", "detail": detail_text(e.detail)} for e in events]
    older = events[-1].id if len(events) == AUDIT_PAGE else None
    return page("admin_audit.html", title=f"Audit log · {_workspace_name(workspace_id)}",
                workspace_id=str(workspace_id), manager=True, workspace_name=_workspace_name(workspace_id),
                events=rows, older=older, paged=before is not None)
