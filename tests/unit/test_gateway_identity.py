"""Identity and access at the gateway, in process on SQLite with a fake upstream: token attacks,
logout, personal API tokens, browser sessions with CSRF, members, audit, rate limits."""
import base64
import json
import time
import uuid
from datetime import timedelta

import jwt
import pytest

from services.gateway.adapters.ratelimit import InProcessLimiter
from services.gateway.adapters.upstream import Upstream
from services.gateway.bootstrap import bootstrap
from services.gateway.entrypoints.app import CSRF_HEADER, SESSION_COOKIE, create_app
from services.gateway.service_layer import handlers
from shared import observability, tokens
from shared.clock import FixedClock, SystemClock
from tests.conftest import make_settings

PASSWORD = "a long enough password"
API = "/api/v1"
ERROR_KEYS = {"code", "status", "message", "errors"}


class FakeUpstream(Upstream):
    """Real header filtering and token signing; the network send answers what the test set."""

    def __init__(self, settings):
        super().__init__(settings.service_urls, settings.internal_secret)
        self.calls = []
        self.answer = (200, {"ok": True})
        self.answer_headers: dict = {}

    def _send(self, method, url, params, body, headers):
        self.calls.append((method, url, headers))
        status, payload = self.answer
        extra = dict(self.answer_headers)

        class Answer:
            status_code = status
            headers = {"Content-Type": "application/json", **extra}

            def iter_content(self, size):
                yield json.dumps(payload).encode()

            def close(self):
                pass

        return Answer()


class Stack:
    def __init__(self, tmp_path, **env):
        self.container = bootstrap(make_settings(tmp_path, **env))
        self.container.migrate()
        self.container.upstream = FakeUpstream(self.container.settings)
        self.container.wall_clock = FixedClock(SystemClock().now())
        self.container.limiter = InProcessLimiter(now=lambda: self.container.wall_clock.now().timestamp())
        self.app = create_app(self.container)
        self.client = self.app.test_client()
        self.owner, self.workspace = self.add("lead@example.com", "owner")

    def add(self, email, role, workspace="Acme"):
        return handlers.add_user(handlers.AddUser(email, PASSWORD, workspace, role),
                                 uow=self.container.uow(), clock=self.container.clock)

    def login(self, email="lead@example.com", password=PASSWORD, **kwargs):
        return self.client.post(f"{API}/auth/login", json={"email": email, "password": password}, **kwargs)

    def bearer(self, email="lead@example.com"):
        response = self.login(email)
        assert response.status_code == 200, response.json
        return {"Authorization": f"Bearer {response.json['access_token']}"}

    def sessions_url(self, workspace=None):
        return f"{API}/workspaces/{workspace or self.workspace.id}/sessions"

    def audit(self, headers=None, **query):
        response = self.client.get(f"{API}/workspaces/{self.workspace.id}/audit", headers=headers or self.bearer(),
                                   query_string=query)
        assert response.status_code == 200, response.json
        return response.json

    def audit_rows(self):
        from sqlalchemy import select

        from services.gateway.adapters import orm
        with self.container.database.session() as db:
            return [dict(r) for r in db.execute(select(orm.audit_events).order_by(orm.audit_events.c.id)).mappings()]


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    yield s
    s.container.database.dispose()


def _refused(response):
    assert response.status_code == 401, response.json
    assert set(response.json) == ERROR_KEYS and response.json["code"] == 401


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(stack, **over):
    now = int(time.time())
    claims = {"iss": "okrsnap", "aud": tokens.API_AUDIENCE, "typ": tokens.ACCESS, "sub": str(stack.owner.id),
              "iat": now, "nbf": now - 5, "exp": now + 600, "jti": uuid.uuid4().hex}
    claims.update(over)
    return claims


# -- token attacks -----------------------------------------------------------------------------------

ATTACKS = {
    "alg none": lambda s: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(s))}.",
    "alg none, signature kept": lambda s: ".".join(
        [_b64({"alg": "none"})] + jwt.encode(_claims(s), s.container.settings.access_token_secret,
                                              algorithm="HS256").split(".")[1:]),
    "HS512 with the right key": lambda s: jwt.encode(_claims(s), s.container.settings.access_token_secret,
                                                     algorithm="HS512"),
    "RS256 header on an HMAC signature": lambda s: (lambda h, p: f"{h}.{p}." + base64.urlsafe_b64encode(
        __import__("hmac").new(s.container.settings.access_token_secret.encode(), f"{h}.{p}".encode(),
                               "sha256").digest()).rstrip(b"=").decode())(_b64({"alg": "RS256", "typ": "JWT"}),
                                                                          _b64(_claims(s))),
    "wrong audience": lambda s: jwt.encode(_claims(s, aud=tokens.DOWNLOAD_AUDIENCE),
                                           s.container.settings.access_token_secret, algorithm="HS256"),
    "wrong issuer": lambda s: jwt.encode(_claims(s, iss="evil"), s.container.settings.access_token_secret,
                                         algorithm="HS256"),
    "download token": lambda s: tokens.issue(s.container.settings.download_secret, typ=tokens.DOWNLOAD,
                                             audience=tokens.DOWNLOAD_AUDIENCE, subject=str(s.owner.id), ttl=60),
    "download typ under the access key": lambda s: jwt.encode(_claims(s, typ=tokens.DOWNLOAD),
                                                              s.container.settings.access_token_secret,
                                                              algorithm="HS256"),
    "internal token": lambda s: tokens.internal_token(s.container.settings.internal_secret, "checkin",
                                                      tokens.Principal(str(s.owner.id),
                                                                       {str(s.workspace.id): "owner"})),
    "internal typ under the access key": lambda s: jwt.encode(_claims(s, typ=tokens.INTERNAL),
                                                              s.container.settings.access_token_secret,
                                                              algorithm="HS256"),
    "expired": lambda s: jwt.encode(_claims(s, exp=int(time.time()) - 60, iat=int(time.time()) - 700),
                                    s.container.settings.access_token_secret, algorithm="HS256"),
    "forged signature": lambda s: jwt.encode(_claims(s), "not-the-secret-0123456789abcdef-xyz", algorithm="HS256"),
    "no token id": lambda s: jwt.encode({k: v for k, v in _claims(s).items() if k != "jti"},
                                        s.container.settings.access_token_secret, algorithm="HS256"),
    "unknown user": lambda s: jwt.encode(_claims(s, sub=str(uuid.uuid4())),
                                         s.container.settings.access_token_secret, algorithm="HS256"),
    "made-up personal token": lambda s: "okrsnap_pat_" + "A" * 43,
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_forged_and_misused_tokens_are_refused(stack, attack):
    token = ATTACKS[attack](stack)
    for url in (stack.sessions_url(), f"{API}/me", f"{API}/me/tokens"):
        _refused(stack.client.get(url, headers={"Authorization": f"Bearer {token}"}))
    assert stack.container.upstream.calls == []


def test_the_baseline_token_is_accepted(stack):
    """The attacks above differ from this valid token in one respect each."""
    token = jwt.encode(_claims(stack), stack.container.settings.access_token_secret, algorithm="HS256")
    assert stack.client.get(stack.sessions_url(), headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_spoofed_identity_headers_change_nothing_and_are_never_forwarded(stack):
    member, _ = stack.add("member@example.com", "viewer")
    spoofed = {tokens.INTERNAL_HEADER: tokens.internal_token(
                   stack.container.settings.internal_secret, "checkin",
                   tokens.Principal(str(stack.owner.id), {str(stack.workspace.id): "owner"})),
               "X-Forwarded-User": "lead@example.com", "X-User-Id": str(stack.owner.id),
               "X-Remote-User": "lead@example.com", "X-Okrsnap-Role": "owner", "Cookie": "other=1"}
    # Without a credential of its own the request is refused, whatever it claims.
    _refused(stack.client.get(stack.sessions_url(), headers=spoofed))
    assert stack.container.upstream.calls == []
    response = stack.client.get(stack.sessions_url(), headers={**spoofed, **stack.bearer("member@example.com")})
    assert response.status_code == 200
    _, _, forwarded = stack.container.upstream.calls[-1]
    # the correlation id the gateway itself sets (shared.observability) is no identity
    assert set(forwarded) <= {"Content-Type", "Accept", "If-Match", "If-None-Match", tokens.INTERNAL_HEADER,
                              observability.REQUEST_ID_HEADER}
    claims = tokens.verify(stack.container.settings.internal_secret, forwarded[tokens.INTERNAL_HEADER],
                           typ=tokens.INTERNAL, audience=tokens.internal_audience("checkin"))
    assert claims["sub"] == str(member.id) and claims["ws"] == {str(stack.workspace.id): "viewer"}
    # Admin routes judge the authenticated user only.
    assert stack.client.get(f"{API}/workspaces/{stack.workspace.id}/audit",
                            headers={**spoofed, **stack.bearer("member@example.com")}).status_code == 403


def test_principal_names_workspaces_without_goals_access(stack):
    user, _ = stack.add("noaccess@example.com", "member")
    other, _ = stack.add("noaccess@example.com", "member", workspace="Other")
    headers = stack.bearer()
    assert stack.client.patch(f"{API}/workspaces/{stack.workspace.id}/members/{user.id}", headers=headers,
                              json={"okr_access": False}).status_code == 200
    response = stack.client.get(f"{API}/access/explain", headers=stack.bearer("noaccess@example.com"))
    assert response.status_code == 200
    forwarded = stack.container.upstream.calls[-1][2]
    claims = tokens.verify(stack.container.settings.internal_secret, forwarded[tokens.INTERNAL_HEADER],
                           typ=tokens.INTERNAL, audience=tokens.internal_audience("checkin"))
    assert list(claims["ws"]) != [str(stack.workspace.id)] and str(stack.workspace.id) not in claims["ws"]
    assert claims["ws_no_okr"] == [str(stack.workspace.id)]


# -- logout, revocation ------------------------------------------------------------------------------

def test_logout_revokes_the_access_token_at_once(stack):
    headers = stack.bearer()
    other = stack.bearer()
    assert stack.client.post(f"{API}/auth/logout", headers=headers).status_code == 204
    _refused(stack.client.get(stack.sessions_url(), headers=headers))
    _refused(stack.client.post(f"{API}/auth/logout", headers=headers))
    assert stack.client.get(stack.sessions_url(), headers=other).status_code == 200  # only that token
    actions = [r["action"] for r in stack.audit_rows()]
    assert actions.count("logout") == 1


def test_revocations_are_pruned_once_the_token_expired(stack):
    from sqlalchemy import select

    from services.gateway.adapters import orm

    def jtis():
        with stack.container.database.session() as db:
            return set(db.execute(select(orm.revoked_tokens.c.jti)).scalars())

    stack.client.post(f"{API}/auth/logout", headers=stack.bearer())
    first = jtis()
    assert len(first) == 1
    clock = stack.container.wall_clock
    clock.advance(seconds=stack.container.settings.access_token_ttl + 60)
    with stack.container.uow() as uow:
        identity = handlers._identity(uow, stack.owner.id)
    handlers.logout(handlers.Authenticated(identity, "access", "second", clock.now() + timedelta(hours=1)),
                    uow=stack.container.uow(), clock=clock)
    assert jtis() == {"second"}  # the first expired anyway and is gone; the new one is kept


def test_removing_a_member_or_turning_off_access_takes_effect_at_once(stack):
    member, _ = stack.add("member@example.com", "member")
    owner, theirs = stack.bearer(), stack.bearer("member@example.com")
    assert stack.client.get(stack.sessions_url(), headers=theirs).status_code == 200
    stack.client.patch(f"{API}/workspaces/{stack.workspace.id}/members/{member.id}", headers=owner,
                       json={"okr_access": False})
    assert stack.client.get(stack.sessions_url(), headers=theirs).status_code == 404
    stack.client.patch(f"{API}/workspaces/{stack.workspace.id}/members/{member.id}", headers=owner,
                       json={"okr_access": True})
    assert stack.client.get(stack.sessions_url(), headers=theirs).status_code == 200
    assert stack.client.delete(f"{API}/workspaces/{stack.workspace.id}/members/{member.id}",
                               headers=owner).status_code == 204
    assert stack.client.get(stack.sessions_url(), headers=theirs).status_code == 404
    assert stack.client.get(f"{API}/workspaces/{stack.workspace.id}/members", headers=theirs).status_code == 404


# -- personal API tokens -----------------------------------------------------------------------------

def test_personal_tokens_authenticate_until_revoked(stack):
    headers = stack.bearer()
    created = stack.client.post(f"{API}/me/tokens", headers=headers, json={"name": "ci", "expires_in_days": 30})
    assert created.status_code == 201
    secret = created.json["token"]
    assert secret.startswith("okrsnap_pat_") and len(secret) >= 12 + 43
    pat = {"Authorization": f"Bearer {secret}"}
    assert stack.client.get(stack.sessions_url(), headers=pat).status_code == 200
    listed = stack.client.get(f"{API}/me/tokens", headers=pat).json["tokens"]
    assert [t["name"] for t in listed] == ["ci"] and listed[0]["last_used_at"] and not listed[0]["revoked"]
    assert secret not in json.dumps(listed) and "token" not in listed[0]
    # Only the hash is stored.
    from sqlalchemy import select

    from services.gateway.adapters import orm
    with stack.container.database.session() as db:
        stored = db.execute(select(orm.personal_tokens)).mappings().one()
    assert secret not in json.dumps({k: str(v) for k, v in stored.items()})
    # A personal token cannot mint more of them, nor log out.
    refused = stack.client.post(f"{API}/me/tokens", headers=pat, json={"name": "more"})
    assert refused.status_code == 403 and "personal API token" in refused.json["message"]
    assert stack.client.post(f"{API}/auth/logout", headers=pat).status_code == 400
    assert stack.client.delete(f"{API}/me/tokens/{created.json['id']}", headers=headers).status_code == 204
    _refused(stack.client.get(stack.sessions_url(), headers=pat))
    assert stack.client.get(f"{API}/me/tokens", headers=headers).json["tokens"][0]["revoked"] is True
    actions = [r["action"] for r in stack.audit_rows()]
    assert "token.created" in actions and "token.revoked" in actions
    assert secret not in json.dumps([{k: str(v) for k, v in r.items()} for r in stack.audit_rows()])


def test_personal_tokens_expire_and_belong_to_their_owner(stack):
    stack.add("other@example.com", "member")
    created = stack.client.post(f"{API}/me/tokens", headers=stack.bearer(), json={"name": "short", "expires_in_days": 1})
    pat = {"Authorization": f"Bearer {created.json['token']}"}
    other = stack.bearer("other@example.com")
    assert stack.client.delete(f"{API}/me/tokens/{created.json['id']}", headers=other).status_code == 404
    assert stack.client.get(stack.sessions_url(), headers=pat).status_code == 200
    stack.container.wall_clock.advance(days=1, seconds=1)
    _refused(stack.client.get(stack.sessions_url(), headers=pat))


@pytest.mark.parametrize("body, field", [
    ({}, "name"), ({"name": ""}, "name"), ({"name": "x", "expires_in_days": 0}, "expires_in_days"),
    ({"name": "x", "expires_in_days": 10_000}, "expires_in_days"), ({"name": "x", "user_id": "y"}, "user_id"),
])
def test_personal_token_bodies_are_validated_and_nothing_is_written(stack, body, field):
    headers = stack.bearer()
    response = stack.client.post(f"{API}/me/tokens", headers=headers, json=body)
    assert response.status_code == 422 and response.json["errors"][0]["field"] == field
    assert stack.client.get(f"{API}/me/tokens", headers=headers).json["tokens"] == []


# -- browser sessions ----------------------------------------------------------------------------

def test_session_cookie_needs_the_csrf_header_on_unsafe_methods(stack):
    response = stack.client.post(f"{API}/auth/session", json={"email": "lead@example.com", "password": PASSWORD})
    assert response.status_code == 201
    cookie = response.headers["Set-Cookie"]
    assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # the public URL is http here
    csrf = response.json["csrf_token"]
    assert stack.client.get(stack.sessions_url()).status_code == 200  # the test client keeps the cookie
    assert [r["action"] for r in stack.audit_rows()] == ["login.session"]
    refused = stack.client.post(stack.sessions_url(), json={})
    assert refused.status_code == 403 and CSRF_HEADER in refused.json["message"]
    assert set(refused.json) == ERROR_KEYS
    assert stack.client.post(stack.sessions_url(), json={}, headers={CSRF_HEADER: "wrong"}).status_code == 403
    calls = len(stack.container.upstream.calls)
    assert stack.client.post(stack.sessions_url(), json={}, headers={CSRF_HEADER: csrf}).status_code == 200
    assert len(stack.container.upstream.calls) == calls + 1
    assert "Cookie" not in stack.container.upstream.calls[-1][2]
    assert stack.client.get(f"{API}/auth/session").json["csrf_token"] == csrf
    # Logging out needs the header too, then the cookie no longer works.
    assert stack.client.delete(f"{API}/auth/session").status_code == 403
    assert stack.client.delete(f"{API}/auth/session", headers={CSRF_HEADER: csrf}).status_code == 204
    stack.client.set_cookie(SESSION_COOKIE, response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1],
                            path="/api/v1")
    _refused(stack.client.get(stack.sessions_url()))


def test_session_cookie_is_secure_behind_https_and_expires(tmp_path):
    s = Stack(tmp_path, OKRSNAP_PUBLIC_URL="https://okr.example.com")
    try:
        response = s.client.post(f"{API}/auth/session", json={"email": "lead@example.com", "password": PASSWORD})
        assert "Secure" in response.headers["Set-Cookie"]
        s.client.set_cookie(SESSION_COOKIE, response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1],
                            path="/api/v1")
        assert s.client.get(s.sessions_url()).status_code == 200
        s.container.wall_clock.advance(seconds=s.container.settings.session_ttl + 1)
        _refused(s.client.get(s.sessions_url()))
    finally:
        s.container.database.dispose()


def test_bearer_tokens_need_no_csrf_header_even_with_a_cookie(stack):
    stack.client.post(f"{API}/auth/session", json={"email": "lead@example.com", "password": PASSWORD})
    assert stack.client.post(stack.sessions_url(), json={}, headers=stack.bearer()).status_code == 200


# -- members --------------------------------------------------------------------------------------

def test_members_invite_change_remove_with_their_rules(stack):
    owner = stack.bearer()
    admin_user, _ = stack.add("admin@example.com", "admin")
    member_user, _ = stack.add("member@example.com", "member")
    admin, member = stack.bearer("admin@example.com"), stack.bearer("member@example.com")
    url = f"{API}/workspaces/{stack.workspace.id}/members"
    listed = stack.client.get(url, headers=member).json["members"]
    assert {(m["email"], m["role"]) for m in listed} == {("lead@example.com", "owner"), ("admin@example.com", "admin"),
                                                         ("member@example.com", "member")}
    assert stack.client.post(url, headers=member, json={"email": "x@example.com", "role": "viewer"}).status_code == 403
    assert stack.client.post(url, headers=admin, json={"email": "x@example.com", "role": "owner"}).status_code == 403
    assert stack.client.patch(f"{url}/{stack.owner.id}", headers=admin, json={"role": "admin"}).status_code == 403
    assert stack.client.delete(f"{url}/{stack.owner.id}", headers=admin).status_code == 403
    last = stack.client.patch(f"{url}/{stack.owner.id}", headers=owner, json={"role": "admin"})
    assert last.status_code == 409 and set(last.json) == ERROR_KEYS
    assert stack.client.delete(f"{url}/{stack.owner.id}", headers=owner).status_code == 409
    changed = stack.client.patch(f"{url}/{member_user.id}", headers=admin, json={"role": "viewer"})
    assert changed.status_code == 200 and changed.json["role"] == "viewer"
    assert stack.client.patch(f"{url}/{uuid.uuid4()}", headers=admin, json={"role": "viewer"}).status_code == 404
    # Another owner: then the first may step down.
    assert stack.client.patch(f"{url}/{admin_user.id}", headers=owner, json={"role": "owner"}).status_code == 200
    assert stack.client.patch(f"{url}/{stack.owner.id}", headers=owner, json={"role": "admin"}).status_code == 200
    # Existing account: invited like anyone (never added without accepting), then a member.
    stack.add("elsewhere@example.com", "member", workspace="Elsewhere")
    added = stack.client.post(url, headers=admin, json={"email": "Elsewhere@Example.com", "role": "member"})
    assert added.status_code == 201 and added.json["member"] is None
    assert added.json["invitation"]["email"] == "elsewhere@example.com"
    accepted = stack.client.post(f"{API}/auth/accept-invite",
                                 json={"token": added.json["invitation"]["token"], "password": PASSWORD})
    assert accepted.status_code == 201
    again = stack.client.post(url, headers=admin, json={"email": "elsewhere@example.com", "role": "member"})
    assert again.status_code == 409


def test_outsiders_learn_nothing_about_a_workspace(stack):
    stack.add("outsider@example.com", "owner", workspace="Other")
    outsider = stack.bearer("outsider@example.com")
    url = f"{API}/workspaces/{stack.workspace.id}"
    for method, path, body in (("get", "/members", None), ("post", "/members", {"email": "a@b.co", "role": "viewer"}),
                               ("patch", f"/members/{stack.owner.id}", {"role": "viewer"}),
                               ("delete", f"/members/{stack.owner.id}", None), ("get", "/audit", None)):
        real = getattr(stack.client, method)(url + path, headers=outsider, json=body)
        made_up = getattr(stack.client, method)(f"{API}/workspaces/{uuid.uuid4()}" + path, headers=outsider,
                                                json=body)
        assert real.status_code == made_up.status_code == 404 and real.json == made_up.json


def test_an_invitation_becomes_an_account_once(stack):
    url = f"{API}/workspaces/{stack.workspace.id}/members"
    invited = stack.client.post(url, headers=stack.bearer(), json={"email": "new@example.com", "role": "viewer",
                                                                   "okr_access": False})
    assert invited.status_code == 201 and invited.json["member"] is None
    token = invited.json["invitation"]["token"]
    weak = stack.client.post(f"{API}/auth/accept-invite", json={"token": token, "password": "short"})
    assert weak.status_code == 422 and weak.json["errors"][0]["field"] == "password"
    accepted = stack.client.post(f"{API}/auth/accept-invite", json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 201
    assert accepted.json["user"]["workspaces"] == [
        {"id": str(stack.workspace.id), "name": "Acme", "role": "viewer", "okr_access": False}]
    assert stack.client.post(f"{API}/auth/accept-invite", json={"token": token, "password": PASSWORD}).status_code == 404
    assert stack.login("new@example.com").status_code == 200
    rows = stack.audit_rows()
    assert token not in json.dumps([{k: str(v) for k, v in r.items()} for r in rows])


def test_an_invitation_expires_after_seven_days(stack):
    invited = stack.client.post(f"{API}/workspaces/{stack.workspace.id}/members", headers=stack.bearer(),
                                json={"email": "late@example.com", "role": "member"})
    expires = invited.json["invitation"]["expires_at"]
    assert expires.startswith((stack.container.wall_clock.now() + timedelta(days=7)).date().isoformat())
    stack.container.wall_clock.advance(days=7, seconds=1)
    assert stack.client.post(f"{API}/auth/accept-invite",
                             json={"token": invited.json["invitation"]["token"], "password": PASSWORD}
                             ).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"email": "not an email", "role": "member"}, "email"), ({"email": "a@example.com", "role": "king"}, "role"),
    ({"email": "a@example.com"}, "role"), ({"email": "a@example.com", "role": "member", "user_id": "x"}, "user_id"),
])
def test_member_bodies_are_validated_and_nothing_is_written(stack, body, field):
    headers = stack.bearer()
    before = len(stack.audit_rows())
    response = stack.client.post(f"{API}/workspaces/{stack.workspace.id}/members", headers=headers, json=body)
    assert response.status_code == 422 and [e["field"] for e in response.json["errors"]] == [field]
    assert len(stack.audit_rows()) == before
    empty = stack.client.patch(f"{API}/workspaces/{stack.workspace.id}/members/{stack.owner.id}", headers=headers,
                               json={})
    assert empty.status_code == 422 and "role" in empty.json["message"]


# -- audit ---------------------------------------------------------------------------------------

def test_audit_log_records_what_happened_newest_first_and_pages(stack):
    stack.login(password="wrong password!")
    headers = stack.bearer()
    url = f"{API}/workspaces/{stack.workspace.id}/members"
    for n in range(3):
        stack.client.post(url, headers={**headers, "User-Agent": "x" * 500},
                          json={"email": f"n{n}@example.com", "role": "member"})
    member, _ = stack.add("member@example.com", "member")
    stack.client.patch(f"{url}/{member.id}", headers=headers, json={"role": "viewer"})
    stack.client.delete(f"{url}/{member.id}", headers=headers)
    stack.container.upstream.answer = (202, {"id": str(uuid.uuid4()), "session_id": str(uuid.uuid4()),
                                             "workspace_id": str(stack.workspace.id),
                                             "week": "2026-W48", "status": "queued"})
    job = stack.container.upstream.answer[1]["id"]
    assert stack.client.post(f"{API}/exports", headers=headers, json={}).status_code == 202
    stack.container.upstream.answer = (200, {"file": "csv"})
    stack.container.upstream.answer_headers = {tokens.FILE_WORKSPACE_HEADER: str(stack.workspace.id),
                                               tokens.FILE_REQUESTER_HEADER: str(stack.owner.id)}
    downloaded = stack.client.get(f"{API}/exports/{job}/download?token=secret-link-token")
    assert downloaded.status_code == 200 and tokens.FILE_REQUESTER_HEADER not in downloaded.headers

    rows = stack.audit_rows()
    by_action = {r["action"]: r for r in rows}
    assert by_action["login.failed"]["actor_email"] == "lead@example.com"
    assert by_action["login"]["actor_user_id"] == stack.owner.id
    assert by_action["export.requested"]["target"] == job
    assert by_action["export.requested"]["detail"]["week"] == "2026-W48"
    assert by_action["export.downloaded"]["target"] == job and by_action["export.downloaded"]["actor_user_id"] is None
    assert by_action["export.downloaded"]["workspace_id"] == stack.workspace.id
    text = json.dumps([{k: str(v) for k, v in r.items()} for r in rows])
    assert PASSWORD not in text and "wrong password!" not in text and "secret-link-token" not in text
    assert headers["Authorization"].split()[1] not in text

    page = stack.audit(headers, limit=4)
    assert [e["action"] for e in page["events"]] == ["export.downloaded", "export.requested", "member.removed",
                                                     "member.changed"]
    assert page["events"][0]["user_agent"] is None or len(page["events"][0]["user_agent"]) <= 200
    rest = stack.audit(headers, limit=200, before=page["next_before"])
    # A member's logins and failed logins belong to no Workspace, and are shown in each of theirs.
    assert [e["action"] for e in rest["events"]] == ["member.invited"] * 3 + ["login", "login.failed"]
    assert rest["next_before"] is None
    assert all(len(e["user_agent"]) == 200 for e in rest["events"][:3])
    assert stack.client.get(f"{API}/workspaces/{stack.workspace.id}/audit", headers=headers,
                            query_string={"limit": 1000}).status_code == 422
    assert stack.client.get(f"{API}/workspaces/{stack.workspace.id}/audit", headers=headers,
                            query_string={"sort": "asc"}).status_code == 422


def test_audit_log_is_for_owners_and_admins(stack):
    stack.add("admin@example.com", "admin")
    stack.add("member@example.com", "member")
    url = f"{API}/workspaces/{stack.workspace.id}/audit"
    assert stack.client.get(url, headers=stack.bearer("admin@example.com")).status_code == 200
    refused = stack.client.get(url, headers=stack.bearer("member@example.com"))
    assert refused.status_code == 403 and set(refused.json) == ERROR_KEYS


# -- rate limits ---------------------------------------------------------------------------------

def test_login_is_rate_limited_per_email_and_per_ip(tmp_path):
    s = Stack(tmp_path, OKRSNAP_LOGIN_RATE="3/60", OKRSNAP_LOGIN_IP_RATE="5/60")
    try:
        for _ in range(3):
            assert s.login(password="wrong password!").status_code == 401
        limited = s.login()
        assert limited.status_code == 429 and set(limited.json) == ERROR_KEYS
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        # Another email from the same address: allowed until the per-IP limit.
        s.add("b@example.com", "member")
        assert s.login("b@example.com").status_code == 200
        assert s.client.post(f"{API}/auth/session", json={"email": "c@example.com", "password": "x"}
                             ).status_code == 429  # the 6th attempt from this IP
        other_ip = s.login("b@example.com", environ_base={"REMOTE_ADDR": "10.0.0.9"})
        assert other_ip.status_code == 200
        s.container.wall_clock.advance(seconds=61)
        assert s.login().status_code == 200
    finally:
        s.container.database.dispose()


def test_forwarded_for_counts_only_behind_trusted_proxies(tmp_path):
    for trusted, spoof_works in (("0", False), ("1", True)):
        s = Stack(tmp_path / trusted, OKRSNAP_LOGIN_RATE="100/60", OKRSNAP_LOGIN_IP_RATE="2/60",
                  OKRSNAP_TRUSTED_PROXIES=trusted)
        try:
            for n in range(3):
                response = s.login(headers={"X-Forwarded-For": f"10.1.1.{n}"})
            assert (response.status_code == 200) is spoof_works
            if trusted == "1":
                # The client's own X-Forwarded-For entries left of the proxy's are not believed.
                for n in range(3):
                    response = s.login(headers={"X-Forwarded-For": f"1.2.3.{n}, 10.9.9.9"})
                assert response.status_code == 429
        finally:
            s.container.database.dispose()


def test_exports_are_rate_limited_per_user(tmp_path):
    s = Stack(tmp_path, OKRSNAP_EXPORT_RATE="2/3600")
    try:
        headers = s.bearer()
        s.container.upstream.answer = (202, {"id": str(uuid.uuid4())})
        assert [s.client.post(f"{API}/exports", headers=headers, json={}).status_code for _ in range(2)] == [202, 202]
        limited = s.client.post(f"{API}/exports", headers=headers, json={})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
        assert len(s.container.upstream.calls) == 2
        s.container.upstream.answer = (200, {"sessions": []})
        assert s.client.get(s.sessions_url(), headers=headers).status_code == 200  # other routes unaffected
    finally:
        s.container.database.dispose()


def test_passwords_are_hashed_with_scrypt(stack):
    with stack.container.uow() as uow:
        assert uow.repo.user(stack.owner.id).password_hash.startswith("scrypt:32768:8:1$")


def test_a_download_link_stops_when_its_requester_loses_access(stack):
    member, _ = stack.add("leaver@example.com", "member")
    job = uuid.uuid4()
    stack.container.upstream.answer = (200, {"file": "csv"})
    stack.container.upstream.answer_headers = {tokens.FILE_WORKSPACE_HEADER: str(stack.workspace.id),
                                               tokens.FILE_REQUESTER_HEADER: str(member.id)}
    link = f"{API}/exports/{job}/download?token=issued-before-removal"
    assert stack.client.get(link).status_code == 200
    removed = stack.client.delete(f"{API}/workspaces/{stack.workspace.id}/members/{member.id}", headers=stack.bearer())
    assert removed.status_code == 204
    refused = stack.client.get(link)
    assert refused.status_code == 404 and refused.json["message"] == "Export not found."
    stack.container.upstream.answer_headers = {}  # a file answer that does not say whose it is
    assert stack.client.get(link).status_code == 404


def test_the_internal_principal_of_a_user_is_read_now_and_only_for_internal_callers(stack):
    member, _ = stack.add("worker@example.com", "member")
    url = f"/internal/users/{member.id}/principal"
    assert stack.client.get(url).status_code == 401
    assert stack.client.get(url, headers=stack.bearer()).status_code == 401  # a user token is not internal
    internal = {tokens.INTERNAL_HEADER: tokens.internal_token(stack.container.settings.internal_secret, "gateway",
                                                              tokens.Principal(None))}
    assert stack.client.get(url, headers=internal).json["workspaces"] == {str(stack.workspace.id): "member"}
    stack.client.patch(f"{API}/workspaces/{stack.workspace.id}/members/{member.id}", headers=stack.bearer(),
                       json={"okr_access": False})
    now = stack.client.get(url, headers=internal).json
    assert now["workspaces"] == {} and now["without_okr_access"] == [str(stack.workspace.id)]
    wrong_audience = {tokens.INTERNAL_HEADER: tokens.internal_token(stack.container.settings.internal_secret,
                                                                    "checkin", tokens.Principal(None))}
    assert stack.client.get(url, headers=wrong_audience).status_code == 401
