"""Admin pages for owners and admins: members, invitations, the audit log (being built)."""
from __future__ import annotations

from flask import Blueprint

from services.gateway.web.pages import page
from services.gateway.web.session import sign_in_required

blueprint = Blueprint("admin", __name__, template_folder="templates")


@blueprint.get("/workspaces/<uuid:workspace_id>/members")
@sign_in_required
def members(workspace_id):
    return page("error.html", title="Members", status=200, message="Coming soon.", links=[])


@blueprint.get("/workspaces/<uuid:workspace_id>/audit")
@sign_in_required
def audit(workspace_id):
    return page("error.html", title="Audit", status=200, message="Coming soon.", links=[])
