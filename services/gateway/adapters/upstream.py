"""Forwards a vetted request to an internal service, signed with a short-lived internal token
bound to that service. Only listed headers pass in either direction.

Keep-alive connections to the services are pooled, but never reused once idle for longer than
MAX_IDLE_SECONDS: the services (gunicorn, keep-alive 2 s) close idle connections, and a request
sent on one at the moment it closes is lost on the way (a spurious 503). A request that certainly
did not reach the service (the connection could not be opened) is sent once more; so is an
idempotent one (GET, HEAD, OPTIONS, PUT, DELETE) after any connection error."""
from __future__ import annotations

import json
import time
from urllib.parse import urlencode

from urllib3 import PoolManager, Timeout
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError

from shared import observability, tokens
from shared.http_client import ProcessLocalSession

MAX_IDLE_SECONDS = 1.0  # below the services' keep-alive timeout (gunicorn's default: 2 s)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
CHUNK = 256 * 1024  # a week view (~5 MB) goes out in about twenty writes
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


def upstream_pool(maxsize: int = 8) -> PoolManager:
    """urllib3 itself, without requests' per-request work on top (environment proxies, a cookie
    jar that would carry one user's cookies into another's request, hooks, merged settings).
    `maxsize` connections per service are kept: gunicorn's threads of one worker share them."""
    pool = PoolManager(maxsize=maxsize, block=False, retries=False)
    pool.pool_classes_by_scheme = {"http": _FreshHTTPPool, "https": _FreshHTTPSPool}
    return pool


def _not_sent(exc: HTTPError) -> bool:
    """The connection could not even be opened: the service never saw the request."""
    return isinstance(exc, (NewConnectionError, ConnectTimeoutError))


REQUEST_HEADERS = ("Content-Type", "Accept", "If-Match", "If-None-Match")
RESPONSE_HEADERS = ("Content-Type", "Content-Disposition", "Content-Length", "Retry-After", "ETag",
                    "Cache-Control", "X-Content-Type-Options")


class UpstreamUnavailable(Exception):
    pass


class UpstreamResponse:
    """A service's answer, its body not read yet: stream it with iter_content, or read it whole
    with content / json(); close() hands the connection back (or drops a half-read one)."""

    def __init__(self, raw):
        self._raw = raw
        self.status_code = raw.status
        self.headers = raw.headers  # case-insensitive
        self._content: bytes | None = None

    def iter_content(self, size: int = CHUNK):
        if self._content is not None:
            yield self._content
            return
        yield from self._raw.stream(size, decode_content=False)

    @property
    def content(self) -> bytes:
        if self._content is None:
            self._content = self._raw.read(decode_content=False)
            self.close()
        return self._content

    def json(self):
        return json.loads(self.content)

    def close(self) -> None:
        # Never reuse a connection with the unread rest of an answer on it.
        self._raw.close()  # a half-read answer's connection is closed (read to its end: released already)
        self._raw.release_conn()


def _query(params) -> str:
    """The query string to send: a client's as it came (bytes), else a mapping encoded."""
    if isinstance(params, bytes):
        return params.decode("latin-1")
    if isinstance(params, str):
        return params
    items = params.items(multi=True) if hasattr(params, "getlist") else (params or {}).items()
    return urlencode(list(items), doseq=not hasattr(params, "getlist"))


class Upstream:
    def __init__(self, service_urls: dict[str, str], internal_secret: str, timeout: tuple = (3, 30)):
        self.service_urls = service_urls
        self.internal_secret = internal_secret
        self.timeout = timeout
        self._pools = ProcessLocalSession(upstream_pool)

    def forward(self, service: str, method: str, path: str, *, principal: tokens.Principal,
                params, body: bytes, headers) -> UpstreamResponse:
        outgoing = {name: headers[name] for name in REQUEST_HEADERS if name in headers}
        outgoing[tokens.INTERNAL_HEADER] = tokens.internal_token(self.internal_secret, service, principal)
        outgoing.update(observability.outgoing_headers())  # the correlation id, to the service's logs
        query = _query(params)
        url = self.service_urls[service] + path + (f"?{query}" if query else "")
        try:
            try:
                return self._send(method, url, params, body, outgoing)
            except HTTPError as exc:
                # A POST or PATCH that may have reached the service is never sent twice.
                if not (_not_sent(exc) or method.upper() in IDEMPOTENT):
                    raise
                return self._send(method, url, params, body, outgoing)  # once
        except HTTPError as exc:
            raise UpstreamUnavailable(f"{service} service unavailable: {exc.__class__.__name__}") from None

    def _send(self, method: str, url: str, params, body: bytes, headers: dict) -> UpstreamResponse:
        connect, read = self.timeout
        return UpstreamResponse(self._pools.get().urlopen(
            method, url, body=body or None, headers=headers, timeout=Timeout(connect=connect, read=read),
            preload_content=False, decode_content=False, redirect=False, retries=False))
