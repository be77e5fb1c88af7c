"""The README's PostgreSQL path works as written: `okrsnap migrate` (and `up`) create the database
named in OKRSNAP_DATABASE_URL when the server allows it, or say exactly what to run."""
from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.cli import main as okrsnap

pytestmark = pytest.mark.integration


@pytest.fixture
def missing_database(postgres_server_url):
    server = make_url(postgres_server_url).set(drivername="postgresql+psycopg")
    name = f"okrsnap_created_{uuid.uuid4().hex[:10]}"
    yield server.set(database=name), name
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def env(tmp_path, url, namespace, broker_url) -> dict:
    return {"OKRSNAP_ENV": "test", "OKRSNAP_DATA_DIR": str(tmp_path / "var"), "OKRSNAP_BROKER_URL": broker_url,
            "OKRSNAP_BROKER_NAMESPACE": namespace, "OKRSNAP_DATABASE_URL": url}


def test_migrate_creates_the_missing_database(tmp_path, missing_database, broker_url, namespace):
    url, name = missing_database
    result = CliRunner().invoke(okrsnap, ["migrate"], env=env(tmp_path, url.render_as_string(hide_password=False),
                                                              namespace, broker_url))
    assert result.exit_code == 0, result.output
    assert "gateway: schema up to date" in result.output
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM gateway.users")).scalar_one() == 0
    engine.dispose()


def test_a_database_that_cannot_be_created_is_one_line_saying_what_to_run(tmp_path, missing_database, broker_url,
                                                                          namespace, postgres_server_url):
    url, name = missing_database
    nobody = f"okrsnap_nobody_{uuid.uuid4().hex[:6]}"
    admin = create_engine(make_url(postgres_server_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{nobody}" LOGIN'))  # may log in, may not create databases
    try:
        result = CliRunner().invoke(okrsnap, ["migrate"], env=env(
            tmp_path, url.set(username=nobody).render_as_string(hide_password=False), namespace, broker_url))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{nobody}"'))
        admin.dispose()
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"The database '{name}' does not exist and could not be created" in result.output
    assert f"createdb -O {nobody} {name}" in result.output
