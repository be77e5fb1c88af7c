"""`okrsnap up`'s checks and supervision: one instance per data directory, busy ports named with
the variable that moves them, a start-up wait that names the process that exited or stalled,
and a stop that does not wait on a process ignoring SIGTERM."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services import launcher
from services.launcher import CannotStart, InstanceLock, ProcessSpec, Supervisor
from tests.conftest import make_settings

PY = sys.executable


def test_a_second_instance_on_the_same_data_is_refused_at_once(tmp_path):
    first = InstanceLock(tmp_path / "var")
    first.acquire({"url": "http://127.0.0.1:8080"})
    try:
        # Another process, as a second `okrsnap up` would be.
        probe = subprocess.run([PY, "-c", (
            "import sys; from pathlib import Path; from services.launcher import InstanceLock, CannotStart\n"
            "try:\n    InstanceLock(Path(sys.argv[1])).acquire({})\nexcept CannotStart as e:\n    print(e); sys.exit(3)"),
            str(tmp_path / "var")], capture_output=True, text=True, timeout=60)
        assert probe.returncode == 3, probe.stderr
        assert f"already running on {tmp_path / 'var'} (pid {os.getpid()}" in probe.stdout
        assert "http://127.0.0.1:8080" in probe.stdout
    finally:
        first.release()
    again = InstanceLock(tmp_path / "var")
    again.acquire({})  # released: free again
    again.release()


class Healthz(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        body = json.dumps({"status": "ok"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def okrsnap_like():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_busy_ports_are_named_with_who_holds_them_and_the_variable_that_moves_them(tmp_path, okrsnap_like):
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()
    other_port = other.getsockname()[1]
    try:
        settings = make_settings(tmp_path, OKRSNAP_GATEWAY_PORT=str(okrsnap_like),
                                 OKRSNAP_CHECKIN_PORT=str(other_port),
                                 OKRSNAP_SNAPSHOT_PORT="0", OKRSNAP_EXPORT_PORT="0")
        problems = launcher.port_problems(settings)
    finally:
        other.close()
    assert problems == [
        f"port {okrsnap_like} (gateway) is in use by another okrsnap; set OKRSNAP_GATEWAY_PORT to a free port "
        "to start this one beside it",
        f"port {other_port} (checkin) is in use by another program; "
        "set OKRSNAP_CHECKIN_PORT to a free port to start this one beside it"]


def supervisor(tmp_path, *specs) -> Supervisor:
    return Supervisor(list(specs), env={}, log_dir=tmp_path / "logs", say=lambda line: None)


def test_start_up_names_a_process_that_exited_with_the_end_of_its_log(tmp_path):
    sup = supervisor(tmp_path, ProcessSpec("gateway", [PY, "-c", "print('cannot bind: port taken'); raise SystemExit(3)"],
                                           "http://127.0.0.1:9/healthz"))
    sup.start_all()
    try:
        with pytest.raises(CannotStart, match=r"gateway exited during start-up \(code 3\)") as raised:
            sup.wait_until_healthy(lambda: False, lambda names, seconds: None, poll=0.05)
        assert "cannot bind: port taken" in str(raised.value)
    finally:
        sup.stop_all()


def test_start_up_waits_for_a_busy_process_and_gives_up_on_a_stalled_one(tmp_path, monkeypatch):
    monkeypatch.setattr(launcher, "STALLED_SECONDS", 1.5)
    monkeypatch.setattr(launcher, "SLOW_NOTICE_SECONDS", 0.5)
    busy = ProcessSpec("snapshot", [PY, "-c", "while True: pass"], "http://127.0.0.1:9/healthz")
    idle = ProcessSpec("export", [PY, "-c", "import time; time.sleep(60)"], "http://127.0.0.1:9/healthz")
    sup = supervisor(tmp_path, busy, idle)
    sup.start_all()
    notices = []
    try:
        with pytest.raises(CannotStart, match=r"^export is neither answering http://127.0.0.1:9/healthz nor busy"):
            sup.wait_until_healthy(lambda: False, lambda names, seconds: notices.append(names), poll=0.1)
    finally:
        sup.stop_all()
    assert notices and all(names == ["snapshot", "export"] for names in notices)  # who is still starting


def test_start_up_ends_when_every_service_answers(tmp_path, okrsnap_like):
    sup = supervisor(tmp_path, ProcessSpec("gateway", [PY, "-c", "import time; time.sleep(60)"],
                                           f"http://127.0.0.1:{okrsnap_like}/healthz"))
    sup.start_all()
    try:
        assert sup.wait_until_healthy(lambda: False, lambda names, seconds: None) >= 0
    finally:
        sup.stop_all()


def test_stop_kills_what_ignores_sigterm_and_every_process_of_its_group(tmp_path):
    stubborn = ProcessSpec("export-worker", [PY, "-c", (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import signal,time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)")])
    sup = supervisor(tmp_path, stubborn)
    sup.start_all()
    log = tmp_path / "logs" / "export-worker.log"
    from tests.conftest import wait_until

    grandchild = int(wait_until(lambda: log.read_text().strip(), message="the grandchild's pid"))
    sup.stop_all()
    assert sup.children["export-worker"].process.poll() is not None  # killed, not waited on
    wait_until(lambda: not _alive(grandchild), message="the grandchild to be gone with its group")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
