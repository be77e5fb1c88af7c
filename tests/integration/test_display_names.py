"""Display names on real PostgreSQL: PATCH /me, a password change that ends the user's other
credentials, and names beside owner and author ids in answers through the gateway from the real
check-in and snapshot services."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from services.gateway.adapters import orm
from services.gateway.entrypoints.app import CSRF_HEADER
from shared.weeks import Week
from tests.conftest import make_settings
from tests.helpers import free_port
from tests.integration.test_identity_access import API, PASSWORD, PgStack, pg  # noqa: F401 - the fixture
from tests.integration.test_permission_matrix import World, _created, _session

pytestmark = pytest.mark.integration
NEW_PASSWORD = "another long password"


def test_patch_me_names_me_everywhere_i_appear(pg):
    headers = pg.bearer()
    assert pg.client.get(f"{API}/me", headers=headers).json["display_name"] == "lead"  # the email's local part
    renamed = pg.client.patch(f"{API}/me", headers=headers, json={"display_name": "  Ada Lovelace "})
    assert renamed.status_code == 200, renamed.json
    assert renamed.json["display_name"] == "Ada Lovelace" and renamed.json["workspaces"][0]["role"] == "owner"
    assert pg.client.get(f"{API}/me", headers=headers).json["display_name"] == "Ada Lovelace"
    members = pg.client.get(pg.members_url, headers=headers).json["members"]
    assert [(m["email"], m["display_name"]) for m in members] == [("lead@example.com", "Ada Lovelace")]

    for bad in ("", " " * 5, "x" * 81, "Ada\u202eecalovoL", "two\nlines"):
        refused = pg.client.patch(f"{API}/me", headers=headers, json={"display_name": bad})
        assert refused.status_code == 422, (bad, refused.json)
        assert refused.json["errors"][0]["field"] == "display_name"
    assert pg.client.patch(f"{API}/me", headers=headers, json={"display_name": "A", "email": "x@y.z"}
                           ).status_code == 422  # nothing else of a user is set this way
    assert pg.client.patch(f"{API}/me", json={"display_name": "Nobody"}).status_code == 401


def test_an_invitation_is_accepted_with_a_name(pg):
    invited = pg.client.post(pg.members_url, headers=pg.bearer(), json={"email": "grace@example.com", "role": "member"})
    accepted = pg.client.post(f"{API}/auth/accept-invite", json={
        "token": invited.json["invitation"]["token"], "password": PASSWORD, "display_name": "Grace Hopper"})
    assert accepted.status_code == 201, accepted.json
    assert accepted.json["user"]["display_name"] == "Grace Hopper"


def _browser(pg, email="lead@example.com", password=PASSWORD):
    client = pg.client.application.test_client()
    started = client.post(f"{API}/auth/session", json={"email": email, "password": password})
    assert started.status_code == 201, started.json
    return client, {CSRF_HEADER: started.json["csrf_token"]}


def test_a_password_change_ends_every_other_credential_but_the_asking_browser_session(pg):
    access = pg.bearer()
    pat = pg.client.post(f"{API}/me/tokens", headers=access, json={"name": "nightly"}).json["token"]
    pat_headers = {"Authorization": f"Bearer {pat}"}
    other_browser, _ = _browser(pg)
    browser, csrf = _browser(pg)
    pg.add("other@example.com", "member")
    others_token = pg.bearer("other@example.com")

    wrong = browser.post(f"{API}/me/password", headers=csrf,
                         json={"current_password": "not the password", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 403 and "current password" in wrong.json["message"]
    short = browser.post(f"{API}/me/password", headers=csrf,
                         json={"current_password": PASSWORD, "new_password": "short"})
    assert short.status_code == 422 and short.json["errors"][0]["field"] == "new_password"
    assert browser.post(f"{API}/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
                        ).status_code == 403  # a browser session needs its CSRF token
    assert pg.client.get(f"{API}/me", headers=access).status_code == 200  # nothing changed yet

    changed = browser.post(f"{API}/me/password", headers=csrf,
                           json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert changed.status_code == 204, changed.json
    assert browser.get(f"{API}/me").status_code == 200                  # this page stays signed in
    assert other_browser.get(f"{API}/me").status_code == 401             # the other browser is out
    assert pg.client.get(f"{API}/me", headers=access).status_code == 401      # access tokens end
    assert pg.client.get(f"{API}/me", headers=pat_headers).status_code == 401  # personal tokens end
    assert pg.client.get(f"{API}/me", headers=others_token).status_code == 200  # nobody else's
    assert pg.client.post(f"{API}/auth/login", json={"email": "lead@example.com", "password": PASSWORD}
                          ).status_code == 401
    fresh = pg.bearer(password=NEW_PASSWORD)
    assert pg.client.get(f"{API}/me", headers=fresh).status_code == 200
    with pg.container.database.session() as db:
        rows = db.execute(select(orm.audit_events.c.action, orm.audit_events.c.detail)
                          .where(orm.audit_events.c.actor_user_id == pg.owner.id)
                          .order_by(orm.audit_events.c.id)).all()
    assert ("login.failed", {"via": "password_change"}) in rows
    assert ("password.changed", {"via": "session", "browser_sessions_ended": 1, "personal_tokens_revoked": 1}
            ) in rows


def test_a_password_change_with_an_access_token_ends_that_token_too(pg):
    access = pg.bearer()
    changed = pg.client.post(f"{API}/me/password", headers=access,
                             json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert changed.status_code == 204
    assert pg.client.get(f"{API}/me", headers=access).status_code == 401


def test_password_guesses_are_rate_limited_like_logins(tmp_path, database_url):
    stack = PgStack(tmp_path, database_url)
    headers = stack.bearer()  # a fresh in-process limiter: OKRSNAP_LOGIN_RATE 10/60 per email, login included
    answers = [stack.client.post(f"{API}/me/password", headers=headers,
                                 json={"current_password": "wrong guess", "new_password": NEW_PASSWORD}).status_code
               for _ in range(12)]
    assert answers[0] == 403 and answers[-1] == 429
    stack.container.database.dispose()


# -- names beside ids, from the real services through the gateway ----------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory, postgres_server_url):
    name = f"okrsnap_test_{uuid.uuid4().hex[:12]}"
    server = make_url(postgres_server_url).set(drivername="postgresql+psycopg")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    settings = make_settings(tmp_path_factory.mktemp("names"),
                             OKRSNAP_DATABASE_URL=server.set(database=name).render_as_string(hide_password=False),
                             **{f"OKRSNAP_{s.upper()}_PORT": str(free_port())
                                for s in ("checkin", "snapshot", "export", "gateway")})
    world = World(settings)
    yield world
    world.close()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_owners_and_authors_are_named_in_every_answer_that_names_them(world):
    acme, member, owner = world.acme, world.users["member"], world.users["owner"]
    assert world.call("member", "PATCH", "/me", json={"display_name": "Mia Member"}).status_code == 200
    # owner has no name: the email's local part. viewer owns an Initiative, then leaves the Workspace.
    session = _session(world, "owner", acme, "Named Session")
    objective = _created(world.call("owner", "POST", f"/sessions/{session['id']}/objectives",
                                    json={"title": "Named Objective", "owner_id": owner["id"]}))
    assert objective["owner_name"] == "owner"
    key_result = _created(world.call("owner", "POST", f"/objectives/{objective['id']}/key-results",
                                     json={"title": "Named KR", "target_value": 10, "owner_id": member["id"]}))
    assert key_result["owner_name"] == "Mia Member"
    initiative = _created(world.call("owner", "POST", f"/sessions/{session['id']}/initiatives", json={
        "title": "Named Initiative", "key_result_ids": [key_result["id"]], "owner_id": world.users["viewer"]["id"]}))
    unassigned = _created(world.call("owner", "POST", f"/objectives/{objective['id']}/key-results",
                                     json={"title": "Nobody's KR", "target_value": 1}))
    assert unassigned["owner_id"] is None and unassigned["owner_name"] is None
    check_in = world.call("member", "POST", f"/key-results/{key_result['id']}/check-ins",
                          json={"value": 3, "status": "on_track", "comment": "moving"})
    assert check_in.status_code == 201, check_in.json
    assert check_in.json["check_in"]["author_name"] == "Mia Member"
    assert check_in.json["key_result"]["owner_name"] == "Mia Member"
    viewer = world.users["viewer"]["id"]
    assert world.call("owner", "DELETE", f"/workspaces/{acme}/members/{viewer}").status_code == 204
    world.sync_snapshots()

    week = Week.of_instant(datetime.now(timezone.utc), "UTC", "monday").label
    last_week = Week.of_instant(datetime.now(timezone.utc) - timedelta(days=7), "UTC", "monday").label
    view = world.call("member", "GET", f"/sessions/{session['id']}/snapshots/{week}")
    assert view.status_code == 200, view.json
    shown = view.json["objectives"][0]
    assert shown["owner_id"] == owner["id"] and shown["owner_name"] == "owner"
    by_title = {k["title"]: k for k in shown["key_results"]}
    assert by_title["Named KR"]["owner_name"] == "Mia Member" and by_title["Nobody's KR"]["owner_name"] is None
    assert by_title["Named KR"]["initiatives"][0]["owner_name"] is None  # a former member is not named
    assert [c["author_name"] for c in view.json["check_ins"]] == ["Mia Member"]

    history = world.call("owner", "GET", f"/key-results/{key_result['id']}/check-ins")
    assert [c["author_name"] for c in history.json["items"]] == ["Mia Member"]
    detail = world.call("owner", "GET", f"/key-results/{key_result['id']}")
    assert detail.json["key_result"]["owner_name"] == "Mia Member" and detail.json["check_ins"][0]["author_name"]
    assert world.call("owner", "GET", f"/initiatives/{initiative['id']}").json["initiative"]["owner_name"] is None
    assert world.call("owner", "GET", f"/objectives/{objective['id']}").json["objective"]["owner_name"] == "owner"
    items = world.call("owner", "GET", f"/sessions/{session['id']}/items").json["items"]
    assert {i["title"]: i["owner_name"] for i in items}["Named KR"] == "Mia Member"
    tree = world.call("owner", "GET", f"/sessions/{session['id']}/tree").json
    assert tree["objectives"][0]["key_results"][0]["key_result"]["owner_name"] == "Mia Member"
    compare = world.call("owner", "GET", f"/sessions/{session['id']}/snapshots/compare",
                         query_string={"from": last_week, "to": week})
    assert compare.status_code == 200, compare.json
    assert {k["title"]: k["owner_name"] for k in compare.json["key_results"]}["Named KR"] == "Mia Member"

    # The merged OpenAPI document describes the names the gateway adds.
    spec = world.client.get(f"{API}/openapi.json").json
    assert "owner_name" in spec["components"]["schemas"]["snapshot.KeyResultOut"]["properties"]
    assert "author_name" in spec["components"]["schemas"]["checkin.CheckInOut"]["properties"]
