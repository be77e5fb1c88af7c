"""Test infrastructure: finds real PostgreSQL and RabbitMQ, isolates every run.

Order: OKRSNAP_TEST_DATABASE_URL / OKRSNAP_TEST_BROKER_URL, else the local servers on
127.0.0.1:5432 and :5672 when they answer, else testcontainers when a Docker engine answers,
else skip with a loud reason - never when CI=true, where a missing server fails the run.
"""
from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Callable

import pytest

from shared.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parent.parent


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means no engine
        return False


def _unavailable(what: str):
    reason = (f"{what} not reachable: set OKRSNAP_TEST_{'DATABASE' if 'Postgre' in what else 'BROKER'}_URL, "
              "start the local server, or run a Docker engine for testcontainers")
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(f"SKIPPED LOUDLY: {reason}")


def wait_until(predicate: Callable[[], object], *, timeout: float = 20.0, interval: float = 0.05,
               message: str = "condition"):
    """Poll a condition until it holds or the deadline passes (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def postgres_server_url():
    url = os.environ.get("OKRSNAP_TEST_DATABASE_URL")
    if url:
        yield url
        return
    if _answers("127.0.0.1", 5432):
        yield "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="psycopg") as container:
            yield container.get_connection_url()
        return
    _unavailable("PostgreSQL")


@pytest.fixture(scope="session")
def broker_url():
    url = os.environ.get("OKRSNAP_TEST_BROKER_URL")
    if url:
        yield url
        return
    if _answers("127.0.0.1", 5672):
        yield "amqp://guest:guest@127.0.0.1:5672/%2F"
        return
    if _docker_answers():
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3.13-management") as container:
            params = container.get_connection_params()
            yield f"amqp://guest:guest@{params.host}:{params.port}/%2F"
        return
    _unavailable("RabbitMQ")


@contextlib.contextmanager
def fresh_database(postgres_server_url: str, prefix: str = "okrsnap_test"):
    """A new, empty database on the server (its URL), dropped when the block ends."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    server = make_url(postgres_server_url)
    if server.drivername in ("postgresql", "postgres"):
        server = server.set(drivername="postgresql+psycopg")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def database_url(postgres_server_url):
    """A fresh database for one test, dropped at the end: no test sees another's rows."""
    with fresh_database(postgres_server_url) as url:
        yield url


@pytest.fixture
def namespace(request):
    """Fresh exchange and queue names for one test; deleted afterwards."""
    ns = f"okrsnap-test-{uuid.uuid4().hex[:10]}"
    yield ns
    url = None
    for name in ("broker_url",):
        if name in request.fixturenames:
            url = request.getfixturevalue(name)
    if url:
        _delete_topology(url, ns)


def _delete_topology(url: str, ns: str) -> None:
    from kombu import Connection

    from shared.topology import Topology

    try:
        with Connection(url, connect_timeout=5) as conn:
            channel = conn.channel()
            for entity in Topology(ns).all_entities():
                try:
                    if hasattr(entity, "queue_arguments"):
                        channel.queue_delete(entity.name)
                    else:
                        channel.exchange_delete(entity.name)
                except Exception:  # noqa: BLE001 - best-effort cleanup
                    channel = conn.channel()
    except Exception:  # noqa: BLE001
        pass


def make_settings(tmp_path: Path, **env: str) -> Settings:
    base = {
        "OKRSNAP_ENV": "test",
        "OKRSNAP_DATA_DIR": str(tmp_path / "var"),
        "OKRSNAP_INTERNAL_SECRET": "test-internal-secret-0123456789abcdef",
        "OKRSNAP_ACCESS_TOKEN_SECRET": "test-access-secret-0123456789abcdef",
        "OKRSNAP_DOWNLOAD_SECRET": "test-download-secret-0123456789abcdef",
    }
    base.update(env)
    return Settings.from_env(base)


@pytest.fixture
def pg_settings(tmp_path, database_url, broker_url, namespace) -> Settings:
    """Settings for one test on real PostgreSQL and RabbitMQ: its own database and names."""
    return make_settings(tmp_path, OKRSNAP_DATABASE_URL=database_url, OKRSNAP_BROKER_URL=broker_url,
                         OKRSNAP_BROKER_NAMESPACE=namespace,
                         OKRSNAP_CLOCK_FILE=str(tmp_path / "clock.json"))


@pytest.fixture
def embedded_settings(tmp_path) -> Settings:
    return make_settings(tmp_path, OKRSNAP_CLOCK_FILE=str(tmp_path / "clock.json"))
