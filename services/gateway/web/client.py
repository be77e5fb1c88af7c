"""The pages' way to the internal services: the gateway's own upstream, signed for the signed-in
user, so a page sees exactly what the API would answer that user (never another service's tables)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from flask import g

from services.gateway.adapters.upstream import UpstreamUnavailable
from services.gateway.web.session import WebUser
from shared.http import container


class ServiceError(Exception):
    """A service refused or failed; pages show its message (already safe to show: it is what the
    API would answer)."""

    def __init__(self, status: int, message: str, errors: list | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.errors, self.headers = status, message, errors or [], headers or {}

    def field_errors(self) -> dict[str, str]:
        return {e.get("field", "_schema"): e.get("reason", "") for e in self.errors if isinstance(e, dict)}


@dataclass
class Answer:
    status: int
    data: object
    headers: dict = field(default_factory=dict)


def call(user: WebUser, service: str, method: str, path: str, *, params=None, body=None,
         headers: dict | None = None) -> Answer:
    """One request to an internal service as `user`; a non-2xx answer raises ServiceError."""
    outgoing = {"Accept": "application/json", **(headers or {})}
    payload = b""
    if body is not None:
        payload = json.dumps(body, default=str).encode()
        outgoing["Content-Type"] = "application/json"
    started = time.perf_counter()
    try:
        response = container().upstream.forward(service, method, path, principal=user.principal,
                                                params=params or {}, body=payload, headers=outgoing)
    except UpstreamUnavailable as exc:
        raise ServiceError(503, f"{exc}. Try again in a moment.") from None
    try:
        content = response.content
    finally:
        response.close()
        _timed(service, started)
    try:
        data = json.loads(content) if content else None
    except ValueError:
        data = None
    if not 200 <= response.status_code < 300:
        message = data.get("message") if isinstance(data, dict) else None
        errors = data.get("errors") if isinstance(data, dict) else None
        raise ServiceError(response.status_code, message or f"The {service} service answered "
                           f"{response.status_code}.", errors, dict(response.headers))
    return Answer(response.status_code, data, dict(response.headers))


def _timed(service: str, started: float) -> None:
    """Time spent waiting on each service, for the page's Server-Timing header."""
    timings = g.setdefault("service_timings", {})
    timings[service] = timings.get(service, 0.0) + (time.perf_counter() - started) * 1000


def get(user: WebUser, service: str, path: str, **params) -> object:
    return call(user, service, "GET", path, params={k: v for k, v in params.items() if v is not None}).data
