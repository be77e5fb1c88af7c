"""Identity and access at the gateway on real PostgreSQL: revocation, personal API tokens,
members and invitations, the audit log, and member changes racing each other."""
from __future__ import annotations

import threading
import uuid

import pytest

from services.gateway.bootstrap import bootstrap
from services.gateway.entrypoints.app import create_app
from services.gateway.service_layer import handlers
from tests.conftest import make_settings
from tests.unit.test_gateway_identity import FakeUpstream

pytestmark = pytest.mark.integration

PASSWORD = "a long enough password"
API = "/api/v1"


class PgStack:
    def __init__(self, tmp_path, database_url):
        self.container = bootstrap(make_settings(tmp_path, OKRSNAP_DATABASE_URL=database_url))
        self.container.migrate()
        self.container.upstream = FakeUpstream(self.container.settings)
        self.client = create_app(self.container).test_client()
        self.owner, self.workspace = self.add("lead@example.com", "owner")
        self.members_url = f"{API}/workspaces/{self.workspace.id}/members"

    def add(self, email, role, workspace="Acme"):
        return handlers.add_user(handlers.AddUser(email, PASSWORD, workspace, role),
                                 uow=self.container.uow(), clock=self.container.clock)

    def bearer(self, email="lead@example.com", password=PASSWORD):
        response = self.client.post(f"{API}/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.json
        return {"Authorization": f"Bearer {response.json['access_token']}"}


@pytest.fixture
def pg(tmp_path, database_url):
    stack = PgStack(tmp_path, database_url)
    yield stack
    stack.container.database.dispose()


def test_schema_is_migrated_in_the_gateway_schema(pg):
    from sqlalchemy import inspect

    tables = set(inspect(pg.container.database.engine).get_table_names(schema="gateway"))
    assert {"revoked_tokens", "personal_tokens", "browser_sessions", "invitations", "audit_events"} <= tables


def test_logout_and_revoked_personal_tokens_on_postgres(pg):
    headers = pg.bearer()
    sessions = f"{API}/workspaces/{pg.workspace.id}/sessions"
    created = pg.client.post(f"{API}/me/tokens", headers=headers, json={"name": "nightly"})
    assert created.status_code == 201 and created.json["expires_at"] is not None  # every token expires
    pat = {"Authorization": f"Bearer {created.json['token']}"}
    assert pg.client.get(sessions, headers=pat).status_code == 200
    assert pg.client.post(f"{API}/auth/logout", headers=headers).status_code == 204
    assert pg.client.get(sessions, headers=headers).status_code == 401
    assert pg.client.get(sessions, headers=pat).status_code == 200  # a PAT lives on its own
    fresh = pg.bearer()
    assert pg.client.delete(f"{API}/me/tokens/{created.json['id']}", headers=fresh).status_code == 204
    denied = pg.client.get(sessions, headers=pat)
    assert denied.status_code == 401 and denied.json["code"] == 401
    listed = pg.client.get(f"{API}/me/tokens", headers=fresh).json["tokens"]
    assert listed[0]["revoked"] is True and listed[0]["last_used_at"] is not None


def test_members_invitations_and_audit_on_postgres(pg):
    owner = pg.bearer()
    member_user, _ = pg.add("member@example.com", "member")
    member = pg.bearer("member@example.com")
    invited = pg.client.post(pg.members_url, headers=owner, json={"email": "new@example.com", "role": "admin"})
    assert invited.status_code == 201
    accepted = pg.client.post(f"{API}/auth/accept-invite",
                              json={"token": invited.json["invitation"]["token"], "password": PASSWORD})
    assert accepted.status_code == 201
    admin = {"Authorization": f"Bearer {accepted.json['access_token']}"}
    assert pg.client.patch(f"{pg.members_url}/{member_user.id}", headers=admin,
                           json={"okr_access": False}).status_code == 200
    assert pg.client.get(f"{API}/workspaces/{pg.workspace.id}/sessions", headers=member).status_code == 404
    assert pg.client.delete(f"{pg.members_url}/{member_user.id}", headers=admin).status_code == 204
    assert pg.client.get(pg.members_url, headers=member).status_code == 404
    assert pg.client.delete(f"{pg.members_url}/{pg.owner.id}", headers=admin).status_code == 403
    assert pg.client.delete(f"{pg.members_url}/{pg.owner.id}", headers=owner).status_code == 409
    emails = {m["email"] for m in pg.client.get(pg.members_url, headers=owner).json["members"]}
    assert emails == {"lead@example.com", "new@example.com"}

    page = pg.client.get(f"{API}/workspaces/{pg.workspace.id}/audit", headers=admin,
                         query_string={"limit": 2}).json
    assert [e["action"] for e in page["events"]] == ["member.removed", "member.changed"]
    assert page["events"][1]["detail"] == {"before": {"role": "member", "okr_access": True},
                                           "after": {"role": "member", "okr_access": False}}
    older = pg.client.get(f"{API}/workspaces/{pg.workspace.id}/audit", headers=admin,
                          query_string={"before": page["next_before"]}).json["events"]
    # Then the logins of current members (no Workspace of their own); the removed member's are gone.
    assert [e["action"] for e in older] == ["invitation.accepted", "member.invited", "login"]
    assert all(e["workspace_id"] == str(pg.workspace.id) for e in page["events"] + older[:2])
    assert older[2]["workspace_id"] is None and older[2]["actor_email"] == "lead@example.com"
    assert pg.client.get(f"{API}/workspaces/{pg.workspace.id}/audit", headers=pg.bearer("member@example.com")
                         ).status_code == 404  # no longer a member


def test_two_owners_demoting_each_other_at_once_leave_one_owner(pg):
    second, _ = pg.add("second@example.com", "owner")
    first_headers, second_headers = pg.bearer(), pg.bearer("second@example.com")
    barrier, results = threading.Barrier(2), {}
    # Apps are built here, not in the threads: werkzeug compiles its URL rules with `ast`, which
    # CPython 3.11 cannot do in two threads at once ("AST constructor recursion depth mismatch").
    clients = {"first": create_app(pg.container).test_client(), "second": create_app(pg.container).test_client()}

    def demote(name, headers, target):
        client = clients[name]
        barrier.wait()
        results[name] = client.patch(f"{pg.members_url}/{target}", headers=headers, json={"role": "admin"}).status_code

    threads = [threading.Thread(target=demote, args=("first", first_headers, second.id)),
               threading.Thread(target=demote, args=("second", second_headers, pg.owner.id))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results.values()) in ([200, 403], [200, 409]), results
    with pg.container.uow() as uow:
        assert uow.repo.owners_count(pg.workspace.id) == 1


def test_a_made_up_workspace_and_a_foreign_one_answer_alike(pg):
    pg.add("outsider@example.com", "owner", workspace=f"Other {uuid.uuid4()}")
    outsider = pg.bearer("outsider@example.com")
    real = pg.client.post(pg.members_url, headers=outsider, json={"email": "x@example.com", "role": "viewer"})
    made_up = pg.client.post(f"{API}/workspaces/{uuid.uuid4()}/members", headers=outsider,
                             json={"email": "x@example.com", "role": "viewer"})
    assert real.status_code == made_up.status_code == 404 and real.json == made_up.json
