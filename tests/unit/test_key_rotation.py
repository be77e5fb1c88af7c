"""Rotating a signing key without a flag day (docs/security.md): OKRSNAP_<NAME>_PREVIOUS lists keys
still accepted when verifying while every process moves to the new one; tokens are always issued
with the current key."""
import time
import uuid

import jwt
import pytest

from shared import tokens
from shared.settings import ConfigurationError, Settings
from tests.conftest import make_settings
from tests.hostile_input import CheckinClient
from tests.unit.test_gateway_identity import API, Stack

OLD = "the-old-access-key-0123456789abcdefghij"


def _access_token(key: str, user_id, **over) -> str:
    now = int(time.time())
    claims = {"iss": "okrsnap", "aud": tokens.API_AUDIENCE, "typ": tokens.ACCESS, "sub": str(user_id),
              "iat": now, "nbf": now - 5, "exp": now + 600, "jti": uuid.uuid4().hex, **over}
    return jwt.encode(claims, key, algorithm="HS256")


def test_verify_accepts_any_listed_key_and_nothing_else():
    token = tokens.issue(OLD, typ=tokens.ACCESS, audience=tokens.API_AUDIENCE, subject="u", ttl=60)
    assert tokens.verify(("new-key-0123456789abcdef0123456789", OLD), token, typ=tokens.ACCESS,
                         audience=tokens.API_AUDIENCE)["sub"] == "u"
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(("new-key-0123456789abcdef0123456789",), token, typ=tokens.ACCESS, audience=tokens.API_AUDIENCE)
    expired = _access_token(OLD, "u", exp=int(time.time()) - 60)
    with pytest.raises(tokens.InvalidToken, match="expired"):
        tokens.verify(("new-key-0123456789abcdef0123456789", OLD), expired, typ=tokens.ACCESS,
                      audience=tokens.API_AUDIENCE)


@pytest.mark.parametrize("previous, accepted", [(OLD, True), ("", False)])
def test_the_gateway_accepts_access_tokens_of_a_previous_key_only_while_it_is_listed(tmp_path, previous, accepted):
    stack = Stack(tmp_path, OKRSNAP_ACCESS_TOKEN_SECRET_PREVIOUS=previous)
    try:
        old = {"Authorization": f"Bearer {_access_token(OLD, stack.owner.id)}"}
        assert (stack.client.get(f"{API}/me", headers=old).status_code == 200) is accepted
        fresh = stack.login().json["access_token"]  # issued with the current key
        assert jwt.decode(fresh, stack.container.settings.access_token_secret, algorithms=["HS256"],
                          audience=tokens.API_AUDIENCE)["sub"] == str(stack.owner.id)
    finally:
        stack.container.database.dispose()


def test_a_service_accepts_internal_tokens_of_a_previous_key_while_it_is_listed(tmp_path):
    old_internal = "the-old-internal-key-0123456789abcdefgh"
    checkin = CheckinClient(make_settings(tmp_path, OKRSNAP_INTERNAL_SECRET_PREVIOUS=old_internal))
    try:
        principal = tokens.Principal(str(checkin.user), {str(checkin.workspace): "owner"})
        headers = {tokens.INTERNAL_HEADER: tokens.internal_token(old_internal, "checkin", principal)}
        assert checkin.client.get(f"/sessions/{checkin.session}", headers=headers).status_code == 200
        forged = {tokens.INTERNAL_HEADER: tokens.internal_token("someone-elses-key-0123456789abcdef", "checkin",
                                                                principal)}
        assert checkin.client.get(f"/sessions/{checkin.session}", headers=forged).status_code == 401
    finally:
        checkin.close()


def test_production_refuses_short_previous_keys(tmp_path):
    env = {"OKRSNAP_ENV": "production", "OKRSNAP_DATA_DIR": str(tmp_path),
           "OKRSNAP_DATABASE_URL": "postgresql://db/okrsnap", "OKRSNAP_BROKER_URL": "amqp://u:p@mq:5672/%2F",
           "OKRSNAP_INTERNAL_SECRET": "i" * 32, "OKRSNAP_ACCESS_TOKEN_SECRET": "a" * 32,
           "OKRSNAP_DOWNLOAD_SECRET": "d" * 32, "OKRSNAP_EVENT_SIGNING_KEY": "e" * 32}
    assert Settings.from_env({**env, "OKRSNAP_DOWNLOAD_SECRET_PREVIOUS": "p" * 32}).verification_keys("download") == (
        "d" * 32, "p" * 32)
    with pytest.raises(ConfigurationError, match="PREVIOUS"):
        Settings.from_env({**env, "OKRSNAP_ACCESS_TOKEN_SECRET_PREVIOUS": "short"})
