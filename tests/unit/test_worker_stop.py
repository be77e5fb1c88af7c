"""A worker stops on SIGTERM even while it cannot reach the broker (issue 10, defect 7): kombu
reconnects for ever and used to look at nothing else meanwhile."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.conftest import ROOT, wait_until
from tests.helpers import free_port


def test_a_snapshot_worker_stops_on_sigterm_while_the_broker_is_down(tmp_path):
    log = tmp_path / "worker.log"
    env = dict(os.environ, OKRSNAP_ENV="test", OKRSNAP_DATA_DIR=str(tmp_path / "var"), OKRSNAP_LOG_LEVEL="INFO",
               OKRSNAP_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
    with log.open("w") as out:
        worker = subprocess.Popen([sys.executable, "-m", "services.snapshot.entrypoints.worker"], cwd=ROOT,
                                  env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "broker connection error" in log.read_text().lower() or worker.poll() is not None,
                   timeout=60, message="the worker trying to reach the broker")
        assert worker.poll() is None, log.read_text()
        worker.send_signal(signal.SIGTERM)
        wait_until(lambda: worker.poll() is not None, timeout=15, message="the worker stopping on SIGTERM")
        assert worker.returncode == 0, log.read_text()
        assert "stopped while (re)connecting to the broker" in log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
