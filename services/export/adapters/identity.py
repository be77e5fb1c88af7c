"""Asks the gateway (the identity service) what an export's requester may reach now, so a file
is built with today's roles: a member demoted or removed after asking gets no more than they
may see."""
from __future__ import annotations

import os
import threading
import uuid

import requests

from shared import tokens


class IdentityUnavailable(Exception):
    pass


class GatewayIdentities:
    def __init__(self, gateway_url: str, internal_secret: str, timeout: tuple = (3, 10)):
        self.url = gateway_url.rstrip("/")
        self.internal_secret = internal_secret
        self.timeout = timeout
        self._local = threading.local()

    def _session(self) -> requests.Session:
        if getattr(self._local, "pid", None) != os.getpid():  # never shared across a fork
            self._local.session, self._local.pid = requests.Session(), os.getpid()
        return self._local.session

    def current(self, user_id) -> tokens.Principal:
        user_id = uuid.UUID(str(user_id))
        token = tokens.internal_token(self.internal_secret, "gateway", tokens.Principal(None))
        try:
            response = self._session().get(f"{self.url}/internal/users/{user_id}/principal",
                                           headers={tokens.INTERNAL_HEADER: token}, timeout=self.timeout,
                                           allow_redirects=False)
        except requests.RequestException as exc:
            raise IdentityUnavailable(f"the gateway is unreachable: {exc.__class__.__name__}") from None
        if response.status_code != 200:
            raise IdentityUnavailable(f"the gateway answered {response.status_code}")
        try:
            body = response.json()
            return tokens.Principal(str(user_id), {str(k): str(v) for k, v in body["workspaces"].items()},
                                    frozenset(str(w) for w in body["without_okr_access"]))
        except (ValueError, KeyError, AttributeError, TypeError):
            raise IdentityUnavailable("the gateway's answer could not be read") from None
