import time

import jwt
import pytest

from shared import tokens
from shared.settings import ConfigurationError, Settings

SECRET = "s" * 40


def test_a_token_of_one_kind_never_passes_as_another():
    download = tokens.issue(SECRET, typ=tokens.DOWNLOAD, audience=tokens.API_AUDIENCE, subject="x", ttl=60)
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(SECRET, download, typ=tokens.ACCESS, audience=tokens.API_AUDIENCE)
    internal = tokens.internal_token(SECRET, "checkin", tokens.Principal("u", {}))
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(SECRET, internal, typ=tokens.INTERNAL, audience=tokens.internal_audience("export"))


def test_alg_none_expired_and_forged_tokens_are_refused():
    claims = {"iss": tokens.ISSUER, "aud": tokens.API_AUDIENCE, "typ": tokens.ACCESS, "sub": "u",
              "iat": int(time.time()), "exp": int(time.time()) + 60}
    unsigned = jwt.encode(claims, None, algorithm="none")
    expired = jwt.encode(dict(claims, exp=int(time.time()) - 60), SECRET, algorithm="HS256")
    forged = jwt.encode(claims, "another-secret-of-sufficient-length!!", algorithm="HS256")
    for token in (unsigned, expired, forged, "garbage"):
        with pytest.raises(tokens.InvalidToken):
            tokens.verify(SECRET, token, typ=tokens.ACCESS, audience=tokens.API_AUDIENCE)
    assert tokens.verify(SECRET, jwt.encode(claims, SECRET, algorithm="HS256"),
                         typ=tokens.ACCESS, audience=tokens.API_AUDIENCE)["sub"] == "u"


def test_production_refuses_a_settable_clock_and_missing_secrets(tmp_path):
    base = {"OKRSNAP_ENV": "production", "OKRSNAP_DATA_DIR": str(tmp_path)}
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        Settings.from_env(base)
    base.update(OKRSNAP_DATABASE_URL="postgresql://db/okrsnap", OKRSNAP_BROKER_URL="amqp://mq//")
    with pytest.raises(ConfigurationError, match="OKRSNAP_INTERNAL_SECRET"):
        Settings.from_env(base)
    secrets = {n: "x" * 32 for n in ("OKRSNAP_INTERNAL_SECRET", "OKRSNAP_ACCESS_TOKEN_SECRET",
                                     "OKRSNAP_DOWNLOAD_SECRET", "OKRSNAP_EVENT_SIGNING_KEY")}
    with pytest.raises(ConfigurationError, match="at least 32"):
        Settings.from_env({**base, **secrets, "OKRSNAP_DOWNLOAD_SECRET": "short"})
    with pytest.raises(ConfigurationError, match="clock"):
        Settings.from_env({**base, **secrets, "OKRSNAP_CLOCK_FILE": str(tmp_path / "c")})


def test_development_generates_secrets_once_and_defaults_to_embedded(tmp_path):
    first = Settings.from_env({"OKRSNAP_DATA_DIR": str(tmp_path)})
    again = Settings.from_env({"OKRSNAP_DATA_DIR": str(tmp_path)})
    assert first.internal_secret == again.internal_secret and len(first.internal_secret) > 30
    assert first.embedded_broker and first.database_for("snapshot").is_sqlite
    pg = Settings.from_env({"OKRSNAP_DATA_DIR": str(tmp_path), "OKRSNAP_DATABASE_URL": "postgresql://h/db"})
    target = pg.database_for("checkin")
    assert target.url.startswith("postgresql+psycopg://") and target.schema == "checkin"
