"""Broker connections, the outbox relay and the event consumer, over kombu.

Publishing goes through the outbox only: the business transaction writes an outbox row, the relay
signs it (shared.events.EventSigner), publishes it persistent and mandatory with publisher confirms
and marks it sent only after the confirm. Consumers verify the signature before anything else,
apply an event and its processed-event record in one transaction, commit, then ack; a message they
cannot process (an unsigned or wrongly signed one included) is dead-lettered with the reason and
the consumer goes on.
"""
from __future__ import annotations

import base64
import json
import logging
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Callable

import orjson
from kombu import Connection, Producer
from kombu.mixins import ConsumerProducerMixin
from kombu.transport.sqlalchemy import Transport as SqlaTransport
from marshmallow import ValidationError
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    select,
    update,
)
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SqlaTimeoutError
from sqlalchemy.orm import Session

from shared import observability
from shared.db import UtcDateTime
from shared.events import Event, EventSigner, EventVerifier, InvalidSignature, decode
from shared.process import beat
from shared.topology import Topology

log = logging.getLogger(__name__)

DEAD_LETTER_REASON = "x-okrsnap-dead-letter-reason"
PUBLISH_TIMEOUT = 10  # seconds to wait for a confirm; a blocked broker (memory alarm) fails the round


def broker_connection(settings) -> Connection:
    if settings.embedded_broker:
        # SQLAlchemy transport options go to create_engine; polling is set on the class below. The
        # URL goes without its "sqla+" prefix: kombu takes the transport from such a prefix and
        # would ignore ours.
        url = settings.broker_url.split("+", 1)[1] if settings.broker_url.startswith("sqla+") else settings.broker_url
        return Connection(url, transport=EmbeddedTransport, transport_options={"connect_args": {"timeout": 30}})
    return Connection(
        settings.broker_url,
        heartbeat=30,
        transport_options={"confirm_publish": True},  # kombu publishes unconfirmed unless told
        connect_timeout=10,
    )


class EmbeddedTransport(SqlaTransport):
    """kombu's SQLAlchemy transport, polled every 50 ms while messages flow (instead of every
    second) and every IDLE_POLLING seconds once none came for QUIET_AFTER seconds: an idle embedded
    okrsnap does not query its broker database dozens of times a second per consumer (a batching
    consumer drains with a 20 ms timeout, which alone would poll fifty times a second)."""

    polling_interval = BUSY_POLLING = 0.05
    IDLE_POLLING = 0.5
    QUIET_AFTER = 2.0
    _last_delivery = 0.0

    def drain_events(self, connection, timeout=None):
        if time.monotonic() - self._last_delivery > self.QUIET_AFTER:
            self.polling_interval = self.IDLE_POLLING
            if timeout is not None and timeout < self.IDLE_POLLING:
                time.sleep(self.IDLE_POLLING - timeout)  # nothing is waiting to be flushed meanwhile
        else:
            self.polling_interval = self.BUSY_POLLING
        result = super().drain_events(connection, timeout=timeout)  # socket.timeout when nothing came
        self._last_delivery = time.monotonic()
        return result


def event_signer(settings) -> EventSigner:
    """Signs with the current OKRSNAP_EVENT_SIGNING_KEY."""
    return EventSigner(settings.event_signing_key)


def event_verifier(settings) -> EventVerifier:
    """Accepts the current OKRSNAP_EVENT_SIGNING_KEY and those in OKRSNAP_EVENT_SIGNING_KEY_PREVIOUS."""
    return EventVerifier(settings.verification_keys("event"))


def topology_for(settings) -> Topology:
    return Topology(settings.broker_namespace, broker_features=not settings.embedded_broker)


def declare_topology(settings) -> None:
    """Declare every exchange and queue once, before the processes start: queues exist before
    the first publish, and the embedded transport's racy first creation happens only here."""
    with broker_connection(settings) as connection:
        topology_for(settings).declare(connection.channel())


# --- tables every producing or consuming service shares the shape of -----------------------

def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox", metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(200), nullable=False),
        Column("body", JSON, nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("sent_at", UtcDateTime(), nullable=True, index=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", Text, nullable=True),
    )


def processed_events_table(metadata: MetaData) -> Table:
    return Table(
        "processed_events", metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("processed_at", UtcDateTime(), nullable=False),
    )


def add_to_outbox(session: Session, outbox: Table, event: Event, now: datetime) -> None:
    session.execute(outbox.insert().values(
        event_id=str(event.event_id), event_type=event.event_type,
        body=observability.with_correlation(event.to_wire()),  # the relay moves it to a header
        created_at=now, attempts=0,
    ))


def already_processed(session: Session, table: Table, consumer: str, event_id) -> bool:
    found = session.execute(select(table.c.event_id).where(
        table.c.consumer == consumer, table.c.event_id == str(event_id))).first()
    return found is not None


def mark_processed(session: Session, table: Table, consumer: str, event_id, now: datetime) -> None:
    session.execute(table.insert().values(consumer=consumer, event_id=str(event_id), processed_at=now))


# --- the relay --------------------------------------------------------------------------------

class BatchConfirms:
    """Publisher confirms on one AMQP channel, awaited for a whole batch instead of after each
    publish (kombu's confirm_publish waits a round trip per message). Delivery tags count the
    channel's publishes from 1 after confirm.select; the broker acks (or nacks) each tag, or
    every tag up to one with `multiple`."""

    def __init__(self, connection: Connection, channel):
        self.connection = connection
        self._last = 0
        self._pending: set[int] = set()
        self._nacked: set[int] = set()
        channel.basic_publish = channel._basic_publish  # publish without waiting for its confirm
        if not channel._confirm_selected:
            channel.confirm_select()
            channel._confirm_selected = True
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)

    @classmethod
    def attach(cls, connection: Connection, channel) -> "BatchConfirms | None":
        """None where there is nothing to wait for (the embedded transport has no confirms)."""
        confirming = getattr(getattr(channel, "connection", None), "confirm_publish", False)
        if not (confirming and hasattr(channel, "_basic_publish") and hasattr(channel, "_confirm_selected")):
            return None
        return cls(connection, channel)

    def next_tag(self) -> int:
        """The tag of the publish about to be made (call it right before publishing)."""
        self._last += 1
        self._pending.add(self._last)
        return self._last

    def _settle(self, tag: int, multiple: bool) -> set[int]:
        settled = {t for t in self._pending if t <= tag} if multiple else {tag} & self._pending
        self._pending -= settled
        return settled

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._nacked |= self._settle(tag, multiple)

    def wait_all(self, timeout: float) -> set[int]:
        """Reads the connection until every publish so far is confirmed; returns the nacked
        tags. Raises TimeoutError (the round fails, its rows stay unsent) after `timeout`."""
        deadline = time.monotonic() + timeout
        while self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._pending)} publisher confirms did not come in {timeout}s")
            try:
                self.connection.drain_events(timeout=remaining)
            except TimeoutError:
                pass  # the loop decides
        nacked, self._nacked = self._nacked, set()
        return nacked


class OutboxRelay:
    """Publishes unsent outbox rows in id order. Rows are selected by `sent_at IS NULL`, locked
    with SKIP LOCKED so several relays may run; a crash after publish and before the commit only
    causes a duplicate, which consumers skip by event id.

    Each event is signed here, as it is published, with the current key: the outbox row holds
    the event itself, so a row written before a key rotation goes out signed with the new key,
    only the relay processes need the key, and an event taken out of the outbox again (sent_at
    set back to NULL, RELIABILITY.md) is signed afresh."""

    def __init__(self, *, session_factory: Callable[[], Session], outbox: Table, producer_name: str,
                 connection_factory: Callable[[], Connection], topology: Topology, clock,
                 signer: EventSigner, batch_size: int = 200, notify_channel: str | None = None):
        self.signer = signer
        # PostgreSQL only: a trigger on the outbox NOTIFYs this channel, so the relay sleeps until
        # a row is committed instead of polling (empty polls cost ~2 ms CPU each, fifty a second).
        self.notify_channel = notify_channel
        self._listener: OutboxListener | None = None
        self.service = producer_name
        self.session_factory = session_factory
        self.outbox = outbox
        self.exchange = topology.exchange(producer_name)
        self.connection_factory = connection_factory
        self.topology = topology
        self.clock = clock
        self.batch_size = batch_size
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._confirms: BatchConfirms | None = None  # AMQP only
        self._returned: set[str] = set()
        # Built once: constructing them cost a relay round (one or two Check-ins under load)
        # about a third of its CPU.
        o = outbox
        self._unsent = (select(o.c.id, o.c.event_id, o.c.event_type, o.c.body).where(o.c.sent_at.is_(None))
                        .order_by(o.c.id).limit(batch_size).with_for_update(skip_locked=True))
        self._mark_sent = update(o).where(o.c.id.in_(bindparam("ids", expanding=True))).values(
            sent_at=bindparam("sent_now"), attempts=o.c.attempts + 1)

    def _ensure_producer(self) -> Producer:
        if self._producer is None:
            self._connection = self.connection_factory()
            channel = self._connection.channel()
            self.topology.declare(channel)
            # basic.return exists on AMQP only; the embedded transport has no unroutable case.
            on_return = self._on_return if hasattr(channel, "events") else None
            self._producer = Producer(channel, exchange=self.exchange, on_return=on_return)
            self._confirms = BatchConfirms.attach(self._connection, channel)
        return self._producer

    def _on_return(self, exception, exchange, routing_key, message):
        self._returned.add(message.properties.get("message_id"))

    def close(self, *, failed: bool = False) -> None:
        """After a failure the connection is dropped without AMQP's close handshake: a broker
        that stopped answering (a black hole) would hold the Close-Ok, and the relay with it,
        without a word in the log, until the network healed."""
        connection, self._connection, self._producer, self._confirms = self._connection, None, None, None
        if connection is None:
            return
        try:
            if failed:
                connection.collect()
            else:
                connection.release()
        except Exception:  # noqa: BLE001 - it is gone either way
            log.debug("closing the relay's broker connection failed", exc_info=True)

    def run_once(self) -> int:
        """Publish one batch; returns how many rows were confirmed and marked sent."""
        session = self.session_factory()
        try:
            rows = session.execute(self._unsent).all()
            if not rows:
                session.rollback()
                return 0
            producer = self._ensure_producer()
            confirms = self._confirms
            sent, failed, tags = [], [], {}
            for row in rows:
                self._returned.discard(row.event_id)
                stored, cid = observability.split_correlation(
                    row.body if isinstance(row.body, dict) else json.loads(row.body))
                body = self.signer.sign(stored)
                headers = {"event_type": row.event_type, "event_version": body["event_version"]}
                if cid:
                    headers[observability.AMQP_HEADER] = cid
                if confirms is not None:
                    tags[row.id] = confirms.next_tag()
                producer.publish(
                    body, routing_key=row.event_type, serializer="json", delivery_mode=2,
                    mandatory=True, message_id=row.event_id, timeout=PUBLISH_TIMEOUT,
                    confirm_timeout=PUBLISH_TIMEOUT,
                    headers=headers,
                )
            # AMQP: the batch's confirms are awaited together (one wait, not a round trip per
            # row); elsewhere publish returned once the broker took the message, or raised.
            nacked = confirms.wait_all(PUBLISH_TIMEOUT) if confirms is not None else set()
            for row in rows:
                # A basic.return comes before its message's confirm, so it is known by now.
                refused = row.event_id in self._returned or tags.get(row.id) in nacked
                (failed if refused else sent).append(row.id)
            now = self.clock.now()
            if sent:
                session.execute(self._mark_sent, {"ids": sent, "sent_now": now})
            if failed:
                log.error("broker returned or refused %d events; they stay in the outbox", len(failed))
                session.execute(update(self.outbox).where(self.outbox.c.id.in_(failed)).values(
                    attempts=self.outbox.c.attempts + 1, last_error="unroutable (basic.return) or nacked"))
            session.commit()
            observability.events_published(self.service, len(sent))
            return len(sent)
        except Exception:
            session.rollback()
            self.close(failed=True)  # reconnect and re-declare on the next round
            raise
        finally:
            session.close()

    def run_forever(self, stop: threading.Event, idle_sleep: float = 0.1, max_idle_sleep: float = 0.5,
                    busy_poll: float = 0.02, busy_for: float = 10.0, gather: float = 0.01) -> None:
        """Publishes until `stop`. While events came in the last `busy_for` seconds an empty
        outbox is looked at again every `busy_poll` seconds (under load a Check-in waits at most
        that long for the relay, which is part of its way into the week view); once quiet, after
        idle_sleep, then less and less often up to max_idle_sleep (an idle instance stays quiet).
        With a notify_channel (PostgreSQL) it instead sleeps until a commit NOTIFYs it, at most
        max_idle_sleep, and while rows flow waits `gather` seconds more to publish them together."""
        backoff = idle = idle_sleep
        last_published = -busy_for
        observability.watch_outbox(self.service, self.session_factory, self.outbox)
        while not stop.is_set():
            beat()
            listener = self._listen()  # before the round: a row committed meanwhile still wakes it
            try:
                published = self.run_once()
                backoff = idle_sleep
            except Exception:
                log.exception("relay round failed; retrying in %.1fs", backoff)
                published = 0
                backoff = min(backoff * 2, 5.0)
                stop.wait(backoff)
                continue
            if published >= self.batch_size:
                continue  # more may be waiting
            if listener is not None:
                # Woken by the commit of a new row; the timeout is only a safety net (a row the
                # trigger missed, stop requests), so the relay costs nothing while nothing comes.
                if not self._wait_for_rows(listener, stop, max_idle_sleep):
                    continue
                if published:
                    # Rows are flowing: let a few more commits come so one round (a SELECT, the
                    # confirms, an UPDATE, a commit) serves several; a first row goes at once.
                    stop.wait(gather)
            elif published:
                idle, last_published = idle_sleep, time.monotonic()
            elif time.monotonic() - last_published < busy_for:
                stop.wait(busy_poll)
            else:
                stop.wait(idle)
                idle = min(idle * 2, max_idle_sleep)
        self._close_listener()
        self.close()

    def _listen(self) -> "OutboxListener | None":
        if self.notify_channel is None:
            return None
        if self._listener is None:
            try:
                self._listener = OutboxListener.open(self.session_factory, self.notify_channel)
            except Exception:  # noqa: BLE001 - polling still works; the next round tries again
                log.warning("listening for outbox rows failed; polling instead", exc_info=True)
                return None
            if self._listener is None:  # not PostgreSQL: poll
                self.notify_channel = None
        return self._listener

    def _wait_for_rows(self, listener: "OutboxListener", stop: threading.Event, timeout: float) -> bool:
        """True when woken (or timed out); False when the listener failed and was dropped."""
        try:
            end = time.monotonic() + timeout
            while not stop.is_set() and not listener.wait(min(0.5, end - time.monotonic())):
                if time.monotonic() >= end:
                    break  # slices of at most 0.5 s: a stop request is seen that soon
            return True
        except Exception:  # noqa: BLE001 - reconnect on the next round
            log.warning("the outbox listener failed; reconnecting", exc_info=True)
            self._close_listener()
            stop.wait(0.1)
            return False

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()


class OutboxListener:
    """A PostgreSQL connection LISTENing to an outbox's channel, kept out of the pool (it sits in
    autocommit for the relay's life)."""

    def __init__(self, raw, channel: str):
        self.raw, self.channel = raw, channel
        self.connection = raw.dbapi_connection

    @classmethod
    def open(cls, session_factory: Callable[[], Session], channel: str) -> "OutboxListener | None":
        with session_factory() as session:
            engine = session.get_bind()
        if engine.dialect.name != "postgresql":
            return None
        raw = engine.raw_connection()
        try:
            raw.dbapi_connection.autocommit = True
            raw.dbapi_connection.execute(f'LISTEN "{channel}"')
        except Exception:
            raw.invalidate()
            raise
        return cls(raw, channel)

    def wait(self, timeout: float) -> bool:
        """True at the first notification (taking any others already there with it), False
        after `timeout` seconds without one."""
        if not list(self.connection.notifies(timeout=max(0.0, timeout), stop_after=1)):
            return False
        for _ in self.connection.notifies(timeout=0):  # several commits: one round serves all
            pass
        return True

    def close(self) -> None:
        try:
            self.raw.invalidate()  # never back to the pool in autocommit with a LISTEN on it
        except Exception:  # noqa: BLE001 - it is gone either way
            log.debug("closing the outbox listener failed", exc_info=True)


# --- the consumer -----------------------------------------------------------------------------

class Unprocessable(Exception):
    """An event that can never be applied (e.g. refers to data that violates a rule)."""


class RetryLater(Exception):
    """An event that cannot be applied yet (e.g. its Session's event is still on its way)."""


class _Stopping(Exception):
    """Raised inside kombu's reconnect loop once the worker was asked to stop."""


MAX_EVENT_BYTES = 1024 * 1024  # an event body above this is refused before it is decoded
KEEP_ALIVE_EVERY = 0.25  # seconds between heartbeat checks while messages flow
CONFLICT_ATTEMPTS = 3  # an integrity error that survives this many tries in a row is the event's own
BUG_ATTEMPTS = 3  # any other error: tried this many times in place, then dead-lettered
MAX_BACKOFF = 5.0

INFRASTRUCTURE, CONFLICT, DETERMINISTIC, UNKNOWN = "infrastructure", "conflict", "deterministic", "unknown"


def classify(exc: BaseException) -> str:
    """What a handler failure says about the message.

    infrastructure: the database or broker is away (or the event waits for another one); retried
    in place for as long as it lasts, and never counted against the message. conflict: an
    integrity error, which a concurrent worker's commit explains once; the same error again and
    again is the event's own. deterministic: the event can never be applied (dead-lettered at
    once). unknown: a bug, tried a few times in place, then dead-lettered with the error."""
    if isinstance(exc, (ValidationError, Unprocessable, DataError)):
        return DETERMINISTIC
    if isinstance(exc, IntegrityError):
        return CONFLICT
    if isinstance(exc, (OperationalError, InterfaceError, SqlaTimeoutError, RetryLater, ConnectionError,
                        TimeoutError)):
        return INFRASTRUCTURE
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return INFRASTRUCTURE
    return UNKNOWN


class EventConsumer(ConsumerProducerMixin):
    """Decode, validate, apply (handler commits with the processed-event record), then ack.

    What a failure costs depends on what it says about the message (see `classify`), never on
    how often the message was delivered: a worker killed while its database is down hands its
    deliveries back, and they must stay as healthy as they were. So the queue has no broker
    delivery limit. A message that can never be applied (undecodable, invalid, too large, an
    integrity error that repeats, a bug that repeats, and first of all a message without a valid
    signature by a known event-signing key) is dead-lettered by the consumer at once,
    with the reason in a header. An infrastructure failure is retried in place, with backoff,
    for as long as it lasts, while the consumer keeps heartbeating on the connection it
    consumes on; on a stop the message goes back to the queue.

    With `handle_batch`, the messages that arrive together are applied in one transaction and
    acked after its commit: a batch closes when it holds `batch_size` messages, when no message
    came for `batch_wait` seconds (the queue went quiet), or when its first message has waited
    `batch_max_wait` seconds. If the batch fails, each message is handled on its own, so one bad
    event costs only itself."""

    def __init__(self, *, connection: Connection, topology: Topology, consumer: str, purpose: str,
                 handle: Callable[[Event], None], verifier: EventVerifier, prefetch_count: int = 20,
                 handle_batch: Callable[[list[Event]], object] | None = None, batch_size: int | None = None,
                 batch_wait: float = 0.02, batch_max_wait: float = 0.1):
        self.connection = connection
        self.topology = topology
        self.verifier = verifier
        self.queue_name = topology.queue_name(consumer, purpose)
        self.consumer, self.purpose = consumer, purpose
        self.handle = handle
        self.prefetch_count = prefetch_count
        self.processed = 0
        self.dead_lettered_count = 0
        self.handle_batch = handle_batch
        # Half the prefetch by default: while one batch is applied the broker has already sent
        # the next (a batch as large as the prefetch waits for its ack's round trip and the
        # broker's delivery every time).
        self.batch_size = min(batch_size or max(1, prefetch_count // 2), prefetch_count)
        self.batch_wait = batch_wait
        self.batch_max_wait = batch_max_wait
        self._batch: list[tuple[Event, object]] = []
        self._batch_started = self._last_arrival = self._kept_alive = 0.0
        self.consuming_connection: Connection | None = None  # the clone kombu consumes on

    def run(self, _tokens=1, **kwargs):
        # Wake often enough to flush a partial batch quickly when the queue goes quiet.
        kwargs.setdefault("safety_interval", self.batch_wait if self.handle_batch else 1)
        try:
            return super().run(_tokens, **kwargs)
        except _Stopping:
            log.info("%s: stopped while (re)connecting to the broker", self.queue_name)

    # kombu reconnects for ever (connect_max_retries None) and looks at nothing else meanwhile:
    # its per-iteration callback is where a stop request ends the loop.
    def _stop_requested(self) -> None:
        if self.should_stop:
            raise _Stopping()

    @contextmanager
    def establish_connection(self):
        with self.create_connection() as conn:
            conn.ensure_connection(self.on_connection_error, self.connect_max_retries,
                                   callback=self._stop_requested)
            yield conn

    @property
    def producer_connection(self):
        if self._producer_connection is None:
            conn = self.connection.clone()
            conn.ensure_connection(self.on_connection_error, self.connect_max_retries,
                                   callback=self._stop_requested)
            self._producer_connection = conn
        return self._producer_connection

    def on_connection_error(self, exc, interval):
        self._stop_requested()
        log.warning("%s: broker connection error: %r; trying again in %.1fs", self.queue_name, exc, interval)

    def get_consumers(self, Consumer, channel):
        self.topology.declare(channel)
        return [Consumer(
            queues=self.topology.queues(self.consumer, self.purpose),
            on_message=self.on_raw_message, accept=["json"], prefetch_count=self.prefetch_count,
            on_decode_error=self.on_decode_error,
        )]

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        self.consuming_connection = connection

    def on_consume_end(self, connection, channel):
        self.consuming_connection = None
        super().on_consume_end(connection, channel)

    def on_iteration(self):
        if self._batch:
            # Close the batch when the queue pauses, not a fixed time after its first message:
            # while messages keep coming (a backlog), batches fill up and a batch's fixed cost
            # (transactions, locks, the parked and sealing checks) is shared by more events.
            now = time.monotonic()
            if now - self._last_arrival >= self.batch_wait or now - self._batch_started >= self.batch_max_wait:
                self._flush()
        # kombu calls this after every message: heartbeats (30 s) need a look a few times a
        # second at most, not thousands of times.
        if time.monotonic() - self._kept_alive >= KEEP_ALIVE_EVERY:
            self.keep_alive()

    def keep_alive(self) -> None:
        """Heartbeats on the connections actually in use: the clone kombu consumes on (not
        `self.connection`, which only serves as a template) and the producer's. While a handler
        retries in place nothing reads the socket, so py-amqp also reports the broker's
        heartbeats as missed: ignored here, the broker hears ours, and drain_events notices a
        connection that is really dead."""
        self._kept_alive = time.monotonic()
        beat()
        for connection in (self.consuming_connection, self._producer_connection):
            if connection is None:
                continue
            try:
                connection.heartbeat_check()
            except Exception:  # noqa: BLE001 - see above
                pass

    def on_decode_error(self, message, exc):
        self.dead_letter(message, f"undecodable body: {str(exc)[:300]}")

    def _too_large(self, message) -> bool:
        size = len(message.body or b"")
        if size > MAX_EVENT_BYTES:
            self.dead_letter(message, f"body of {size} bytes exceeds the limit of {MAX_EVENT_BYTES}")
        return size > MAX_EVENT_BYTES

    def on_raw_message(self, message):
        """kombu hands the message undecoded: the size is checked before any parsing, and JSON
        in UTF-8 is parsed with orjson (kombu's decoder calls a Python hook for every object, a
        tenth of a consumer's own time per event); any other content goes through kombu's
        decoding and its accept list, as before."""
        if self._too_large(message):
            return
        try:
            if message.content_type == "application/json" and message.content_encoding in ("utf-8", None):
                body = orjson.loads(message.body)
            else:
                body = message.decode()
        except Exception as exc:  # noqa: BLE001 - whatever the parser says, the body is unusable
            self.on_decode_error(message, exc)
            return
        self.on_message(body, message)

    def on_message(self, body, message):
        if self._too_large(message):
            return
        try:
            # Before anything else reads the body: an unsigned or wrongly signed message never
            # verifies, whoever delivers it and however often, so it goes at once.
            self.verifier.verify(body)
        except InvalidSignature as exc:
            self.dead_letter(message, f"refused: {exc}")
            return
        try:
            event = decode(body)
        except ValidationError as exc:
            self.dead_letter(message, f"invalid event: {exc.messages}")
            return
        if self.handle_batch is None:
            token = observability.set_correlation_id(_correlation_of(message))
            try:
                self._handle_one(event, message)
            finally:
                observability.reset_correlation_id(token)
            return
        if not self._batch:
            self._batch_started = time.monotonic()
        self._batch.append((event, message))
        self._last_arrival = time.monotonic()  # after decoding: idle time is time spent waiting
        if len(self._batch) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        try:
            fresh = self.handle_batch([event for event, _ in batch])
        except Exception:  # noqa: BLE001 - nothing was applied: each message now goes on its own
            log.info("a batch of %d failed; handling its messages one by one", len(batch), exc_info=True)
            for event, message in batch:
                token = observability.set_correlation_id(_correlation_of(message))
                try:
                    self._handle_one(event, message)
                finally:
                    observability.reset_correlation_id(token)
            return
        self._ack_all([message for _, message in batch])
        self.processed += len(batch)
        self._applied(batch, fresh)

    def _ack_all(self, messages: list) -> None:
        """On AMQP, one basic.ack with `multiple` for the whole batch: every earlier delivery on
        the channel was settled in turn (acked, requeued or dead-lettered) before the next was
        taken, so it acks exactly the batch. kombu's virtual transports (the embedded broker)
        ignore `multiple`: there each message is acked on its own."""
        driver = getattr(getattr(self.connection, "transport", None), "driver_type", None)
        if driver == "amqp" and len(messages) > 1:
            max(messages, key=lambda m: m.delivery_tag).ack(multiple=True)
            return
        for message in messages:
            message.ack()

    def _handle_one(self, event: Event, message) -> None:
        backoff, attempts = 0.05, {CONFLICT: 0, UNKNOWN: 0}
        while True:
            if self.should_stop:  # a stop while retrying: the message goes back, uncounted
                message.requeue()
                return
            try:
                outcome = self.handle(event)
                break
            except Exception as caught:  # noqa: BLE001 - classified below
                exc, kind = caught, classify(caught)
            if kind == DETERMINISTIC:
                self.dead_letter(message, f"unprocessable: {exc}")
                return
            if kind in attempts:
                attempts[kind] += 1
                limit = CONFLICT_ATTEMPTS if kind == CONFLICT else BUG_ATTEMPTS
                if attempts[kind] >= limit:
                    log.error("handling %s failed %d times", event.event_id, attempts[kind], exc_info=exc)
                    self.dead_letter(message, f"failed {attempts[kind]} times in a row: {exc!r}")
                    return
            # Hold the delivery and retry: requeueing would hand it to another worker whose
            # database is just as unreachable, and the retry costs the message nothing.
            log.info("retrying %s in %.2fs after %r", event.event_id, backoff, exc)
            self._pause(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
        message.ack()
        self.processed += 1
        self._applied([(event, message)], outcome)

    def _applied(self, batch: list, fresh) -> None:
        """Metrics and a log line per event, with its correlation id. `fresh`: what the handler
        returned, the number of new events (an int), False for a duplicate, None if it cannot
        tell (every event then counts as applied)."""
        count = len(batch) if fresh is None or fresh is True else int(fresh)
        observability.events_applied(self.consumer, applied=count, duplicate=len(batch) - count,
                                     last_occurred_at=max(e.occurred_at for e, _ in batch))
        for event, message in batch:
            token = observability.set_correlation_id(_correlation_of(message))
            try:
                log.info("%s: applied %s %s", self.queue_name, event.event_type, event.event_id)
            finally:
                observability.reset_correlation_id(token)

    def _pause(self, seconds: float) -> None:
        """Wait while keeping the broker connections alive (heartbeats are sent from here)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.should_stop:
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
            self.keep_alive()

    def dead_letter(self, message, reason: str) -> None:
        log.warning("dead-lettering a message from %s: %s", self.queue_name, reason)
        try:
            publish_dead_letter(self.producer, self.topology, self.consumer, self.purpose, message.body, reason,
                                headers=message.headers, content_type=message.content_type,
                                content_encoding=message.content_encoding)
        except _Stopping:
            message.requeue()
            return
        except Exception:  # noqa: BLE001 - the broker went away: keep the message, decide again later
            log.exception("publishing to the dead-letter queue failed; the message goes back to the queue")
            self._close_producer()
            message.requeue()
            return
        message.ack()
        self.dead_lettered_count += 1
        observability.event_dead_lettered(self.consumer, reason)

    def _close_producer(self) -> None:
        connection, self._producer_connection = self._producer_connection, None
        if connection is not None:
            try:
                connection.collect()  # no close handshake with a broker that may not answer
            except Exception:  # noqa: BLE001
                pass


def _correlation_of(message) -> str | None:
    return observability.usable_correlation_id((message.headers or {}).get(observability.AMQP_HEADER))


def publish_dead_letter(producer: Producer, topology: Topology, consumer: str, purpose: str, body, reason: str,
                        *, headers: dict | None = None, content_type: str | None = None,
                        content_encoding: str | None = None) -> None:
    """Put a message into `<queue>.dlq` with the reason in a header (raises if the broker did not
    take it). The queue and its binding are declared on the producer's own channel: the embedded
    transport keeps bindings per connection, and without one the message would be dropped."""
    queue_name = topology.queue_name(consumer, purpose)
    headers = dict(headers or {})
    headers[DEAD_LETTER_REASON] = reason[:1000]
    headers["x-okrsnap-dead-lettered-at"] = datetime.now(timezone.utc).isoformat()
    headers["x-okrsnap-original-queue"] = queue_name
    if isinstance(body, (dict, list)):
        body, content_type, content_encoding = json.dumps(body).encode(), "application/json", "utf-8"
    producer.publish(
        body, exchange=topology.dead_letter_exchange, routing_key=queue_name, headers=headers,
        delivery_mode=2, content_type=content_type or "application/octet-stream",
        content_encoding=content_encoding or "binary",
        declare=[topology.dead_letter_queue(consumer, purpose)],
        retry=True, retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
    )


class DeadLetterPublisher:
    """Dead-letters from outside a consumer (the snapshot worker's sweep of expired parked
    events), on a connection of its own; reconnects after a failure."""

    def __init__(self, connection_factory: Callable[[], Connection], topology: Topology, consumer: str,
                 purpose: str):
        self.connection_factory, self.topology = connection_factory, topology
        self.consumer, self.purpose = consumer, purpose
        self._connection: Connection | None = None

    def __call__(self, body, reason: str) -> None:
        if self._connection is None:
            self._connection = self.connection_factory()
        try:
            publish_dead_letter(Producer(self._connection.default_channel), self.topology, self.consumer,
                                self.purpose, body, reason)
            observability.event_dead_lettered(self.consumer, reason)
        except Exception:
            connection, self._connection = self._connection, None
            try:
                connection.collect()
            except Exception:  # noqa: BLE001
                pass
            raise

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # noqa: BLE001
                pass


def recover_embedded_deliveries(settings, consumer: str, purpose: str, session_factory: Callable[[], Session],
                                processed: Table, processed_as: str | None = None) -> tuple[int, int]:
    """Embedded broker only, at a worker's start: kombu's SQLAlchemy transport marks a delivered
    message invisible and never brings it back, acked or not, so a worker killed mid-delivery
    would lose what it held. Messages whose event this consumer has recorded are deleted; the
    others are made visible again (consumers are idempotent). Safe while one worker per queue runs,
    as `okrsnap up` does. Returns (deleted, restored)."""
    if not settings.embedded_broker:
        return 0, 0
    from sqlalchemy import create_engine, text

    queue = topology_for(settings).queue_name(consumer, purpose)
    engine = create_engine(settings.broker_url.removeprefix("sqla+"), connect_args={"timeout": 30})
    try:
        with engine.begin() as conn:
            if "kombu_message" not in {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master"))}:
                return 0, 0
            rows = conn.execute(text(
                "SELECT m.id, m.payload FROM kombu_message m JOIN kombu_queue q ON m.queue_id = q.id "
                "WHERE q.name = :queue AND m.visible = 0"), {"queue": queue}).all()
            by_event: dict[str, list[int]] = {}
            for message_id, payload in rows:
                try:
                    message = json.loads(payload)
                    body = message["body"]
                    if message.get("properties", {}).get("body_encoding") == "base64":
                        body = base64.b64decode(body)
                    event_id = json.loads(body)["event_id"]
                except (ValueError, KeyError, TypeError):
                    event_id = ""
                by_event.setdefault(event_id, []).append(message_id)
            with session_factory() as session:
                done = set(session.execute(select(processed.c.event_id).where(
                    processed.c.consumer == (processed_as or consumer),
                    processed.c.event_id.in_(list(by_event)))).scalars())
            finished = [m for event_id, ids in by_event.items() if event_id in done for m in ids]
            pending = [m for event_id, ids in by_event.items() if event_id not in done for m in ids]
            for chunk in range(0, len(finished), 500):
                conn.execute(text("DELETE FROM kombu_message WHERE id IN :ids").bindparams(
                    bindparam("ids", expanding=True)), {"ids": finished[chunk:chunk + 500]})
            for chunk in range(0, len(pending), 500):
                conn.execute(text("UPDATE kombu_message SET visible = 1 WHERE id IN :ids").bindparams(
                    bindparam("ids", expanding=True)), {"ids": pending[chunk:chunk + 500]})
    finally:
        engine.dispose()
    if pending:
        log.warning("%s: %d deliveries held by a worker that stopped are queued again", queue, len(pending))
    return len(finished), len(pending)
