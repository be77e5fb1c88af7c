"""What a Check-in costs in the check-in service, and how long a history import takes (issue 13).

For each Session size: a fresh PostgreSQL database, the history import (Objectives of ten Key
Results each, `--weeks` weekly Check-ins of every Key Result) through the handler the HTTP
endpoint calls (the endpoint's body limits are below the larger sizes), then `--check-ins`
Check-ins through the check-in service's HTTP API (Flask's test client, the signed internal
token, the real app). Counted per Check-in: SQL statements (SQLAlchemy's cursor events), round
trips to PostgreSQL (libpq's protocol trace: one ReadyForQuery per round trip, BEGIN, COMMIT and
pool pings included) and the process's CPU time. The import's time is given as wall time, this
process's CPU time and the CPU time of the PostgreSQL server processes that served it: on a
shared, loaded machine the CPU times are what says whether it is linear.

    python -m bench.checkin --key-results 500 10000 --weeks 0 --check-ins 200
    python -m bench.checkin --key-results 1000 10000 --weeks 26 --check-ins 0
"""
from __future__ import annotations

import argparse
import cProfile
import os
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from flask import Flask, jsonify, request
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from services.checkin.bootstrap import bootstrap
from services.checkin.domain import commands
from services.checkin.entrypoints.app import create_app
from services.checkin.service_layer import handlers
from shared import tokens
from shared.clock import FixedClock
from shared.settings import Settings

DB_SERVER = os.environ.get("OKRSNAP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SECRET = uuid.uuid4().hex * 2
NOW = datetime(2026, 12, 20, 12, tzinfo=timezone.utc)


class Everyone:
    """The member directory, answering without the gateway: everyone named is a member."""

    def non_members(self, principal, workspace_id, user_ids):
        return set()


def history(key_results: int, weeks: int, owners: list[str]) -> dict:
    start = date(2026, 6, 1)
    created = datetime.combine(start, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=9)
    doc = {"session": {"name": "Bench", "start_date": start, "end_date": date(2026, 12, 27), "timezone": "UTC",
                       "created_at": created},
           "objectives": [], "key_results": [], "initiatives": [], "check_ins": []}
    for o in range(max(1, key_results // 10)):
        doc["objectives"].append({"ref": f"o{o}", "title": f"Objective {o}", "description": "",
                                  "owner_id": uuid.UUID(owners[o % len(owners)]),
                                  "parent_ref": f"o{o - 1}" if o % 3 else None, "created_at": created})
    for k in range(key_results):
        doc["key_results"].append({"ref": f"k{k}", "objective_ref": f"o{k // 10}", "title": f"Key Result {k}",
                                   "owner_id": uuid.UUID(owners[k % len(owners)]), "start_value": 0.0,
                                   "target_value": 100.0, "unit": "%", "created_at": created})
    for week in range(weeks):
        for k in range(key_results):
            doc["check_ins"].append({"key_result_ref": f"k{k}", "value": float(min(100, week * 4 + k % 7)),
                                     "status": "on_track", "confidence": 7, "comment": "moved",
                                     "checked_in_at": created + timedelta(weeks=week, hours=1 + k % 48)})
    return doc


@contextmanager
def database():
    name = f"okrsnap_bench_checkin_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(DB_SERVER), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(DB_SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Wire:
    """Statements and round trips on every connection of an engine between start() and stop()."""

    def __init__(self, engine, directory: str):
        self.statements = 0
        self.counting = False
        self.connections: list = []
        self.traces: list[Path] = []
        self.directory = directory
        Path(directory).mkdir(parents=True, exist_ok=True)
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "connect", self._connected)
        engine.dispose()  # every connection from now on is known

    def _statement(self, *args):
        self.statements += self.counting

    def _connected(self, dbapi_connection, _record):
        self.connections.append(dbapi_connection)
        if self.counting:
            self._trace(dbapi_connection)

    def _trace(self, dbapi_connection):
        path = Path(self.directory) / f"trace{len(self.traces)}.txt"
        with path.open("w") as handle:  # libpq keeps its own duplicate of the descriptor
            dbapi_connection.pgconn.trace(os.dup(handle.fileno()))
        self.traces.append(path)

    def start(self) -> None:
        self.counting = True
        for connection in self.connections:
            self._trace(connection)

    def stop(self) -> int:
        """The round trips counted: one ReadyForQuery per answered query or pipeline sync."""
        self.counting = False
        for connection in self.connections:
            if not connection.closed:
                connection.pgconn.untrace()  # flushes libpq's buffered trace
        return sum(p.read_text().count("\tReadyForQuery\t") for p in self.traces)


class Backends:
    """CPU seconds of the PostgreSQL server processes behind an engine's connections (same
    machine): the other half of a write's cost, beside this process's."""

    def __init__(self, engine):
        self.pids: list[int] = []
        event.listen(engine, "connect", self._connected)
        engine.dispose()

    def _connected(self, dbapi_connection, _record):
        self.pids.append(dbapi_connection.info.backend_pid)

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # not on this machine, or ended
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")


def raw_ratio(container, check_in, ids, count: int, block: int = 10) -> dict:
    """The CPU of a Check-in against the raw baseline's, interleaved in blocks in one process:
    a bare Flask route that parses the same body and inserts and commits one row (the peer
    pipeline's request half)."""
    raw = Flask("raw")
    engine = container.database.engine

    @raw.post("/raw/<uuid:key_result_id>")
    def raw_check_in(key_result_id):
        body = request.get_json()
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO check_ins (id, key_result_id, value, status, comment, checked_in_at) "
                              "VALUES (:id, :k, :value, :status, :comment, now())"),
                         {"id": uuid.uuid4(), "k": key_result_id, **body})
        return jsonify(body), 201

    client = raw.test_client()
    ours = base = 0.0
    for start in range(0, count, block):
        cpu = time.process_time()
        for n in range(start, start + block):
            check_in(n)
        ours += time.process_time() - cpu
        cpu = time.process_time()
        for n in range(start, start + block):
            assert client.post(f"/raw/{ids[n % len(ids)]}", json={"value": float(n % 100), "status": "on_track",
                                                                    "comment": "moved"}).status_code == 201
        base += time.process_time() - cpu
    return {"interleaved_cpu_ms": ours * 1000 / count, "raw_cpu_ms": base * 1000 / count, "cpu_ratio": ours / base}


def run(key_results: int, weeks: int, check_ins: int) -> dict:
    with database() as url, tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({
            "OKRSNAP_ENV": "test", "OKRSNAP_DATA_DIR": str(Path(tmp) / "var"), "OKRSNAP_DATABASE_URL": url,
            "OKRSNAP_INTERNAL_SECRET": SECRET, "OKRSNAP_ACCESS_TOKEN_SECRET": SECRET,
            "OKRSNAP_DOWNLOAD_SECRET": SECRET})
        container = bootstrap(settings, FixedClock(NOW))
        container.migrate()
        container.members = Everyone()
        workspace, user = uuid.uuid4(), uuid.uuid4()
        owner = tokens.Principal(str(user), {str(workspace): "owner"})
        document = history(key_results, weeks, [str(user)])
        backends = Backends(container.database.engine)
        started, cpu = time.perf_counter(), time.process_time()
        session = handlers.import_history(commands.ImportHistory(owner, workspace, document),
                                          uow=container.uow(), clock=container.clock, members=container.members)
        out = {"key_results": key_results, "weeks": weeks, "import_check_ins": len(document["check_ins"]),
               "import_s": time.perf_counter() - started, "import_cpu_s": time.process_time() - cpu,
               "import_server_cpu_s": backends.cpu_seconds()}
        if check_ins:
            with container.uow() as uow:
                ids = [k.id for k in uow.repo.list_key_results(session.id)]
            client = create_app(container).test_client()
            headers = {tokens.INTERNAL_HEADER: tokens.internal_token(SECRET, "checkin", owner)}

            def check_in(n: int) -> None:
                response = client.post(f"/key-results/{ids[n % len(ids)]}/check-ins", headers=headers,
                                       json={"value": float(n % 100), "status": "on_track", "comment": "moved"})
                assert response.status_code == 201, response.get_data(as_text=True)

            for n in range(20):  # warm: the app's first requests, the pool, prepared statements
                check_in(n)
            wire = Wire(container.database.engine, tmp)
            check_in(0)  # the pool's connection, made before counting
            wire.start()
            profile = cProfile.Profile(time.process_time) if os.environ.get("OKRSNAP_BENCH_PROFILE") else None
            cpu, started = time.process_time(), time.perf_counter()
            if profile:
                profile.enable()
            for n in range(check_ins):
                check_in(n)
            if profile:
                profile.disable()
                profile.dump_stats(os.environ["OKRSNAP_BENCH_PROFILE"])
            out |= {"cpu_ms_per_check_in": (time.process_time() - cpu) * 1000 / check_ins,
                    "wall_ms_per_check_in": (time.perf_counter() - started) * 1000 / check_ins}
            round_trips = wire.stop()
            out |= {"statements_per_check_in": wire.statements / check_ins,
                    "round_trips_per_check_in": round_trips / check_ins}
            out |= raw_ratio(container, check_in, ids, check_ins)
        container.database.dispose()
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key-results", type=int, nargs="+", default=[500, 10_000])
    parser.add_argument("--weeks", type=int, default=0)
    parser.add_argument("--check-ins", type=int, default=200)
    args = parser.parse_args()
    for size in args.key_results:
        result = run(size, args.weeks, args.check_ins)
        print("  ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()),
              flush=True)


if __name__ == "__main__":
    main()
