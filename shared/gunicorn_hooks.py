"""Gunicorn hooks for prometheus-client's multiprocess mode, for every okrsnap HTTP service:
`okrsnap up` passes `-c python:shared.gunicorn_hooks`, deploy/gunicorn.conf.py imports them.

The workers write their samples into files under PROMETHEUS_MULTIPROC_DIR; the master serves
/metrics on the service's metrics port, summing them. The directory is one per installation and
service (<data dir>/metrics/<service>, or OKRSNAP_METRICS_DIR/<service>), emptied when the
master starts (what an earlier run left would be counted again), and a dead worker's live gauges
are dropped (child_exit). The environment variable is set here, at import in the master, before
any metric exists: prometheus-client chooses its mode when the first metric is made."""
from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from shared.observability import json_logs

log = logging.getLogger("okrsnap.metrics")


def _json_logging() -> dict:
    """JSON lines for gunicorn's own loggers and the app's (root), as in every other process."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    quiet = {"level": "INFO", "handlers": ["json"], "propagate": False}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": "shared.observability.JsonFormatter", "name": _service_in_argv()}},
        "handlers": {"json": handler},
        "root": {"level": os.environ.get("OKRSNAP_LOG_LEVEL", "INFO").upper(), "handlers": ["json"]},
        "loggers": {"gunicorn.error": dict(quiet, qualname="gunicorn.error"),
                    "gunicorn.access": dict(quiet, qualname="gunicorn.access")},
    }



def _service(server) -> str:
    return _service_named([getattr(server.app, "app_uri", None) or ""])


def _service_in_argv() -> str:
    """Read before gunicorn has parsed its arguments (the log configuration comes with this module)."""
    return _service_named(sys.argv)


def _service_named(args) -> str:
    """checkin for "services.checkin.entrypoints.app:create_app()"; OKRSNAP_SERVICE otherwise."""
    for arg in args:
        parts = arg.split(":", 1)[0].split(".")
        if len(parts) > 2 and parts[0] == "services" and parts[2] == "entrypoints":
            return parts[1]
    return os.environ.get("OKRSNAP_SERVICE", "web")


def _metrics_root() -> Path:
    configured = os.environ.get("OKRSNAP_METRICS_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("OKRSNAP_DATA_DIR") or Path.cwd() / "var") / "metrics"


def on_starting(server) -> None:
    service = _service(server)
    directory = _metrics_root() / service
    shutil.rmtree(directory, ignore_errors=True)  # samples of an earlier run would count again
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:  # a read-only data directory must not keep the service from starting
        directory = Path(tempfile.mkdtemp(prefix=f"okrsnap-metrics-{service}-"))
        log.warning("metrics directory not writable (%s); using %s", exc.strerror or exc, directory)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)  # inherited by every worker


def when_ready(server) -> None:
    from shared import observability
    from shared.settings import metrics_host, metrics_port

    service = _service(server)
    address = observability.serve_metrics(metrics_host(os.environ), metrics_port(service, os.environ),
                                          multiprocess_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    server.log.info("%s metrics: %s", service, f"http://{address}/metrics" if address else "not served")


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


if json_logs():  # production (or OKRSNAP_LOG_FORMAT=json): one JSON object per line
    logconfig_dict = _json_logging()
