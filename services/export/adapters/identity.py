"""Asks the gateway (the identity service) what an export's requester may reach now, so a file
is built with today's roles: a member demoted or removed after asking gets no more than they
may see; and the names and emails of the people a file names (this service keeps none)."""
from __future__ import annotations

import uuid

import requests

from shared import tokens
from shared.http_client import ProcessLocalSession

PEOPLE_PER_REQUEST = 50  # ids in the query string: a request line stays under 4 KB (gunicorn)


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

    def people(self, workspace_id, user_ids, principal: tokens.Principal) -> dict:
        """{"workspace": {"id", "name"}, "people": {user id: (name, email)}} of those of
        `user_ids` who are members of the Workspace, asked as `principal` (the export's requester:
        they learn no name they could not see on the page)."""
        workspace_id = uuid.UUID(str(workspace_id))
        ids = sorted({str(uuid.UUID(str(u))) for u in user_ids if u is not None})
        token = tokens.internal_token(self.internal_secret, "gateway", principal)
        found: dict = {}
        workspace_name = None
        for start in range(0, max(len(ids), 1), PEOPLE_PER_REQUEST):
            chunk = ids[start:start + PEOPLE_PER_REQUEST] or [str(principal.user_id or workspace_id)]
            try:
                response = self._sessions.get().get(
                    f"{self.url}/internal/workspaces/{workspace_id}/people", params={"id": chunk},
                    headers={tokens.INTERNAL_HEADER: token}, timeout=self.timeout, allow_redirects=False)
            except requests.RequestException as exc:
                raise IdentityUnavailable(f"the gateway is unreachable: {exc.__class__.__name__}") from None
            if response.status_code == 404:
                return {"workspace": {"id": workspace_id, "name": None}, "people": {}}
            if response.status_code != 200:
                raise IdentityUnavailable(f"the gateway answered {response.status_code}")
            try:
                body = response.json()
                workspace_name = body["workspace"]["name"]
                for person in body["people"]:
                    found[str(uuid.UUID(person["id"]))] = (str(person["name"]), str(person["email"]))
            except (ValueError, KeyError, AttributeError, TypeError):
                raise IdentityUnavailable("the gateway's answer could not be read") from None
        return {"workspace": {"id": workspace_id, "name": workspace_name}, "people": found}
