"""The consumer's decisions on one message, without a broker."""
import uuid
from datetime import datetime, timezone

from sqlalchemy.exc import OperationalError

from shared import messaging
from shared.events import Event
from shared.topology import Topology


class FakeMessage:
    def __init__(self):
        self.headers, self.outcome = {}, None

    def ack(self): self.outcome = "ack"
    def requeue(self): self.outcome = "requeue"
    def reject(self, requeue=False): self.outcome = "reject"


def _consumer(handle):
    consumer = messaging.EventConsumer(connection=None, topology=Topology("t", broker_features=False),
                                       consumer="snapshot", purpose="events", handle=handle)
    consumer.on_iteration = lambda: None  # no connection to keep alive here
    consumer.dead_lettered = []
    consumer.dead_letter = lambda message, reason: (consumer.dead_lettered.append(reason), message.ack())
    return consumer


def _wire():
    return Event.new("export.job.requested", occurred_at=datetime.now(timezone.utc), workspace_id=uuid.uuid4(),
                     entity_id=uuid.uuid4(), payload={"job_id": uuid.uuid4()}).to_wire()


def test_a_database_outage_is_retried_in_place_not_dead_lettered(monkeypatch):
    monkeypatch.setattr(messaging.EventConsumer, "_pause", lambda self, seconds: None)
    failures = iter([OperationalError("SELECT", {}, Exception("server closed the connection"))] * 3)

    def handle(event):
        error = next(failures, None)
        if error:
            raise error

    consumer, message = _consumer(handle), FakeMessage()
    consumer.on_message(_wire(), message)
    assert message.outcome == "ack" and consumer.processed == 1 and consumer.dead_lettered == []


def test_invalid_events_and_bugs_end_in_the_dead_letter_queue():
    consumer = _consumer(lambda event: None)
    message = FakeMessage()
    consumer.on_message({"event_id": "not-a-uuid"}, message)
    assert message.outcome == "ack" and consumer.dead_lettered[0].startswith("invalid event")

    def buggy(event):
        raise ZeroDivisionError()

    consumer, wire, outcomes = _consumer(buggy), _wire(), []
    for _ in range(messaging.DELIVERY_LIMIT):  # the same event, redelivered
        message = FakeMessage()
        consumer.on_message(wire, message)
        outcomes.append(message.outcome)
    assert outcomes[:-1] == ["requeue"] * (messaging.DELIVERY_LIMIT - 1)
    assert consumer.dead_lettered and consumer.dead_lettered[-1].startswith("failed 5 times")


def test_a_batch_is_acked_after_one_commit_and_a_failed_batch_goes_one_by_one():
    batches, singles = [], []

    def handle_batch(events):
        batches.append(len(events))
        if any(e.payload.get("job_id") == poison for e in events):
            raise ZeroDivisionError("one bad event in the batch")

    consumer = _consumer(singles.append)
    consumer.handle_batch, consumer.batch_size = handle_batch, 3
    poison = None
    messages = [FakeMessage() for _ in range(3)]
    for message in messages:
        consumer.on_message(_wire(), message)
    assert batches == [3] and [m.outcome for m in messages] == ["ack"] * 3 and singles == []

    wires = [_wire() for _ in range(3)]
    poison = wires[1]["payload"]["job_id"]
    messages = [FakeMessage() for _ in range(3)]
    for wire, message in zip(wires, messages):
        consumer.on_message(wire, message)
    assert batches == [3, 3] and len(singles) == 3  # each handled on its own after the batch failed
    assert [m.outcome for m in messages] == ["ack"] * 3 and consumer.processed == 6
