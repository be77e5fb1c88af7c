"""What `okrsnap up` runs and watches: one process per service and worker, checked before they
start (ports, a second instance on the same data), their logs in files, a start-up wait that
adapts to a slow machine, restarts of a crashed process, and a quick, quiet stop.

Pure standard library: it runs before anything else is known to work."""
from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from shared.settings import SERVICES, Settings

MAX_RESTARTS_PER_MINUTE = 5
STOP_SECONDS = 3.0          # Ctrl-C: what a process gets to finish before it is killed
STALLED_SECONDS = 45.0      # start-up gives up on a process that is neither healthy nor busy this long
SLOW_NOTICE_SECONDS = 10.0  # start-up names the services still starting this often
LOCK_NAME = "okrsnap-up.lock"
INFO_NAME = "okrsnap-up.json"


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    health_url: str | None = None


def _no_control_socket() -> list[str]:
    """gunicorn >= 25.1 opens a control socket at one path under $HOME: the four services' masters
    would fight over it (an ERROR line at every start). Older releases know no such flag."""
    from gunicorn.config import KNOWN_SETTINGS

    return ["--no-control-socket"] if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else []


def process_specs(settings: Settings, web_workers: int = 1, *, separate_workers: bool = True) -> list[ProcessSpec]:
    """One gunicorn per HTTP service; the relays and workers each in a process of their own, or
    (`separate_workers` False) together in one (services/background.py)."""
    specs = []
    for service in SERVICES:
        url = settings.service_urls[service]
        bind = url.split("://", 1)[1]
        specs.append(ProcessSpec(service, [
            sys.executable, "-m", "gunicorn", "--bind", bind, "--workers", str(web_workers),
            "--threads", "4", "--timeout", "60", "--graceful-timeout", str(int(STOP_SECONDS) - 1),
            "--access-logfile", "-", "--log-level", "warning",
            # the path without its query string: download tokens travel in the query; last, the
            # correlation id (X-Request-ID) that the service's own log lines carry too
            "--access-logformat", '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(D)sus %({x-request-id}o)s',
            # metrics of every worker summed, served by the master (prometheus multiprocess mode)
            "--config", "python:shared.gunicorn_hooks",
            *_no_control_socket(),
            f"services.{service}.entrypoints.app:create_app()",
        ], health_url=f"{url}/healthz"))
    if not separate_workers:
        return specs + [ProcessSpec("workers", [sys.executable, "-m", "services.background"])]
    for name, module in (("checkin-relay", "services.checkin.entrypoints.relay"),
                         ("snapshot-worker", "services.snapshot.entrypoints.worker"),
                         ("export-relay", "services.export.entrypoints.relay"),
                         ("export-worker", "services.export.entrypoints.worker")):
        specs.append(ProcessSpec(name, [sys.executable, "-m", module]))
    return specs


# -- before starting ---------------------------------------------------------------------------

class CannotStart(Exception):
    """Something outside okrsnap stands in the way; the message says what and what to do."""


class InstanceLock:
    """One `okrsnap up` per data directory: an exclusive lock held as long as it runs (the kernel
    releases it when the process dies, so a crash never leaves a stale lock), and a note of who
    holds it for the next one to read."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._handle: TextIO | None = None

    def acquire(self, about: dict) -> None:
        import fcntl

        self.data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.data_dir / LOCK_NAME, "a+")  # noqa: SIM115 - held open while running
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            holder = self.holder() or {}
            pid = holder.get("pid", "?")
            raise CannotStart(
                f"okrsnap is already running on {self.data_dir} (pid {pid}, web at {holder.get('url', '?')}). "
                f"Open that one, or stop it first (Ctrl-C in its terminal, or kill {pid}).") from None
        self._handle = handle
        (self.data_dir / INFO_NAME).write_text(json.dumps({"pid": os.getpid(), **about}))

    def holder(self) -> dict | None:
        try:
            return json.loads((self.data_dir / INFO_NAME).read_text())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._handle is not None:
            (self.data_dir / INFO_NAME).unlink(missing_ok=True)
            self._handle.close()
            self._handle = None


def port_problems(settings: Settings) -> list[str]:
    """One line per port a service cannot bind: which, who holds it (when it is an okrsnap),
    and the variable that moves it."""
    problems = []
    for service in SERVICES:
        host, _, port = settings.service_urls[service].split("://", 1)[1].rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # gunicorn binds the same way
            try:
                probe.bind((host, int(port)))
                continue
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    problems.append(f"port {port} ({service}) cannot be used on {host}: {exc.strerror}; "
                                    f"set OKRSNAP_{service.upper()}_PORT to another port")
                    continue
        who = "another okrsnap" if _answers_like_okrsnap(settings.service_urls[service]) else "another program"
        problems.append(f"port {port} ({service}) is in use by {who}; "
                        f"set OKRSNAP_{service.upper()}_PORT to a free port to start this one beside it")
    return problems


def _answers_like_okrsnap(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
            return json.loads(response.read(2048)).get("status") == "ok"
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return False


# -- running -----------------------------------------------------------------------------------

def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def cpu_ticks_by_group() -> dict[int, int] | None:
    """CPU time (clock ticks) of every process group, read from /proc in one pass: a gunicorn
    master and its workers share a group. None where /proc cannot tell (not Linux)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    totals: dict[int, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pgid = int(fields[2])  # fields after "(comm)": state ppid pgrp ...; utime, stime at 11, 12
        totals[pgid] = totals.get(pgid, 0) + int(fields[11]) + int(fields[12])
    return totals


@dataclass
class Child:
    spec: ProcessSpec
    process: subprocess.Popen
    started: float
    crashes: list[float] = field(default_factory=list)
    ticks: int | None = None
    busy_at: float = 0.0


class Supervisor:
    """Starts each process in a session of its own (the terminal's Ctrl-C reaches only `okrsnap
    up`, which then stops them in order, quietly), with its output in <data dir>/logs/<name>.log
    unless `verbose`."""

    def __init__(self, specs: list[ProcessSpec], *, env: dict, log_dir: Path | None,
                 say: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self.specs = {spec.name: spec for spec in specs}
        self.env = env
        self.log_dir = log_dir
        self.say = say
        self.clock = clock
        self.children: dict[str, Child] = {}

    def start_all(self) -> None:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.specs.values():
            self._start(spec)

    def _start(self, spec: ProcessSpec) -> None:
        output = None
        if self.log_dir is not None:
            output = open(self.log_dir / f"{spec.name}.log", "ab")  # noqa: SIM115 - the child holds it
        try:
            process = subprocess.Popen(spec.argv, env=self.env, stdout=output, stderr=subprocess.STDOUT if output
                                       else None, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            if output is not None:
                output.close()
        previous = self.children.get(spec.name)
        now = self.clock()
        self.children[spec.name] = Child(spec, process, now, previous.crashes if previous else [], busy_at=now)

    def log_tail(self, name: str, lines: int = 5) -> str:
        if self.log_dir is None:
            return ""
        try:
            tail = (self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n".join(f"    {line}" for line in tail)

    def wait_until_healthy(self, should_stop: Callable[[], bool], on_progress: Callable[[list[str], float], None],
                           poll: float = 0.25) -> float:
        """Waits while the services that are not healthy yet are alive and making progress (their
        CPU time grows); raises CannotStart naming one that exited or stalled. Returns the seconds
        it took."""
        began = self.clock()
        pending = [c for c in self.children.values() if c.spec.health_url]
        last_notice = began
        while pending and not should_stop():
            pending = [c for c in pending if not healthy(c.spec.health_url)]
            now = self.clock()
            for child in self.children.values():
                if child.process.poll() is not None:
                    tail = self.log_tail(child.spec.name)
                    raise CannotStart(f"{child.spec.name} exited during start-up (code {child.process.returncode})"
                                      + (f"; the end of its log:\n{tail}" if tail else ""))
            by_group = cpu_ticks_by_group() if pending else None
            for child in pending:
                ticks = None if by_group is None else by_group.get(child.process.pid, 0)
                if ticks is None or ticks != child.ticks:
                    child.ticks, child.busy_at = ticks, now
                elif now - child.busy_at > STALLED_SECONDS:
                    raise CannotStart(f"{child.spec.name} is neither answering {child.spec.health_url} nor busy "
                                      f"after {now - child.started:.0f} s" + (f"; its log:\n{self.log_tail(child.spec.name)}"
                                                                            if self.log_dir else ""))
            if pending and now - last_notice >= SLOW_NOTICE_SECONDS:
                last_notice = now
                on_progress([c.spec.name for c in pending], now - began)
            if pending:
                time.sleep(poll)
        return self.clock() - began

    def restart_crashed(self) -> None:
        """A crashed process starts again; one that keeps crashing stops okrsnap."""
        now = self.clock()
        for name, child in list(self.children.items()):
            if child.process.poll() is None:
                continue
            child.crashes = [t for t in child.crashes if now - t < 60] + [now]
            if len(child.crashes) > MAX_RESTARTS_PER_MINUTE:
                raise CannotStart(f"{name} keeps exiting (code {child.process.returncode}); stopping okrsnap"
                                  + (f"; the end of its log:\n{self.log_tail(name)}" if self.log_dir else ""))
            self.say(f"{name} exited with code {child.process.returncode}; restarting it")
            self._start(child.spec)

    def stop_all(self) -> None:
        """SIGTERM to every process group at once, SIGKILL to what is left after STOP_SECONDS."""
        for child in self.children.values():
            _signal_group(child.process, signal.SIGTERM)
        deadline = self.clock() + STOP_SECONDS
        for child in self.children.values():
            try:
                child.process.wait(timeout=max(0.05, deadline - self.clock()))
            except subprocess.TimeoutExpired:
                pass
        for child in self.children.values():
            _signal_group(child.process, signal.SIGKILL)  # a gunicorn worker may outlive its master
            try:
                child.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
