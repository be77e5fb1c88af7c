"""Long-running worker processes: logging, and a clean stop on SIGTERM/SIGINT."""
from __future__ import annotations

import logging
import os
import signal
import threading
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
