"""The event pipeline's own cost against raw kombu, on the local RabbitMQ and PostgreSQL.

    .venv/bin/python scripts/pipeline_consumer.py [--events 3000] [--rounds 3] [--krs 500]

consumer: N signed check-in events (made by the check-in handlers in memory) wait in a fresh
quorum queue; the snapshot worker's EventConsumer (verify, decode, apply_events, commit, ack)
drains them. raw: the same bodies in another fresh quorum queue, drained by a bare kombu Consumer
with the same prefetch that acks each message. "noop" is the EventConsumer with a handler that
does nothing: the consumer's own overhead. Rounds are interleaved (raw, noop, consumer, ...) and
each prints wall-clock events/s and this process's CPU ms per event.

relay: N rows in a fresh check-in outbox, published by OutboxRelay.run_once (sign, publish with
confirms, mark sent) against raw kombu publishes of the same bodies with confirms.

latency: a relay in run_forever and a raw consumer on the queue; outbox rows committed one at a
time at random gaps; p50/p99 of commit -> delivery.

Every exchange, queue and database made here has a unique name and is deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kombu import Connection, Consumer, Exchange, Producer, Queue  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from shared.settings import Settings  # noqa: E402

DB_SERVER = os.environ.get("OKRSNAP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BROKER = os.environ.get("OKRSNAP_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
# The snapshot worker's prefetch unless given; the raw consumer uses the same.
PREFETCH = int(os.environ.get("PIPELINE_PREFETCH", 0)) or __import__(
    "services.snapshot.entrypoints.worker", fromlist=["PREFETCH"]).PREFETCH
BATCH = int(os.environ.get("PIPELINE_BATCH", 0))  # 0: the consumer's own default (half the prefetch)


class Everyone:
    def non_members(self, principal, workspace_id, user_ids) -> set:
        return set()


def make_events(n_checkins: int, n_krs: int):
    """Session, Objective, `n_krs` Key Results and `n_checkins` Check-ins spread over them, as
    the check-in handlers emit them (real payloads, sequences)."""
    from services.checkin.domain import commands
    from services.checkin.service_layer import handlers
    from shared.clock import FixedClock
    from shared.tokens import Principal
    from tests.unit.test_checkin_handlers import FakeUnitOfWork

    ws, user = uuid.uuid4(), uuid.uuid4()
    owner = Principal(str(user), {str(ws): "owner"})
    uow, clock, everyone = FakeUnitOfWork(), FixedClock(datetime(2026, 11, 25, 9, tzinfo=timezone.utc)), Everyone()
    session = handlers.create_session(commands.CreateSession(
        owner, ws, "Bench", date(2026, 10, 1), date(2026, 12, 31), "UTC"), uow=uow, clock=clock)
    objective = handlers.add_objective(commands.AddObjective(owner, session.id, "O"), uow=uow, clock=clock,
                                       members=everyone)
    krs = [handlers.add_key_result(commands.AddKeyResult(owner, objective.id, f"KR {i}", 0, 1000),
                                   uow=uow, clock=clock, members=everyone) for i in range(n_krs)]
    setup = list(uow.repo.events)
    for i in range(n_checkins):
        handlers.record_check_in(commands.RecordCheckIn(owner, krs[i % n_krs].id, i % 1000, "on_track",
                                                        "moved because of the weekly push"),
                                 uow=uow, clock=clock)
    return setup, uow.repo.events[len(setup):]


def settings_for(tmp: Path, database: str, namespace: str) -> Settings:
    return Settings.from_env({
        "OKRSNAP_ENV": "test", "OKRSNAP_DATA_DIR": str(tmp),
        "OKRSNAP_DATABASE_URL": make_url(DB_SERVER).set(database=database).render_as_string(False),
        "OKRSNAP_BROKER_URL": BROKER, "OKRSNAP_BROKER_NAMESPACE": namespace,
        "OKRSNAP_INTERNAL_SECRET": "bench-internal-secret-0123456789abcdef",
        "OKRSNAP_ACCESS_TOKEN_SECRET": "bench-access-secret-0123456789abcdef",
        "OKRSNAP_DOWNLOAD_SECRET": "bench-download-secret-0123456789abcdef",
        "OKRSNAP_EVENT_SIGNING_KEY": "bench-event-signing-key-0123456789abcdef",
    })


class Databases:
    def __init__(self):
        self.admin = create_engine(make_url(DB_SERVER), isolation_level="AUTOCOMMIT")
        self.names: list[str] = []

    def new(self) -> str:
        name = f"okrsnap_pipe_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        return name

    def drop_all(self):
        with self.admin.connect() as conn:
            for name in self.names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


def delete_topology(namespace: str) -> None:
    from shared.topology import Topology

    with Connection(BROKER) as conn:
        channel = conn.channel()
        for entity in Topology(namespace).all_entities():
            if hasattr(entity, "queue_arguments"):
                channel.queue_delete(entity.name)
            else:
                channel.exchange_delete(entity.name)


def publish_bodies(exchange: Exchange, bodies: list[bytes], routing_keys: list[str]) -> None:
    with Connection(BROKER, transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel(), exchange=exchange)
        for body, key in zip(bodies, routing_keys):
            producer.publish(body, routing_key=key, content_type="application/json", content_encoding="utf-8",
                             delivery_mode=2)


def wait_ready(queue_name: str, count: int) -> None:
    """Publisher confirms on a quorum queue mean the messages are there; this double-checks."""
    with Connection(BROKER) as conn:
        channel = conn.channel()
        deadline = time.monotonic() + 30
        while channel.queue_declare(queue_name, passive=True).message_count < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{queue_name}: the messages did not all arrive")
            time.sleep(0.05)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def raw_round(bodies, keys) -> tuple[float, float]:
    name = f"pipe-raw-{uuid.uuid4().hex[:10]}"
    exchange = Exchange(name, type="topic", durable=True)
    queue = Queue(name, exchange, routing_key="#", durable=True, queue_arguments={"x-queue-type": "quorum"})
    with Connection(BROKER) as conn:
        queue(conn.channel()).declare()
    try:
        publish_bodies(exchange, bodies, keys)
        wait_ready(name, len(bodies))
        received = 0

        def on_message(body, message):
            nonlocal received
            message.ack()
            received += 1

        def drain():
            with Connection(BROKER) as conn:
                with Consumer(conn.channel(), queues=[queue], callbacks=[on_message], accept=["json"],
                              prefetch_count=PREFETCH):
                    while received < len(bodies):
                        conn.drain_events(timeout=10)

        return timed(drain)
    finally:
        with Connection(BROKER) as conn:
            channel = conn.channel()
            channel.queue_delete(name)
            channel.exchange_delete(name)


def consumer_round(tmp: Path, dbs: Databases, setup, events, *, noop: bool) -> tuple[float, float]:
    from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
    from shared.clock import FixedClock
    from shared.messaging import declare_topology, event_signer, topology_for

    namespace = f"pipe-{uuid.uuid4().hex[:10]}"
    settings = settings_for(tmp, dbs.new(), namespace)
    store = snapshot_bootstrap(settings, clock=FixedClock(datetime(2026, 11, 25, 9, tzinfo=timezone.utc)))
    store.migrate()
    declare_topology(settings)
    try:
        signer = event_signer(settings)
        store.apply_batch(setup)  # the Session and its items are there before the Check-ins
        bodies = [json.dumps(signer.sign(e.to_wire())).encode() for e in events]
        exchange = topology_for(settings).exchange("checkin")
        publish_bodies(exchange, bodies, [e.event_type for e in events])
        wait_ready(topology_for(settings).queue_name("snapshot", "events"), len(bodies))
        consumer = store.consumer(prefetch_count=PREFETCH)
        if BATCH:
            consumer.batch_size = min(BATCH, consumer.prefetch_count)
        if noop:
            consumer.handle_batch = lambda batch: len(batch)
            consumer.handle = lambda event: True
        thread = threading.Thread(target=consumer.run, daemon=True)

        def drain():
            thread.start()
            while consumer.processed < len(bodies):
                time.sleep(0.002)

        result = timed(drain)
        consumer.should_stop = True
        thread.join(10)
        if consumer.dead_lettered_count:
            raise RuntimeError(f"{consumer.dead_lettered_count} events dead-lettered")
        if not noop:
            with store.database.engine.connect() as conn:
                applied = conn.execute(text("SELECT count(*) FROM processed_events")).scalar()
            assert applied >= len(events), applied
        return result
    finally:
        store.database.dispose()
        delete_topology(namespace)


def relay_round(tmp: Path, dbs: Databases, events):
    """(wall, cpu) of the relay, raw publishes each confirmed, raw publishes confirmed per 200."""
    from services.checkin.adapters import orm
    from services.checkin.bootstrap import bootstrap as checkin_bootstrap
    from shared.messaging import add_to_outbox, declare_topology, event_signer, topology_for

    namespace = f"pipe-{uuid.uuid4().hex[:10]}"
    settings = settings_for(tmp, dbs.new(), namespace)
    checkin = checkin_bootstrap(settings)
    checkin.migrate()
    declare_topology(settings)
    try:
        now = datetime.now(timezone.utc)
        with checkin.database.session() as session:
            for event in events:
                add_to_outbox(session, orm.outbox, event, now)
            session.commit()
        relay = checkin.relay()

        def relay_all():
            while relay.run_once():
                pass

        relayed = timed(relay_all)
        relay.close()
        signer = event_signer(settings)
        exchange = topology_for(settings).exchange("checkin")

        def raw_publish():
            with Connection(BROKER, transport_options={"confirm_publish": True}) as conn:
                producer = Producer(conn.channel(), exchange=exchange)
                for event in events:
                    body = signer.sign(event.to_wire())
                    producer.publish(body, routing_key=event.event_type, serializer="json", delivery_mode=2,
                                     mandatory=True, message_id=str(event.event_id))

        def raw_pipelined():
            """Confirms awaited per 200 publishes, as a relay batch does, with py-amqp alone."""
            with Connection(BROKER) as conn:
                channel = conn.channel()
                channel.confirm_select()
                acked = 0

                def on_ack(tag, multiple):
                    nonlocal acked
                    acked = tag if multiple else acked + 1

                channel.events["basic_ack"].add(on_ack)
                for start in range(0, len(events), 200):
                    chunk = events[start:start + 200]
                    for event in chunk:
                        body = json.dumps(signer.sign(event.to_wire()))
                        channel.basic_publish(channel.prepare_message(
                            body, content_type="application/json", content_encoding="utf-8",
                            properties={"delivery_mode": 2, "message_id": str(event.event_id)}),
                            exchange=exchange.name, routing_key=event.event_type, mandatory=True)
                    while acked < start + len(chunk):
                        conn.drain_events(timeout=10)

        return relayed, timed(raw_publish), timed(raw_pipelined)
    finally:
        checkin.database.dispose()
        delete_topology(namespace)


def latency_round(tmp: Path, dbs: Databases, events, gap: float, relay_options: dict) -> list[float]:
    """Commit -> delivery of each outbox row, a relay running as in production."""
    from services.checkin.adapters import orm
    from services.checkin.bootstrap import bootstrap as checkin_bootstrap
    from shared.messaging import add_to_outbox, declare_topology, topology_for

    namespace = f"pipe-{uuid.uuid4().hex[:10]}"
    settings = settings_for(tmp, dbs.new(), namespace)
    checkin = checkin_bootstrap(settings)
    checkin.migrate()
    declare_topology(settings)
    stop = threading.Event()
    relay = checkin.relay()
    relay_thread = threading.Thread(target=relay.run_forever, args=(stop,), kwargs=relay_options, daemon=True)
    committed: dict[str, float] = {}
    delays: list[float] = []
    try:
        topology = topology_for(settings)
        consuming = threading.Event()

        def consume():
            with Connection(BROKER) as conn:
                def on_message(body, message):
                    delays.append(time.perf_counter() - committed[body["event_id"]])
                    message.ack()

                with Consumer(conn.channel(), queues=topology.queues("snapshot", "events"),
                              callbacks=[on_message], accept=["json"], prefetch_count=PREFETCH):
                    consuming.set()
                    while not stop.is_set():
                        try:
                            conn.drain_events(timeout=0.2)
                        except (TimeoutError, OSError):
                            pass

        consumer_thread = threading.Thread(target=consume, daemon=True)
        consumer_thread.start()
        consuming.wait(10)
        relay_thread.start()
        rng = random.Random(5)
        for event in events:
            time.sleep(rng.expovariate(1 / gap))  # a Poisson arrival: a request, not a test wait
            with checkin.database.session() as session:
                add_to_outbox(session, orm.outbox, event, datetime.now(timezone.utc))
                committed[str(event.event_id)] = time.perf_counter()  # the commit counts too
                session.commit()
        deadline = time.monotonic() + 10
        while len(delays) < len(events) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        consumer_thread.join(10)
        return delays
    finally:
        stop.set()
        relay_thread.join(10)
        checkin.database.dispose()
        delete_topology(namespace)


def median(xs):
    return statistics.median(xs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--krs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=("consumer", "relay", "latency"), action="append")
    parser.add_argument("--skip", choices=("raw", "noop", "consumer"), action="append", default=[],
                        help="leave a consumer variant out (e.g. to profile one)")
    parser.add_argument("--latency-events", type=int, default=200)
    parser.add_argument("--latency-gap", type=float, default=0.02, help="mean seconds between Check-ins")
    parser.add_argument("--relay-option", action="append", default=[],
                        help="NAME=SECONDS passed to OutboxRelay.run_forever, e.g. busy_for=0 (no busy polling)")
    args = parser.parse_args()
    parts = args.only or ["consumer", "relay", "latency"]
    dbs = Databases()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            if "consumer" in parts:
                runs: dict[str, list[tuple[float, float]]] = {"raw": [], "noop": [], "consumer": []}
                raw_round(*(lambda b: (b, ["x"] * len(b)))([b"{}"] * 200))  # warm the broker path
                for _ in range(args.rounds):
                    setup, events = make_events(args.events, args.krs)
                    from shared.events import EventSigner
                    signer = EventSigner("bench-event-signing-key-0123456789abcdef")
                    bodies = [json.dumps(signer.sign(e.to_wire())).encode() for e in events]
                    if "raw" not in args.skip:
                        runs["raw"].append(raw_round(bodies, [e.event_type for e in events]))
                    if "noop" not in args.skip:
                        runs["noop"].append(consumer_round(tmp, dbs, setup, events, noop=True))
                    if "consumer" not in args.skip:
                        runs["consumer"].append(consumer_round(tmp, dbs, setup, events, noop=False))
                n = args.events
                print(f"consumer: {n} check-in events, {args.krs} KRs, prefetch {PREFETCH}, {args.rounds} rounds "
                      "(median; ratio = median of per-round ratios)")
                for name, values in runs.items():
                    if not values or not runs["raw"]:
                        continue
                    rates = [n / w for w, _ in values]
                    ratios = [(n / w) / (n / rw) for (w, _), (rw, _) in zip(values, runs["raw"])]
                    print(f"  {name:9s} {median(rates):8,.0f} ev/s  ratio {median(ratios):.2f}  "
                          f"cpu {median([c for _, c in values]) * 1000 / n:.3f} ms/ev  "
                          f"(rates {', '.join(f'{r:,.0f}' for r in rates)})")
            if "relay" in parts:
                relays, raws, pipelined = [], [], []
                for _ in range(args.rounds):
                    _, events = make_events(args.events, args.krs)
                    relayed, raw, raw_batched = relay_round(tmp, dbs, events)
                    relays.append(relayed)
                    raws.append(raw)
                    pipelined.append(raw_batched)
                n = args.events
                print(f"relay: {n} outbox rows, {args.rounds} rounds (median)")
                print(f"  raw publish+confirm {median([n / w for w, _ in raws]):8,.0f} ev/s  "
                      f"cpu {median([c for _, c in raws]) * 1000 / n:.3f} ms/ev")
                print(f"  raw confirms per 200 {median([n / w for w, _ in pipelined]):7,.0f} ev/s  "
                      f"cpu {median([c for _, c in pipelined]) * 1000 / n:.3f} ms/ev")
                print(f"  OutboxRelay         {median([n / w for w, _ in relays]):8,.0f} ev/s  "
                      f"cpu {median([c for _, c in relays]) * 1000 / n:.3f} ms/ev  "
                      f"ratio to each-confirmed {median([rw / w for (w, _), (rw, _) in zip(relays, raws)]):.2f}, "
                      f"to per-200 {median([rw / w for (w, _), (rw, _) in zip(relays, pipelined)]):.2f}")
            if "latency" in parts:
                _, events = make_events(args.latency_events, 10)
                options = {k: float(v) for k, v in (o.split("=", 1) for o in args.relay_option)}
                delays = sorted(latency_round(tmp, dbs, events, args.latency_gap, options))
                if len(delays) < len(events):
                    print(f"latency: only {len(delays)} of {len(events)} delivered")
                q = statistics.quantiles(delays, n=100)
                print(f"latency: outbox commit -> delivery, {len(delays)} events, mean gap {args.latency_gap}s: "
                      f"p50 {q[49] * 1000:.1f} ms  p99 {q[98] * 1000:.1f} ms  max {delays[-1] * 1000:.1f} ms")
    finally:
        dbs.drop_all()


if __name__ == "__main__":
    main()
