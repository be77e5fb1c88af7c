"""The engine's cheap pre-ping: a pooled connection the server closed (a restart, a cut) is found
at checkout without a round trip on the healthy path, and replaced before the caller sees it."""
from __future__ import annotations

import select

import pytest
from sqlalchemy import text

from shared.db import make_engine
from shared.settings import DatabaseTarget
from tests.conftest import wait_until

pytestmark = pytest.mark.integration


def test_a_connection_the_server_closed_is_replaced_at_checkout(database_url):
    engine = make_engine(DatabaseTarget(database_url, None), pool_size=1, max_overflow=0)
    admin = make_engine(DatabaseTarget(database_url, None))
    try:
        with engine.connect() as conn:
            first_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            dbapi = conn.connection.dbapi_connection
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid}).scalar()
        # the server's goodbye reaches the idle pooled socket
        wait_until(lambda: select.select([dbapi.fileno()], [], [], 0)[0], message="the server closed it")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != first_pid
    finally:
        engine.dispose()
        admin.dispose()


def test_a_healthy_checkout_costs_no_ping(database_url):
    import psycopg

    sent: list[str] = []

    class Recording(psycopg.Cursor):
        def execute(self, query, *args, **kwargs):
            sent.append(str(query))
            return super().execute(query, *args, **kwargs)

    engine = make_engine(DatabaseTarget(database_url, None), pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            conn.connection.dbapi_connection.cursor_factory = Recording
        for _ in range(3):
            with engine.connect() as conn:
                conn.execute(text("SELECT 2"))
        assert sent == ["SELECT 2"] * 3  # what the caller asked for, and no SELECT 1 before each
    finally:
        engine.dispose()
