"""The minimal peer pipeline the ingest benchmark compares okrsnap with (issue 13): the least a
service can do for a Check-in on the same PostgreSQL and RabbitMQ.

    Flask under gunicorn (as many workers and threads as okrsnap's gateway)
      POST /checkins   -> INSERT + COMMIT -> publish (persistent, publisher confirm) -> 201
    a consumer process (quorum queue, prefetch 50)
      message          -> INSERT + COMMIT -> ack
      GET /checkins/<id> answers 200 once the consumer has written it (the "visible" check)

No authentication, no validation beyond the JSON, no outbox: a floor, not a design.
`python -m bench.peer consume` runs the consumer; gunicorn loads `bench.peer:create_app()`.
Connections are opened lazily per process and thread, after gunicorn forks.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid

import psycopg
from kombu import Connection, Consumer, Exchange, Producer, Queue

from bench.stack import BROKER, ROOT, Database, delete_broker_entities, free_port, proc_tree

SCHEMA = """
CREATE TABLE IF NOT EXISTS checkins (id uuid PRIMARY KEY, key_result_id uuid NOT NULL, value double precision,
                                     comment text, received_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS projection (id uuid PRIMARY KEY, key_result_id uuid NOT NULL, value double precision,
                                       comment text);
"""


def _entities(namespace: str) -> tuple[Exchange, Queue]:
    exchange = Exchange(f"{namespace}.peer", type="topic", durable=True)
    return exchange, Queue(f"{namespace}.peer.events", exchange, routing_key="#", durable=True,
                           queue_arguments={"x-queue-type": "quorum"})


_local = threading.local()


def _thread_state():
    """One database connection and one confirming producer per thread of this process."""
    if getattr(_local, "pid", None) != os.getpid():
        _local.pid = os.getpid()
        _local.db = psycopg.connect(os.environ["PEER_DATABASE_URL"])
        _local.broker = Connection(os.environ.get("PEER_BROKER_URL", BROKER), transport_options={"confirm_publish": True})
        exchange, _ = _entities(os.environ["PEER_NAMESPACE"])
        _local.producer = Producer(_local.broker.channel(), exchange=exchange)
    return _local


def create_app():
    from flask import Flask, abort, request
    from werkzeug.exceptions import HTTPException

    app = Flask("peer")

    @app.errorhandler(Exception)
    def _reconnect(exc):
        if isinstance(exc, HTTPException):
            return exc
        # A broken connection (the shared server restarting a backend, a full server) would
        # otherwise fail every later request of this thread: start afresh on the next one.
        _local.pid = None
        app.logger.exception("peer request failed")
        return {"error": repr(exc)}, 503

    @app.post("/checkins")
    def post():
        body = request.get_json()
        state = _thread_state()
        check_in = {"id": str(uuid.uuid4()), "key_result_id": body["key_result_id"], "value": body["value"],
                    "comment": body.get("comment", "")}
        with state.db.cursor() as cursor:
            cursor.execute("INSERT INTO checkins (id, key_result_id, value, comment) VALUES (%s, %s, %s, %s)",
                           (check_in["id"], check_in["key_result_id"], check_in["value"], check_in["comment"]))
        state.db.commit()
        state.producer.publish(check_in, routing_key="checked_in", serializer="json", delivery_mode=2)
        return check_in, 201

    @app.get("/checkins/<uuid:check_in_id>")
    def get(check_in_id):
        state = _thread_state()
        with state.db.cursor() as cursor:
            row = cursor.execute("SELECT comment FROM projection WHERE id = %s", (check_in_id,)).fetchone()
        state.db.commit()
        if row is None:
            abort(404)
        return {"id": str(check_in_id), "comment": row[0]}

    return app


def consume() -> None:
    db = psycopg.connect(os.environ["PEER_DATABASE_URL"])
    _, queue = _entities(os.environ["PEER_NAMESPACE"])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def on_message(body, message):
        with db.cursor() as cursor:
            cursor.execute("INSERT INTO projection (id, key_result_id, value, comment) VALUES (%s, %s, %s, %s) "
                           "ON CONFLICT DO NOTHING", (body["id"], body["key_result_id"], body["value"], body["comment"]))
        db.commit()
        message.ack()

    while not stop.is_set():
        try:
            with Connection(os.environ.get("PEER_BROKER_URL", BROKER)) as conn:
                with Consumer(conn.channel(), queues=[queue], callbacks=[on_message], accept=["json"],
                              prefetch_count=50):
                    while not stop.is_set():
                        try:
                            conn.drain_events(timeout=0.5)
                        except TimeoutError:
                            pass
        except Exception as exc:  # noqa: BLE001 - a forced close (other work on this broker): reconnect
            print(f"peer consumer reconnects after {exc!r}", flush=True)
            if db.broken:
                db = psycopg.connect(os.environ["PEER_DATABASE_URL"])
            else:
                db.rollback()
            stop.wait(0.5)


class PeerStack:
    """The peer on its own database and broker names, started and cleaned up like okrsnap's."""

    def __init__(self, web_workers: int = 2, threads: int = 4):
        self.database = Database("okrsnap_bench_peer")
        self.namespace = f"okrsnap-bench-peer-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, PEER_DATABASE_URL=self.database.libpq, PEER_NAMESPACE=self.namespace,
                        PEER_BROKER_URL=BROKER, PYTHONPATH=str(ROOT))
        self.web_workers, self.threads = web_workers, threads
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        with psycopg.connect(self.database.libpq, autocommit=True) as conn:
            conn.execute(SCHEMA)
        exchange, queue = _entities(self.namespace)
        with Connection(BROKER) as conn:
            queue(conn.channel()).declare()
        log = open(f"/tmp/{self.namespace}.log", "w")  # noqa: SIM115 - the children hold it; removed on close
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.web_workers),
             "--threads", str(self.threads), "--log-level", "warning", "bench.peer:create_app()"],
            env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        self.processes.append(subprocess.Popen([sys.executable, "-m", "bench.peer", "consume"], env=self.env, cwd=ROOT,
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        import time

        import requests

        began = time.monotonic()
        while True:
            try:
                if requests.get(f"{self.base}/checkins/{uuid.uuid4()}", timeout=10).status_code == 404:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() - began > 60 or self.processes[0].poll() is not None:
                raise RuntimeError("the peer's gunicorn did not start")
            time.sleep(0.1)

    def pids(self) -> list[int]:
        return [pid for p in self.processes if p.poll() is None for pid in proc_tree(p.pid)]

    def all_pids(self) -> list[int]:
        return self.pids() + self.database.backends()

    def applied(self) -> int:
        return self.database.query("SELECT count(*) FROM projection")[0][0]

    def close(self) -> None:
        try:
            for process in self.processes:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            for process in self.processes:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=5)
        finally:
            try:
                self.database.close()
            finally:
                exchange, queue = _entities(self.namespace)
                delete_broker_entities(self.namespace, [queue.name], [exchange.name])
                log = f"/tmp/{self.namespace}.log"
                if os.path.exists(log) and "Traceback" in open(log).read():
                    print(f"  the peer logged errors (kept in {log})", flush=True)
                else:
                    os.unlink(log)


if __name__ == "__main__":
    if sys.argv[1:] == ["consume"]:
        consume()
    else:
        raise SystemExit("usage: python -m bench.peer consume (the benchmark starts the peer itself)")
