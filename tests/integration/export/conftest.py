"""An export service on real PostgreSQL and RabbitMQ, talking to a stub snapshot service served
over HTTP on 127.0.0.1. Each test gets its own database, broker namespace and stub."""
from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from services.export.bootstrap import bootstrap
from services.export.entrypoints.app import create_app
from shared import tokens
from tests.conftest import make_settings

SESSION = re.compile(r"^/sessions/([0-9a-f-]{36})$")
PRINCIPAL = re.compile(r"^/internal/users/([0-9a-f-]{36})/principal$")
PEOPLE = re.compile(r"^/internal/workspaces/([0-9a-f-]{36})/people$")
WEEK = re.compile(r"^/sessions/([0-9a-f-]{36})/snapshots/(\d{4}-W\d{2})$")


class SnapshotStub:
    """Serves the snapshot service's contract for the Sessions and week views it is given,
    checking the internal token like the real service and recording who asked; and the gateway's
    internal answer of what a user may reach now (`people`: user id -> Principal)."""

    def __init__(self):
        self.secret: str | None = None
        self.sessions: dict[str, dict] = {}
        self.views: dict[tuple[str, str], dict] = {}
        self.week_requests: list[tuple[tokens.Principal, dict]] = []
        self.people: dict[str, tokens.Principal] = {}
        self.names: dict[str, tuple[str, str]] = {}  # user id -> (display name, email): members
        self.workspace_names: dict[str, str] = {}
        self.people_requests: list[tuple[tokens.Principal, list[str]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                status, body = stub.answer(self.path, self.headers.get(tokens.INTERNAL_HEADER))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def answer(self, raw_path: str, token: str | None) -> tuple[int, dict]:
        if match := PRINCIPAL.match(urlsplit(raw_path).path):
            return self._principal(match[1], token)
        if match := PEOPLE.match(urlsplit(raw_path).path):
            return self._people(match[1], parse_qs(urlsplit(raw_path).query).get("id", []), token)
        try:
            claims = tokens.verify(self.secret, token or "", typ=tokens.INTERNAL,
                                   audience=tokens.internal_audience("snapshot"))
        except tokens.InvalidToken:
            return 401, {"message": "bad internal token"}
        principal = tokens.Principal.from_claims(claims)
        url = urlsplit(raw_path)
        if match := SESSION.match(url.path):
            return self._readable(match[1], principal)
        if match := WEEK.match(url.path):
            status, body = self._readable(match[1], principal)
            if status != 200:
                return status, body
            self.week_requests.append((principal, parse_qs(url.query)))
            return 200, self.views[(match[1], match[2])]
        return 404, {"message": "no such route"}

    def _principal(self, user_id: str, token: str | None) -> tuple[int, dict]:
        try:
            tokens.verify(self.secret, token or "", typ=tokens.INTERNAL, audience=tokens.internal_audience("gateway"))
        except tokens.InvalidToken:
            return 401, {"message": "bad internal token"}
        person = self.people.get(user_id, tokens.Principal(user_id))
        return 200, {"user_id": user_id, "workspaces": person.workspaces,
                     "without_okr_access": sorted(person.without_okr_access)}

    def _people(self, workspace_id: str, ids: list[str], token: str | None) -> tuple[int, dict]:
        try:
            claims = tokens.verify(self.secret, token or "", typ=tokens.INTERNAL,
                                   audience=tokens.internal_audience("gateway"))
        except tokens.InvalidToken:
            return 401, {"message": "bad internal token"}
        principal = tokens.Principal.from_claims(claims)
        self.people_requests.append((principal, ids))
        if not principal.member_of(workspace_id):
            return 404, {"message": "Workspace not found."}
        return 200, {"workspace": {"id": workspace_id, "name": self.workspace_names.get(workspace_id, "Acme")},
                     "people": [{"id": i, "name": self.names[i][0], "email": self.names[i][1]}
                                for i in ids if i in self.names]}

    def _readable(self, session_id: str, principal: tokens.Principal) -> tuple[int, dict]:
        session = self.sessions.get(session_id)
        if session is None or not principal.member_of(session["workspace_id"]):
            return 404, {"message": "Session not found."}
        return 200, session

    def add_session(self, workspace_id: uuid.UUID, name: str = "Q4 2026") -> str:
        session_id = str(uuid.uuid4())
        self.sessions[session_id] = {
            "id": session_id, "workspace_id": str(workspace_id), "name": name, "timezone": "Europe/Berlin",
            "week_start_day": "monday", "start_date": "2026-10-01", "end_date": "2026-12-31"}
        return session_id


@pytest.fixture
def snapshot_stub():
    stub = SnapshotStub()
    stub.thread.start()
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


@pytest.fixture
def export_settings(tmp_path, database_url, broker_url, namespace, snapshot_stub):
    settings = make_settings(tmp_path, OKRSNAP_DATABASE_URL=database_url, OKRSNAP_BROKER_URL=broker_url,
                             OKRSNAP_BROKER_NAMESPACE=namespace, OKRSNAP_SNAPSHOT_URL=snapshot_stub.url,
                             OKRSNAP_GATEWAY_URL=snapshot_stub.url,
                             OKRSNAP_CLOCK_FILE=str(tmp_path / "clock.json"))
    snapshot_stub.secret = settings.internal_secret
    return settings


@pytest.fixture
def container(export_settings):
    container = bootstrap(export_settings)
    container.migrate()
    yield container
    container.database.dispose()


@pytest.fixture
def client(container):
    return create_app(container).test_client()


@pytest.fixture
def start_worker(container):
    """Starts the export worker (consumer, builders, sweeper) in a thread; stopped at teardown."""
    stop = threading.Event()
    threads = []

    def start(**options):
        worker = container.worker(**{"sweep_interval": 0.2, "builders": 1, **options})
        thread = threading.Thread(target=worker.run, args=(stop,), name="export-worker", daemon=True)
        thread.start()
        threads.append(thread)
        return worker

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=15)
        assert not thread.is_alive(), "the export worker did not stop"


@pytest.fixture
def relay(container):
    relay = container.relay()
    yield relay
    relay.close()


@pytest.fixture
def workspace():
    return uuid.uuid4()


@pytest.fixture
def alice(workspace, snapshot_stub):
    alice = tokens.Principal(str(uuid.uuid4()), {str(workspace): "viewer"})
    snapshot_stub.people[alice.user_id] = alice  # what the gateway vouches for now
    snapshot_stub.names[alice.user_id] = ("Alice Lead", "alice@example.com")
    return alice
