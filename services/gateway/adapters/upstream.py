"""Forwards a vetted request to an internal service, signed with a short-lived internal token
bound to that service. Only listed headers pass in either direction."""
from __future__ import annotations

import requests

from shared import tokens
from shared.http_client import ProcessLocalSession

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
        self._sessions = ProcessLocalSession()

    def forward(self, service: str, method: str, path: str, *, principal: tokens.Principal,
                params, body: bytes, headers) -> requests.Response:
        outgoing = {name: headers[name] for name in REQUEST_HEADERS if name in headers}
        outgoing[tokens.INTERNAL_HEADER] = tokens.internal_token(self.internal_secret, service, principal)
        try:
            return self._send(method, self.service_urls[service] + path, params, body, outgoing)
        except requests.RequestException as exc:
            raise UpstreamUnavailable(f"{service} service unavailable: {exc.__class__.__name__}") from None

    def _send(self, method: str, url: str, params, body: bytes, headers: dict) -> requests.Response:
        return self._sessions.get().request(method, url, params=params, data=body or None, headers=headers,
                                       timeout=self.timeout, stream=True, allow_redirects=False)
