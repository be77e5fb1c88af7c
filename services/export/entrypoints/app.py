"""The export service's HTTP API (internal: reached through the gateway only)."""
from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import quote

from flask import send_file
from flask.views import MethodView
from flask_smorest import abort

from services.export.adapters.snapshot_client import SnapshotError
from services.export.bootstrap import Export, bootstrap
from services.export.domain import commands
from services.export.domain.formats import MEDIA_TYPES
from services.export.domain.model import (
    DONE,
    ExportGone,
    ExportJob,
    ExportNotReady,
    NotCancellable,
    TooManyExports,
)
from services.export.entrypoints import schemas
from services.export.service_layer import handlers
from shared import tokens
from shared.http import (
    Blueprint,
    container,
    current_principal,
    error_response,
    register_access_errors,
    require_internal_token,
)
from shared.http import create_app as create_base_app

exports = Blueprint("exports", __name__, description="Exports of a Session's week, built asynchronously")

BAD_LINK = "The download link is invalid or has expired; open the export again for a fresh link."



@exports.route("/exports")
class Exports(MethodView):
    @exports.arguments(schemas.ExportListQuery, location="query")
    @exports.response(200, schemas.ExportPage)
    def get(self, query):
        """Your exports, newest first (only those of Workspaces you may still read)"""
        c = container()
        jobs, total = handlers.list_exports(current_principal(), uow=c.uow(), **query)
        return {"items": [_job_view(job, with_link=False) for job in jobs], "total": total,
                "limit": query["limit"], "offset": query["offset"]}

    @exports.arguments(schemas.ExportCreate)
    @exports.response(202, schemas.ExportOut)
    def post(self, body):
        """Request an export of a week; poll the job until it is done"""
        principal = current_principal()
        if principal.anonymous:
            abort(401, message="Sign in to request an export.")
        c = container()
        job = handlers.request_export(commands.RequestExport(principal, **body), uow=c.uow(),
                                      clock=c.clock, snapshots=c.snapshots)
        return _job_view(job)


@exports.route("/exports/<uuid:job_id>")
class ExportDetail(MethodView):
    @exports.response(200, schemas.ExportOut)
    def get(self, job_id):
        """An export job; when done, with a fresh short-lived download link"""
        c = container()
        return _job_view(handlers.get_export(current_principal(), job_id, uow=c.uow(), snapshots=c.snapshots))


@exports.route("/exports/<uuid:job_id>/cancel")
class ExportCancel(MethodView):
    @exports.response(200, schemas.ExportOut)
    def post(self, job_id):
        """Cancel a queued or running export of yours (409 once it has ended)"""
        c = container()
        return _job_view(handlers.cancel_export(current_principal(), job_id, uow=c.uow(), clock=c.clock))


@exports.route("/exports/<uuid:job_id>/download")
class ExportDownload(MethodView):
    @exports.arguments(schemas.DownloadQuery, location="query")
    @exports.response(200, {"type": "string", "format": "binary"}, content_type="application/octet-stream",
                      description="csv: a ZIP of items.csv, check_ins.csv and metadata.csv; xlsx; json "
                                  "(docs/export.md)")
    def get(self, query, job_id):
        """The export file; the link's token is the credential"""
        c = container()
        try:
            claims = tokens.verify(c.settings.verification_keys("download"), query["token"], typ=tokens.DOWNLOAD,
                                   audience=tokens.DOWNLOAD_AUDIENCE, now=c.clock.now())
        except tokens.InvalidToken:
            abort(401, message=BAD_LINK)
        if claims["sub"] != str(job_id):
            abort(401, message=BAD_LINK)
        job = handlers.finished_export(job_id, uow=c.uow())
        path = c.files.path(job.file_name)
        if not path.is_file():
            abort(404, message="The export file is no longer available; request the export again.")
        response = send_file(path, mimetype=MEDIA_TYPES.get(job.format, "application/octet-stream"), max_age=0)
        response.headers["Content-Disposition"] = attachment(job.download_name)
        response.headers["Cache-Control"] = "no-store"  # the URL carries a credential
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers[tokens.FILE_WORKSPACE_HEADER] = str(job.workspace_id)
        response.headers[tokens.FILE_REQUESTER_HEADER] = str(job.requested_by)
        return response


def _job_view(job: ExportJob, *, with_link: bool = True) -> dict:
    """The job as its requester reads it; a finished one with a fresh download link that expires
    on okrsnap's clock, never after the file itself is deleted."""
    view = dict(vars(job), download_url=None, download_expires_at=None)
    if job.status == DONE and with_link:
        c = container()
        now = c.clock.now().replace(microsecond=0)
        ttl = c.settings.download_ttl
        if job.file_expires_at is not None:
            ttl = max(1, min(ttl, int((job.file_expires_at - now).total_seconds())))
        token = tokens.issue(c.settings.download_secret, typ=tokens.DOWNLOAD, audience=tokens.DOWNLOAD_AUDIENCE,
                             subject=str(job.id), ttl=ttl, now=now)
        view["download_url"] = f"{c.settings.public_url}/api/v1/exports/{job.id}/download?token={token}"
        view["download_expires_at"] = now + timedelta(seconds=ttl)
    return view


def attachment(filename: str) -> str:
    """Content-Disposition per RFC 6266: a plain ASCII fallback and the exact name in filename*;
    neither can carry quotes, CR or LF."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", filename) or "export"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def create_app(container: Export | None = None):
    container = container or bootstrap()
    app, api = create_base_app(__name__, title="okrsnap export service")
    app.extensions["okrsnap"] = container
    require_internal_token(app, service="export", secret=container.settings.internal_secret,
                           open_paths=("/healthz",))
    register_access_errors(app)

    @app.errorhandler(TooManyExports)
    def _too_many(exc: TooManyExports):
        return error_response(429, str(exc))

    @app.errorhandler(ExportNotReady)
    @app.errorhandler(NotCancellable)
    def _conflict(exc: Exception):
        return error_response(409, str(exc))

    @app.errorhandler(ExportGone)
    def _gone(exc: ExportGone):
        return error_response(410, str(exc))

    @app.errorhandler(SnapshotError)
    def _snapshot_down(exc: SnapshotError):
        return error_response(503, "The snapshot service is unavailable; try again shortly.")

    api.register_blueprint(exports)
    return app
