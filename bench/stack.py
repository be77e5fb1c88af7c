"""What every benchmark part shares: a real okrsnap (`okrsnap up`: gunicorn per HTTP service,
a process per relay and worker) on its own PostgreSQL database and broker namespace, a seeded
Session, CPU and memory read from /proc, and cleanup of everything a run declared.

Nothing here measures; the parts (bench/ingest.py, bench/weekview.py, ...) do.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import requests
from kombu import Connection
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DB_SERVER = os.environ.get("OKRSNAP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BROKER = os.environ.get("OKRSNAP_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
PASSWORD = "bench-password-0123"
ROOT = Path(__file__).resolve().parent.parent
WEEKS = 26
CHURN = 0.05  # share of Key Results checked in each week
OWNERS = 8
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sizes(argv_value: str) -> list[int]:
    return [int(v.replace("_", "").replace("k", "000")) for v in argv_value.split(",") if v]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def median(samples: list[float]) -> float:
    return statistics.median(samples)


# -- /proc ---------------------------------------------------------------------------------------

def proc_tree(root: int) -> list[int]:
    """root and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def cpu_by_pid(pids) -> dict[int, float]:
    """CPU seconds (user + system) of each process that still exists."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        except OSError:
            pass
    return out


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two readings; a process born in between counts from zero (one that
    exited in between is lost: pools keep their backends, so that is rare and only undercounts)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# -- PostgreSQL and the broker -------------------------------------------------------------------

def _exit_on_sigterm() -> None:
    """SIGTERM (and SIGINT, which a shell ignores in a background job) raise, so that the `finally`
    blocks stop the processes and delete the database and broker names a run made."""
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        signal.signal(signal.SIGINT, signal.default_int_handler)


class Database:
    """A fresh database on the local server, dropped (connections and all) on close."""

    def __init__(self, prefix: str = "okrsnap_bench"):
        _exit_on_sigterm()
        self.name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self.admin = create_engine(make_url(DB_SERVER), isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = make_url(DB_SERVER).set(database=self.name)
        self._conn = None

    @property
    def url_string(self) -> str:
        return self.url.render_as_string(hide_password=False)

    @property
    def libpq(self) -> str:
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def query(self, sql: str, params=()) -> list:
        """On one kept connection, retried while the server is full: other work on this machine
        takes PostgreSQL's connections too, and a poll must not fail the run for that."""
        import psycopg

        for _ in range(100):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.libpq, autocommit=True)
                return self._conn.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                self._conn = None
                time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL refused {self.name} for 20 s")

    def backends(self) -> list[int]:
        return [r[0] for r in self.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def delete_broker_entities(namespace: str | None, extra_queues=(), extra_exchanges=()) -> None:
    """Deletes every exchange and queue okrsnap's topology declares under `namespace` (if any),
    and the extra ones a run declared itself."""
    from shared.topology import PRODUCERS, QUEUES, Topology

    queues, exchanges = list(extra_queues), list(extra_exchanges)
    if namespace:
        topology = Topology(namespace)
        names = [topology.queue_name(s.consumer, s.purpose) for s in QUEUES]
        queues += names + [f"{q}.dlq" for q in names]
        exchanges += [topology.dead_letter_exchange.name] + [topology.exchange(p).name for p in PRODUCERS]
    with Connection(BROKER) as conn:
        for name in queues:
            channel = conn.channel()
            try:
                channel.queue_delete(name)
            except Exception:  # noqa: BLE001 - never declared: the channel closes, take another
                pass
        for name in exchanges:
            channel = conn.channel()
            try:
                channel.exchange_delete(name)
            except Exception:  # noqa: BLE001
                pass


# -- the Session's history -----------------------------------------------------------------------

def history(key_results: int, owner_ids: list[str], weeks: int = WEEKS, churn: float = CHURN,
            seed: int = 26) -> dict:
    """A Session of `key_results` Key Results (one Objective and one Initiative per ten), whose
    first week started `weeks - 1` weeks ago, with `churn` of the Key Results checked in each week
    (spread over the week, never in the future): weeks - 1 sealed weeks and a live one."""
    rng = random.Random(seed)
    today = date.today()
    start = today - timedelta(days=today.weekday()) - timedelta(weeks=weeks - 1)  # a Monday
    created = datetime.combine(start, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=1)
    doc = {"session": {"name": f"Bench: {key_results:,} Key Results", "start_date": str(start),
                       "end_date": str(start + timedelta(weeks=weeks + 1)), "timezone": "UTC",
                       "created_at": created.isoformat()},
           "objectives": [], "key_results": [], "initiatives": [], "check_ins": []}
    for o in range(max(1, key_results // 10)):
        doc["objectives"].append({"ref": f"o{o}", "title": f"Objective {o}", "owner_id": rng.choice(owner_ids),
                                  "created_at": created.isoformat()})
        for k in range(min(10, key_results - 10 * o)):
            doc["key_results"].append({"ref": f"k{o}.{k}", "objective_ref": f"o{o}", "title": f"Key Result {o}.{k}",
                                       "owner_id": rng.choice(owner_ids + [None]), "start_value": 0,
                                       "target_value": 100, "unit": "%", "created_at": created.isoformat()})
        doc["initiatives"].append({"ref": f"i{o}", "title": f"Initiative {o}", "status": "in_progress",
                                   "owner_id": rng.choice(owner_ids), "key_result_refs": [f"k{o}.0"],
                                   "created_at": created.isoformat()})
    now = datetime.now(timezone.utc) - timedelta(minutes=5)
    values = {kr["ref"]: 0.0 for kr in doc["key_results"]}
    for week in range(weeks):
        for kr in rng.sample(doc["key_results"], int(len(doc["key_results"]) * churn)):
            moment = created + timedelta(weeks=week, days=rng.randint(0, 4), hours=rng.randint(0, 8))
            if moment >= now:
                moment = now - timedelta(seconds=rng.randint(1, 3600))
            values[kr["ref"]] = round(min(100.0, values[kr["ref"]] + rng.uniform(1, 15)), 2)
            doc["check_ins"].append({"key_result_ref": kr["ref"], "value": values[kr["ref"]],
                                     "status": rng.choice(["on_track", "at_risk", "off_track"]),
                                     "confidence": rng.randint(3, 9), "comment": "moved",
                                     "checked_in_at": moment.isoformat(), "author_id": kr["owner_id"]})
    doc["check_ins"].sort(key=lambda c: c["checked_in_at"])
    return doc


# -- a running okrsnap ---------------------------------------------------------------------------

class Stack:
    """`okrsnap up --no-demo` on a fresh database and broker namespace, with OWNERS accounts in one
    Workspace (the first an owner). Sealing is immediate (grace 0, closing checked every second),
    so an imported history's past weeks seal as soon as the snapshot service has applied them."""

    def __init__(self, web_workers: int = 2, label: str = "okrsnap"):
        self.web_workers = web_workers
        self.database = Database()
        self.namespace = f"okrsnap-bench-{uuid.uuid4().hex[:8]}"
        self.tmp = tempfile.mkdtemp(prefix=f"{label}-bench-")
        self.internal_secret = uuid.uuid4().hex * 2
        self.ports = {s: free_port() for s in ("gateway", "checkin", "snapshot", "export")}
        self.base = f"http://127.0.0.1:{self.ports['gateway']}"
        self.api = f"{self.base}/api/v1"
        self.env = dict(os.environ, OKRSNAP_ENV="test", OKRSNAP_DATA_DIR=str(Path(self.tmp) / "var"),
                        OKRSNAP_LOG_LEVEL="WARNING", OKRSNAP_DATABASE_URL=self.database.url_string,
                        OKRSNAP_BROKER_URL=BROKER, OKRSNAP_BROKER_NAMESPACE=self.namespace,
                        OKRSNAP_LOGIN_RATE="100000/60", OKRSNAP_LOGIN_IP_RATE="100000/60",
                        OKRSNAP_EXPORT_RATE="100000/3600", OKRSNAP_EXPORT_IP_RATE="100000/3600",
                        OKRSNAP_INTERNAL_SECRET=self.internal_secret, OKRSNAP_SEAL_GRACE_SECONDS="0",
                        OKRSNAP_WEEK_CLOSE_INTERVAL="1", PYTHONPATH=str(ROOT))
        self.env.update({f"OKRSNAP_{s.upper()}_PORT": str(p) for s, p in self.ports.items()})
        self.env.pop("OKRSNAP_REDIS_URL", None)
        self.process: subprocess.Popen | None = None
        self.emails = [f"owner{i}@bench.example" for i in range(OWNERS)]
        self.token = self.workspace = self.user_id = None
        self.owner_ids: list[str] = []

    # processes
    def _add_users(self) -> None:
        """As `okrsnap user add` does, in this process (eight CLI starts cost half a minute)."""
        from services.gateway.bootstrap import bootstrap
        from services.gateway.service_layer import handlers, operators
        from shared.settings import Settings

        gateway = bootstrap(Settings.from_env(self.env))
        gateway.migrate()
        for i, email in enumerate(self.emails):
            operators.create_user(handlers.AddUser(email, PASSWORD, "Bench", "owner" if i == 0 else "member", None),
                                  uow=gateway.uow(), clock=gateway.clock)
        gateway.database.dispose()

    def start(self) -> float:
        """Starts `okrsnap up`; returns the seconds until it said it is up."""
        if not self.owner_ids:
            self._add_users()
        log = Path(self.tmp) / "up.log"
        began = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--no-demo", "--web-workers",
                                         str(self.web_workers)], env=self.env, cwd=ROOT, stdout=log.open("w"),
                                        stderr=subprocess.STDOUT)
        while "okrsnap is up" not in log.read_text():
            if self.process.poll() is not None or time.monotonic() - began > 180:
                raise RuntimeError(f"okrsnap up failed:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        if self.token is None:
            self.login()
        return time.monotonic() - began

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)  # `okrsnap up` stops everything on either
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for pid in reversed(proc_tree(self.process.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            try:
                self.database.close()
            finally:
                delete_broker_entities(self.namespace)
                shutil.rmtree(self.tmp, ignore_errors=True)

    def pids(self) -> list[int]:
        """Every process of this okrsnap (gunicorn masters and workers, relays, workers)."""
        return proc_tree(self.process.pid) if self.process else []

    def service_pids(self, module: str) -> list[int]:
        return [p for p in self.pids() if module in cmdline(p)]

    def all_pids(self) -> list[int]:
        """This okrsnap's processes and the PostgreSQL backends serving its database."""
        return self.pids() + self.database.backends()

    # the API
    def login(self, email: str | None = None) -> requests.Session:
        http = requests.Session()
        body = http.post(f"{self.api}/auth/login", json={"email": email or self.emails[0], "password": PASSWORD})
        body.raise_for_status()
        token = body.json()
        http.headers["Authorization"] = f"Bearer {token['access_token']}"
        if email is None:
            self.token = token["access_token"]
            self.user_id = token["user"]["id"]
            self.workspace = token["user"]["workspaces"][0]["id"]
            members = http.get(f"{self.api}/workspaces/{self.workspace}/members").json()["members"]
            self.owner_ids = [m["id"] for m in members]
        return http

    def http(self) -> requests.Session:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {self.token}"
        return http

    def import_history(self, key_results: int, weeks: int = WEEKS) -> tuple[str, float, dict]:
        """Seeds a Session through the check-in service's import endpoint (straight to the
        service, past the gateway's 30 s upstream timeout). Returns (Session id, seconds, doc)."""
        from shared import tokens

        doc = history(key_results, self.owner_ids, weeks)
        internal = tokens.internal_token(self.internal_secret, "checkin",
                                         tokens.Principal(self.user_id, {self.workspace: "owner"}))
        began = time.perf_counter()
        response = requests.post(f"http://127.0.0.1:{self.ports['checkin']}/workspaces/{self.workspace}/sessions/import",
                                 json=doc, headers={tokens.INTERNAL_HEADER: internal}, timeout=3600)
        seconds = time.perf_counter() - began
        if response.status_code != 201:
            raise RuntimeError(f"import failed after {seconds:.1f} s: {response.status_code} {response.text[:300]}")
        return response.json()["id"], seconds, doc

    def calendar_weeks(self, session_id: str) -> list[dict]:
        calendar = self.http().get(f"{self.api}/sessions/{session_id}/snapshots", timeout=120).json()
        return [w for m in calendar.get("months", []) for w in m["weeks"]]

    def wait_until_applied(self, session_id: str, items: int, sealed: int, timeout: float = 3600) -> float:
        """Polls the calendar until the live week shows `items` items and `sealed` weeks are
        sealed; returns the seconds it took."""
        began = time.monotonic()
        while True:
            weeks = self.calendar_weeks(session_id)
            current = next((w for w in weeks if w["status"] == "current"), None)
            done = [w for w in weeks if w["status"] == "sealed"]
            if current and (current.get("items") or 0) >= items and len(done) >= sealed:
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                raise RuntimeError(f"the Snapshot did not fill in {timeout} s: {len(done)} sealed, current {current}")
            time.sleep(0.5)

    def week_labels(self, session_id: str) -> tuple[str, list[str]]:
        """(the live week, every sealed week, oldest first)"""
        weeks = self.calendar_weeks(session_id)
        return (next(w["week"] for w in weeks if w["status"] == "current"),
                [w["week"] for w in weeks if w["status"] == "sealed"])


@contextmanager
def seeded_stack(key_results: int, web_workers: int = 2, weeks: int = WEEKS):
    """A running okrsnap with one imported Session, every past week sealed; yields
    (stack, session id, import seconds, seconds until the Snapshot had it all)."""
    stack = Stack(web_workers)
    try:
        stack.start()
        session_id, import_seconds, doc = stack.import_history(key_results, weeks)
        items = len(doc["objectives"]) + len(doc["key_results"]) + len(doc["initiatives"])
        applied = stack.wait_until_applied(session_id, items, weeks - 1)
        yield stack, session_id, import_seconds, applied, doc
    finally:
        stack.close()
