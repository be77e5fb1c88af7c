"""Signed events (issue 11, High): the canonical bytes, the key ids, rotation with
OKRSNAP_EVENT_SIGNING_KEY_PREVIOUS, and the key's settings (generated in development, required in
production, from a file). Forged events on a real broker: tests/chaos/test_poison.py."""
from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timezone

import pytest

from shared import messaging
from shared.events import (
    SIGNATURE,
    EventSigner,
    EventVerifier,
    InvalidSignature,
    canonical_bytes,
    decode,
    key_id,
)
from shared.settings import ConfigurationError, Settings
from shared.topology import Topology
from tests.unit.test_consumer import FakeMessage

KEY, PREVIOUS, OTHER = "k" * 40, "p" * 40, "o" * 40
NOW = datetime(2026, 11, 4, 10, tzinfo=timezone.utc)


def _session_updated(version=3, visibility="restricted"):
    session_id, workspace_id = uuid.uuid4(), uuid.uuid4()
    from shared.events import Event

    return Event.new("checkin.session.updated", occurred_at=NOW, workspace_id=workspace_id, entity_id=session_id,
                     session_id=session_id, sequence=7, payload={
                         "id": session_id, "workspace_id": workspace_id, "name": "Q4 – Été", "start_date": date(2026, 10, 5),
                         "end_date": date(2026, 12, 27), "timezone": "Europe/Paris", "week_start_day": "monday",
                         "checkin_cadence": "weekly", "checkin_weekday": "friday", "status": "active",
                         "version": version, "visibility": visibility, "members": [uuid.uuid4()]}).to_wire()


def test_a_signed_event_verifies_after_the_wire_round_trip():
    body = EventSigner(KEY).sign(_session_updated())
    received = json.loads(json.dumps(body))  # as the consumer gets it, members in another order
    received = dict(reversed(list(received.items())))
    EventVerifier([KEY]).verify(received)
    assert decode(received).payload["visibility"] == "restricted"  # the signature is not part of the event
    assert body[SIGNATURE]["alg"] == "HMAC-SHA256" and body[SIGNATURE]["key_id"] == key_id(KEY)


def test_the_canonical_bytes_are_as_documented():
    body = {"b": 1, "a": {"z": "é", "y": [1.5, None, True]}, SIGNATURE: {"value": "ignored"}}
    assert canonical_bytes(body) == b'okrsnap-event-v1\n{"a":{"y":[1.5,null,true],"z":"\\u00e9"},"b":1}'
    with pytest.raises(InvalidSignature, match="no canonical form"):
        canonical_bytes({"a": float("nan")})


@pytest.mark.parametrize("change, reason", [
    (lambda b: b.pop(SIGNATURE), "unsigned event"),
    (lambda b: b["payload"].update(visibility="workspace"), "wrong signature"),
    (lambda b: b["payload"].update(version=99), "wrong signature"),
    (lambda b: b.update(sequence=8), "wrong signature"),
    (lambda b: b.update(event_id=str(uuid.uuid4())), "wrong signature"),
    (lambda b: b.update(extra="added after signing"), "wrong signature"),
    (lambda b: b[SIGNATURE].update(key_id=key_id(OTHER)), "unknown key id"),
    (lambda b: b[SIGNATURE].update(alg="none"), "algorithm 'none'"),
    (lambda b: b[SIGNATURE].update(value="ünicode"), "not base64url"),
    (lambda b: b.update({SIGNATURE: "forged"}), "malformed signature"),
])
def test_a_changed_or_unsigned_event_is_refused_with_the_reason(change, reason):
    body = json.loads(json.dumps(EventSigner(KEY).sign(_session_updated())))
    change(body)
    with pytest.raises(InvalidSignature, match=reason):
        EventVerifier([KEY]).verify(body)


def test_another_key_is_refused_even_under_the_right_key_id():
    forged = EventSigner(OTHER).sign(_session_updated(version=99, visibility="workspace"))
    with pytest.raises(InvalidSignature, match=f"unknown key id '{key_id(OTHER)}'"):
        EventVerifier([KEY]).verify(forged)
    forged[SIGNATURE]["key_id"] = key_id(KEY)
    with pytest.raises(InvalidSignature, match="wrong signature"):
        EventVerifier([KEY]).verify(forged)


def test_key_ids_find_the_previous_key_during_a_rotation(tmp_path):
    env = {"OKRSNAP_ENV": "test", "OKRSNAP_DATA_DIR": str(tmp_path), "OKRSNAP_EVENT_SIGNING_KEY": KEY,
           "OKRSNAP_EVENT_SIGNING_KEY_PREVIOUS": f"{PREVIOUS}, {OTHER}"}
    settings = Settings.from_env(env)
    assert settings.verification_keys("event") == (KEY, PREVIOUS, OTHER)
    verifier = messaging.event_verifier(settings)
    assert verifier.key_ids == (key_id(KEY), key_id(PREVIOUS), key_id(OTHER))
    assert len(set(verifier.key_ids)) == 3 and all(len(k) == 16 for k in verifier.key_ids)
    signed_before = EventSigner(PREVIOUS).sign(_session_updated())
    verifier.verify(signed_before)  # published before the rotation: still accepted
    assert messaging.event_signer(settings).sign(_session_updated())[SIGNATURE]["key_id"] == key_id(KEY)
    env.pop("OKRSNAP_EVENT_SIGNING_KEY_PREVIOUS")  # rotation finished
    with pytest.raises(InvalidSignature, match="unknown key id"):
        messaging.event_verifier(Settings.from_env(env)).verify(signed_before)


def test_the_consumer_dead_letters_a_forgery_before_reading_it():
    handled = []
    consumer = messaging.EventConsumer(connection=None, topology=Topology("t", broker_features=False),
                                       consumer="snapshot", purpose="events", handle=handled.append,
                                       verifier=EventVerifier([KEY]))
    reasons = []
    consumer.dead_letter = lambda message, reason: (reasons.append(reason), message.ack())
    forged, genuine = FakeMessage(), FakeMessage()
    consumer.on_message(EventSigner(OTHER).sign(_session_updated(version=99)), forged)
    consumer.on_message(_session_updated(version=99), forged)
    consumer.on_message(EventSigner(KEY).sign(_session_updated()), genuine)
    assert reasons[0].startswith("refused: signed with an unknown key id")
    assert reasons[1] == "refused: unsigned event: no signature"
    assert genuine.outcome == "ack" and len(handled) == 1 and handled[0].payload["version"] == 3


def test_production_needs_the_event_signing_key_and_reads_it_from_a_file(tmp_path):
    env = {"OKRSNAP_ENV": "production", "OKRSNAP_DATA_DIR": str(tmp_path),
           "OKRSNAP_DATABASE_URL": "postgresql://db/okrsnap", "OKRSNAP_BROKER_URL": "amqp://u:p@mq:5672/%2F",
           "OKRSNAP_INTERNAL_SECRET": "i" * 32, "OKRSNAP_ACCESS_TOKEN_SECRET": "a" * 32,
           "OKRSNAP_DOWNLOAD_SECRET": "d" * 32}
    with pytest.raises(ConfigurationError, match="production needs OKRSNAP_EVENT_SIGNING_KEY"):
        Settings.from_env(env)
    with pytest.raises(ConfigurationError, match="OKRSNAP_EVENT_SIGNING_KEY: at least 32"):
        Settings.from_env({**env, "OKRSNAP_EVENT_SIGNING_KEY": "short"})
    with pytest.raises(ConfigurationError, match="OKRSNAP_EVENT_SIGNING_KEY_PREVIOUS: at least 32"):
        Settings.from_env({**env, "OKRSNAP_EVENT_SIGNING_KEY": KEY, "OKRSNAP_EVENT_SIGNING_KEY_PREVIOUS": "short"})
    (tmp_path / "key").write_text(KEY + "\n")
    (tmp_path / "previous").write_text(PREVIOUS + "\n")
    settings = Settings.from_env({**env, "OKRSNAP_EVENT_SIGNING_KEY_FILE": str(tmp_path / "key"),
                                  "OKRSNAP_EVENT_SIGNING_KEY_PREVIOUS_FILE": str(tmp_path / "previous")})
    assert settings.verification_keys("event") == (KEY, PREVIOUS)
    assert not (tmp_path / "secrets.env").exists()  # nothing generated in production


def test_development_adds_the_key_to_an_older_installations_secrets(tmp_path):
    """A data directory from before event signing holds three generated secrets: the key is
    added to them, once, and every process of the installation reads the same one."""
    old = {"OKRSNAP_INTERNAL_SECRET": "i" * 43, "OKRSNAP_ACCESS_TOKEN_SECRET": "a" * 43,
           "OKRSNAP_DOWNLOAD_SECRET": "d" * 43}
    (tmp_path / "secrets.env").write_text("".join(f"{k}={v}\n" for k, v in old.items()))
    first = Settings.from_env({"OKRSNAP_DATA_DIR": str(tmp_path)})
    second = Settings.from_env({"OKRSNAP_DATA_DIR": str(tmp_path)})
    assert first.internal_secret == old["OKRSNAP_INTERNAL_SECRET"]  # the others are kept
    assert len(first.event_signing_key) >= 32 and second.event_signing_key == first.event_signing_key
    assert first.event_signing_key not in old.values()
    assert (tmp_path / "secrets.env").stat().st_mode & 0o777 == 0o600


def test_the_documented_example_signature_verifies():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    section = text.split("## The signature", 1)[1].split("## Events", 1)[0]
    key = re.search(r"signed with the key `([^`]+)`", section).group(1)
    example = json.loads(re.search(r"```json\n(.*?)\n```", section, re.S).group(1))
    EventVerifier([key]).verify(example)
    assert example[SIGNATURE]["key_id"] == key_id(key)
    assert EventSigner(key).sign(example) == example
