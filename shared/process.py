"""Long-running worker processes: logging, and a clean stop on SIGTERM/SIGINT."""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Callable


def configure_logging(name: str) -> None:
    logging.basicConfig(
        level=os.environ.get("OKRSNAP_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s {name}[%(process)d] %(levelname)s %(name)s: %(message)s",
    )


def run_until_signalled(run: Callable[[threading.Event], None], *, name: str) -> None:
    configure_logging(name)
    stop = threading.Event()

    def _stop(signum, _frame):
        logging.getLogger(name).info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    logging.getLogger(name).info("started")
    run(stop)


_last_beat = 0.0


def beat() -> None:
    """Tell the container healthcheck this process is alive (touches OKRSNAP_HEARTBEAT_FILE,
    at most every 2 s). Loops call it once per round, so a stuck loop goes unhealthy."""
    global _last_beat
    path = os.environ.get("OKRSNAP_HEARTBEAT_FILE")
    now = time.monotonic()
    if not path or now - _last_beat < 2:
        return
    _last_beat = now
    with open(path, "a"):
        os.utime(path, None)
