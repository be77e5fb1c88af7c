"""Long-running worker processes: logging, metrics, readiness, and a clean stop on SIGTERM/SIGINT."""
from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable

from shared import observability

# What each relay or worker process serves: the services whose database and broker it needs.
SERVICES_OF = {"checkin-relay": ("checkin",), "snapshot-worker": ("snapshot",), "export-relay": ("export",),
               "export-worker": ("export",), "okrsnap-workers": ("checkin", "snapshot", "export")}
METRICS_NAMES = {"okrsnap-workers": "workers"}  # services/background.py's process


def configure_logging(name: str) -> None:
    observability.configure_logging(name, level=os.environ.get("OKRSNAP_LOG_LEVEL", "INFO"))


def run_until_signalled(run: Callable[[threading.Event], None], *, name: str) -> None:
    configure_logging(name)
    stop = threading.Event()

    def _stop(signum, _frame):
        logging.getLogger(name).info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    start_signals(name, stop)
    logging.getLogger(name).info("started")
    run(stop)


def start_signals(name: str, stop: threading.Event) -> None:
    """Serve the process's /metrics and keep its readiness for the heartbeat file."""
    from shared.settings import Settings, metrics_host, metrics_port

    port = metrics_port(METRICS_NAMES.get(name, name), os.environ)
    services = SERVICES_OF.get(name, ())
    ready = None
    if services:
        settings = Settings.from_env()
        ready = lambda: worker_readiness(settings, services)  # noqa: E731
    observability.start_process(name, metrics_address=(metrics_host(os.environ), port), ready=ready, stop=stop)


_engines: dict = {}


def worker_readiness(settings, services: tuple[str, ...]) -> tuple[bool, dict[str, str]]:
    """Each service's database reachable with its migrations at head, and the broker reachable,
    on an engine of its own (a pool of one) so a busy loop's pool is not taken."""
    from shared.db import make_engine

    checks = {}
    for service in services:
        target = settings.database_for(service)
        engine = _engines.get(service)
        if engine is None:
            engine = _engines[service] = make_engine(target, pool_size=1)
        migrations = Path(importlib.import_module(f"services.{service}").__file__).parent / "adapters" / "migrations"
        checks[f"{service}.database"], checks[f"{service}.migrations"] = observability.check_database(
            engine, target.schema, migrations)
    checks["broker"] = observability.check_broker(settings)
    return all(v == "ok" for v in checks.values()), checks


_last_beat = 0.0


def beat() -> None:
    """Tell the container healthcheck this process is alive: rewrites OKRSNAP_HEARTBEAT_FILE
    (at most every 2 s) with its readiness and metrics address (shared.healthcheck reads both).
    Loops call it once per round, so a stuck loop goes unhealthy."""
    global _last_beat
    now = time.monotonic()
    if now - _last_beat < 2:
        return
    path = os.environ.get("OKRSNAP_HEARTBEAT_FILE") or run_file()
    if not path:
        return
    _last_beat = now
    write_heartbeat(path, observability.process_status())


RUN_DIR = "run"  # under the data directory: a heartbeat file per process `okrsnap up` started


def run_file() -> str | None:
    """<data dir>/run/<process>.json for a named process of an installation (`okrsnap status`
    reads them), when OKRSNAP_DATA_DIR says where that is."""
    name, data_dir = observability.process_status()["process"], os.environ.get("OKRSNAP_DATA_DIR")
    if not name or not data_dir:
        return None
    directory = Path(data_dir) / RUN_DIR
    directory.mkdir(parents=True, exist_ok=True)
    return str(directory / f"{name}.json")


def read_heartbeats(data_dir: Path) -> list[dict]:
    """Every heartbeat file under <data dir>/run, with its age in seconds and whether its
    process still exists."""
    found = []
    for path in sorted((Path(data_dir) / RUN_DIR).glob("*.json")):
        try:
            status = json.loads(path.read_text())
            age = time.time() - path.stat().st_mtime
        except (OSError, ValueError):
            continue
        status["age"] = age
        status["alive"] = _exists(status.get("pid"))
        found.append(status)
    return found


def _exists(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def write_heartbeat(path: str, status: dict) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as handle:
        handle.write(json.dumps(status))
    os.replace(tmp, path)  # a reader never sees half a file; the new file's time is now
