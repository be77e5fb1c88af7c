"""The public routes the gateway forwards, per resource and internal service. Nothing else of
an internal service is reachable from outside."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    resource: str
    service: str
    rule: str
    methods: tuple[str, ...]
    workspace_param: str | None = None  # the gateway itself checks membership of this Workspace
    authenticated: bool = True          # False: the request carries its own credential (a link)
    max_body: int = 256 * 1024
    expensive: bool = False             # rate limited per user and per client IP (OKRSNAP_EXPORT_RATE)
    audit: str | None = None            # recorded in the audit log when the service answers 2xx
    link_holder_check: bool = False     # a link's file goes out only while its requester keeps access
    names: bool = False                 # owner_name / author_name added beside owner_id / author_id


ROUTES = (
    Route("sessions", "checkin", "/workspaces/<uuid:workspace_id>/sessions", ("GET", "POST"),
          workspace_param="workspace_id"),
    Route("sessions", "checkin", "/workspaces/<uuid:workspace_id>/sessions/import", ("POST",),
          workspace_param="workspace_id", max_body=8 * 1024 * 1024),
    Route("sessions", "checkin", "/sessions/<uuid:session_id>", ("GET", "PATCH")),
    Route("sessions", "checkin", "/sessions/<uuid:session_id>/archive", ("POST",)),
    Route("sessions", "checkin", "/sessions/<uuid:session_id>/tree", ("GET",), names=True),
    Route("sessions", "checkin", "/sessions/<uuid:session_id>/canvases", ("GET",)),
    Route("sessions", "checkin", "/sessions/<uuid:session_id>/items", ("GET",), names=True),
    Route("objectives", "checkin", "/sessions/<uuid:session_id>/objectives", ("POST",), names=True),
    Route("objectives", "checkin", "/objectives/<uuid:objective_id>", ("GET", "PATCH", "DELETE"),
          names=True),
    Route("key_results", "checkin", "/objectives/<uuid:objective_id>/key-results", ("POST",),
          names=True),
    Route("key_results", "checkin", "/key-results/<uuid:key_result_id>", ("GET", "PATCH", "DELETE"),
          names=True),
    Route("initiatives", "checkin", "/sessions/<uuid:session_id>/initiatives", ("POST",), names=True),
    Route("initiatives", "checkin", "/initiatives/<uuid:initiative_id>", ("GET", "PATCH", "DELETE"),
          names=True),
    Route("initiatives", "checkin", "/initiatives/<uuid:initiative_id>/canvas", ("GET",)),
    Route("initiatives", "checkin", "/initiatives/<uuid:initiative_id>/key-results/<uuid:key_result_id>",
          ("PUT", "DELETE"), names=True),
    Route("check_ins", "checkin", "/key-results/<uuid:key_result_id>/check-ins", ("GET", "POST"),
          names=True),
    Route("check_ins", "checkin", "/initiatives/<uuid:initiative_id>/check-ins", ("GET", "POST"),
          names=True),
    Route("snapshots", "snapshot", "/sessions/<uuid:session_id>/snapshots", ("GET",)),
    Route("snapshots", "snapshot", "/sessions/<uuid:session_id>/snapshots/compare", ("GET",), names=True),
    Route("snapshots", "snapshot", "/sessions/<uuid:session_id>/snapshots/trend", ("GET",)),
    Route("snapshots", "snapshot", "/sessions/<uuid:session_id>/snapshots/verify", ("GET",)),
    Route("snapshots", "snapshot", "/sessions/<uuid:session_id>/snapshots/<string:week>", ("GET",),
          names=True),
    Route("access", "checkin", "/access/explain", ("GET",)),
    Route("exports", "export", "/exports", ("POST",), expensive=True, audit="export.requested"),
    Route("exports", "export", "/exports", ("GET",)),
    Route("exports", "export", "/exports/<uuid:job_id>", ("GET",)),
    Route("exports", "export", "/exports/<uuid:job_id>/cancel", ("POST",), audit="export.cancelled"),
    Route("exports", "export", "/exports/<uuid:job_id>/download", ("GET",), authenticated=False,
          audit="export.downloaded", link_holder_check=True),
)
