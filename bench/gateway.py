"""The gateway's own cost per forwarded request (issue 13): a week view (GET) and a Check-in (POST)
through the gateway, against the same request sent straight to the service with an internal
token, interleaved in one run on the real processes (`okrsnap up` on PostgreSQL and RabbitMQ,
two gunicorn workers per service).

Reports per request: the gateway's CPU time (its gunicorn processes' utime+stime from /proc over
a block of requests, divided by their number: robust on a shared machine) and the latency p50 /
p90 through the gateway and straight to the service (the difference is what the gateway adds).

    python -m bench.gateway        (OKRSNAP_BENCH_GATEWAY_KEY_RESULTS, default 1,000)
"""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.web import BROKER, DB_SERVER, INTERNAL_SECRET, PASSWORD, _free_port, _history
from services.launcher import cpu_ticks_by_group

KEY_RESULTS = int(os.environ.get("OKRSNAP_BENCH_GATEWAY_KEY_RESULTS", 1_000))
ROUNDS = int(os.environ.get("OKRSNAP_BENCH_GATEWAY_ROUNDS", 8))
BLOCK = 25  # requests per block between two CPU readings
TICK = os.sysconf("SC_CLK_TCK")


def _gateway_group() -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"gunicorn" in cmdline and b"services.gateway.entrypoints.app" in cmdline:
                return int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2])
    raise RuntimeError("no gateway gunicorn found")


def _block(group: int, send) -> tuple[float, list[float]]:
    """(gateway CPU ms per request, latencies in ms) of BLOCK requests."""
    before = cpu_ticks_by_group()[group]
    latencies = []
    for _ in range(BLOCK):
        started = time.perf_counter()
        response = send()
        _ = response.content
        if response.status_code >= 400:
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
        latencies.append((time.perf_counter() - started) * 1000)
    after = cpu_ticks_by_group()[group]
    return (after - before) * 1000 / TICK / BLOCK, latencies


def run() -> dict:
    from shared import tokens

    name = f"okrsnap_bench_gw_{uuid.uuid4().hex[:8]}"
    server = make_url(DB_SERVER)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    tmp = tempfile.mkdtemp(prefix="okrsnap-bench-gw-")
    env = dict(os.environ, OKRSNAP_ENV="test", OKRSNAP_DATA_DIR=str(Path(tmp) / "var"), OKRSNAP_LOG_LEVEL="WARNING",
               OKRSNAP_DATABASE_URL=server.set(database=name).render_as_string(hide_password=False),
               OKRSNAP_BROKER_URL=BROKER, OKRSNAP_BROKER_NAMESPACE=f"okrsnap-bench-{uuid.uuid4().hex[:8]}",
               OKRSNAP_LOGIN_RATE="1000/60", OKRSNAP_LOGIN_IP_RATE="1000/60",
               OKRSNAP_INTERNAL_SECRET=INTERNAL_SECRET)
    ports = {s: _free_port() for s in ("gateway", "checkin", "snapshot", "export")}
    env.update({f"OKRSNAP_{s.upper()}_PORT": str(p) for s, p in ports.items()})
    base = f"http://127.0.0.1:{ports['gateway']}"
    cli = [sys.executable, "-m", "services.cli"]
    emails = [f"owner{i}@bench.example" for i in range(4)]
    for i, email in enumerate(emails):
        subprocess.run([*cli, "user", "add", email, "--workspace", "Bench", "--role", "owner" if i == 0 else "member",
                        "--password", PASSWORD], env=env, check=True, capture_output=True)
    log = Path(tmp) / "up.log"
    process = subprocess.Popen([*cli, "up", "--no-demo", "--web-workers", "2"], env=env, stdout=log.open("w"),
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while "okrsnap is up" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"okrsnap up failed:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        api = requests.Session()
        token = api.post(f"{base}/api/v1/auth/login", json={"email": emails[0], "password": PASSWORD}).json()
        api.headers["Authorization"] = f"Bearer {token['access_token']}"
        user_id, workspace = token["user"]["id"], token["user"]["workspaces"][0]["id"]
        owner_ids = [m["id"] for m in api.get(f"{base}/api/v1/workspaces/{workspace}/members").json()["members"]]
        principal = tokens.Principal(user_id, {workspace: "owner"})
        direct = requests.Session()

        def internal(service: str) -> dict:
            return {tokens.INTERNAL_HEADER: tokens.internal_token(INTERNAL_SECRET, service, principal)}

        imported = direct.post(f"http://127.0.0.1:{ports['checkin']}/workspaces/{workspace}/sessions/import",
                               json=_history(date.today() - timedelta(weeks=6), owner_ids),
                               headers=internal("checkin"), timeout=600)
        imported.raise_for_status()
        session_id = imported.json()["id"]
        deadline = time.monotonic() + 600
        while True:  # until the snapshot service holds every item
            calendar = api.get(f"{base}/api/v1/sessions/{session_id}/snapshots").json()
            weeks = [w for m in calendar.get("months", []) for w in m["weeks"]]
            sealed = [w for w in weeks if w["status"] == "sealed"]
            current = next((w for w in weeks if w["status"] == "current"), None)
            if current and sealed and (current.get("items") or 0) >= KEY_RESULTS * 1.2:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Snapshot did not fill: {calendar}")
            time.sleep(1)
        week = sealed[-1]["week"]
        key_result = api.get(f"{base}/api/v1/sessions/{session_id}/items",
                             params={"type": "key_result", "limit": 1}).json()["items"][0]["id"]
        view = f"/sessions/{session_id}/snapshots/{week}"
        check_in = f"/key-results/{key_result}/check-ins"
        body = {"value": 50, "status": "on_track", "comment": "bench"}
        group = _gateway_group()
        cases = {
            "GET week view": (lambda: api.get(f"{base}/api/v1{view}", params={"owner": "all"}),
                              lambda: direct.get(f"http://127.0.0.1:{ports['snapshot']}{view}",
                                                 params={"owner": "all"}, headers=internal("snapshot"))),
            "POST Check-in": (lambda: api.post(f"{base}/api/v1{check_in}", json=body),
                              lambda: direct.post(f"http://127.0.0.1:{ports['checkin']}{check_in}", json=body,
                                                  headers=internal("checkin"))),
        }
        size = len(cases["GET week view"][0]().content)
        out = {"key_results": KEY_RESULTS, "view_bytes": size, "rows": {}}
        for label in cases:
            out["rows"][label] = {"cpu": [], "via": [], "direct": []}
        for _ in range(ROUNDS):  # interleaved: the machine's load falls on both alike
            for label, (via, straight) in cases.items():
                cpu, latencies = _block(group, via)
                row = out["rows"][label]
                row["cpu"].append(cpu)
                row["via"] += latencies
                row["direct"] += _block(group, straight)[1]
        return out
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def report(r: dict) -> str:
    def q(samples, p):
        return statistics.quantiles(samples, n=10)[p] if len(samples) > 1 else samples[0]

    lines = [f"## The gateway per request ({r['key_results']:,} Key Results; week view {r['view_bytes'] / 1024:.0f} KiB)",
             "", "| request | gateway CPU ms/request (median of blocks) | via gateway p50 / p90 | "
             "straight to service p50 / p90 | added p50 |", "| --- | ---: | ---: | ---: | ---: |"]
    for label, row in r["rows"].items():
        via50, direct50 = statistics.median(row["via"]), statistics.median(row["direct"])
        lines.append(f"| {label} | {statistics.median(row['cpu']):.1f} | {via50:.1f} / {q(row['via'], 8):.1f} ms | "
                     f"{direct50:.1f} / {q(row['direct'], 8):.1f} ms | {via50 - direct50:.1f} ms |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(run()))
