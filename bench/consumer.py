"""The snapshot consumer draining N signed events against raw kombu consuming N messages of the
same bodies from a quorum queue on the same RabbitMQ, interleaved, in one run.

okrsnap: N events of a Session (its creation, Objectives, Key Results, then Check-ins spread over
the Key Results) written to the check-in service's outbox and published by its own relay (signed,
persistent, confirmed) onto the snapshot service's quorum queue; then the timer starts and the
snapshot service's EventConsumer (as its worker runs it: verify, decode, validate, apply, commit,
ack) drains the queue. raw: the same number of signed bodies of the same events on a fresh quorum
queue, drained by a kombu Consumer that acks each (prefetch as the okrsnap consumer's). Also
counted: PostgreSQL commits per batch of the okrsnap consumer (pg_stat_database).

    python -m bench.consumer --events 5000
"""
from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
import uuid
from datetime import date, datetime, timedelta, timezone

from kombu import Connection, Consumer, Exchange, Producer, Queue
from sqlalchemy import text

from bench.stack import BROKER, Database, delete_broker_entities, median
from services.snapshot.entrypoints.worker import PREFETCH as SNAPSHOT_WORKER_PREFETCH
from shared.events import Event

EVENTS = 5000
ROUNDS = 3
TARGET = 0.5


def session_events(n: int) -> list[Event]:
    """n events of one new Session: 1 creation, n/100 Objectives, n/10 Key Results, the rest
    Check-ins on Key Results drawn at random, each with the Key Result's new state."""
    rng = random.Random(n)
    workspace, session_id = uuid.uuid4(), uuid.uuid4()
    t0 = datetime.now(timezone.utc) - timedelta(hours=1)
    seq = iter(range(1, 10_000_000))
    start = date.today() - timedelta(days=14)

    def event(kind, entity_id, payload):
        return Event.new(f"checkin.{kind}", occurred_at=t0, workspace_id=workspace, session_id=session_id,
                         entity_id=entity_id, sequence=next(seq), payload=payload)

    out = [event("session.created", session_id, {
        "id": session_id, "workspace_id": workspace, "name": "Bench", "start_date": start,
        "end_date": start + timedelta(weeks=12), "timezone": "UTC", "week_start_day": "monday",
        "checkin_cadence": "weekly", "checkin_weekday": "friday", "status": "active", "visibility": "workspace",
        "members": [], "version": 1})]
    objectives = []
    for o in range(max(1, n // 100)):
        objective = {"id": uuid.uuid4(), "session_id": session_id, "workspace_id": workspace, "title": f"Objective {o}",
                     "description": "", "owner_id": None, "parent_id": None, "private": False, "visible_to": [],
                     "version": 1, "removed": False}
        objectives.append(objective)
        out.append(event("objective.created", objective["id"], objective))
    key_results = []
    for k in range(max(1, n // 10)):
        kr = {"id": uuid.uuid4(), "objective_id": objectives[k % len(objectives)]["id"], "session_id": session_id,
              "workspace_id": workspace, "title": f"Key Result {k}", "owner_id": None, "kind": "metric",
              "start_value": 0.0, "target_value": 100.0, "current_value": 0.0, "unit": "%", "status": "not_started",
              "confidence": None, "weight": 1.0, "progress": 0.0, "version": 1, "removed": False}
        key_results.append(kr)
        out.append(event("key_result.created", kr["id"], kr))
    while len(out) < n:
        kr = rng.choice(key_results)
        kr.update(current_value=round(rng.uniform(0, 100), 2), status="on_track", version=kr["version"] + 1)
        kr["progress"] = kr["current_value"] / 100
        check_in = {"id": uuid.uuid4(), "key_result_id": kr["id"], "value": kr["current_value"], "status": "on_track",
                    "confidence": 7, "comment": "moved after the launch", "author_id": None, "checked_in_at": t0}
        out.append(event("key_result.checked_in", kr["id"], {"check_in": check_in, "key_result": dict(kr)}))
    return out


class Okrsnap:
    def __init__(self, database: Database, tmp: str):
        from services.checkin.bootstrap import bootstrap as checkin_bootstrap
        from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
        from shared.settings import Settings

        self.namespace = f"okrsnap-bench-{uuid.uuid4().hex[:8]}"
        self.settings = Settings.from_env({"OKRSNAP_ENV": "test", "OKRSNAP_DATA_DIR": tmp,
                                           "OKRSNAP_DATABASE_URL": database.url_string, "OKRSNAP_BROKER_URL": BROKER,
                                           "OKRSNAP_BROKER_NAMESPACE": self.namespace})
        self.database = database
        self.checkin, self.snapshot = checkin_bootstrap(self.settings), snapshot_bootstrap(self.settings)
        self.checkin.migrate()
        self.snapshot.migrate()

    def fill(self, events: list[Event]) -> None:
        """The real producer path: outbox rows, published by the check-in relay."""
        from services.checkin.adapters import orm
        from shared.messaging import add_to_outbox

        session = self.checkin.database.session()
        now = datetime.now(timezone.utc)
        for event in events:
            add_to_outbox(session, orm.outbox, event, now)
        session.commit()
        session.close()
        relay = self.checkin.relay()
        while relay.run_once():
            pass
        relay.close()

    def drain(self, n: int) -> dict:
        consumer = self.snapshot.consumer(prefetch_count=SNAPSHOT_WORKER_PREFETCH)  # as the worker runs it
        commits = self._commits()
        thread = threading.Thread(target=consumer.run, daemon=True)
        started = time.perf_counter()
        thread.start()
        deadline = time.monotonic() + 600
        while consumer.processed < n:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"the consumer stopped at {consumer.processed} of {n}")
            time.sleep(0.005)
        seconds = time.perf_counter() - started
        consumer.should_stop = True
        thread.join(30)
        time.sleep(1.5)  # PostgreSQL reports a backend's commits to pg_stat_database within a second
        batch = getattr(consumer, "batch_size", 50) or 50
        return {"rate": n / seconds, "transactions_per_batch": (self._commits() - commits) / (n / batch),
                "prefetch": consumer.prefetch_count, "batch": batch}

    def _commits(self) -> int:
        with self.database.admin.connect() as conn:
            return conn.execute(text("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :d"),
                                {"d": self.database.name}).scalar()

    def close(self) -> None:
        self.checkin.database.dispose()
        self.snapshot.database.dispose()
        delete_broker_entities(self.namespace)


def raw_kombu(bodies: list[dict], prefetch: int) -> float:
    """Fresh quorum queue, the bodies published (persistent, confirmed) before the timer, then
    consumed and acked one by one."""
    name = f"okrsnap-bench-raw-{uuid.uuid4().hex[:8]}"
    exchange = Exchange(name, type="topic", durable=True)
    queue = Queue(name, exchange, routing_key="#", durable=True, queue_arguments={"x-queue-type": "quorum"})
    try:
        with Connection(BROKER, transport_options={"confirm_publish": True}) as conn:
            channel = conn.channel()
            queue(channel).declare()
            producer = Producer(channel, exchange=exchange)
            for body in bodies:
                producer.publish(body, routing_key=body["event_type"], serializer="json", delivery_mode=2)
            received = 0

            def on_message(_body, message):
                nonlocal received
                message.ack()
                received += 1

            started = time.perf_counter()
            with Consumer(conn.channel(), queues=[queue], callbacks=[on_message], accept=["json"],
                          prefetch_count=prefetch):
                while received < len(bodies):
                    conn.drain_events(timeout=30)
            return len(bodies) / (time.perf_counter() - started)
    finally:
        delete_broker_entities(None, [name], [name])


def measure(n: int = EVENTS, rounds: int = ROUNDS) -> dict:
    from shared.messaging import event_signer

    database = Database()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            okrsnap = Okrsnap(database, tmp)
            signer = event_signer(okrsnap.settings)
            runs = {"okrsnap": [], "raw": [], "commits": []}
            try:
                for r in range(rounds):
                    events = session_events(n)
                    okrsnap.fill(events)
                    result = okrsnap.drain(n)
                    runs["okrsnap"].append(result["rate"])
                    runs["commits"].append(result["transactions_per_batch"])
                    runs.setdefault("batch", []).append(result["batch"])
                    runs["raw"].append(raw_kombu([signer.sign(e.to_wire()) for e in session_events(n)],
                                                 result["prefetch"]))
                    print(f"  round {r + 1}: okrsnap {runs['okrsnap'][-1]:.0f}/s, raw {runs['raw'][-1]:.0f}/s, "
                          f"{runs['commits'][-1]:.1f} transactions per batch", flush=True)
            finally:
                okrsnap.close()
    finally:
        database.close()
    return {"events": n, "rounds": rounds, "okrsnap": median(runs["okrsnap"]), "raw": median(runs["raw"]),
            "commits": median(runs["commits"]), "batch": max(runs.get("batch") or [50]), "all": runs}


def report(r: dict) -> str:
    ratio = r["okrsnap"] / r["raw"]
    return "\n".join([
        f"## Snapshot consumer vs raw kombu consume ({r['events']:,} events, same quorum queue type)", "",
        f"`python -m bench.consumer --events {r['events']}`. Each round: the events of a new Session (Objectives, "
        "Key Results, Check-ins spread over them) go through the check-in outbox and its relay onto the snapshot "
        "queue; then the snapshot service's consumer drains them (verify, validate, apply, commit, ack). Raw: "
        "the same number of signed bodies on a fresh quorum queue, consumed and acked by a plain kombu Consumer "
        f"with the same prefetch. Queues filled before each timer starts; median of {r['rounds']} interleaved "
        "rounds.", "",
        "| | events/s | rounds | ratio | target |", "| --- | ---: | --- | ---: | --- |",
        f"| raw kombu consume + ack | {r['raw']:,.0f} | {', '.join(f'{v:,.0f}' for v in r['all']['raw'])} | 1.00 | |",
        f"| okrsnap snapshot consumer | {r['okrsnap']:,.0f} | {', '.join(f'{v:,.0f}' for v in r['all']['okrsnap'])} | "
        f"{ratio:.2f}x | >= {TARGET}x: {'met' if ratio >= TARGET else 'NOT met'} |", "",
        f"PostgreSQL transactions (commits and rollbacks, pg_stat_database) per batch of {r.get('batch', 50)} during the drain: "
        f"{r['commits']:.1f} (target: one per batch; every transaction on the database while it drained counts).", ""])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    print(report(measure(args.events, args.rounds)))


if __name__ == "__main__":
    main()
