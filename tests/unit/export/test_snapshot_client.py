"""The snapshot client against a local HTTP server that answers what each test sets."""
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.export.adapters.snapshot_client import (
    SnapshotClient,
    SnapshotNotFound,
    SnapshotRejected,
    SnapshotUnavailable,
)
from shared import tokens

SECRET = "test-internal-secret-0123456789abcdef"
ALICE = tokens.Principal(str(uuid.uuid4()), {str(uuid.uuid4()): "member"})


class Server:
    def __init__(self):
        self.status, self.body, self.headers, self.requests = 200, {}, {}, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests.append((self.path, dict(self.headers)))
                payload = server.body if isinstance(server.body, bytes) else json.dumps(server.body).encode()
                self.send_response(server.status)
                for name, value in server.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"


@pytest.fixture
def server():
    server = Server()
    thread = threading.Thread(target=server.http.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.http.shutdown()
    server.http.server_close()


@pytest.fixture
def client(server):
    return SnapshotClient(server.url, SECRET, timeout=(2, 5))


def test_session_is_fetched_as_the_principal(server, client):
    session_id, workspace_id = uuid.uuid4(), uuid.uuid4()
    server.body = {"id": str(session_id), "workspace_id": str(workspace_id), "name": "Q4", "extra": 1}

    assert client.session(session_id, ALICE) == {"id": session_id, "workspace_id": workspace_id}

    path, headers = server.requests[0]
    assert path == f"/sessions/{session_id}"
    claims = tokens.verify(SECRET, headers[tokens.INTERNAL_HEADER], typ=tokens.INTERNAL,
                           audience=tokens.internal_audience("snapshot"))
    assert tokens.Principal.from_claims(claims) == ALICE


def test_week_view_asks_for_the_owner_filter(server, client):
    session_id = uuid.uuid4()
    server.body = {"session": {"id": str(session_id), "workspace_id": str(uuid.uuid4()), "name": "Q4"},
                   "week": "2026-W48", "status": "current", "owner": "unassigned", "objectives": []}

    view = client.week_view(session_id, "2026-W48", "unassigned", ALICE)

    assert view["status"] == "current" and view["nearest_saved"] == {}
    assert server.requests[0][0] == f"/sessions/{session_id}/snapshots/2026-W48?owner=unassigned"


@pytest.mark.parametrize("status, body, headers, error", [
    (404, {"message": "Session not found."}, {}, SnapshotNotFound),
    (500, {"message": "boom"}, {}, SnapshotUnavailable),
    (503, b"", {}, SnapshotUnavailable),
    (401, {"message": "bad token"}, {}, SnapshotUnavailable),
    (400, {"message": "Unknown owner."}, {}, SnapshotRejected),
    (302, b"", {"Location": "http://169.254.169.254/latest/meta-data"}, SnapshotRejected),
    (200, b"not json", {}, SnapshotRejected),
    (200, {"id": "not-a-uuid"}, {}, SnapshotRejected),
])
def test_failures_are_classified(server, client, status, body, headers, error):
    server.status, server.body, server.headers = status, body, headers

    with pytest.raises(error):
        client.session(uuid.uuid4(), ALICE)
    assert len(server.requests) == 1  # never followed a redirect


def test_a_refusal_carries_the_services_message(server, client):
    server.status, server.body = 400, {"message": "Unknown owner."}

    with pytest.raises(SnapshotRejected, match="Unknown owner."):
        client.week_view(uuid.uuid4(), "2026-W48", "all", ALICE)


def test_an_unreachable_service_is_unavailable():
    with pytest.raises(SnapshotUnavailable):
        SnapshotClient("http://127.0.0.1:9", SECRET, timeout=(1, 1)).session(uuid.uuid4(), ALICE)
