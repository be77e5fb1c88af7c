"""Every exchange, queue and dead-letter queue okrsnap uses, declared in one place.

Naming: exchange `<ns>.<producer>.events` (durable topic, routing key = event name); queue
`<ns>.<consumer>.<purpose>`; its dead letters go to `<ns>.dead-letters` with the queue's name
as routing key, into `<queue>.dlq`. The namespace isolates installations and test runs.
"""
from __future__ import annotations

from dataclasses import dataclass

from kombu import Exchange, Queue

# No broker delivery limit (x-delivery-limit): it counts every redelivery, whatever caused it, so a
# worker killed while its database is down would burn the limit of healthy, acknowledged
# Check-ins. The consumer dead-letters, with the reason, the messages that can never be applied
# (shared.messaging.classify) and never requeues one for a failure of its own.


@dataclass(frozen=True)
class QueueSpec:
    consumer: str
    purpose: str
    producer: str
    routing_keys: tuple[str, ...]


QUEUES = (
    QueueSpec("snapshot", "events", producer="checkin", routing_keys=("checkin.#",)),
    QueueSpec("export", "jobs", producer="export", routing_keys=("export.job.requested",)),
)
PRODUCERS = ("checkin", "export")


class Topology:
    def __init__(self, namespace: str, *, broker_features: bool = True):
        """broker_features: RabbitMQ-only queue arguments (quorum type, DLX);
        kombu's embedded SQLAlchemy transport has none of them and routes in process."""
        self.namespace = namespace
        self.broker_features = broker_features
        self.dead_letter_exchange = Exchange(f"{namespace}.dead-letters", type="direct", durable=True)

    def exchange(self, producer: str) -> Exchange:
        if producer not in PRODUCERS:
            raise KeyError(producer)
        return Exchange(f"{self.namespace}.{producer}.events", type="topic", durable=True)

    def queue_name(self, consumer: str, purpose: str) -> str:
        return f"{self.namespace}.{consumer}.{purpose}"

    def spec(self, consumer: str, purpose: str) -> QueueSpec:
        for spec in QUEUES:
            if (spec.consumer, spec.purpose) == (consumer, purpose):
                return spec
        raise KeyError(f"{consumer}.{purpose}")

    def queues(self, consumer: str, purpose: str) -> list[Queue]:
        """The bindings of one consuming queue (one per routing key) - kombu binds each."""
        spec = self.spec(consumer, purpose)
        name = self.queue_name(consumer, purpose)
        arguments = {}
        if self.broker_features:
            arguments = {
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": self.dead_letter_exchange.name,
                "x-dead-letter-routing-key": name,
            }
        exchange = self.exchange(spec.producer)
        return [Queue(name, exchange, routing_key=key, durable=True, queue_arguments=arguments)
                for key in spec.routing_keys]

    def dead_letter_queue(self, consumer: str, purpose: str) -> Queue:
        name = self.queue_name(consumer, purpose)
        arguments = {"x-queue-type": "quorum"} if self.broker_features else {}
        return Queue(f"{name}.dlq", self.dead_letter_exchange, routing_key=name, durable=True,
                     queue_arguments=arguments)

    def all_entities(self) -> list:
        entities: list = [self.dead_letter_exchange]
        entities += [self.exchange(p) for p in PRODUCERS]
        for spec in QUEUES:
            entities += self.queues(spec.consumer, spec.purpose)
            entities.append(self.dead_letter_queue(spec.consumer, spec.purpose))
        return entities

    def declare(self, channel) -> None:
        """Idempotent; called on every (re)connect. The embedded transport keeps bindings in
        process memory, so every process declares the whole topology, not only its own part."""
        for entity in self.all_entities():
            # A bound copy each time: maybe_bind() would keep an entity on a dead channel
            # after a reconnect, and the re-declare would go nowhere.
            entity(channel).declare()
