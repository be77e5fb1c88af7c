"""The account page: display name, password, personal API tokens (being built)."""
from __future__ import annotations

from flask import Blueprint

from services.gateway.web.pages import page
from services.gateway.web.session import sign_in_required

blueprint = Blueprint("account", __name__, template_folder="templates")


@blueprint.get("/account")
@sign_in_required
def account():
    return page("error.html", title="Account", status=200, message="Coming soon.", links=[])
