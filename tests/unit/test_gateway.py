"""The gateway in process on SQLite, with a recording fake in place of the internal services."""
import uuid

import pytest

from services.gateway.adapters.upstream import Upstream
from services.gateway.bootstrap import bootstrap
from services.gateway.entrypoints.app import create_app
from services.gateway.service_layer import handlers
from shared import tokens
from tests.conftest import make_settings

PASSWORD = "a long enough password"


class RecordingUpstream(Upstream):
    """The real header filtering and token signing; only the network send is recorded."""

    def __init__(self, settings):
        super().__init__(settings.service_urls, settings.internal_secret)
        self.calls = []

    def _send(self, method, url, params, body, headers):
        self.calls.append((method, url, headers))

        class Answer:
            status_code = 200
            headers = {"Content-Type": "application/json", "Set-Cookie": "leak=1"}

            def iter_content(self, size):
                yield b'{"ok": true}'

            def json(self):
                return {"ok": True}

            def close(self):
                pass

        return Answer()


@pytest.fixture
def gateway(tmp_path):
    container = bootstrap(make_settings(tmp_path))
    container.migrate()
    container.upstream = RecordingUpstream(container.settings)
    user, workspace = handlers.add_user(handlers.AddUser("Lead@Example.com", PASSWORD, "Acme", "owner"),
                                        uow=container.uow(), clock=container.clock)
    yield container, create_app(container).test_client(), workspace
    container.database.dispose()


def _token(client, email="lead@example.com", password=PASSWORD):
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def test_login_gives_a_bearer_token_that_reaches_the_workspace(gateway):
    container, client, workspace = gateway
    login = _token(client)
    assert login.status_code == 200
    assert login.json["user"]["workspaces"][0]["id"] == str(workspace.id)
    auth = {"Authorization": f"Bearer {login.json['access_token']}"}
    assert client.get("/api/v1/me", headers=auth).json["email"] == "lead@example.com"
    response = client.get(f"/api/v1/workspaces/{workspace.id}/sessions", headers=auth)
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    method, url, headers = container.upstream.calls[-1]
    assert (method, url) == ("GET", f"{container.settings.service_urls['checkin']}/workspaces/{workspace.id}/sessions")
    claims = tokens.verify(container.settings.internal_secret, headers[tokens.INTERNAL_HEADER],
                           typ=tokens.INTERNAL, audience=tokens.internal_audience("checkin"))
    assert claims["ws"] == {str(workspace.id): "owner"}


def test_wrong_password_and_unknown_email_look_the_same(gateway):
    _, client, _ = gateway
    wrong, unknown = _token(client, password="nope nope nope"), _token(client, email="who@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json


def test_other_workspace_is_not_found_and_never_forwarded(gateway):
    container, client, _ = gateway
    auth = {"Authorization": f"Bearer {_token(client).json['access_token']}"}
    response = client.post(f"/api/v1/workspaces/{uuid.uuid4()}/sessions", headers=auth, json={})
    assert response.status_code == 404 and container.upstream.calls == []


@pytest.mark.parametrize("make_header", [
    lambda s: "",
    lambda s: "Bearer not-a-jwt",
    lambda s: "Bearer " + tokens.issue(s.download_secret, typ=tokens.DOWNLOAD,
                                       audience=tokens.DOWNLOAD_AUDIENCE, subject="x", ttl=60),
    lambda s: "Bearer " + tokens.internal_token(s.internal_secret, "checkin", tokens.Principal(None)),
    lambda s: "Bearer " + tokens.issue(s.access_token_secret, typ=tokens.ACCESS,
                                       audience=tokens.API_AUDIENCE, subject=str(uuid.uuid4()), ttl=60),
])
def test_requests_without_a_valid_user_token_are_refused(gateway, make_header):
    container, client, workspace = gateway
    response = client.get(f"/api/v1/workspaces/{workspace.id}/sessions",
                          headers={"Authorization": make_header(container.settings)})
    assert response.status_code == 401 and response.json["code"] == 401
    assert container.upstream.calls == []


def test_spoofed_identity_headers_are_not_forwarded(gateway):
    container, client, workspace = gateway
    auth = {"Authorization": f"Bearer {_token(client).json['access_token']}",
            tokens.INTERNAL_HEADER: "spoofed", "X-User-Id": str(uuid.uuid4())}
    client.get(f"/api/v1/workspaces/{workspace.id}/sessions", headers=auth)
    forwarded = container.upstream.calls[-1][2]
    assert forwarded[tokens.INTERNAL_HEADER] != "spoofed" and "X-User-Id" not in forwarded
    assert "Authorization" not in forwarded  # the user's token stays at the gateway


def test_unknown_routes_and_bodies_get_the_one_error_shape(gateway):
    _, client, _ = gateway
    missing = client.get("/api/v1/internal/anything")
    assert missing.status_code == 404 and set(missing.json) == {"code", "status", "message", "errors"}
    bad = client.post("/api/v1/auth/login", json={"email": "x", "password": "y", "admin": True})
    assert bad.status_code == 422
    assert bad.json["errors"] == [{"location": "json", "field": "admin", "reason": "Unknown field."}]
    spec = client.get("/api/v1/openapi.json").json
    assert spec["info"]["title"] == "okrsnap API" and "/api/v1/auth/login" in spec["paths"]
    # The fake services describe nothing, so the forwarded operations are listed as undocumented.
    assert "POST /api/v1/sessions/{session_id}/objectives" in spec["x-okrsnap-undocumented"]


def test_encoded_path_tricks_cannot_reach_another_route(gateway):
    container, client, workspace = gateway
    auth = {"Authorization": f"Bearer {_token(client).json['access_token']}"}
    session_id = uuid.uuid4()
    client.get(f"/api/v1/sessions/{session_id}/snapshots/2026-W48%3Fowner%3Dunassigned", headers=auth)
    method, url, _ = container.upstream.calls[-1]
    assert url.endswith(f"/sessions/{session_id}/snapshots/2026-W48%3Fowner%3Dunassigned")
    assert client.get(f"/api/v1/sessions/{session_id}/%2E%2E/%2E%2E/internal", headers=auth).status_code == 404
