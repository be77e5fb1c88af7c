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


def test_the_week_view_contract_reads_what_the_snapshot_service_writes(server):
    """Dumped with the snapshot service's own schema: ids, Initiatives, deltas, signals, Check-ins,
    late amendments, seal and the baseline week all reach the export."""
    from datetime import datetime, timezone

    from services.snapshot.entrypoints.schemas import WeekView as SnapshotWeekView

    owner, author, kr_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    moment = datetime(2026, 11, 26, 15, 4, tzinfo=timezone.utc)
    check_in = {"late": False, "id": uuid.uuid4(), "key_result_id": kr_id, "value": 3.5, "status": "at_risk",
                "confidence": 5, "comment": "why", "author_id": author, "checked_in_at": moment}
    view = {"session": {"id": uuid.uuid4(), "workspace_id": uuid.uuid4(), "name": "Q4", "timezone": "Europe/Berlin"},
            "week": "2026-W48", "starts_at": moment, "ends_at": moment, "status": "sealed",
            "nearest_saved": {"before": "2026-W47", "after": None}, "owner": "all",
            "objectives": [{"id": "o1", "title": "Grow", "owner_id": str(owner), "parent_id": None, "depth": 0,
                            "private": False, "progress": 0.25, "context": False, "key_results": [
                                {"id": str(kr_id), "objective_id": "o1", "title": "ARR", "owner_id": None,
                                 "start_value": 0, "target_value": 10, "current_value": 3.5, "unit": "k",
                                 "status": "at_risk", "progress": 0.35, "confidence": 5, "context": False,
                                 "initiatives": [{"id": "i1", "title": "Pilot", "has_canvas": False,
                                                  "owner_id": str(owner), "status": "in_progress",
                                                  "signals": ["active_without_impact"]}],
                                 "delta": {"new": False, "progress_points": 10.0, "value": 1.0,
                                           "status_from": "on_track", "status_to": "at_risk"},
                                 "signals": ["moved"]}]}],
            "check_ins": [check_in], "late_amendments": [dict(check_in, late=True)],
            "seal": {"content_hash": "c" * 64, "previous_hash": "b" * 64, "sealed_at": moment},
            "deltas": {"against": "2026-W47", "new": [], "removed": [{"type": "objective", "id": "o0", "title": "Old"}]},
            "signals": {"moved": 1}}
    server.body = json.loads(json.dumps(SnapshotWeekView().dump(view)))

    loaded = SnapshotClient(server.url, SECRET).week_view(uuid.uuid4(), "2026-W48", "all", ALICE)

    assert loaded["session"]["timezone"] == "Europe/Berlin"
    kr = loaded["objectives"][0]["key_results"][0]
    assert kr["initiatives"][0]["title"] == "Pilot" and kr["initiatives"][0]["owner_id"] == str(owner)
    assert kr["delta"]["progress_points"] == 10.0 and kr["signals"] == ["moved"] and kr["confidence"] == 5
    assert loaded["check_ins"][0]["author_id"] == str(author) and loaded["check_ins"][0]["checked_in_at"] == moment
    assert loaded["late_amendments"][0]["late"] is True
    assert loaded["seal"]["previous_hash"] == "b" * 64 and loaded["deltas"]["against"] == "2026-W47"
    assert loaded["deltas"]["removed"][0]["title"] == "Old"


def _small_view(**kr_changes) -> dict:
    kr = {"id": "k1", "title": "ARR", "owner_id": str(uuid.uuid4()), "start_value": 0, "target_value": 10.0,
          "current_value": 3.5, "unit": "k", "status": "at_risk", "progress": 0.35, "extra": "ignored"}
    kr.update(kr_changes)
    return {"session": {"id": str(uuid.uuid4()), "workspace_id": str(uuid.uuid4()), "name": "Q4"},
            "week": "2026-W48", "status": "sealed", "owner": "all",
            "objectives": [{"id": "o1", "title": "Grow", "owner_id": None, "key_results": [kr]}],
            "check_ins": [{"key_result_id": str(uuid.uuid4()), "value": 3, "status": "at_risk",
                           "checked_in_at": "2026-11-26T15:04:00+00:00"}]}


def test_a_week_view_within_the_contract_is_read_with_its_defaults(server, client):
    server.body = _small_view()

    view = client.week_view(uuid.uuid4(), "2026-W48", "all", ALICE)

    assert view["late_amendments"] == [] and view["seal"] is None and view["deltas"]["against"] is None
    assert view["check_ins"][0]["checked_in_at"].utcoffset() is not None
    assert view["objectives"][0]["key_results"][0]["current_value"] == 3.5


@pytest.mark.parametrize("change", [
    {"start_value": True},  # a flag is not a number
    {"current_value": "3.5"},
    {"owner_id": "not-a-member-id"},
    {"signals": ["moved", 3]},
    {"initiatives": [{"id": "i1"}]},  # no title
    {"delta": {"progress_points": "up"}},
    {"title": None},
])
def test_a_week_view_breaking_the_contract_is_rejected(server, client, change):
    server.body = _small_view(**change)

    with pytest.raises(SnapshotRejected, match="cannot read"):
        client.week_view(uuid.uuid4(), "2026-W48", "all", ALICE)


@pytest.mark.parametrize("breaks", [
    lambda v: v["check_ins"][0].update(checked_in_at="2026-11-26T15:04:00"),  # no timezone
    lambda v: v["check_ins"][0].pop("value"),
    lambda v: v["session"].update(timezone="Mars/Olympus"),
    lambda v: v.update(status="someday"),
    lambda v: v["objectives"][0].pop("key_results"),
])
def test_a_week_view_with_a_broken_part_is_rejected(server, client, breaks):
    view = _small_view()
    breaks(view)
    server.body = view

    with pytest.raises(SnapshotRejected):
        client.week_view(uuid.uuid4(), "2026-W48", "all", ALICE)
