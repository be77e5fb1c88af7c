"""The database ends a transaction its client left behind (issue 10: found by the chaos run, a
backend idle in its transaction behind a half-open connection held a Key Result's row lock and
every later Check-in of it waited)."""
from __future__ import annotations

import pytest
from sqlalchemy import text

pytestmark = pytest.mark.integration


def test_a_transaction_left_idle_by_a_vanished_client_is_ended_by_the_server(database_url):
    """A half-open connection (the client gone mid-transaction, the server never told) must not
    hold its row locks until TCP keepalive notices, hours later: okrsnap's connections ask the
    server to end a transaction idle for IDLE_IN_TRANSACTION_MS."""
    from shared.db import IDLE_IN_TRANSACTION_MS, make_engine
    from shared.settings import DatabaseTarget

    engine = make_engine(DatabaseTarget(database_url, "public"))
    try:
        with engine.connect() as conn:
            setting = conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar_one()
    finally:
        engine.dispose()
    assert setting == f"{IDLE_IN_TRANSACTION_MS // 1000}s" or setting == f"{IDLE_IN_TRANSACTION_MS // 60000}min"
