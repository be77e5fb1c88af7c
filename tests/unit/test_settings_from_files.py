"""Secrets and URLs from files (<NAME>_FILE, e.g. Docker secrets under /run/secrets): the file's
content is the value; a missing, empty or doubly-given one stops the process at start-up."""
from __future__ import annotations

import pytest

from shared.settings import FILE_VARIABLES, ConfigurationError, Settings

PRODUCTION = {"OKRSNAP_ENV": "production", "OKRSNAP_DATA_DIR": "/data"}
KEYS = {"OKRSNAP_INTERNAL_SECRET": "i" * 40, "OKRSNAP_ACCESS_TOKEN_SECRET": "a" * 40,
        "OKRSNAP_DOWNLOAD_SECRET": "d" * 40, "OKRSNAP_EVENT_SIGNING_KEY": "e" * 40}


def _files(tmp_path, values: dict[str, str]) -> dict[str, str]:
    env = {}
    for name, value in values.items():
        path = tmp_path / name.lower()
        path.write_text(value)
        env[f"{name}_FILE"] = str(path)
    return env


def test_every_secret_and_url_can_come_from_a_file(tmp_path):
    values = dict(KEYS, OKRSNAP_DATABASE_URL="postgresql://okrsnap:s3cret@postgres:5432/okrsnap",
                  OKRSNAP_BROKER_URL="amqp://okrsnap:s3cret@rabbitmq:5672//",
                  OKRSNAP_REDIS_URL="redis://:s3cret@redis:6379/0")
    # as `echo value > file` writes them: one trailing newline, which is not part of the value
    env = _files(tmp_path, {k: v + "\n" for k, v in values.items()})
    settings = Settings.from_env(dict(PRODUCTION, **env))
    assert settings.internal_secret == KEYS["OKRSNAP_INTERNAL_SECRET"]
    assert settings.access_token_secret == KEYS["OKRSNAP_ACCESS_TOKEN_SECRET"]
    assert settings.download_secret == KEYS["OKRSNAP_DOWNLOAD_SECRET"]
    assert settings.broker_url == values["OKRSNAP_BROKER_URL"]
    assert settings.redis_url == values["OKRSNAP_REDIS_URL"]
    assert settings.database_for("checkin").url == "postgresql+psycopg://okrsnap:s3cret@postgres:5432/okrsnap"


def test_a_service_database_and_previous_keys_from_files(tmp_path):
    env = _files(tmp_path, {"OKRSNAP_EXPORT_DATABASE_URL": "postgresql://e:x@db2:5432/exports",
                            "OKRSNAP_ACCESS_TOKEN_SECRET_PREVIOUS": "o" * 40 + "," + "p" * 40})
    settings = Settings.from_env(dict(PRODUCTION, **KEYS, **env, OKRSNAP_DATABASE_URL="postgresql://x@pg/okrsnap",
                                      OKRSNAP_BROKER_URL="amqp://x@mq//"))
    assert settings.database_for("export").url == "postgresql+psycopg://e:x@db2:5432/exports"
    assert settings.database_for("gateway").url == "postgresql+psycopg://x@pg/okrsnap"
    assert settings.verification_keys("access_token") == ("a" * 40, "o" * 40, "p" * 40)
    assert {"OKRSNAP_GATEWAY_DATABASE_URL", "OKRSNAP_INTERNAL_SECRET"} <= set(FILE_VARIABLES)


def test_a_value_and_its_file_together_are_refused(tmp_path):
    env = dict(KEYS, **_files(tmp_path, {"OKRSNAP_DOWNLOAD_SECRET": "f" * 40}))
    with pytest.raises(ConfigurationError, match="OKRSNAP_DOWNLOAD_SECRET and OKRSNAP_DOWNLOAD_SECRET_FILE"):
        Settings.from_env(dict(env, OKRSNAP_ENV="test", OKRSNAP_DATA_DIR=str(tmp_path)))


@pytest.mark.parametrize("content", ["", "\n"])
def test_an_empty_file_is_refused(tmp_path, content):
    env = _files(tmp_path, {"OKRSNAP_INTERNAL_SECRET": content})
    with pytest.raises(ConfigurationError, match="OKRSNAP_INTERNAL_SECRET_FILE: .* is empty"):
        Settings.from_env(dict(env, OKRSNAP_ENV="test", OKRSNAP_DATA_DIR=str(tmp_path)))


def test_a_missing_file_is_named(tmp_path):
    missing = tmp_path / "not-there"
    with pytest.raises(ConfigurationError, match=f"OKRSNAP_BROKER_URL_FILE: cannot read {missing}"):
        Settings.from_env({"OKRSNAP_ENV": "test", "OKRSNAP_DATA_DIR": str(tmp_path),
                           "OKRSNAP_BROKER_URL_FILE": str(missing)})


def test_a_file_secret_still_meets_the_production_length(tmp_path):
    env = dict(KEYS, OKRSNAP_DATABASE_URL="postgresql://x@pg/okrsnap", OKRSNAP_BROKER_URL="amqp://x@mq//")
    del env["OKRSNAP_INTERNAL_SECRET"]
    env.update(_files(tmp_path, {"OKRSNAP_INTERNAL_SECRET": "short\n"}))
    with pytest.raises(ConfigurationError, match="OKRSNAP_INTERNAL_SECRET: at least 32"):
        Settings.from_env(dict(PRODUCTION, **env))
