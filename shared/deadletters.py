"""What operators do with dead letters (`okrsnap dlq list|show|replay|purge`), on RabbitMQ and on
the embedded broker alike.

Listing and showing take the messages and give them all back unacknowledged (the channel closes
without an ack), so nothing moves. Replay puts a message back through the normal path - into its
original queue, without the dead-letter headers - and only then removes it from the
dead-letter queue: a crash in between leaves a copy in both, which the consumer's idempotency
(by event id) makes harmless."""
from __future__ import annotations

import json
from dataclasses import dataclass

from kombu import Producer, Queue

from shared.messaging import DEAD_LETTER_REASON, broker_connection, topology_for
from shared.topology import QUEUES

DEAD_LETTER_HEADERS = (DEAD_LETTER_REASON, "x-okrsnap-dead-lettered-at", "x-okrsnap-original-queue", "x-death",
                       "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
                       "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason", "x-delivery-count")


@dataclass
class DeadLetter:
    position: int
    event_id: str
    event_type: str
    reason: str
    dead_lettered_at: str
    body: bytes
    headers: dict

    def summary(self) -> dict:
        return {"position": self.position, "event_id": self.event_id, "event_type": self.event_type,
                "reason": self.reason, "dead_lettered_at": self.dead_lettered_at, "bytes": len(self.body)}


def queue_names() -> list[str]:
    return [f"{spec.consumer}.{spec.purpose}" for spec in QUEUES]


def _dlq(settings, queue: str) -> Queue:
    consumer, purpose = queue.split(".", 1)
    return topology_for(settings).dead_letter_queue(consumer, purpose)


def _read(message, position: int) -> DeadLetter:
    headers = dict(message.headers or {})
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    try:
        wire = json.loads(body)
        event_id, event_type = str(wire.get("event_id", "")), str(wire.get("event_type", ""))
    except (ValueError, AttributeError):
        event_id, event_type = "", ""
    return DeadLetter(position, event_id or str(message.properties.get("message_id") or ""),
                      event_type or str(headers.get("event_type", "")), str(headers.get(DEAD_LETTER_REASON, "")),
                      str(headers.get("x-okrsnap-dead-lettered-at", "")), body, headers)


def depth(settings, queue: str = "snapshot.events") -> int:
    with broker_connection(settings) as connection:
        channel = connection.channel()
        bound = _dlq(settings, queue)(channel)
        bound.declare()
        _, count, _ = bound.queue_declare(passive=True)
        return count


def peek(settings, queue: str = "snapshot.events", limit: int = 1000) -> list[DeadLetter]:
    """Up to `limit` dead letters, oldest first; all stay in the queue."""
    found = []
    with broker_connection(settings) as connection:
        channel = connection.channel()
        bound = _dlq(settings, queue)(channel)
        bound.declare()
        while len(found) < limit and (message := bound.get(no_ack=False)) is not None:
            found.append(_read(message, len(found) + 1))
        for_return = channel
        try:  # give every one back (unacknowledged); closing the channel would too
            for_return.basic_recover(requeue=True)
        except Exception:  # noqa: BLE001 - the embedded transport restores them on close
            pass
    return found


def replay(settings, queue: str = "snapshot.events", event_ids: set[str] | None = None) -> int:
    """Put dead letters back into their queue (those of `event_ids`, or all); returns how many."""
    consumer, purpose = queue.split(".", 1)
    topology = topology_for(settings)
    replayed = 0
    with broker_connection(settings) as connection:
        channel = connection.channel()
        topology.declare(channel)  # the embedded broker routes with this connection's bindings
        bound = _dlq(settings, queue)(channel)
        producer = Producer(channel)
        kept = []
        while (message := bound.get(no_ack=False)) is not None:
            letter = _read(message, replayed + len(kept) + 1)
            if event_ids is not None and letter.event_id not in event_ids:
                kept.append(message)
                continue
            headers = {k: v for k, v in letter.headers.items() if k not in DEAD_LETTER_HEADERS}
            producer.publish(letter.body, exchange="", routing_key=topology.queue_name(consumer, purpose),
                             headers=headers, delivery_mode=2,
                             content_type=message.content_type or "application/json",
                             content_encoding=message.content_encoding or "utf-8", retry=True)
            message.ack()
            replayed += 1
        for message in kept:
            message.requeue()
    return replayed


def purge(settings, queue: str = "snapshot.events") -> int:
    with broker_connection(settings) as connection:
        bound = _dlq(settings, queue)(connection.channel())
        bound.declare()
        return bound.purge() or 0
