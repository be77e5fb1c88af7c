"""The web app: server-rendered pages for people, served by the gateway at / (the API stays under
/api/v1). Pages get their data from the internal services exactly as the API does: the same signed
internal token for the signed-in user, so the same shared.access decisions apply."""
from __future__ import annotations

import time
from pathlib import Path

from flask import Flask, g, request

from services.gateway.web import filters

WEB_ROOT = Path(__file__).parent

# No inline script or style anywhere: a missed escape cannot run. Pages and the API docs load
# only their own files.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                           "form-action 'self'; frame-ancestors 'none'")


def _security_headers(response):
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html" and "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"  # pages carry private data and a CSRF token
    return response


def _start_timer():
    g.page_started = time.perf_counter()


def _server_timing(response):
    """Where a page's time went (each service waited on, the rest is the gateway's own work):
    browsers show it in their network panel, and bench/web.py reports it."""
    timings = g.get("service_timings")
    if timings and "page_started" in g:
        total = (time.perf_counter() - g.page_started) * 1000
        parts = [f"{name};dur={ms:.1f}" for name, ms in timings.items()]
        parts.append(f"gateway;dur={total - sum(timings.values()):.1f}")
        response.headers["Server-Timing"] = ", ".join(parts)
    return response


def register_web(app: Flask, api, *, openapi_url: str, docs_url: str) -> None:
    from services.gateway.web import account, admin, docs, pages

    app.jinja_env.autoescape = True  # every template, whatever its extension: user text is escaped
    filters.register(app)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(account.blueprint)
    app.register_blueprint(admin.blueprint)
    app.register_blueprint(docs.make_blueprint(openapi_url, docs_url))
    app.before_request(_start_timer)
    app.after_request(_server_timing)
    app.after_request(_security_headers)

    @app.errorhandler(404)
    def _not_found(exc):
        if request.path.startswith("/api/") or request.path.startswith("/internal/"):
            return api.handle_http_exception(exc)  # the API keeps its one JSON error body
        return pages.error_page(404, "Page not found", "There is nothing at this address.")
