"""Issue 14's signals, in process: HTTP metrics by route template, the correlation id (where it
is taken, refused, echoed, carried through the outbox into AMQP headers and onto a consumer's
log lines), /readyz, the heartbeat file's readiness, JSON log lines and the metrics settings."""
from __future__ import annotations

import json
import logging
import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from shared import healthcheck, observability
from shared.http import create_app
from shared.settings import ConfigurationError, metrics_host, metrics_port
from tests.conftest import make_settings


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def app():
    app, _api = create_app("services.checkin.entrypoints.app", title="t")

    @app.get("/items/<int:item_id>")
    def item(item_id):
        logging.getLogger("test.item").warning("reading item %s", item_id)
        return {"id": item_id, "correlation_id": observability.correlation_id()}

    return app


def test_requests_are_counted_by_route_template_status_and_method(app):
    labels = dict(service="checkin", process="web", route="/items/<int:item_id>", method="GET")
    before = sample("okrsnap_http_requests_total", status="200", **labels)
    before_count = sample("okrsnap_http_request_duration_seconds_count", **labels)
    client = app.test_client()
    for item_id in (1, 2, 3):
        assert client.get(f"/items/{item_id}").status_code == 200
    assert client.get("/nowhere/42").status_code == 404
    assert sample("okrsnap_http_requests_total", status="200", **labels) == before + 3
    assert sample("okrsnap_http_request_duration_seconds_count", **labels) == before_count + 3
    assert sample("okrsnap_http_requests_total", service="checkin", process="web", route="unmatched",
                  method="GET", status="404") >= 1
    raw = [s for f in REGISTRY.collect() if f.name == "okrsnap_http_requests" for s in f.samples
           if "/items/1" in s.labels.get("route", "")]
    assert not raw  # never a series per item


def test_a_service_takes_the_gateways_correlation_id_and_echoes_it(app):
    answer = app.test_client().get("/items/7", headers={"X-Request-ID": "gw-1234"})
    assert answer.json["correlation_id"] == "gw-1234" and answer.headers["X-Request-ID"] == "gw-1234"
    assert observability.correlation_id() is None  # reset after the request


@pytest.mark.parametrize("forged", ["two words", "x" * 200, "a\"b", ""])
def test_an_unusable_request_id_is_replaced(app, forged):
    answer = app.test_client().get("/items/7", headers={"X-Request-ID": forged})
    assert answer.json["correlation_id"] != forged and len(answer.json["correlation_id"]) == 32


def _gateway(tmp_path, **env):
    app, _api = create_app("services.gateway.entrypoints.app", title="gateway")
    app.extensions["okrsnap"] = SimpleNamespace(settings=make_settings(tmp_path, **env))
    app.add_url_rule("/ping", "ping", lambda: {"correlation_id": observability.correlation_id()})
    return app.test_client()


def test_the_gateway_keeps_a_client_request_id_only_when_told_to_trust_it(tmp_path):
    untrusted = _gateway(tmp_path).get("/ping", headers={"X-Request-ID": "client-chosen"})
    assert untrusted.json["correlation_id"] != "client-chosen"
    assert untrusted.headers["X-Request-ID"] == untrusted.json["correlation_id"]
    trusted = _gateway(tmp_path, OKRSNAP_TRUST_REQUEST_ID="true").get("/ping", headers={"X-Request-ID": "client-chosen"})
    assert trusted.json["correlation_id"] == "client-chosen"
    behind_proxy = _gateway(tmp_path, OKRSNAP_TRUSTED_PROXIES="1").get("/ping", headers={"X-Request-ID": "proxy-1"})
    assert behind_proxy.json["correlation_id"] == "proxy-1"


def test_a_429_counts_as_a_rate_limit_refusal_of_its_limit(tmp_path):
    app, _api = create_app("services.gateway.entrypoints.app", title="gateway")
    app.add_url_rule("/api/v1/auth/login", "login", lambda: ({"code": 429}, 429), methods=["POST"])
    before = sample("okrsnap_rate_limit_refusals_total", service="gateway", process="web", limit="login")
    assert app.test_client().post("/api/v1/auth/login").status_code == 429
    assert sample("okrsnap_rate_limit_refusals_total", service="gateway", process="web", limit="login") == before + 1
    assert observability.rate_limit_kind("/api/v1/exports") == "export"
    assert observability.rate_limit_kind("/api/v1/auth/accept-invite") == "invite"


def test_the_outbox_carries_the_correlation_id_beside_the_event_not_inside_it():
    event = {"event_id": str(uuid.uuid4()), "event_type": "checkin.session.created"}
    assert observability.with_correlation(event) == event  # none outside a request
    token = observability.set_correlation_id("req-9")
    try:
        stored = observability.with_correlation(event)
    finally:
        observability.reset_correlation_id(token)
    assert stored[observability.OUTBOX_KEY] == "req-9" and observability.OUTBOX_KEY not in event
    assert observability.split_correlation(stored) == (event, "req-9")
    assert observability.split_correlation(event) == (event, None)
    assert observability.split_correlation({**event, observability.OUTBOX_KEY: "bad id"}) == (event, None)


class _Message:
    def __init__(self, cid):
        self.headers = {observability.AMQP_HEADER: cid} if cid else {}


def test_a_consumer_logs_and_counts_each_applied_event_with_its_correlation_id(caplog):
    from shared.messaging import EventConsumer

    observability.install_record_factory()
    consumer = EventConsumer.__new__(EventConsumer)
    consumer.consumer, consumer.queue_name = "snapshot", "ns.snapshot.events"
    occurred = datetime.now(timezone.utc) - timedelta(seconds=30)
    events = [SimpleNamespace(event_type="checkin.key_result.checked_in", event_id=uuid.uuid4(), occurred_at=occurred)
              for _ in range(3)]
    before = {name: sample(name, service="snapshot", process="worker")
              for name in ("okrsnap_events_applied_total", "okrsnap_events_duplicate_total")}
    with caplog.at_level(logging.INFO, logger="shared.messaging"):
        consumer._applied([(events[0], _Message("corr-a")), (events[1], _Message("corr-b")),
                           (events[2], _Message(None))], 2)
    applied = [r for r in caplog.records if "applied" in r.getMessage()]
    assert [r.correlation_id for r in applied] == ["corr-a", "corr-b", None]
    assert sample("okrsnap_events_applied_total", service="snapshot", process="worker") == \
        before["okrsnap_events_applied_total"] + 2
    assert sample("okrsnap_events_duplicate_total", service="snapshot", process="worker") == \
        before["okrsnap_events_duplicate_total"] + 1
    assert 29 <= sample("okrsnap_consumer_lag_seconds", service="snapshot", process="worker") < 300


def test_log_lines_carry_the_correlation_id_as_text_and_as_json():
    observability.install_record_factory()
    token = observability.set_correlation_id("corr-7")
    try:
        record = logging.getLogRecordFactory()("x", logging.INFO, __file__, 1, "applied %s", ("e1",), None)
    finally:
        observability.reset_correlation_id(token)
    assert "[corr-7] applied e1" in observability.TextFormatter("snapshot-worker").format(record)
    entry = json.loads(observability.JsonFormatter("snapshot-worker").format(record))
    assert entry["correlation_id"] == "corr-7" and entry["message"] == "applied e1"
    assert entry["process"] == "snapshot-worker" and entry["level"] == "INFO"
    access = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(h)s", None, None)
    access.args = {"m": "POST", "U": "/check-ins", "s": "201", "D": 812, "h": "10.0.0.1", "B": 10,
                   "{x-request-id}o": "corr-8"}
    entry = json.loads(observability.JsonFormatter("checkin").format(access))
    assert (entry["method"], entry["path"], entry["status"], entry["correlation_id"]) == (
        "POST", "/check-ins", "201", "corr-8")


def test_json_logs_in_production_unless_told_otherwise():
    assert observability.json_logs({"OKRSNAP_ENV": "production"})
    assert not observability.json_logs({"OKRSNAP_ENV": "production", "OKRSNAP_LOG_FORMAT": "text"})
    assert not observability.json_logs({"OKRSNAP_ENV": "development"})
    assert observability.json_logs({"OKRSNAP_LOG_FORMAT": "json"})


def test_readyz_checks_database_migrations_and_broker(tmp_path):
    from services.checkin.bootstrap import bootstrap
    from services.checkin.entrypoints.app import create_app as create_checkin_app

    container = bootstrap(make_settings(tmp_path))
    client = create_checkin_app(container).test_client()
    unmigrated = client.get("/readyz")  # no internal token needed, like /healthz
    assert unmigrated.status_code == 503
    assert {"location": "readiness", "field": "migrations", "reason": unmigrated.json["errors"][0]["reason"]} \
        in unmigrated.json["errors"] and unmigrated.json["code"] == 503
    container.migrate()
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json["checks"] == {"database": "ok", "migrations": "ok", "broker": "ok"}


def test_the_heartbeat_file_says_whether_the_process_is_ready(tmp_path):
    from shared.process import write_heartbeat

    path = str(tmp_path / "heartbeat")
    write_heartbeat(path, {"process": "snapshot-worker", "ready": False,
                           "checks": {"snapshot.database": "unreachable: OperationalError", "broker": "ok"}})
    healthy, reason = healthcheck.check_ready(path, 30)
    assert not healthy and "snapshot.database: unreachable" in reason
    assert healthcheck.main(["file", path, "30"]) == 0  # alive all the same
    write_heartbeat(path, {"process": "snapshot-worker", "ready": True, "checks": {}})
    assert healthcheck.main(["ready", path, "30"]) == 0
    assert healthcheck.check_ready(path, 30, now=time.time() + 60)[0] is False  # stale


def test_a_worker_keeps_its_readiness_for_the_heartbeat(tmp_path, monkeypatch):
    import threading

    from shared import process

    settings = make_settings(tmp_path)
    ready, checks = process.worker_readiness(settings, ("snapshot",))
    assert not ready and checks["snapshot.migrations"].startswith("at none") and checks["broker"] == "ok"
    stop = threading.Event()
    observability.start_process("snapshot-worker", ready=lambda: (True, {"broker": "ok"}), stop=stop)
    try:
        status = observability.process_status()
    finally:
        stop.set()
    monkeypatch.setenv("OKRSNAP_DATA_DIR", str(tmp_path))
    assert status["process"] == "snapshot-worker" and status["pid"] == os.getpid()
    assert process.run_file() == str(tmp_path / "run" / "snapshot-worker.json")


def test_metrics_addresses_from_the_environment():
    assert metrics_port("gateway", {}) == 9180 and metrics_port("workers", {}) == 9188
    assert metrics_port("snapshot-worker", {"OKRSNAP_SNAPSHOT_WORKER_METRICS_PORT": "9300"}) == 9300
    assert metrics_port("snapshot-worker", {"OKRSNAP_METRICS_PORT": "9100",
                                            "OKRSNAP_SNAPSHOT_WORKER_METRICS_PORT": "9300"}) == 9100
    assert metrics_port("gateway", {"OKRSNAP_GATEWAY_METRICS_PORT": "off"}) is None
    with pytest.raises(ConfigurationError, match="OKRSNAP_EXPORT_METRICS_PORT"):
        metrics_port("export", {"OKRSNAP_EXPORT_METRICS_PORT": "http"})
    assert metrics_host({}) == "127.0.0.1"
    assert metrics_host({"OKRSNAP_METRICS_PORT": "9100"}) == "0.0.0.0"  # its own container or pod
    assert metrics_host({"OKRSNAP_METRICS_HOST": "10.1.2.3", "OKRSNAP_METRICS_PORT": "9100"}) == "10.1.2.3"


def test_dead_letter_reasons_are_a_bounded_label():
    assert observability.dead_letter_reason("refused: no signature") == "unsigned"
    assert observability.dead_letter_reason("unprocessable: bad sequence") == "unprocessable"
    assert observability.dead_letter_reason("failed 3 times in a row: KeyError") == "repeated_failure"
    assert observability.dead_letter_reason(f"something new {uuid.uuid4()}") == "other"


def test_gunicorns_master_empties_its_metrics_directory_at_start(tmp_path, monkeypatch):
    from shared import gunicorn_hooks

    monkeypatch.setenv("OKRSNAP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "restored-after-the-test")  # on_starting sets it
    stale = tmp_path / "metrics" / "checkin" / "counter_1.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an earlier run")
    server = SimpleNamespace(app=SimpleNamespace(app_uri="services.checkin.entrypoints.app:create_app()"))
    gunicorn_hooks.on_starting(server)
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(stale.parent) and not stale.exists()


def test_gunicorn_logs_json_lines_named_after_its_service_in_production(monkeypatch):
    import importlib
    import sys

    from shared import gunicorn_hooks

    monkeypatch.setenv("OKRSNAP_LOG_FORMAT", "json")
    monkeypatch.setattr(sys, "argv", ["gunicorn", "-c", "x.py", "services.export.entrypoints.app:create_app()"])
    try:
        config = importlib.reload(gunicorn_hooks).logconfig_dict
    finally:
        vars(gunicorn_hooks).pop("logconfig_dict", None)  # a reload keeps what the module had
    assert config["formatters"]["json"] == {"()": "shared.observability.JsonFormatter", "name": "export"}
    assert {"gunicorn.access", "gunicorn.error"} <= set(config["loggers"]) and config["root"]["handlers"] == ["json"]


def test_status_names_what_is_down_and_reads_the_pipeline(tmp_path):
    from click.testing import CliRunner

    from services.cli import main as okrsnap
    from shared.process import write_heartbeat
    from tests.helpers import free_port

    env = {"OKRSNAP_ENV": "test", "OKRSNAP_DATA_DIR": str(tmp_path / "var")}
    env.update({f"OKRSNAP_{s.upper()}_PORT": str(free_port()) for s in ("gateway", "checkin", "snapshot", "export")})
    assert CliRunner().invoke(okrsnap, ["migrate"], env=env).exit_code == 0
    (tmp_path / "var" / "run").mkdir()
    write_heartbeat(str(tmp_path / "var" / "run" / "okrsnap-workers.json"),
                    {"process": "okrsnap-workers", "pid": os.getpid(), "ready": True, "checks": {},
                     "metrics": "127.0.0.1:9188"})
    result = CliRunner().invoke(okrsnap, ["status", "--json"], env=env)
    assert result.exit_code == 1, result.output  # nothing serves HTTP
    report = json.loads(result.output)
    by_name = {p["name"]: p for p in report["processes"]}
    assert by_name["gateway"]["state"] == "down" and "does not answer" in by_name["gateway"]["reason"]
    assert by_name["okrsnap-workers"] == {"name": "okrsnap-workers", "state": "running", "ready": True,
                                          "metrics": "127.0.0.1:9188", "reason": ""}
    assert report["pipeline"]["outbox.checkin"] == {"unsent": 0, "oldest_seconds": 0.0}
    assert report["pipeline"]["parked_events"] == 0
    assert report["pipeline"]["weeks_waiting_to_seal"] == {"count": 0, "oldest_ended_at": None}
    table = CliRunner().invoke(okrsnap, ["status"], env=env).output
    assert "okrsnap-workers   running   yes" in table and "outbox.checkin: unsent 0" in table


def test_a_read_only_data_directory_does_not_stop_gunicorn(tmp_path, monkeypatch):
    from shared import gunicorn_hooks

    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("OKRSNAP_METRICS_DIR", str(blocked))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "restored-after-the-test")  # on_starting sets it
    gunicorn_hooks.on_starting(SimpleNamespace(app=SimpleNamespace(app_uri="services.export.entrypoints.app:x")))
    assert os.path.isdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert "okrsnap-metrics-export-" in os.environ["PROMETHEUS_MULTIPROC_DIR"]
