"""The chaos harness: okrsnap's real processes on PostgreSQL and RabbitMQ, each reaching them
through a fault proxy of its own group; a client sending Check-ins through the gateway at a
steady rate and recording every 201; a schedule of faults; and the final count.

Proxies: `pg` (gateway, check-in service and relay, snapshot service), `worker-pg` (the snapshot
workers only, so their database can be taken away alone) and `amqp` (relay and workers). The
harness plays the supervisor: a process it kills is started again at once.

Verdict (figures, not timings): every acknowledged Check-in is in the Snapshot exactly once,
nothing healthy is dead-lettered, no event stays parked, and every ended week is sealed with a
valid chain. Recovery times are measured and reported, not asserted."""
from __future__ import annotations

import bisect
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from sqlalchemy import create_engine, text

from tests.chaos.proxy import FaultProxy
from tests.conftest import ROOT, wait_until
from tests.helpers import free_port

PASSWORD = "chaos-monkey-password-1"
SECRETS = {
    "OKRSNAP_INTERNAL_SECRET": "chaos-internal-secret-0123456789abcdef",
    "OKRSNAP_ACCESS_TOKEN_SECRET": "chaos-access-secret-0123456789abcdef",
    "OKRSNAP_DOWNLOAD_SECRET": "chaos-download-secret-0123456789abcdef",
}
WEEK = timedelta(days=7)


def _via(url: str, port: int) -> str:
    """The same URL, reached through a proxy on 127.0.0.1:port."""
    parts = urlsplit(url)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit((parts.scheme, f"{credentials}127.0.0.1:{port}", parts.path, parts.query, parts.fragment))


def _port(url: str, default: int) -> int:
    return urlsplit(url).port or default


class Process:
    """One okrsnap process the harness started (and restarts after killing it)."""

    def __init__(self, name: str, argv: list[str], env: dict, log_dir: Path):
        self.name, self.argv, self.env = name, argv, env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        with self.log_path.open("a") as log:
            log.write(f"--- start {self.starts} at {datetime.now(timezone.utc).isoformat()}\n")
            self.popen = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, to the process only (gunicorn's own workers are never targeted here)."""
        if self.alive:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=30)

    def terminate(self, timeout: float = 30) -> float:
        """SIGTERM; returns how long it took to exit (raises if it did not in `timeout`)."""
        started = time.monotonic()
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)
            self.popen.wait(timeout=timeout)
        return time.monotonic() - started

    def stop(self) -> None:
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


@dataclass
class FaultRecord:
    name: str
    started: float
    restored: float | None = None
    acked_at_restore: int = 0
    recovered: float | None = None  # when the Snapshot held every Check-in acknowledged before the restore
    first_201_after: float | None = None
    notes: str = ""

    def recovery_seconds(self) -> float | None:
        return None if self.recovered is None or self.restored is None else self.recovered - self.restored


@dataclass
class Tally:
    sent: int = 0
    acked: dict = field(default_factory=dict)  # check-in id -> time acknowledged
    statuses: dict = field(default_factory=dict)
    server_errors: list = field(default_factory=list)  # (time, status)
    transport_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Stack:
    def __init__(self, workdir: Path, database_url: str, broker_url: str, namespace: str, *, workers: int = 3,
                 web_workers: int = 2, log_level: str = "WARNING"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.database_url, self.broker_url, self.namespace = database_url, broker_url, namespace
        self.pg = FaultProxy(_port(database_url, 5432), name="pg")
        self.worker_pg = FaultProxy(_port(database_url, 5432), name="worker-pg")
        self.amqp = FaultProxy(_port(broker_url, 5672), name="amqp")
        self.clock_file = self.workdir / "clock.json"
        self.clock_file.write_text(json.dumps({"offset_seconds": 0}))
        self.offset = timedelta(0)
        self.ports = {name: free_port() for name in ("gateway", "checkin", "snapshot", "export")}
        base = dict(os.environ, OKRSNAP_ENV="test", OKRSNAP_DATA_DIR=str(self.workdir / "var"),
                    OKRSNAP_LOG_LEVEL=log_level, OKRSNAP_BROKER_NAMESPACE=namespace,
                    OKRSNAP_CLOCK_FILE=str(self.clock_file), OKRSNAP_SEAL_GRACE_SECONDS="0",
                    OKRSNAP_WEEK_CLOSE_INTERVAL="1", OKRSNAP_ACCESS_TOKEN_TTL=str(30 * 24 * 3600),
                    OKRSNAP_LOGIN_RATE="1000/60", OKRSNAP_LOGIN_IP_RATE="1000/60", **SECRETS)
        base.pop("OKRSNAP_REDIS_URL", None)
        for name, port in self.ports.items():
            base[f"OKRSNAP_{name.upper()}_PORT"] = str(port)
        self.direct_env = dict(base, OKRSNAP_DATABASE_URL=database_url, OKRSNAP_BROKER_URL=broker_url)
        self.env = dict(base, OKRSNAP_DATABASE_URL=_via(database_url, self.pg.port),
                        OKRSNAP_BROKER_URL=_via(broker_url, self.amqp.port))
        self.worker_env = dict(self.env, OKRSNAP_SNAPSHOT_DATABASE_URL=_via(database_url, self.worker_pg.port))
        self.url = f"http://127.0.0.1:{self.ports['gateway']}/api/v1"
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        python = sys.executable

        def gunicorn(service: str, count: int) -> list[str]:
            return [python, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.ports[service]}", "--workers", str(count),
                    "--threads", "4", "--timeout", "60", "--graceful-timeout", "5", "--log-level", "warning",
                    f"services.{service}.entrypoints.app:create_app()"]

        self.web = [Process("gateway", gunicorn("gateway", web_workers), self.env, logs),
                    Process("checkin", gunicorn("checkin", web_workers), self.env, logs),
                    Process("snapshot", gunicorn("snapshot", 1), self.env, logs)]
        self.relays = [Process("checkin-relay", [python, "-m", "services.checkin.entrypoints.relay"], self.env, logs)]
        self.workers = [Process(f"snapshot-worker-{i}", [python, "-m", "services.snapshot.entrypoints.worker"],
                                self.worker_env, logs) for i in range(workers)]
        self.engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1)
                                    if database_url.startswith("postgresql://") else database_url,
                                    pool_pre_ping=True)

    # -- life cycle -------------------------------------------------------------------------
    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "services.cli", *args], env=self.direct_env, cwd=ROOT,
                              capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"okrsnap {' '.join(args)}: {done.stderr}")
        return done.stdout

    def start(self) -> None:
        self.cli("migrate")
        self.cli("user", "add", "chaos@example.com", "--workspace", "Chaos", "--role", "owner",
                 "--password", PASSWORD)
        from shared.messaging import declare_topology
        from tests.conftest import make_settings

        declare_topology(make_settings(self.workdir, OKRSNAP_BROKER_URL=self.broker_url,
                                       OKRSNAP_BROKER_NAMESPACE=self.namespace))
        for process in self.web + self.relays + self.workers:
            process.start()
        wait_until(self._healthy, timeout=90, interval=0.2, message="okrsnap's HTTP services healthy")

    def _healthy(self) -> bool:
        dead = [p.name for p in self.web + self.relays + self.workers if not p.alive]
        if dead:
            raise AssertionError(f"exited during start-up: {dead}; see {self.workdir / 'logs'}")
        for port in self.ports.values():
            if port == self.ports["export"]:
                continue
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code != 200:
                    return False
            except requests.RequestException:
                return False
        return True

    def stop(self) -> None:
        for process in self.workers + self.relays + self.web:
            process.stop()
        for proxy in (self.pg, self.worker_pg, self.amqp):
            proxy.close()
        self.engine.dispose()

    def restart(self, process: Process) -> None:
        process.kill()
        process.start()

    def advance_week(self) -> None:
        """The shared clock moves a week on: the week running ends, the relay closes it."""
        self.offset += WEEK
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"offset_seconds": self.offset.total_seconds()}))
        tmp.replace(self.clock_file)

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    # -- what the stores hold -----------------------------------------------------------------
    def scalar(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar_one()

    def applied_check_ins(self) -> int:
        return self.scalar("SELECT count(*) FROM snapshot.check_ins")

    def unapplied_events(self) -> int:
        """Events the check-in service committed that the Snapshot has not applied (or parked)."""
        return self.scalar(
            "SELECT (SELECT count(*) FROM checkin.outbox o WHERE NOT EXISTS (SELECT 1 FROM snapshot.processed_events p"
            " WHERE p.consumer = 'snapshot' AND p.event_id = o.event_id))"
            " + (SELECT count(*) FROM snapshot.parked_events)")

    def dead_letter_depth(self) -> int:
        from kombu import Connection

        with Connection(self.broker_url, connect_timeout=5) as connection:
            _, count, _ = connection.default_channel.queue_declare(
                f"{self.namespace}.snapshot.events.dlq", passive=True)
            return count


class Client:
    """Sends Check-ins through the gateway at a steady rate from a few threads; records each 201."""

    def __init__(self, stack: Stack, rate: float, threads: int = 4, key_results: int = 12):
        self.stack, self.rate, self.threads = stack, rate, threads
        self.tally = Tally()
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.key_results: list[str] = []
        self.session_id: str | None = None
        self._key_result_count = key_results

    def prepare(self) -> None:
        url = self.stack.url
        login = requests.post(f"{url}/auth/login", json={"email": "chaos@example.com", "password": PASSWORD}, timeout=30)
        login.raise_for_status()
        self.headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        workspace = login.json()["user"]["workspaces"][0]["id"]
        today = date.today()
        session = requests.post(f"{url}/workspaces/{workspace}/sessions", headers=self.headers, timeout=30, json={
            "name": "Chaos", "start_date": str(today - timedelta(days=7)), "end_date": str(today + timedelta(days=350)),
            "timezone": "UTC"})
        assert session.status_code == 201, session.text
        self.session_id = session.json()["id"]
        objective = requests.post(f"{url}/sessions/{self.session_id}/objectives", headers=self.headers, timeout=30,
                                  json={"title": "Survive"})
        assert objective.status_code == 201, objective.text
        for i in range(self._key_result_count):
            kr = requests.post(f"{url}/objectives/{objective.json()['id']}/key-results", headers=self.headers,
                               timeout=30, json={"title": f"KR {i}", "start_value": 0, "target_value": 1_000_000})
            assert kr.status_code == 201, kr.text
            self.key_results.append(kr.json()["id"])

    def start(self) -> None:
        for index in range(self.threads):
            thread = threading.Thread(target=self._send, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _send(self, index: int) -> None:
        session = requests.Session()
        session.headers.update(self.headers)
        interval = self.threads / self.rate
        next_at, n = time.monotonic(), 0
        while not self.stopping.is_set():
            kr = self.key_results[(index + n * self.threads) % len(self.key_results)]
            n += 1
            with self.tally.lock:
                self.tally.sent += 1
            try:
                response = session.post(f"{self.stack.url}/key-results/{kr}/check-ins", timeout=(3, 30),
                                        json={"value": n, "status": "on_track", "comment": f"chaos {index}-{n}"})
                status = response.status_code
                body = response.json() if status == 201 else None
            except (requests.RequestException, ValueError):
                status, body = None, None
            with self.tally.lock:
                self.tally.statuses[status] = self.tally.statuses.get(status, 0) + 1
                if status == 201:
                    self.tally.acked[body["check_in"]["id"]] = time.monotonic()
                elif status is None:
                    self.tally.transport_errors += 1
                elif status >= 500:
                    self.tally.server_errors.append((time.monotonic(), status))
            next_at = max(next_at + interval, time.monotonic() - 1)
            self.stopping.wait(max(0.0, next_at - time.monotonic()))

    @property
    def acked(self) -> int:
        with self.tally.lock:
            return len(self.tally.acked)


class Run:
    """A client, a stack and the faults applied to it; `report()` is the verdict in figures."""

    def __init__(self, stack: Stack, client: Client, log=print):
        self.stack, self.client, self.log = stack, client, log
        self.faults: list[FaultRecord] = []
        self.sigterm_seconds: list[float] = []
        self.started = time.monotonic()
        self._watch_stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        """Marks each restored fault recovered once the Snapshot holds every Check-in that was
        acknowledged when it was restored."""
        while not self._watch_stop.wait(0.5):
            pending = [f for f in self.faults if f.restored is not None and f.recovered is None]
            if not pending:
                continue
            try:
                applied = self.stack.applied_check_ins()
            except Exception:  # noqa: BLE001 - the harness's own reads go direct, but be safe
                continue
            now = time.monotonic()
            for fault in pending:
                if applied >= fault.acked_at_restore:
                    fault.recovered = now
            with self.client.tally.lock:
                times = sorted(self.client.tally.acked.values())
            for fault in self.faults:
                if fault.restored is not None and fault.first_201_after is None:
                    index = bisect.bisect_left(times, fault.restored)
                    if index < len(times):
                        fault.first_201_after = times[index]

    # -- faults ------------------------------------------------------------------------------
    def _begin(self, name: str) -> FaultRecord:
        record = FaultRecord(name, time.monotonic())
        self.faults.append(record)
        self.log(f"[{self.elapsed():6.1f}s] fault: {name} (acked so far {self.client.acked})")
        return record

    def _restored(self, record: FaultRecord) -> None:
        record.acked_at_restore = self.client.acked
        record.restored = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def steady(self, seconds: float) -> None:
        """Let traffic flow without a fault (the harness waits for time to pass on purpose)."""
        self.client.stopping.wait(seconds)

    def kill_worker(self, index: int = 0) -> None:
        record = self._begin(f"SIGKILL snapshot worker {index}")
        self.stack.restart(self.stack.workers[index])
        self._restored(record)

    def kill_relay(self) -> None:
        record = self._begin("SIGKILL check-in relay")
        self.stack.restart(self.stack.relays[0])
        self._restored(record)

    def worker_database_down_with_kills(self, seconds: float, kills: int = 5, index: int = 0) -> None:
        record = self._begin(f"snapshot workers' database down {seconds:.0f}s, worker {index} SIGKILLed {kills} times")
        self.stack.worker_pg.cut()
        gap = seconds / (kills + 1)
        for _ in range(kills):
            self.steady(gap)
            self.stack.restart(self.stack.workers[index])
        self.steady(gap)
        self.stack.worker_pg.restore()
        self._restored(record)

    def broker_cut(self, seconds: float) -> None:
        record = self._begin(f"RabbitMQ cut {seconds:.0f}s (connections reset, new ones refused)")
        self.stack.amqp.cut()
        self.steady(seconds)
        self.stack.amqp.restore()
        self._restored(record)

    def broker_blackhole(self, seconds: float) -> None:
        record = self._begin(f"RabbitMQ black hole {seconds:.0f}s (no byte either way)")
        self.stack.amqp.blackhole()
        self.steady(seconds)
        self.stack.amqp.restore()
        self._restored(record)

    def postgres_cut(self, seconds: float, kill_worker: bool = False) -> None:
        name = f"PostgreSQL cut {seconds:.0f}s for every process"
        record = self._begin(name + (", a worker and the relay SIGKILLed meanwhile" if kill_worker else ""))
        self.stack.pg.cut()
        self.stack.worker_pg.cut()
        if kill_worker:
            self.steady(seconds / 2)
            self.stack.restart(self.stack.workers[-1])
            self.stack.restart(self.stack.relays[0])
            self.steady(seconds / 2)
        else:
            self.steady(seconds)
        self.stack.pg.restore()
        self.stack.worker_pg.restore()
        self._restored(record)

    def sigterm_worker(self, index: int = 1) -> None:
        record = self._begin(f"SIGTERM snapshot worker {index} (graceful stop, then started again)")
        took = self.stack.workers[index].terminate(timeout=30)
        self.sigterm_seconds.append(took)
        record.notes = f"exited {took:.1f}s after SIGTERM"
        self.stack.workers[index].start()
        self._restored(record)

    def sigterm_worker_broker_down(self, index: int = 2) -> None:
        record = self._begin(f"SIGTERM snapshot worker {index} while RabbitMQ is cut")
        self.stack.amqp.cut()
        self.steady(3)
        took = self.stack.workers[index].terminate(timeout=30)
        self.sigterm_seconds.append(took)
        record.notes = f"exited {took:.1f}s after SIGTERM"
        self.stack.amqp.restore()
        self.stack.workers[index].start()
        self._restored(record)

    def next_week(self) -> None:
        self.stack.advance_week()
        self.log(f"[{self.elapsed():6.1f}s] the clock moves a week on (acked so far {self.client.acked})")

    # -- the end -------------------------------------------------------------------------------
    def finish(self, quiet_timeout: float = 300) -> dict:
        self.client.stop()
        self.log(f"[{self.elapsed():6.1f}s] load stopped; waiting until quiet")
        for process in self.stack.workers + self.stack.relays:  # the supervisor's job
            if not process.alive:
                process.start()
        wait_until(lambda: self.stack.unapplied_events() == 0, timeout=quiet_timeout, interval=0.5,
                   message="every committed event applied by the Snapshot")
        # End the week running: every week with Check-ins has ended and must be sealed.
        self.stack.advance_week()
        wait_until(self._all_sealed, timeout=quiet_timeout, interval=0.5, message="every ended week sealed")
        wait_until(lambda: all(f.recovered for f in self.faults if f.restored), timeout=30, interval=0.5,
                   message="recovery noted for every fault")
        self._watch_stop.set()
        return self.report()

    def _all_sealed(self) -> bool:
        session = self.client.session_id
        unsealed = self.stack.scalar(
            "SELECT count(*) FROM snapshot.week_closes c WHERE c.session_id = :s AND NOT EXISTS ("
            "SELECT 1 FROM snapshot.sealed_weeks w WHERE w.session_id = c.session_id AND w.week = c.week)", s=session)
        outside = self.stack.scalar(  # Check-ins not yet inside a sealed week
            "SELECT count(*) FROM snapshot.check_ins WHERE session_id = :s AND effective_at >= coalesce("
            "(SELECT max(ends_at) FROM snapshot.sealed_weeks WHERE session_id = :s), '-infinity')", s=session)
        return unsealed == 0 and outside == 0 and self.stack.unapplied_events() == 0

    def report(self) -> dict:
        from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
        from services.snapshot.service_layer import handlers
        from tests.conftest import make_settings

        tally = self.client.tally
        acked = list(tally.acked)
        with self.stack.engine.connect() as conn:
            counts = dict(conn.execute(text(
                "SELECT CAST(id AS text), count(*) FROM snapshot.check_ins WHERE session_id = :s GROUP BY id"),
                {"s": self.client.session_id}).all())
            at_source = {row[0] for row in conn.execute(text("SELECT CAST(id AS text) FROM checkin.check_ins"))}
            weeks = conn.execute(text(
                "SELECT count(*), coalesce(sum(check_in_count), 0) FROM snapshot.sealed_weeks WHERE session_id = :s"),
                {"s": self.client.session_id}).one()
        lost = [i for i in acked if counts.get(i, 0) == 0]
        twice = [i for i in acked if counts.get(i, 0) > 1]
        store = snapshot_bootstrap(make_settings(self.stack.workdir / "verify",
                                                 OKRSNAP_DATABASE_URL=self.stack.database_url))
        chain = handlers.verify_chain(uuid.UUID(self.client.session_id), uow=store.uow())
        store.database.dispose()
        fault_windows = [(f.started, (f.restored or f.started) + 10) for f in self.faults
                         if f.name.startswith("PostgreSQL")]  # a database outage answers 503
        unexpected = [s for t, s in tally.server_errors
                      if s != 503 or not any(a <= t <= b for a, b in fault_windows)]
        return {
            "sent": tally.sent, "acknowledged": len(acked), "lost": len(lost), "applied_twice": len(twice),
            "lost_at_source": sum(1 for i in acked if i not in at_source),
            "applied_without_201": sum(1 for i in counts if i not in tally.acked),
            "server_errors": len(tally.server_errors),
            "server_errors_by_status": _count(s for _, s in tally.server_errors),
            "unexpected_server_errors": len(unexpected),
            "transport_errors": tally.transport_errors,
            "statuses": {str(k): v for k, v in sorted(tally.statuses.items(), key=lambda kv: str(kv[0]))},
            "dead_lettered": self.stack.dead_letter_depth(),
            "sealed_weeks": weeks[0], "sealed_check_ins": int(weeks[1]),
            "chain_valid": chain["valid"], "chain_weeks": len(chain["weeks"]),
            "sigterm_seconds": [round(s, 1) for s in self.sigterm_seconds],
            "duration_seconds": round(self.elapsed()),
            "faults": [{"fault": f.name, "recovery_seconds": _round(f.recovery_seconds()),
                        "first_201_after_seconds": _round(None if f.first_201_after is None or f.restored is None
                                                          else max(0.0, f.first_201_after - f.restored)),
                        "acked_before_restore": f.acked_at_restore, "notes": f.notes} for f in self.faults],
        }


def _count(values) -> dict:
    out: dict = {}
    for value in values:
        out[str(value)] = out.get(str(value), 0) + 1
    return out


def _round(value):
    return None if value is None else round(value, 1)
