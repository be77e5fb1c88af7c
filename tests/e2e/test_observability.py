"""Issue 14, done when: after a check-in, /metrics of every process of a real installation
(`okrsnap up` on PostgreSQL and RabbitMQ, two gunicorn workers per service, each relay and
worker apart) counts it, and one correlation id is read from the gateway's log line through the
check-in service's to the snapshot worker's. Also /readyz and `okrsnap status`."""
from __future__ import annotations

import json
import subprocess
import uuid
from datetime import datetime, timezone

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from shared.settings import METRICS_PROCESSES, SERVICES
from shared.weeks import Week
from tests.conftest import wait_until
from tests.e2e.test_end_to_end import OKRSNAP, PASSWORD, Okrsnap, _owner_with_a_key_result
from tests.helpers import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def observed(tmp_path, database_url, broker_url, namespace):
    app = Okrsnap(tmp_path, {"OKRSNAP_DATABASE_URL": database_url, "OKRSNAP_BROKER_URL": broker_url,
                             "OKRSNAP_BROKER_NAMESPACE": namespace, "OKRSNAP_TRUST_REQUEST_ID": "true"})
    app.env["OKRSNAP_LOG_LEVEL"] = "INFO"  # the consumer's line per applied event is INFO
    app.metrics = {}
    for name in METRICS_PROCESSES:
        app.metrics[name] = free_port()
        app.env[f"OKRSNAP_{name.upper().replace('-', '_')}_METRICS_PORT"] = str(app.metrics[name])
    yield app
    app.stop()


def scrape(app: Okrsnap, process: str) -> dict[tuple, float]:
    """{(sample name, frozenset of labels): value} of one process's /metrics."""
    text = requests.get(f"http://127.0.0.1:{app.metrics[process]}/metrics", timeout=10).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 if none)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def test_a_check_in_is_counted_everywhere_and_its_correlation_id_followed(observed):
    app = observed
    app.cli("user", "add", "lead@example.com", "--workspace", "Acme", "--role", "owner", "--password", PASSWORD)
    app.up("--no-demo", "--web-workers", "2")
    api, session_id, kr_id = _owner_with_a_key_result(app, "lead@example.com")

    correlation = f"e2e-{uuid.uuid4().hex}"
    checked = api.post(f"{app.url}/key-results/{kr_id}/check-ins", json={"value": 5, "status": "on_track"},
                       headers={"X-Request-ID": correlation})
    assert checked.status_code == 201, checked.text
    assert checked.headers["X-Request-ID"] == correlation  # trusted (OKRSNAP_TRUST_REQUEST_ID)
    forged = api.get(f"{app.url}/me", headers={"X-Request-ID": "two words \"quoted\""})
    assert forged.headers["X-Request-ID"] != "two words \"quoted\""  # unusable: a fresh one instead
    for _ in range(7):  # spread over both gunicorn workers: the master's /metrics sums them
        assert api.get(f"{app.url}/me").status_code == 200

    week = Week.of_instant(datetime.now(timezone.utc), "UTC", "monday").label
    wait_until(lambda: any(k["current_value"] == 5.0 for o in api.get(
        f"{app.url}/sessions/{session_id}/snapshots/{week}").json().get("objectives", []) for k in o["key_results"]),
        timeout=30, message="the check-in in the week's Snapshot")
    job = api.post(f"{app.url}/exports", json={"session_id": session_id, "week": week, "format": "csv"})
    assert job.status_code == 202, job.text
    wait_until(lambda: api.get(f"{app.url}/exports/{job.json()['id']}").json()["status"] == "done",
               timeout=60, message="the export built")

    gateway = scrape(app, "gateway")
    check_in_route = "/api/v1/key-results/<uuid:key_result_id>/check-ins"
    routes = {dict(labels).get("route") for (name, labels) in gateway if name == "okrsnap_http_requests_total"}
    assert not any(kr_id in (route or "") for route in routes), routes  # templates, never raw paths
    posted = [dict(labels) for (name, labels), v in gateway.items()
              if name == "okrsnap_http_requests_total" and "check-ins" in dict(labels)["route"]]
    assert posted and {p["method"] for p in posted} == {"POST"} and {p["status"] for p in posted} == {"201"}, posted
    assert value(gateway, "okrsnap_http_requests_total", service="gateway", route="/api/v1/me", status="200") == 8
    assert value(gateway, "okrsnap_http_request_duration_seconds_count", service="gateway", route="/api/v1/me") == 8
    assert posted[0]["route"].startswith(check_in_route.split("<")[0] + "<"), posted[0]["route"]

    checkin = scrape(app, "checkin")
    assert value(checkin, "okrsnap_http_requests_total", service="checkin", method="POST", status="201") >= 4
    snapshot = scrape(app, "snapshot")
    assert value(snapshot, "okrsnap_http_requests_total", service="snapshot", method="GET", status="200") >= 1
    export = scrape(app, "export")
    assert value(export, "okrsnap_http_requests_total", service="export", method="POST", status="202") == 1

    relay = scrape(app, "checkin-relay")
    assert value(relay, "okrsnap_events_published_total", service="checkin", process="relay") >= 4
    wait_until(lambda: value(scrape(app, "checkin-relay"), "okrsnap_outbox_backlog", service="checkin") == 0,
               timeout=20, message="the check-in outbox drained")
    worker = scrape(app, "snapshot-worker")
    assert value(worker, "okrsnap_events_applied_total", service="snapshot", process="worker") >= 4
    assert ("okrsnap_consumer_lag_seconds", frozenset({("service", "snapshot"), ("process", "worker")})) in worker
    assert ("okrsnap_weeks_waiting_to_seal", frozenset({("service", "snapshot"), ("process", "worker")})) in worker
    assert value(scrape(app, "export-relay"), "okrsnap_events_published_total", service="export") == 1
    export_worker = scrape(app, "export-worker")
    assert value(export_worker, "okrsnap_events_applied_total", service="export") == 1
    assert value(export_worker, "okrsnap_export_jobs", state="done") == 1
    assert value(export_worker, "okrsnap_export_build_seconds_count", service="export", format="csv") == 1

    # One correlation id: the gateway's request line, the check-in service's, the snapshot worker's.
    logs = app.env["OKRSNAP_DATA_DIR"] + "/logs"

    def lines_with(process: str) -> list[str]:
        with open(f"{logs}/{process}.log", encoding="utf-8") as handle:
            return [line for line in handle if correlation in line]

    assert any("POST /api/v1/key-results/" in line for line in lines_with("gateway"))
    assert any("POST /key-results/" in line for line in lines_with("checkin"))
    applied = wait_until(lambda: [line for line in lines_with("snapshot-worker")
                                  if "applied checkin.key_result.checked_in" in line],
                         timeout=10, message="the snapshot worker's line with the correlation id")
    assert applied

    for service in SERVICES:
        ready = requests.get(f"http://127.0.0.1:{app.ports[service]}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["database"] == "ok" and ready.json()["checks"]["migrations"] == "ok"

    def status_all_ready():
        done = subprocess.run([*OKRSNAP, "status", "--json"], env=app.env, capture_output=True, text=True,
                              timeout=120)
        return (done, json.loads(done.stdout)) if done.returncode == 0 else None

    done, report = wait_until(status_all_ready, timeout=30, message="okrsnap status: every process ready")
    names = {p["name"] for p in report["processes"]}
    assert set(SERVICES) | {"checkin-relay", "snapshot-worker", "export-relay", "export-worker"} <= names
    assert all(p["metrics"] for p in report["processes"])
    pipeline = report["pipeline"]
    assert pipeline["outbox.checkin"]["unsent"] == 0
    assert pipeline["queue.snapshot.events"] == {"waiting": 0, "dead_letters": 0}
    assert pipeline["parked_events"] == 0
    assert pipeline["weeks_waiting_to_seal"]["count"] >= 0
