"""The outbox relay awaits a batch's publisher confirms together, and still marks sent only
what the broker took: a row the broker returned (unroutable) or refused (nack) stays in the
outbox with the reason, the others of the same batch are sent. On RabbitMQ."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from kombu import Queue
from sqlalchemy import select

from services.export.adapters import orm
from services.export.bootstrap import bootstrap as export_bootstrap
from shared.events import Event
from shared.messaging import add_to_outbox, broker_connection, declare_topology, topology_for

pytestmark = pytest.mark.integration


def _requested(event_type: str = "export.job.requested") -> Event:
    job = uuid.uuid4()
    event = Event.new("export.job.requested", occurred_at=datetime.now(timezone.utc), workspace_id=uuid.uuid4(),
                      entity_id=job, payload={"job_id": job})
    return Event(**{**event.__dict__, "event_type": event_type})


def _outbox(container, events) -> None:
    with container.database.session() as session:
        for event in events:
            add_to_outbox(session, orm.outbox, event, event.occurred_at)
        session.commit()


def _rows(container) -> dict[str, tuple]:
    with container.database.session() as session:
        return {row.event_id: (row.sent_at is not None, row.attempts, row.last_error) for row in session.execute(
            select(orm.outbox.c.event_id, orm.outbox.c.sent_at, orm.outbox.c.attempts, orm.outbox.c.last_error))}


def test_a_batch_is_confirmed_together_and_only_what_the_broker_took_is_sent(pg_settings):
    container = export_bootstrap(pg_settings)
    container.migrate()
    declare_topology(pg_settings)
    topology = topology_for(pg_settings)
    relay = container.relay()
    try:
        first = [_requested() for _ in range(30)]
        _outbox(container, first)
        assert relay.run_once() == 30  # 30 publishes, one wait for their confirms

        # The queue now takes one more message and refuses (nacks) the rest (a classic queue: a
        # quorum queue applies its length limit a little late); a row with a routing key nothing
        # is bound to comes back (basic.return).
        name = topology.queue_name("export", "jobs")
        with broker_connection(pg_settings) as connection:
            channel = connection.channel()
            channel.queue_delete(name)
            Queue(name, topology.exchange("export"), routing_key="export.job.requested", durable=True,
                  queue_arguments={"x-overflow": "reject-publish", "x-max-length": 1})(channel).declare()
        routed = [_requested() for _ in range(6)]
        nowhere = _requested("export.job.nowhere")
        _outbox(container, [routed[0], nowhere, *routed[1:]])
        sent_now = relay.run_once()
        rows = _rows(container)
        with broker_connection(pg_settings) as connection:
            queued = connection.channel().queue_declare(name, passive=True).message_count
        sent = [e for e in routed if rows[str(e.event_id)][0]]
        assert sent_now == len(sent) == queued == 1  # sent = what the queue holds, nothing more
        assert rows[str(routed[0].event_id)] == (True, 1, None)
        refused = routed[1:]
        for event in (*refused, nowhere):
            was_sent, attempts, error = rows[str(event.event_id)]
            assert not was_sent and attempts == 1 and "nacked" in error
    finally:
        relay.close()
        with broker_connection(pg_settings) as connection:
            connection.channel().queue_delete(topology.queue_name("export", "jobs"))
