"""Forwards a vetted request to an internal service, signed with a short-lived internal token
bound to that service. Only listed headers pass in either direction.

Keep-alive connections to the services are pooled, but never reused once idle for longer than
MAX_IDLE_SECONDS: the services (gunicorn, keep-alive 2 s) close idle connections, and a request
sent on one at the moment it closes is lost on the way (a spurious 503). A request that certainly
did not reach the service (the connection could not be opened) is sent once more; so is an
idempotent one (GET, HEAD, OPTIONS, PUT, DELETE) after any connection error."""
from __future__ import annotations

import time

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from shared import observability, tokens
from shared.http_client import ProcessLocalSession

MAX_IDLE_SECONDS = 1.0  # below the services' keep-alive timeout (gunicorn's default: 2 s)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
monotonic = time.monotonic  # a module attribute: tests move it


class _FreshConnections:
    """A connection pool that closes, instead of reusing, a connection idle for too long."""

    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        idle_since = getattr(conn, "okrsnap_idle_since", None)
        if idle_since is not None and monotonic() - idle_since > MAX_IDLE_SECONDS:
            conn.close()  # reconnects on its next request
        return conn

    def _put_conn(self, conn):
        if conn is not None:
            conn.okrsnap_idle_since = monotonic()
        super()._put_conn(conn)


class _FreshHTTPPool(_FreshConnections, HTTPConnectionPool):
    pass


class _FreshHTTPSPool(_FreshConnections, HTTPSConnectionPool):
    pass


class _FreshAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _FreshHTTPPool, "https": _FreshHTTPSPool}


def upstream_session() -> requests.Session:
    session = requests.Session()
    adapter = _FreshAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _not_sent(exc: requests.RequestException) -> bool:
    """The connection could not even be opened: the service never saw the request."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # MaxRetryError carries the cause
    return isinstance(reason, NewConnectionError)

REQUEST_HEADERS = ("Content-Type", "Accept", "If-Match", "If-None-Match")
RESPONSE_HEADERS = ("Content-Type", "Content-Disposition", "Content-Length", "Retry-After", "ETag",
                    "Cache-Control", "X-Content-Type-Options")


class UpstreamUnavailable(Exception):
    pass


class Upstream:
    def __init__(self, service_urls: dict[str, str], internal_secret: str, timeout: tuple = (3, 30)):
        self.service_urls = service_urls
        self.internal_secret = internal_secret
        self.timeout = timeout
        self._sessions = ProcessLocalSession(upstream_session)

    def forward(self, service: str, method: str, path: str, *, principal: tokens.Principal,
                params, body: bytes, headers) -> requests.Response:
        outgoing = {name: headers[name] for name in REQUEST_HEADERS if name in headers}
        outgoing[tokens.INTERNAL_HEADER] = tokens.internal_token(self.internal_secret, service, principal)
        outgoing.update(observability.outgoing_headers())  # the correlation id, to the service's logs
        url = self.service_urls[service] + path
        try:
            try:
                return self._send(method, url, params, body, outgoing)
            except requests.ConnectionError as exc:
                if not (_not_sent(exc) or method.upper() in IDEMPOTENT):
                    raise
                return self._send(method, url, params, body, outgoing)  # once
        except requests.RequestException as exc:
            raise UpstreamUnavailable(f"{service} service unavailable: {exc.__class__.__name__}") from None

    def _send(self, method: str, url: str, params, body: bytes, headers: dict) -> requests.Response:
        return self._sessions.get().request(method, url, params=params, data=body or None, headers=headers,
                                       timeout=self.timeout, stream=True, allow_redirects=False)
