"""Outages answer 503 with Retry-After, not 500 (issue 10, defect 5), and the gateway does not
turn a pooled connection the service had closed into a 503 of its own (defect 6)."""
from __future__ import annotations

import uuid

import pytest

from services.checkin.bootstrap import bootstrap as checkin_bootstrap
from services.checkin.entrypoints.app import create_app as create_checkin_app
from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
from services.snapshot.entrypoints.app import create_app as create_snapshot_app
from tests.conftest import make_settings
from tests.helpers import free_port, internal_headers
from tests.unit.test_gateway_upstream import HttpService


@pytest.mark.parametrize("service", ["checkin", "snapshot"])
def test_a_database_outage_answers_503_with_retry_after(tmp_path, service):
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/okrsnap?connect_timeout=2"
    settings = make_settings(tmp_path, OKRSNAP_DATABASE_URL=dead)
    if service == "checkin":
        app = create_checkin_app(checkin_bootstrap(settings))
        user, workspace = uuid.uuid4(), uuid.uuid4()
        headers = internal_headers(settings, "checkin", user, {workspace: "owner"})
        response = app.test_client().post(f"/key-results/{uuid.uuid4()}/check-ins", headers=headers,
                                          json={"value": 3, "status": "on_track", "comment": ""})
    else:
        app = create_snapshot_app(snapshot_bootstrap(settings))
        headers = internal_headers(settings, "snapshot", uuid.uuid4(), {uuid.uuid4(): "owner"})
        response = app.test_client().get(f"/sessions/{uuid.uuid4()}/snapshots", headers=headers)
    assert response.status_code == 503, response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    assert response.get_json()["code"] == 503 and "unreachable" in response.get_json()["message"]


class KeepAliveService(HttpService):
    """An HTTP/1.1 service that keeps connections alive and closes one idle for `idle_close`
    seconds (of `clock`) when the next request arrives on it, without answering: what a
    gunicorn worker's keep-alive close looks like to a client whose request crossed it."""

    def __init__(self, clock: list, idle_close: float = 2.0):
        self.clock, self.idle_close = clock, idle_close
        self.answered = self.dropped = 0
        self.last_answer: dict = {}  # per connection
        super().__init__()

    def answer(self, conn, request_line: str) -> bool:
        last = self.last_answer.get(conn)
        if last is not None and self.clock[0] - last >= self.idle_close:
            self.dropped += 1
            return False  # closed: the request is lost
        self.answered += 1
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                     b"Connection: keep-alive\r\n\r\n{}")
        self.last_answer[conn] = self.clock[0]
        return True


def test_the_gateway_never_reuses_a_connection_the_service_closed_as_idle(monkeypatch):
    from services.gateway.adapters import upstream
    from shared import tokens

    clock = [1000.0]
    monkeypatch.setattr(upstream, "monotonic", lambda: clock[0], raising=False)
    service = KeepAliveService(clock)
    client = upstream.Upstream({"checkin": service.url}, "test-internal-secret-0123456789abcdef")
    principal = tokens.Principal(str(uuid.uuid4()), {})

    def post():
        response = client.forward("checkin", "POST", "/check-ins", principal=principal, params={},
                                  body=b'{"value": 1}', headers={"Content-Type": "application/json"})
        assert response.content == b"{}"  # read to the end: the connection goes back to the pool
        return response.status_code

    assert post() == 200 and post() == 200
    assert service.connections == 1  # kept alive
    clock[0] += 3  # idle past the service's keep-alive timeout
    assert post() == 200  # not a 503: a fresh connection, not the one the service closed
    assert service.dropped == 0 and service.answered == 3
