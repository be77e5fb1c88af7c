"""What a forwarded request costs the gateway on PostgreSQL (issue 13), and that its cheapness
loses none of issue 11's revocation guarantees: the credential, its user and their memberships
are one statement outside any transaction, and a credential ended through one gateway process is
refused by another at its very next request, however many requests it had just served."""
from __future__ import annotations

import uuid

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import event

from services.gateway.bootstrap import bootstrap
from services.gateway.entrypoints.app import create_app
from tests.conftest import make_settings
from tests.integration.test_identity_access import API, PASSWORD, PgStack
from tests.unit.test_gateway_identity import FakeUpstream

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_stack(tmp_path, database_url):
    stack = PgStack(tmp_path, database_url)
    yield stack
    stack.container.database.dispose()


@pytest.fixture
def two_gateways(tmp_path, database_url):
    """Two gateway processes' worth of state (containers, engines, apps) on one database."""
    first = PgStack(tmp_path / "a", database_url)
    second = bootstrap(make_settings(tmp_path / "b", OKRSNAP_DATABASE_URL=database_url))
    second.upstream = FakeUpstream(second.settings)
    yield first, create_app(second).test_client()
    first.container.database.dispose()
    second.database.dispose()


class Statements:
    """Every statement the engine sends, with the transaction status the connection is left in."""

    def __init__(self, engine):
        self.seen: list[tuple[str, TransactionStatus]] = []
        self.engine = engine
        event.listen(engine, "after_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        self.seen.append((statement, conn.connection.dbapi_connection.info.transaction_status))

    def close(self):
        event.remove(self.engine, "after_cursor_execute", self._record)


@pytest.mark.parametrize("credential", ["access", "personal", "session"])
def test_a_forwarded_request_reads_its_credential_in_one_statement_outside_any_transaction(pg_stack, credential):
    pg = pg_stack
    headers = pg.bearer()
    if credential == "personal":
        created = pg.client.post(f"{API}/me/tokens", headers=headers, json={"name": "script"}).json
        headers = {"Authorization": f"Bearer {created['token']}"}
        assert pg.client.get(f"{API}/sessions/{uuid.uuid4()}/snapshots", headers=headers).status_code == 200
    elif credential == "session":
        signed_in = pg.client.post(f"{API}/auth/session", json={"email": "lead@example.com", "password": PASSWORD})
        assert signed_in.status_code == 201
        headers = {}
    statements = Statements(pg.container.database.engine)
    try:
        answer = pg.client.get(f"{API}/sessions/{uuid.uuid4()}/snapshots", headers=headers)
    finally:
        statements.close()
    assert answer.status_code == 200, answer.json
    assert len(statements.seen) == 1, statements.seen
    # Left idle, not in a transaction: no BEGIN went before it and no ROLLBACK has to follow it.
    assert statements.seen[0][1] == TransactionStatus.IDLE


def _warm(client, url, headers, times=5):
    for _ in range(times):
        assert client.get(url, headers=headers).status_code == 200


def test_every_revocation_counts_at_once_in_another_gateway_process(two_gateways):
    first, second = two_gateways
    sessions = f"{API}/workspaces/{first.workspace.id}/sessions"

    # logout
    access = first.bearer()
    _warm(second, sessions, access)
    assert first.client.post(f"{API}/auth/logout", headers=access).status_code == 204
    assert second.get(sessions, headers=access).status_code == 401

    # a personal token revoked
    access = first.bearer()
    created = first.client.post(f"{API}/me/tokens", headers=access, json={"name": "nightly"}).json
    pat = {"Authorization": f"Bearer {created['token']}"}
    _warm(second, sessions, pat)
    assert first.client.delete(f"{API}/me/tokens/{created['id']}", headers=access).status_code == 204
    assert second.get(sessions, headers=pat).status_code == 401

    # sign out everywhere: access tokens and personal tokens alike
    created = first.client.post(f"{API}/me/tokens", headers=access, json={"name": "again"}).json
    pat = {"Authorization": f"Bearer {created['token']}"}
    _warm(second, sessions, access)
    _warm(second, sessions, pat)
    assert first.client.post(f"{API}/me/sign-out-everywhere", headers=access).status_code == 204
    assert second.get(sessions, headers=access).status_code == 401
    assert second.get(sessions, headers=pat).status_code == 401

    # a password change ends every access token
    access = first.bearer()
    _warm(second, sessions, access)
    changed = first.client.post(f"{API}/me/password", headers=access,
                                json={"current_password": PASSWORD, "new_password": PASSWORD + " anew"})
    assert changed.status_code == 204
    assert second.get(sessions, headers=access).status_code == 401


def test_a_removed_member_loses_the_workspace_at_once_in_another_gateway_process(two_gateways):
    first, second = two_gateways
    sessions = f"{API}/workspaces/{first.workspace.id}/sessions"
    member, _ = first.add("member@example.com", "member")
    access = first.bearer("member@example.com")
    _warm(second, sessions, access)
    owner = first.bearer()
    removed = first.client.delete(f"{API}/workspaces/{first.workspace.id}/members/{member.id}", headers=owner)
    assert removed.status_code == 204
    assert second.get(sessions, headers=access).status_code == 404  # as if it did not exist
