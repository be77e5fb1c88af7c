"""Issue 11 at the gateway: passwords checked outside write transactions, invitations that wait
for their invitee, credentials that end on a password reset or a sign-out everywhere, personal
token scopes and expiry, logins in the audit log, security headers, internal routes.
In process on the embedded SQLite with a fake upstream (tests.unit.test_gateway_identity.Stack)."""
import dataclasses
import sqlite3
import uuid
from datetime import timedelta

import pytest

from services.gateway.entrypoints.app import CSRF_HEADER
from services.gateway.service_layer import handlers
from shared import tokens
from tests.unit.test_gateway_identity import API, ERROR_KEYS, PASSWORD, Stack


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    yield s
    s.container.database.dispose()


def _members_url(stack):
    return f"{API}/workspaces/{stack.workspace.id}/members"


# -- embedded login flood: scrypt never runs while SQLite's write lock is held ----------------------

def test_passwords_are_checked_and_hashed_outside_any_write_transaction(stack, monkeypatch):
    """Another connection can take the write lock (BEGIN IMMEDIATE) while a password is checked or
    hashed: the login flood no longer stalls every other request behind scrypt."""
    path = stack.container.settings.database_for("gateway").url.split("///", 1)[1]
    blocked = []

    def others_can_write():
        other = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            blocked.append(str(exc))
        finally:
            other.close()

    real_check, real_hash = handlers.check_password_hash, handlers.generate_password_hash

    def check(hashed, password):
        others_can_write()
        return real_check(hashed, password)

    def make(password, method):
        others_can_write()
        return real_hash(password, method=method)

    monkeypatch.setattr(handlers, "check_password_hash", check)
    monkeypatch.setattr(handlers, "generate_password_hash", make)
    assert stack.login(password="wrong password!").status_code == 401  # failed login
    assert stack.login().status_code == 200
    assert stack.client.post(f"{API}/auth/session", json={"email": "lead@example.com", "password": PASSWORD}
                             ).status_code == 201
    invited = stack.client.post(_members_url(stack), headers=stack.bearer(),
                                json={"email": "new@example.com", "role": "member"})
    accepted = stack.client.post(f"{API}/auth/accept-invite",
                                 json={"token": invited.json["invitation"]["token"], "password": PASSWORD})
    assert accepted.status_code == 201
    stack.add("reset@example.com", "member")  # okrsnap user add: hashes the password
    handlers.add_user(handlers.AddUser("reset@example.com", "another long password", "Acme", "member"),
                      uow=stack.container.uow(), clock=stack.container.clock)  # a reset checks the old one
    assert blocked == []


def test_a_login_checked_against_a_password_changed_meanwhile_fails(stack, monkeypatch):
    real_check = handlers.check_password_hash
    changed = []

    def check(hashed, password):
        ok = real_check(hashed, password)
        if not changed:  # someone changes the password between the check and the write
            changed.append(True)
            with stack.container.uow() as uow:
                uow.repo.replace_password(stack.owner.id, hashed, handlers.hash_password("another password!"))
                uow.commit()
        return ok

    monkeypatch.setattr(handlers, "check_password_hash", check)
    assert stack.login().status_code == 401


# -- invitations: always pending, no enumeration, rate limited -------------------------------------

def test_an_existing_account_is_invited_not_added_and_its_id_is_not_told(stack):
    elsewhere, _ = stack.add("elsewhere@example.com", "owner", workspace="Elsewhere")
    stranger = stack.client.post(_members_url(stack), headers=stack.bearer(),
                                 json={"email": "nobody@example.com", "role": "member"})
    known = stack.client.post(_members_url(stack), headers=stack.bearer(),
                              json={"email": "elsewhere@example.com", "role": "member"})
    assert known.status_code == stranger.status_code == 201
    assert known.json["member"] is None and set(known.json["invitation"]) == set(stranger.json["invitation"])
    assert str(elsewhere.id) not in known.get_data(as_text=True)
    with stack.container.uow() as uow:
        assert uow.repo.membership(stack.workspace.id, elsewhere.id) is None  # not before accepting
    wrong = stack.client.post(f"{API}/auth/accept-invite",
                              json={"token": known.json["invitation"]["token"], "password": "wrong password!"})
    assert wrong.status_code == 401
    accepted = stack.client.post(f"{API}/auth/accept-invite",
                                 json={"token": known.json["invitation"]["token"], "password": PASSWORD})
    assert accepted.status_code == 201
    with stack.container.uow() as uow:
        assert uow.repo.membership(stack.workspace.id, elsewhere.id).role == "member"


def test_invitations_are_rate_limited_per_member_and_workspace(stack):
    stack.container.settings = dataclasses.replace(stack.container.settings, invite_rate=(3, 3600))
    headers = stack.bearer()
    answers = [stack.client.post(_members_url(stack), headers=headers,
                                 json={"email": f"n{n}@example.com", "role": "member"}) for n in range(4)]
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert set(answers[-1].json) == ERROR_KEYS and int(answers[-1].headers["Retry-After"]) > 0
    # Re-inviting one email withdraws its earlier invitation, but still counts.
    assert stack.client.post(_members_url(stack), headers=headers,
                             json={"email": "n0@example.com", "role": "member"}).status_code == 429
    stack.container.wall_clock.advance(seconds=3601)
    assert stack.client.post(_members_url(stack), headers=headers,
                             json={"email": "n9@example.com", "role": "member"}).status_code == 201


# -- credentials end: a password reset, signing out everywhere ------------------------------------

def _credentials(stack, email="lead@example.com"):
    """An access token, a personal token and a browser session of the user."""
    access = stack.bearer(email)
    pat = stack.client.post(f"{API}/me/tokens", headers=access, json={"name": "ci"}).json["token"]
    browser = stack.app.test_client()
    session = browser.post(f"{API}/auth/session", json={"email": email, "password": PASSWORD})
    assert session.status_code == 201
    return {"access": access, "pat": {"Authorization": f"Bearer {pat}"}}, browser, session.json["csrf_token"]


def _all_refused(stack, creds, browser):
    assert stack.client.get(f"{API}/me", headers=creds["access"]).status_code == 401
    assert stack.client.get(f"{API}/me", headers=creds["pat"]).status_code == 401
    assert browser.get(f"{API}/me").status_code == 401


def test_a_password_reset_ends_every_credential(stack):
    creds, browser, _ = _credentials(stack)
    assert browser.get(f"{API}/me").status_code == 200
    handlers.add_user(handlers.AddUser("lead@example.com", "a brand new password", "Acme", "owner"),
                      uow=stack.container.uow(), clock=stack.container.clock)
    _all_refused(stack, creds, browser)
    assert stack.login(password="a brand new password").status_code == 200


def test_adding_a_user_again_with_the_same_password_ends_nothing(stack):
    creds, browser, _ = _credentials(stack)
    stack.add("lead@example.com", "owner")  # e.g. the demo seeded again at a restart
    assert stack.client.get(f"{API}/me", headers=creds["access"]).status_code == 200
    assert stack.client.get(f"{API}/me", headers=creds["pat"]).status_code == 200
    assert browser.get(f"{API}/me").status_code == 200


def test_a_user_signs_out_everywhere(stack):
    creds, browser, csrf = _credentials(stack)
    other_browser = stack.app.test_client()
    other_browser.post(f"{API}/auth/session", json={"email": "lead@example.com", "password": PASSWORD})
    assert stack.client.post(f"{API}/me/sign-out-everywhere", headers=creds["pat"]).status_code == 403
    ended = browser.post(f"{API}/me/sign-out-everywhere", headers={CSRF_HEADER: csrf})
    assert ended.status_code == 204
    _all_refused(stack, creds, browser)
    assert other_browser.get(f"{API}/me").status_code == 401
    assert "signed_out.everywhere" in [r["action"] for r in stack.audit_rows()]


def test_an_admin_signs_a_member_out_everywhere_and_only_an_owner_an_owner(stack):
    member, _ = stack.add("member@example.com", "member")
    stack.add("admin@example.com", "admin")
    creds, browser, _ = _credentials(stack, "member@example.com")
    admin = stack.bearer("admin@example.com")
    url = f"{_members_url(stack)}/{member.id}/sign-out"
    assert stack.client.post(url, headers=creds["access"]).status_code == 403  # a member may not
    assert stack.client.post(f"{_members_url(stack)}/{stack.owner.id}/sign-out", headers=admin).status_code == 403
    assert stack.client.post(f"{_members_url(stack)}/{uuid.uuid4()}/sign-out", headers=admin).status_code == 404
    assert stack.client.post(url, headers=admin).status_code == 204
    _all_refused(stack, creds, browser)
    assert "member.signed_out" in [e["action"] for e in stack.audit(admin)["events"]]


# -- personal tokens: scopes and expiry ------------------------------------------------------------

def _pat(stack, **body):
    created = stack.client.post(f"{API}/me/tokens", headers=stack.bearer(), json={"name": "script", **body})
    assert created.status_code == 201, created.json
    return created.json, {"Authorization": f"Bearer {created.json['token']}"}


def test_a_personal_token_always_expires(stack):
    token, pat = _pat(stack)
    assert token["expires_at"].startswith((stack.container.wall_clock.now() + timedelta(days=90)).date().isoformat())
    refused = stack.client.post(f"{API}/me/tokens", headers=stack.bearer(), json={"name": "x", "expires_in_days": None})
    assert refused.status_code == 422 and refused.json["errors"][0]["field"] == "expires_in_days"
    stack.container.wall_clock.advance(days=90, seconds=1)
    assert stack.client.get(f"{API}/me", headers=pat).status_code == 401


def test_a_personal_token_made_before_expiries_ends_after_the_longest_lifetime(stack):
    _, pat = _pat(stack, scope="admin")
    from sqlalchemy import update

    from services.gateway.adapters import orm
    with stack.container.database.session() as db:
        db.execute(update(orm.personal_tokens).values(expires_at=None))
        db.commit()
    assert stack.client.get(f"{API}/me", headers=pat).status_code == 200
    stack.container.wall_clock.advance(days=366, seconds=1)
    assert stack.client.get(f"{API}/me", headers=pat).status_code == 401


def test_personal_token_scopes_read_check_in_admin(stack):
    kr = uuid.uuid4()
    read, read_pat = _pat(stack)
    assert read["scope"] == "read"
    _, check_in_pat = _pat(stack, scope="check_in")
    _, admin_pat = _pat(stack, scope="admin")
    check_in = f"{API}/key-results/{kr}/check-ins"
    for pat, allowed in ((read_pat, {"get"}), (check_in_pat, {"get", "check_in"}),
                         (admin_pat, {"get", "check_in", "edit", "me"})):
        results = {
            "get": stack.client.get(stack.sessions_url(), headers=pat).status_code,
            "check_in": stack.client.post(check_in, headers=pat, json={"value": 1, "status": "on_track"}).status_code,
            "edit": stack.client.patch(f"{API}/key-results/{kr}", headers=pat, json={"title": "x"}).status_code,
            "me": stack.client.patch(f"{API}/me", headers=pat, json={"display_name": "Ada"}).status_code,
        }
        assert {k for k, status in results.items() if status != 403} == allowed, results
    refused = stack.client.get(stack.sessions_url(), headers=read_pat)
    assert refused.status_code == 200
    refused = stack.client.post(stack.sessions_url(), headers=read_pat, json={})
    assert refused.status_code == 403 and "read-only" in refused.json["message"] and set(refused.json) == ERROR_KEYS
    bad = stack.client.post(f"{API}/me/tokens", headers=stack.bearer(), json={"name": "x", "scope": "root"})
    assert bad.status_code == 422 and bad.json["errors"][0]["field"] == "scope"


# -- the audit log shows sign-ins --------------------------------------------------------------------

def test_the_audit_log_shows_logins_failed_logins_logouts_and_personal_tokens(stack):
    stack.add("member@example.com", "member")
    stack.add("stranger@example.com", "owner", workspace="Elsewhere")
    stack.login("member@example.com", password="wrong password!")
    member = stack.bearer("member@example.com")
    token = stack.client.post(f"{API}/me/tokens", headers=member, json={"name": "ci"}).json
    stack.client.delete(f"{API}/me/tokens/{token['id']}", headers=member)
    stack.client.post(f"{API}/auth/logout", headers=member)
    stack.bearer("stranger@example.com")  # not a member: not in this Workspace's log
    events = stack.audit()["events"]
    mine = [(e["action"], e["actor_email"]) for e in events if e["actor_email"] == "member@example.com"]
    assert [a for a, _ in mine] == ["logout", "token.revoked", "token.created", "login", "login.failed"]
    assert not [e for e in events if e["actor_email"] == "stranger@example.com"]


# -- security headers ------------------------------------------------------------------------------

def test_security_headers_on_every_answer(stack):
    login = stack.login()
    assert login.headers["Cache-Control"] == "no-store" and login.headers["X-Content-Type-Options"] == "nosniff"
    pat = stack.client.post(f"{API}/me/tokens", headers=stack.bearer(), json={"name": "ci"})
    assert pat.headers["Cache-Control"] == "no-store"
    invited = stack.client.post(_members_url(stack), headers=stack.bearer(), json={"email": "a@example.com",
                                                                                   "role": "member"})
    assert invited.headers["Cache-Control"] == "no-store"
    for answer in (stack.client.get(f"{API}/me"), stack.client.get("/healthz"), stack.client.get("/static/css/app.css"),
                   stack.client.get(f"{API}/openapi.json")):
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert "Strict-Transport-Security" not in answer.headers  # served over http here
    page = stack.client.get("/login")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_hsts_when_served_over_https(tmp_path):
    s = Stack(tmp_path, OKRSNAP_PUBLIC_URL="https://okr.example.com")
    try:
        for answer in (s.login(), s.client.get("/login")):
            assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        s.container.database.dispose()


# -- internal routes -------------------------------------------------------------------------------

def test_internal_routes_check_their_token_before_validating_and_stay_out_of_the_public_document(stack):
    for url in (f"/internal/workspaces/{stack.workspace.id}/members", f"/internal/workspaces/{stack.workspace.id}/people",
                f"/internal/workspaces/{stack.workspace.id}/members?id=not-a-uuid"):
        refused = stack.client.get(url)
        assert refused.status_code == 401 and set(refused.json) == ERROR_KEYS, refused.json
        assert "id" not in [e["field"] for e in refused.json["errors"]]
    document = stack.client.get(f"{API}/gateway-openapi.json").json  # the gateway's part of the public one
    assert document["paths"] and not [p for p in document["paths"] if "internal" in p]
    internal = {tokens.INTERNAL_HEADER: tokens.internal_token(stack.container.settings.internal_secret, "gateway",
                                                              tokens.Principal(None))}
    assert stack.client.get(f"/internal/users/{stack.owner.id}/principal", headers=internal).status_code == 200
    bad = stack.client.get(f"/internal/workspaces/{stack.workspace.id}/members?id=x", headers=internal)
    assert bad.status_code == 422 and set(bad.json) == ERROR_KEYS


def test_every_service_answers_with_nosniff(tmp_path):
    from tests.conftest import make_settings
    from tests.hostile_input import CheckinClient

    checkin = CheckinClient(make_settings(tmp_path))
    try:
        for answer in (checkin.client.get("/healthz"), checkin.client.get(f"/sessions/{checkin.session}",
                                                                          headers=checkin.headers),
                       checkin.client.get(f"/sessions/{checkin.session}")):
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
    finally:
        checkin.close()
