"""Asks the gateway (the identity service) what an export's requester may reach now, so a file
is built with today's roles: a member demoted or removed after asking gets no more than they
may see."""
from __future__ import annotations

import uuid

import requests

from shared import tokens
from shared.http_client import ProcessLocalSession


class IdentityUnavailable(Exception):
    pass


class GatewayIdentities:
    def __init__(self, gateway_url: str, internal_secret: str, timeout: tuple = (3, 10)):
        self.url = gateway_url.rstrip("/")
        self.internal_secret = internal_secret
        self.timeout = timeout
        self._sessions = ProcessLocalSession()

    def current(self, user_id) -> tokens.Principal:
        user_id = uuid.UUID(str(user_id))
        token = tokens.internal_token(self.internal_secret, "gateway", tokens.Principal(None))
        try:
            response = self._sessions.get().get(f"{self.url}/internal/users/{user_id}/principal",
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
