"""The gateway's CPU per forwarded request, this checkout against an earlier commit, interleaved
in one run (issue 13). Each side is the gateway's Flask app in a process of its own on its own
PostgreSQL database, forwarding to one stub service in this process (so the service's work is
never counted): a week view of about 5 MB with owner and author ids (named by the gateway), a
small GET, and a Check-in POST (by the owner of its Key Result). Per request: the side's process CPU time (median of blocks,
blocks of the two sides alternating) and its wall time.

    python -m bench.gateway_ab [COMMIT]      (default 6c2a974, before issue 13's gateway work)

The driver part of this file runs inside each side's tree (`drive`), so it imports nothing of
bench/ and only what both trees have.
"""
from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = {"GET week view (5 MB, named)": 4, "GET small": 40, "POST Check-in": 40}
ROUNDS = int(os.environ.get("OKRSNAP_BENCH_GATEWAY_ROUNDS", 6))
PASSWORD = "bench-password-0123"


def week_view(key_results: int = 10_000) -> bytes:
    """Shaped like a week view: Objectives, Key Results with a Check-in and an Initiative, each
    with an owner or author id (compact JSON, as the services answer)."""
    people = [str(uuid.uuid4()) for _ in range(8)]
    objectives = []
    for o in range(key_results // 10):
        krs = [{"id": str(uuid.uuid4()), "title": f"Key Result {o}.{k}", "owner_id": people[(o + k) % 8],
                "progress": 0.5, "value": 12.5, "target_value": 100, "status": "on_track", "confidence": 7,
                "delta": {"progress": 0.1, "since": "2026-W40"}, "signals": ["stale"],
                "check_ins": [{"id": str(uuid.uuid4()), "author_id": people[k % 8], "value": 3, "comment": "moved"}],
                "initiatives": [{"id": str(uuid.uuid4()), "owner_id": None, "title": "Initiative"}]}
               for k in range(10)]
        objectives.append({"id": str(uuid.uuid4()), "title": f"Objective {o}", "owner_id": people[o % 8],
                           "key_results": krs})
    return json.dumps({"week": "2026-W48", "objectives": objectives}, separators=(",", ":")).encode()


class _Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies: dict = {}

    def _answer(self, status: int, body: bytes):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 - the stdlib's name
        self._answer(200, self.bodies["view"] if "/snapshots/" in self.path else self.bodies["small"])

    def do_POST(self):  # noqa: N802
        """A Check-in recorded by the requester on their own Key Result (as the check-in service
        answers it): the requester is read from the internal token, unverified."""
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        claims = self.headers.get("X-Okrsnap-Internal-Token", "..").split(".")[1]
        requester = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["sub"]
        self._answer(201, self.bodies["check_in"].replace(b"REQUESTER", requester.encode()))

    def log_message(self, *args):
        pass


# -- inside each side's tree -----------------------------------------------------------------------

def drive(database_url: str, service_url: str) -> None:
    """Serves commands from stdin ("<case> <n>") with the gateway app of the tree on sys.path;
    answers one JSON line per command: CPU and wall seconds of the n requests."""
    from services.gateway.bootstrap import bootstrap
    from services.gateway.entrypoints.app import create_app
    from services.gateway.service_layer import handlers
    from tests.conftest import make_settings

    settings = make_settings(Path(tempfile.mkdtemp(prefix="okrsnap-gw-ab-")), OKRSNAP_DATABASE_URL=database_url,
                             OKRSNAP_CHECKIN_URL=service_url, OKRSNAP_SNAPSHOT_URL=service_url,
                             OKRSNAP_LOGIN_RATE="100000/60", OKRSNAP_LOGIN_IP_RATE="100000/60")
    container = bootstrap(settings)
    container.migrate()
    handlers.add_user(handlers.AddUser("lead@bench.example", PASSWORD, "Bench", "owner"), uow=container.uow(),
                      clock=container.clock)
    client = create_app(container).test_client()
    token = client.post("/api/v1/auth/login", json={"email": "lead@bench.example", "password": PASSWORD}).json
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    session_id, key_result = uuid.uuid4(), uuid.uuid4()
    send = {
        "GET week view (5 MB, named)": lambda: client.get(f"/api/v1/sessions/{session_id}/snapshots/2026-W48",
                                                          query_string={"owner": "all"}, headers=auth),
        "GET small": lambda: client.get(f"/api/v1/sessions/{session_id}/snapshots", headers=auth),
        "POST Check-in": lambda: client.post(f"/api/v1/key-results/{key_result}/check-ins", headers=auth,
                                             json={"value": 50, "status": "on_track", "comment": "bench"}),
    }
    print("ready", flush=True)
    for line in sys.stdin:
        case, _, n = line.strip().rpartition(" ")
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(int(n)):
            response = send[case]()
            if response.status_code >= 400:
                raise RuntimeError(f"{case}: {response.status_code} {response.get_data()[:300]!r}")
            response.get_data()
        print(json.dumps({"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}), flush=True)


# -- the run ---------------------------------------------------------------------------------------

def run(commit: str = "6c2a974") -> dict:
    from bench.stack import Database

    before_tree = Path(tempfile.mkdtemp(prefix="okrsnap-before-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(before_tree)], input=archive, check=True)
    _Stub.bodies = {"view": week_view(), "small": json.dumps({"months": [], "owner_id": str(uuid.uuid4())}).encode(),
                    "check_in": json.dumps({"check_in": {"id": str(uuid.uuid4()), "value": 50, "author_id": "REQUESTER",
                                                         "status": "on_track", "comment": "bench"},
                                            "key_result": {"id": str(uuid.uuid4()), "owner_id": "REQUESTER"}}).encode()}
    stub = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    service_url = f"http://127.0.0.1:{stub.server_address[1]}"
    databases = {"before": Database("okrsnap_bench_gw_before"), "after": Database("okrsnap_bench_gw_after")}
    sides = {}
    try:
        for side, tree in (("before", before_tree), ("after", ROOT)):
            sides[side] = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "drive", databases[side].url_string, service_url],
                cwd=tree, env=dict(os.environ, PYTHONPATH=str(tree), OKRSNAP_LOG_LEVEL="WARNING"),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            if sides[side].stdout.readline().strip() != "ready":
                raise RuntimeError(f"the {side} side did not start")
        out = {"commit": commit, "view_bytes": len(_Stub.bodies["view"]),
               "rows": {case: {side: [] for side in sides} for case in BLOCK}}
        for round_ in range(ROUNDS + 1):
            order = list(sides) if round_ % 2 else list(reversed(sides))  # alternate who goes first
            for case, n in BLOCK.items():
                for side in order:
                    sides[side].stdin.write(f"{case} {n}\n")
                    sides[side].stdin.flush()
                    result = json.loads(sides[side].stdout.readline())
                    if round_:  # the first round only warms both up
                        out["rows"][case][side].append((result["cpu"] / n * 1000, result["wall"] / n * 1000))
        return out
    finally:
        for process in sides.values():
            process.stdin.close()
            process.wait(timeout=30)
        stub.shutdown()
        for database in databases.values():
            database.close()


def report(r: dict) -> str:
    lines = [f"## The gateway's CPU per forwarded request: {r['commit']} against this checkout", "",
             "In-process gateway app (Flask test client) on PostgreSQL, one stub service; medians of "
             f"{ROUNDS} alternating blocks per side. Week view: {r['view_bytes'] / 1e6:.1f} MB.", "",
             "| request | CPU ms before | CPU ms after | after/before | wall ms before | wall ms after |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for case, sides in r["rows"].items():
        cpu = {side: statistics.median(c for c, _ in samples) for side, samples in sides.items()}
        wall = {side: statistics.median(w for _, w in samples) for side, samples in sides.items()}
        lines.append(f"| {case} | {cpu['before']:.2f} | {cpu['after']:.2f} | {cpu['after'] / cpu['before']:.2f} | "
                     f"{wall['before']:.2f} | {wall['after']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["drive"]:
        sys.path.insert(0, os.getcwd())
        drive(*sys.argv[2:4])
    else:
        print(report(run(*sys.argv[1:2])))
