"""What issue 14's per-request signals cost (issue 13 counts per-request CPU): the HTTP metrics
(counter and histogram by route template), the correlation id and its response header, measured
against the same Flask app without them, interleaved in one run, in CPU time per request.

Both prometheus-client modes: one process, and gunicorn's multiprocess mode (values in mmap'ed
files under PROMETHEUS_MULTIPROC_DIR), each in a child process of its own because the mode is
chosen when the first metric is made.

    python -m bench.http_metrics     (OKRSNAP_BENCH_HTTP_ROUNDS, default 15; _REQUESTS per round, 2,000)
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROUNDS = int(os.environ.get("OKRSNAP_BENCH_HTTP_ROUNDS", 15))
REQUESTS = int(os.environ.get("OKRSNAP_BENCH_HTTP_REQUESTS", 2_000))


def _app(instrumented: bool):
    from shared import http

    real = http.instrument
    if not instrumented:
        http.instrument = lambda app, service: None  # the baseline: everything else the same
    try:
        app, _api = http.create_app("services.checkin.entrypoints.app", title="bench")
    finally:
        http.instrument = real

    @app.get("/items/<int:item_id>")
    def item(item_id):
        return {"id": item_id}

    return app


def _cpu_per_request(app, environ: dict) -> float:
    def start_response(status, headers, exc_info=None):
        return None

    began = time.process_time()
    for _ in range(REQUESTS):
        for _chunk in app.wsgi_app(dict(environ), start_response):
            pass
    return (time.process_time() - began) / REQUESTS


def measure() -> dict:
    """In this process: median CPU microseconds per request, with and without, interleaved."""
    from werkzeug.test import EnvironBuilder

    apps = {"baseline": _app(False), "instrumented": _app(True)}
    environ = EnvironBuilder(path="/items/42", headers={"X-Request-ID": "bench-1"}).get_environ()
    for app in apps.values():  # warm: the labelled children, Flask's first-request work
        _cpu_per_request(app, environ)
    times: dict[str, list[float]] = {name: [] for name in apps}
    for round_ in range(ROUNDS):
        order = list(apps) if round_ % 2 == 0 else list(reversed(apps))
        for name in order:
            times[name].append(_cpu_per_request(apps[name], environ))
    median = {name: statistics.median(values) * 1e6 for name, values in times.items()}
    return {"baseline_us": round(median["baseline"], 1), "instrumented_us": round(median["instrumented"], 1),
            "added_us": round(median["instrumented"] - median["baseline"], 1),
            "ratio": round(median["instrumented"] / median["baseline"], 3)}


def main() -> None:
    if os.environ.get("OKRSNAP_BENCH_HTTP_CHILD"):
        print(json.dumps(measure()))
        return
    for mode in ("single process", "multiprocess (gunicorn)"):
        env = dict(os.environ, OKRSNAP_BENCH_HTTP_CHILD="1")
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with tempfile.TemporaryDirectory() as directory:
            if mode.startswith("multi"):
                env["PROMETHEUS_MULTIPROC_DIR"] = directory
            done = subprocess.run([sys.executable, "-m", "bench.http_metrics"], env=env, capture_output=True,
                                  text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{mode:26} CPU per request: {result['baseline_us']} us without, {result['instrumented_us']} us with "
              f"(+{result['added_us']} us, x{result['ratio']}); median of {ROUNDS} interleaved rounds of {REQUESTS}")


if __name__ == "__main__":
    main()
