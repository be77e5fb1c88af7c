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
import time
from pathlib import Path

import requests

from bench.stack import cpu_by_pid, cpu_used, seeded_stack

KEY_RESULTS = int(os.environ.get("OKRSNAP_BENCH_GATEWAY_KEY_RESULTS", 1_000))
ROUNDS = int(os.environ.get("OKRSNAP_BENCH_GATEWAY_ROUNDS", 8))
WEEKS = 6
BLOCK = 25  # requests per block between two CPU readings


def _block(gateway: list[int], send) -> tuple[float, list[float]]:
    """(gateway CPU ms per request, latencies in ms) of BLOCK requests."""
    before = cpu_by_pid(gateway)
    latencies = []
    for _ in range(BLOCK):
        started = time.perf_counter()
        response = send()
        _ = response.content
        if response.status_code >= 400:
            raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
        latencies.append((time.perf_counter() - started) * 1000)
    return cpu_used(before, cpu_by_pid(gateway)) * 1000 / BLOCK, latencies


def run() -> dict:
    from shared import tokens

    with seeded_stack(KEY_RESULTS, weeks=WEEKS) as (stack, session_id, _, _, _):
        api, direct = stack.http(), requests.Session()
        principal = tokens.Principal(stack.user_id, {stack.workspace: "owner"})

        def straight(method: str, service: str, path: str, **kwargs) -> requests.Response:
            headers = {tokens.INTERNAL_HEADER: tokens.internal_token(stack.internal_secret, service, principal)}
            return direct.request(method, f"http://127.0.0.1:{stack.ports[service]}{path}", headers=headers,
                                  **kwargs)

        week = stack.week_labels(session_id)[1][-1]
        key_result = api.get(f"{stack.api}/sessions/{session_id}/items",
                             params={"type": "key_result", "limit": 1}).json()["items"][0]["id"]
        view = f"/sessions/{session_id}/snapshots/{week}"
        check_in = f"/key-results/{key_result}/check-ins"
        body = {"value": 50, "status": "on_track", "comment": "bench"}
        gateway = stack.service_pids("services.gateway.entrypoints.app")
        cases = {
            "GET week view": (lambda: api.get(f"{stack.api}{view}", params={"owner": "all"}),
                              lambda: straight("GET", "snapshot", view, params={"owner": "all"})),
            "POST Check-in": (lambda: api.post(f"{stack.api}{check_in}", json=body),
                              lambda: straight("POST", "checkin", check_in, json=body)),
        }
        out = {"key_results": KEY_RESULTS, "view_bytes": len(cases["GET week view"][0]().content), "rows": {}}
        for label in cases:
            out["rows"][label] = {"cpu": [], "via": [], "direct": []}
        profilers = _profile(gateway)
        for _ in range(ROUNDS):  # interleaved: the machine's load falls on both alike
            for label, (via, to_service) in cases.items():
                cpu, latencies = _block(gateway, via)
                row = out["rows"][label]
                row["cpu"].append(cpu)
                row["via"] += latencies
                row["direct"] += _block(gateway, to_service)[1]
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
        return out


def _profile(pids: list[int]) -> list[subprocess.Popen]:
    """With OKRSNAP_BENCH_GATEWAY_PROFILE=<dir>: py-spy records each gateway process while it is
    measured (its output: <dir>/gateway-<pid>.txt, collapsed stacks)."""
    folder = os.environ.get("OKRSNAP_BENCH_GATEWAY_PROFILE")
    if not folder:
        return []
    os.makedirs(folder, exist_ok=True)
    py_spy = Path(sys.executable).with_name("py-spy")
    return [subprocess.Popen([str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
                              "--output", f"{folder}/gateway-{pid}.txt"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for pid in pids]


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
