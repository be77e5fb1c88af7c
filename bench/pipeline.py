"""Event pipeline throughput, against a raw baseline on the same broker in the same process.

raw:     kombu publish with confirms (persistent) of N JSON bodies, then consume + ack all N.
okrsnap: N Check-ins written through the check-in handler (outbox rows), relayed by OutboxRelay
         (confirms, mark sent), consumed by the snapshot EventConsumer (validate, apply, record
         the processed event, commit, ack).
Needs PostgreSQL and RabbitMQ (same discovery as the tests: OKRSNAP_TEST_DATABASE_URL /
OKRSNAP_TEST_BROKER_URL, else the local servers).
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

from kombu import Connection, Consumer, Exchange, Producer, Queue
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.checkin.bootstrap import bootstrap as checkin_bootstrap
from services.checkin.domain import commands
from services.checkin.service_layer import handlers
from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
from shared.clock import FixedClock
from shared.settings import Settings
from shared.tokens import Principal

N = int(os.environ.get("OKRSNAP_BENCH_EVENTS", 2000))
ROOT = Path(__file__).resolve().parent.parent
DB_SERVER = os.environ.get("OKRSNAP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BROKER = os.environ.get("OKRSNAP_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


class AllMembers:
    """The benchmark names no people: every id counts as a member."""

    def non_members(self, principal, workspace_id, user_ids) -> set:
        return set()


def raw_kombu(n: int) -> float:
    name = f"bench-raw-{uuid.uuid4().hex[:8]}"
    exchange = Exchange(name, type="topic", durable=True)
    queue = Queue(name, exchange, routing_key="#", durable=True)
    body = {"event_id": str(uuid.uuid4()), "payload": {"value": 1.0, "comment": "x" * 40}}
    with Connection(BROKER, transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        queue(channel).declare()
        producer = Producer(channel, exchange=exchange)
        received = 0

        def on_message(_body, message):
            nonlocal received
            message.ack()
            received += 1

        start = time.perf_counter()
        for _ in range(n):
            producer.publish(body, routing_key="bench", serializer="json", delivery_mode=2, mandatory=True)
        with Consumer(conn.channel(), queues=[queue], callbacks=[on_message], accept=["json"], prefetch_count=20):
            while received < n:
                conn.drain_events(timeout=10)
        elapsed = time.perf_counter() - start
        queue(channel).delete()
        exchange(channel).delete()
    return n / elapsed


def okrsnap_pipeline(n: int, tmp: Path) -> tuple[float, float, float]:
    """Returns (events/s end to end, relay events/s, consumer events/s)."""
    name = f"okrsnap_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(DB_SERVER), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        settings = Settings.from_env({
            "OKRSNAP_ENV": "test", "OKRSNAP_DATA_DIR": str(tmp),
            "OKRSNAP_DATABASE_URL": make_url(DB_SERVER).set(database=name).render_as_string(False),
            "OKRSNAP_BROKER_URL": BROKER, "OKRSNAP_BROKER_NAMESPACE": f"bench-{uuid.uuid4().hex[:8]}"})
        checkin, snapshot = checkin_bootstrap(settings), snapshot_bootstrap(settings)
        checkin.migrate()
        snapshot.migrate()
        ws, user = uuid.uuid4(), uuid.uuid4()
        principal = Principal(str(user), {str(ws): "owner"})
        clock = FixedClock(datetime(2026, 11, 25, 9, tzinfo=timezone.utc))
        session = handlers.create_session(commands.CreateSession(
            principal, ws, "Bench", date(2026, 10, 1), date(2026, 12, 31), "UTC"), uow=checkin.uow(), clock=clock)
        everyone = AllMembers()
        objective = handlers.add_objective(commands.AddObjective(principal, session.id, "O"),
                                           uow=checkin.uow(), clock=clock, members=everyone)
        kr = handlers.add_key_result(commands.AddKeyResult(principal, objective.id, "KR", 0, n),
                                     uow=checkin.uow(), clock=clock, members=everyone)
        for i in range(n - 3):
            handlers.record_check_in(commands.RecordCheckIn(principal, kr.id, i, "on_track", "x" * 40),
                                     uow=checkin.uow(), clock=clock)
        relay = checkin.relay()
        consumer = snapshot.consumer()
        thread = threading.Thread(target=consumer.run, daemon=True)
        start = time.perf_counter()
        while relay.run_once():
            pass
        relayed = time.perf_counter()
        thread.start()
        while consumer.processed < n:
            time.sleep(0.01)
        done = time.perf_counter()
        consumer.should_stop = True
        thread.join(10)
        relay.close()
        checkin.database.dispose()
        snapshot.database.dispose()
        return n / (done - start), n / (relayed - start), n / (done - relayed)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        raw_kombu(200)  # warm up the broker connection path
        raw = raw_kombu(N)
        total, relay, consume = okrsnap_pipeline(N, Path(tmp))
    rows = [
        ("raw kombu publish (confirms) + consume", raw, 1.0),
        ("okrsnap relay + consumer, end to end", total, total / raw),
        ("okrsnap outbox relay alone", relay, relay / raw),
        ("okrsnap snapshot consumer alone (apply + commit + ack)", consume, consume / raw),
    ]
    table = "\n".join(f"| {name} | {rate:,.0f} | {ratio:.2f} |" for name, rate, ratio in rows)
    return f"""## Event pipeline ({N} events through RabbitMQ and PostgreSQL)

| path | events/s | ratio to raw kombu |
| --- | ---: | ---: |
{table}

The relay publishes each outbox row with publisher confirms and marks the batch sent after the
confirms; the consumer validates each event against the catalogue and applies a batch of the
messages that arrived together (up to 50; a batch closes when full or when no message came for
20 ms) with their processed-event records in one PostgreSQL transaction, commits, then acks the
batch (one multiple ack). Target: the consumer at least half the raw rate.
"""
