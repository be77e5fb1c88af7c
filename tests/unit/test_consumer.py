"""The consumer's decisions on one message, without a broker: what a failure says about the
message decides its fate, never how often it was delivered."""
import uuid
from datetime import datetime, timezone

from sqlalchemy.exc import IntegrityError, OperationalError

from shared import messaging
from shared.events import Event, EventSigner, EventVerifier
from shared.topology import Topology


class FakeMessage:
    def __init__(self, body=b"{}", headers=None):
        self.headers, self.outcome, self.body = dict(headers or {}), None, body
        self.content_type, self.content_encoding = "application/json", "utf-8"

    def ack(self): self.outcome = "ack"
    def requeue(self): self.outcome = "requeue"
    def reject(self, requeue=False): self.outcome = "reject"


class FakeConnection:
    def __init__(self):
        self.heartbeats = 0

    def heartbeat_check(self, rate=2):
        self.heartbeats += 1


KEY = "test-event-signing-key-0123456789abcdef"
SIGNER = EventSigner(KEY)


def _consumer(handle):
    consumer = messaging.EventConsumer(connection=None, topology=Topology("t", broker_features=False),
                                       consumer="snapshot", purpose="events", handle=handle,
                                       verifier=EventVerifier([KEY]))
    consumer.dead_lettered = []
    consumer.dead_letter = lambda message, reason: (consumer.dead_lettered.append(reason), message.ack())
    return consumer


def _no_waiting(monkeypatch):
    """Backoff pauses take no time here, but do what a pause does: keep the connections alive."""
    monkeypatch.setattr(messaging.EventConsumer, "_pause", lambda self, seconds: self.keep_alive())


def _wire():
    return SIGNER.sign(Event.new("export.job.requested", occurred_at=datetime.now(timezone.utc),
                                 workspace_id=uuid.uuid4(), entity_id=uuid.uuid4(),
                                 payload={"job_id": uuid.uuid4()}).to_wire())


def _database_down():
    return OperationalError("SELECT", {}, Exception("server closed the connection"))


def test_a_database_outage_is_retried_in_place_not_dead_lettered(monkeypatch):
    _no_waiting(monkeypatch)
    failures = iter([_database_down()] * 40)

    def handle(event):
        error = next(failures, None)
        if error:
            raise error

    # Delivered many times already (workers killed while the database was down): still healthy.
    consumer, message = _consumer(handle), FakeMessage(headers={"x-delivery-count": 12})
    consumer.on_message(_wire(), message)
    assert message.outcome == "ack" and consumer.processed == 1 and consumer.dead_lettered == []


def test_the_queue_has_no_broker_delivery_limit():
    """A broker delivery limit counts redeliveries after a worker died, whatever the cause, and
    dead-letters healthy Check-ins without a reason (issue 10, defect 1)."""
    for queue in Topology("t").queues("snapshot", "events"):
        assert "x-delivery-limit" not in queue.queue_arguments
        assert queue.queue_arguments["x-dead-letter-exchange"] == "t.dead-letters"


def test_retrying_in_place_heartbeats_on_the_connection_it_consumes_on(monkeypatch):
    """kombu consumes on a clone of `consumer.connection`: heartbeats must go there (defect 2)."""
    _no_waiting(monkeypatch)
    failures = iter([_database_down()] * 5)

    def handle(event):
        error = next(failures, None)
        if error:
            raise error

    consumer = _consumer(handle)
    template, consuming = FakeConnection(), FakeConnection()
    consumer.connection = template
    consumer.on_consume_ready(consuming, channel=None, consumers=[])
    message = FakeMessage()
    consumer.on_message(_wire(), message)
    assert message.outcome == "ack"
    assert consuming.heartbeats >= 5 and template.heartbeats == 0


def test_a_stop_while_retrying_gives_the_message_back_uncounted(monkeypatch):
    _no_waiting(monkeypatch)
    consumer = _consumer(None)

    def handle(event):
        consumer.should_stop = True  # SIGTERM arrives while the database is down
        raise _database_down()

    consumer.handle = handle
    message = FakeMessage()
    consumer.on_message(_wire(), message)
    assert message.outcome == "requeue" and consumer.dead_lettered == []


def test_invalid_events_are_dead_lettered_at_once_with_the_reason():
    calls = []
    consumer = _consumer(calls.append)
    message = FakeMessage()
    consumer.on_message(SIGNER.sign({"event_id": "not-a-uuid"}), message)  # a producer's bug, signed
    assert message.outcome == "ack" and consumer.dead_lettered[0].startswith("invalid event")
    huge = FakeMessage(body=b"x" * (messaging.MAX_EVENT_BYTES + 1))
    consumer.on_message(_wire(), huge)
    assert huge.outcome == "ack" and "exceeds the limit" in consumer.dead_lettered[1] and calls == []


def test_a_repeating_integrity_error_is_dead_lettered_at_once_not_retried_for_minutes(monkeypatch):
    """Defect 3: an integrity error that is the event's own (not a race with another worker,
    which one more try resolves) used to hold a worker 120 s per delivery and then requeue."""
    _no_waiting(monkeypatch)
    calls = []

    def handle(event):
        calls.append(event)
        raise IntegrityError("INSERT", {}, Exception("duplicate key value violates unique constraint"))

    consumer, message = _consumer(handle), FakeMessage()
    consumer.on_message(_wire(), message)
    assert message.outcome == "ack" and len(calls) == messaging.CONFLICT_ATTEMPTS
    assert consumer.dead_lettered[0].startswith(f"failed {messaging.CONFLICT_ATTEMPTS} times in a row")
    assert "IntegrityError" in consumer.dead_lettered[0]


def test_an_integrity_error_from_a_race_is_retried_and_applied(monkeypatch):
    _no_waiting(monkeypatch)
    failures = iter([IntegrityError("INSERT", {}, Exception("duplicate key"))])

    def handle(event):
        error = next(failures, None)
        if error:
            raise error

    consumer, message = _consumer(handle), FakeMessage()
    consumer.on_message(_wire(), message)
    assert message.outcome == "ack" and consumer.dead_lettered == []


def test_unprocessable_and_bugs_end_in_the_dead_letter_queue_without_requeues(monkeypatch):
    _no_waiting(monkeypatch)

    def unprocessable(event):
        raise messaging.Unprocessable("sequence is missing")

    consumer, message = _consumer(unprocessable), FakeMessage()
    consumer.on_message(_wire(), message)
    assert message.outcome == "ack" and consumer.dead_lettered == ["unprocessable: sequence is missing"]

    calls = []

    def buggy(event):
        calls.append(event)
        raise ZeroDivisionError()

    consumer, message = _consumer(buggy), FakeMessage()
    consumer.on_message(_wire(), message)
    assert message.outcome == "ack" and len(calls) == messaging.BUG_ATTEMPTS
    assert consumer.dead_lettered[0].startswith(f"failed {messaging.BUG_ATTEMPTS} times in a row")


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


def test_failures_are_classified_by_what_they_say_about_the_message():
    from marshmallow import ValidationError
    from sqlalchemy.exc import DataError, InterfaceError

    assert messaging.classify(_database_down()) == messaging.INFRASTRUCTURE
    assert messaging.classify(InterfaceError("x", {}, Exception())) == messaging.INFRASTRUCTURE
    assert messaging.classify(ConnectionRefusedError()) == messaging.INFRASTRUCTURE
    assert messaging.classify(messaging.RetryLater()) == messaging.INFRASTRUCTURE
    assert messaging.classify(IntegrityError("x", {}, Exception())) == messaging.CONFLICT
    assert messaging.classify(DataError("x", {}, Exception())) == messaging.DETERMINISTIC
    assert messaging.classify(ValidationError("bad")) == messaging.DETERMINISTIC
    assert messaging.classify(KeyError("bug")) == messaging.UNKNOWN


def test_the_embedded_broker_runs_on_okrsnaps_transport_which_polls_less_when_quiet(tmp_path, monkeypatch):
    """kombu takes the transport from a "sqla+" URL prefix and ignored ours: the fast polling
    while busy and the quiet polling while idle never applied (issue 12)."""
    import socket

    import pytest

    from shared.messaging import EmbeddedTransport, broker_connection
    from tests.conftest import make_settings

    connection = broker_connection(make_settings(tmp_path))
    assert type(connection.transport) is EmbeddedTransport
    assert type(connection.clone().transport) is EmbeddedTransport  # kombu consumes on a clone

    slept = []
    monkeypatch.setattr("shared.messaging.time.sleep", slept.append)
    transport = connection.transport
    monkeypatch.setattr("kombu.transport.sqlalchemy.Transport.drain_events",
                        lambda self, conn, timeout=None: (_ for _ in ()).throw(socket.timeout()))
    with pytest.raises(socket.timeout):
        transport.drain_events(connection, timeout=0.02)  # a batching consumer's short drain, nothing came
    assert slept == [pytest.approx(EmbeddedTransport.IDLE_POLLING - 0.02)]
    assert transport.polling_interval == EmbeddedTransport.IDLE_POLLING
    connection.release()


def test_a_raw_message_is_parsed_by_the_consumer_and_what_does_not_parse_is_dead_lettered():
    import json

    from kombu.exceptions import ContentDisallowed

    calls = []
    consumer = _consumer(calls.append)
    good = FakeMessage(body=json.dumps(_wire()).encode())
    consumer.on_raw_message(good)
    assert good.outcome == "ack" and len(calls) == 1 and consumer.dead_lettered == []
    broken = FakeMessage(body=b'{"event_id": ')
    consumer.on_raw_message(broken)
    assert broken.outcome == "ack" and consumer.dead_lettered[-1].startswith("undecodable body")
    huge = FakeMessage(body=b"[" * (messaging.MAX_EVENT_BYTES + 1))  # refused before any parsing
    consumer.on_raw_message(huge)
    assert huge.outcome == "ack" and "exceeds the limit" in consumer.dead_lettered[-1]
    pickled = FakeMessage(body=b"\x80\x04")
    pickled.content_type = "application/x-python-serialize"

    def refuse():  # what kombu's decode does with a content type outside the accept list
        raise ContentDisallowed("Refusing to deserialize untrusted content of type pickle")

    pickled.decode = refuse
    consumer.on_raw_message(pickled)
    assert pickled.outcome == "ack" and "untrusted content" in consumer.dead_lettered[-1] and len(calls) == 1
