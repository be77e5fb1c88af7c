"""The API docs page, offline: Swagger UI's assets come from the swagger-ui-bundle package (a
pinned dependency), never from a CDN; our own small script starts it on the merged document."""
from __future__ import annotations

from flask import Blueprint, abort, render_template, send_from_directory
from swagger_ui_bundle import swagger_ui_path

SWAGGER_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
                  "favicon-32x32.png")


def make_blueprint(openapi_url: str, docs_url: str) -> Blueprint:
    blueprint = Blueprint("docs", __name__, template_folder="templates")

    @blueprint.get(docs_url)
    def docs_page():
        return render_template("api_docs.html", openapi_url=openapi_url, docs_url=docs_url)

    @blueprint.get(f"{docs_url}/assets/<name>")
    def docs_asset(name):
        if name not in SWAGGER_ASSETS:
            abort(404)
        return send_from_directory(swagger_ui_path, name, max_age=86400)

    return blueprint
