"""Asks the gateway (the identity service) which users are members of a Workspace, so owners,
visibility lists and canvas access lists only ever name members."""
from __future__ import annotations

import uuid

import requests

from shared import tokens
from shared.http_client import ProcessLocalSession


class DirectoryUnavailable(Exception):
    pass


class GatewayDirectory:
    def __init__(self, gateway_url: str, internal_secret: str, timeout: tuple = (3, 10)):
        self.url = gateway_url.rstrip("/")
        self.internal_secret = internal_secret
        self.timeout = timeout
        self._sessions = ProcessLocalSession()

    def non_members(self, principal: tokens.Principal, workspace_id, user_ids) -> set:
        wanted = {uuid.UUID(str(u)) for u in user_ids}
        if not wanted:
            return set()
        token = tokens.internal_token(self.internal_secret, "gateway", principal)
        try:
            response = self._sessions.get().get(
                f"{self.url}/internal/workspaces/{workspace_id}/members",
                params=[("id", str(u)) for u in sorted(wanted, key=str)],
                headers={tokens.INTERNAL_HEADER: token}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise DirectoryUnavailable(f"the member directory is unreachable: {exc.__class__.__name__}") from None
        if response.status_code != 200:
            raise DirectoryUnavailable(f"the member directory answered {response.status_code}")
        return wanted - {uuid.UUID(m) for m in response.json()["members"]}
