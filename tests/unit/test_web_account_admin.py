"""The web app's account page (name, password, personal API tokens), the invitation page and the
admin pages (members, audit log), in process on SQLite with a fake upstream."""
import dataclasses
import re
import uuid
from datetime import timedelta
from html import unescape

import pytest

from services.gateway.adapters.ratelimit import InProcessLimiter
from services.gateway.bootstrap import bootstrap
from services.gateway.entrypoints.app import SESSION_COOKIE, create_app
from services.gateway.service_layer import handlers
from shared.clock import FixedClock, SystemClock
from tests.conftest import make_settings
from tests.unit.test_gateway_identity import FakeUpstream

PASSWORD = "a long enough password"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')



def sign_in(client, email, password):
    """The sign-in form as a browser sends it: with the login CSRF value its page set."""
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="okrsnap_login_csrf" value="([^"]+)"', form).group(1)
    return client.post("/login", data={"email": email, "password": password, "okrsnap_login_csrf": token})

class Web:
    def __init__(self, tmp_path, **env):
        self.container = bootstrap(make_settings(tmp_path, **env))
        self.container.migrate()
        self.container.upstream = FakeUpstream(self.container.settings)
        self.container.upstream.answer = (200, [])
        self.container.wall_clock = FixedClock(SystemClock().now())
        self.container.limiter = InProcessLimiter(now=lambda: self.container.wall_clock.now().timestamp())
        self.app = create_app(self.container)
        self.owner, self.workspace = self.add("lead@example.com", "owner")

    def add(self, email, role, workspace="Acme"):
        return handlers.add_user(handlers.AddUser(email, PASSWORD, workspace, role),
                                 uow=self.container.uow(), clock=self.container.clock)

    def browser(self, email=None, password=PASSWORD):
        client = self.app.test_client()
        if email:
            response = sign_in(client, email, password)
            assert response.status_code == 303, response.get_data(as_text=True)
        return client

    def members_url(self, workspace=None):
        return f"/workspaces/{workspace or self.workspace.id}/members"

    def audit_url(self, workspace=None):
        return f"/workspaces/{workspace or self.workspace.id}/audit"

    def tokens_of(self, user):
        with self.container.uow() as uow:
            return uow.repo.personal_tokens_of(user.id)

    def membership(self, user_id):
        with self.container.uow() as uow:
            return uow.repo.membership(self.workspace.id, user_id)


@pytest.fixture
def web(tmp_path):
    w = Web(tmp_path)
    yield w
    w.container.database.dispose()


def csrf_of(client, url="/account"):
    page = client.get(url)
    assert page.status_code == 200, page.get_data(as_text=True)
    return CSRF.search(page.get_data(as_text=True)).group(1)


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


# -- account: personal API tokens ------------------------------------------------------------------

def test_account_page_needs_sign_in_and_shows_who(web):
    anonymous = web.browser()
    assert anonymous.get("/account").status_code == 302
    assert anonymous.post("/account/tokens", data={"token_name": "x"}).status_code == 302
    page = web.browser("lead@example.com").get("/account")
    assert page.status_code == 200
    body = text(page)
    assert "lead@example.com" in body and "Personal API tokens" in body
    assert page.headers["Cache-Control"] == "no-store"


def test_a_new_token_is_shown_once_works_and_the_list_never_shows_it(web):
    browser = web.browser("lead@example.com")
    created = browser.post("/account/tokens", data={"csrf_token": csrf_of(browser), "token_name": "report script",
                                                    "expires_in_days": "30"})
    assert created.status_code == 201
    secret = re.search(r'value="(okrsnap_pat_[^"]+)"', created.get_data(as_text=True)).group(1)
    assert created.headers["Cache-Control"] == "no-store"
    assert secret not in " ".join(created.headers.get_all("Set-Cookie")) and secret not in created.headers.get(
        "Location", "")
    listed = browser.get("/account")
    body = text(listed)
    assert "report script" in body and not re.search(r"okrsnap_pat_[A-Za-z0-9_-]", body) and secret not in body
    [token] = web.tokens_of(web.owner)
    assert token.name == "report script" and token.expires_at is not None
    me = web.app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json["email"] == "lead@example.com"


def test_a_token_without_expiry_and_form_errors(web):
    browser = web.browser("lead@example.com")
    csrf = csrf_of(browser)
    refused = browser.post("/account/tokens", data={"csrf_token": csrf, "token_name": " ", "expires_in_days": "999"})
    assert refused.status_code == 422
    assert "Give the token a name" in text(refused) and "from 1 to 366" in text(refused)
    assert web.tokens_of(web.owner) == []
    ok = browser.post("/account/tokens", data={"csrf_token": csrf, "token_name": "<script>alert(1)</script>"})
    assert ok.status_code == 201
    raw = ok.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in raw and "&lt;script&gt;" in raw
    [token] = web.tokens_of(web.owner)
    assert token.expires_at == token.created_at + timedelta(days=90)  # every token expires


def test_revoking_a_token_stops_it(web):
    browser = web.browser("lead@example.com")
    csrf = csrf_of(browser)
    created = browser.post("/account/tokens", data={"csrf_token": csrf, "token_name": "ci"})
    secret = re.search(r'value="(okrsnap_pat_[^"]+)"', created.get_data(as_text=True)).group(1)
    [token] = web.tokens_of(web.owner)
    revoked = browser.post(f"/account/tokens/{token.id}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 303 and revoked.headers["Location"].endswith("/account?done=revoked")
    page = text(browser.get("/account?done=revoked"))
    assert "Token revoked" in page and "revoked " in page
    assert web.tokens_of(web.owner)[0].revoked_at is not None
    assert web.app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    # Someone else's token, or one that does not exist: not found.
    other = web.browser()
    web.add("other@example.com", "member")
    sign_in(other, "other@example.com", PASSWORD)
    assert other.post(f"/account/tokens/{token.id}/revoke", data={"csrf_token": csrf_of(other)}).status_code == 404
    assert browser.post(f"/account/tokens/{uuid.uuid4()}/revoke", data={"csrf_token": csrf}).status_code == 404


def test_every_form_needs_its_csrf_token(web):
    web.add("member@example.com", "member")
    browser = web.browser("lead@example.com")
    csrf_of(browser)
    for url, data in (("/account/tokens", {"token_name": "sneaky"}), ("/account/name", {"display_name": "X"}),
                      ("/account/password", {"current_password": PASSWORD, "new_password": "x" * 12,
                                             "repeat_password": "x" * 12}),
                      (f"/account/tokens/{uuid.uuid4()}/revoke", {}),
                      (f"{web.members_url()}/invite", {"email": "n@example.com", "role": "member"}),
                      (f"{web.members_url()}/{web.owner.id}", {"role": "viewer"}),
                      (f"{web.members_url()}/{web.owner.id}/remove", {"confirm": "yes"})):
        for token in (None, "forged"):
            refused = browser.post(url, data={**data, **({"csrf_token": token} if token else {})})
            assert refused.status_code == 403, url
            assert "This form has expired" in text(refused)
    assert web.tokens_of(web.owner) == []
    assert web.membership(web.owner.id).role == "owner"


# -- account: display name and password -------------------------------------------------------------

def test_display_name_form(web):
    browser = web.browser("lead@example.com")
    csrf = csrf_of(browser)
    saved = browser.post("/account/name", data={"csrf_token": csrf, "display_name": "  Lea <Lead> "})
    assert saved.status_code == 303 and saved.headers["Location"].endswith("/account?done=saved")
    with web.container.uow() as uow:
        assert uow.repo.user(web.owner.id).display_name == "Lea <Lead>"
    page = browser.get("/account?done=saved")
    raw = page.get_data(as_text=True)
    assert "Saved." in raw and "Lea &lt;Lead&gt;" in raw and "<Lead>" not in raw
    for bad in ("", "x" * 81):
        refused = browser.post("/account/name", data={"csrf_token": csrf, "display_name": bad})
        assert refused.status_code == 422 and "1 to 80 characters" in text(refused)
        assert 'id="err-display_name"' in refused.get_data(as_text=True)


def test_password_form_changes_it_keeps_this_page_signed_in_and_ends_the_rest(web):
    browser = web.browser("lead@example.com")
    elsewhere = web.browser("lead@example.com")
    csrf = csrf_of(browser)
    browser.post("/account/tokens", data={"csrf_token": csrf, "token_name": "ci"})
    data = {"csrf_token": csrf, "current_password": PASSWORD, "new_password": "new password 1",
            "repeat_password": "new password 1"}
    differ = browser.post("/account/password", data={**data, "repeat_password": "other"})
    assert differ.status_code == 422 and "differ" in text(differ)
    wrong = browser.post("/account/password", data={**data, "current_password": "wrong password!"})
    assert wrong.status_code == 403 and "not your current password" in text(wrong)
    assert 'id="err-current_password"' in wrong.get_data(as_text=True)
    weak = browser.post("/account/password", data={**data, "new_password": "short", "repeat_password": "short"})
    assert weak.status_code == 422 and "at least 10 characters" in text(weak)
    assert 'id="err-new_password"' in weak.get_data(as_text=True)
    changed = browser.post("/account/password", data=data)
    assert changed.status_code == 303 and changed.headers["Location"].endswith("/account?done=password")
    assert "Password changed." in text(browser.get("/account?done=password"))
    assert elsewhere.get("/account").status_code == 302  # the other browser session ended
    assert web.tokens_of(web.owner)[0].revoked_at is not None
    assert sign_in(web.browser(), "lead@example.com", PASSWORD).status_code == 401
    web.browser("lead@example.com", password="new password 1")


def test_password_form_is_rate_limited_like_login(tmp_path):
    w = Web(tmp_path, OKRSNAP_LOGIN_RATE="3/60")
    try:
        browser = w.browser("lead@example.com")  # one hit of the per-email budget
        data = {"csrf_token": csrf_of(browser), "current_password": "wrong password!",
                "new_password": "new password 1", "repeat_password": "new password 1"}
        assert [browser.post("/account/password", data=data).status_code for _ in range(3)] == [403, 403, 429]
        assert "Too many attempts" in text(browser.post("/account/password", data={**data,
                                                                                   "current_password": PASSWORD}))
    finally:
        w.container.database.dispose()


# -- admin: members ----------------------------------------------------------------------------------

def test_members_page_for_managers_only_and_hidden_from_outsiders(web):
    web.add("member@example.com", "member")
    web.add("viewer@example.com", "viewer")
    web.add("admin@example.com", "admin")
    web.add("outsider@example.com", "owner", workspace="Elsewhere")
    for email in ("member@example.com", "viewer@example.com"):
        browser = web.browser(email)
        for url in (web.members_url(), web.audit_url(), f"{web.members_url()}/{web.owner.id}/remove"):
            refused = browser.get(url)
            assert refused.status_code == 403, (email, url)
            assert "Only owners and admins" in text(refused)
    outsider = web.browser("outsider@example.com")
    for url in (web.members_url(), web.audit_url()):
        hidden = outsider.get(url)
        assert hidden.status_code == 404 and "Workspace not found." in text(hidden)
    admin = web.browser("admin@example.com")
    page = admin.get(web.members_url())
    assert page.status_code == 200
    body = text(page)
    assert all(e in body for e in ("lead@example.com", "member@example.com", "viewer@example.com"))
    assert "only an owner changes an owner" in body
    assert f'href="/workspaces/{web.workspace.id}/audit"' in page.get_data(as_text=True)  # the header's admin links


def test_invite_accept_creates_the_account_and_signs_in(web):
    owner = web.browser("lead@example.com")
    invited = owner.post(f"{web.members_url()}/invite", data={
        "csrf_token": csrf_of(owner, web.members_url()), "email": "New@Example.com", "role": "viewer",
        "okr_access": ["0", "1"]})
    assert invited.status_code == 201
    link = re.search(r'value="(http[^"]+/invite/(okrsnap_inv_[^"]+))"', invited.get_data(as_text=True))
    assert link and link.group(1).startswith(web.container.settings.public_url)
    token = unescape(link.group(2))
    assert token not in text(owner.get(web.members_url()))

    newcomer = web.browser()
    form = newcomer.get(f"/invite/{token}")
    assert form.status_code == 200 and "new@example.com" in text(form) and "csrf_token" not in text(form)
    differ = newcomer.post(f"/invite/{token}", data={"display_name": "Nina", "password": PASSWORD,
                                                     "repeat_password": "something else"})
    assert differ.status_code == 422 and "differ" in text(differ)
    weak = newcomer.post(f"/invite/{token}", data={"display_name": "Nina", "password": "short",
                                                   "repeat_password": "short"})
    assert weak.status_code == 422 and "at least 10 characters" in text(weak)
    long_name = newcomer.post(f"/invite/{token}", data={"display_name": "x" * 81, "password": PASSWORD,
                                                        "repeat_password": PASSWORD})
    assert long_name.status_code == 422 and 'id="err-display_name"' in long_name.get_data(as_text=True)
    accepted = newcomer.post(f"/invite/{token}", data={"display_name": "Nina", "password": PASSWORD,
                                                       "repeat_password": PASSWORD})
    assert accepted.status_code == 303 and accepted.headers["Location"] == "/"
    cookie = next(c for c in accepted.headers.get_all("Set-Cookie") if c.startswith(SESSION_COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    account = newcomer.get("/account")
    assert account.status_code == 200 and "new@example.com" in text(account)
    with web.container.uow() as uow:
        user = uow.repo.user_by_email("new@example.com")
    membership = web.membership(user.id)
    assert membership.role == "viewer" and membership.okr_access is True
    assert user.display_name == "Nina"
    # Used once.
    again = web.browser().get(f"/invite/{token}")
    assert again.status_code == 404 and "unknown, used or expired" in text(again)
    assert web.browser().get("/invite/okrsnap_inv_nonsense").status_code == 404
    assert web.browser().post("/invite/" + "x" * 300, data={"password": PASSWORD}).status_code == 404
    assert "Nina" in text(owner.get(web.members_url()))
    actions = text(owner.get(web.audit_url()))
    assert "member.invited" in actions and "invitation.accepted" in actions


def test_an_invitation_for_an_existing_account_asks_for_its_password(web):
    other, _ = web.add("known@example.com", "owner", workspace="Elsewhere")
    owner = web.browser("lead@example.com")
    csrf = csrf_of(owner, web.members_url())
    # Someone with an account is invited like anyone: they join only by accepting.
    added = owner.post(f"{web.members_url()}/invite", data={"csrf_token": csrf, "email": "known@example.com",
                                                            "role": "member", "okr_access": ["0", "1"]})
    assert added.status_code == 201 and web.membership(other.id) is None
    known = unescape(re.search(r"/invite/(okrsnap_inv_[^\"]+)\"", added.get_data(as_text=True)).group(1))
    assert web.browser().post(f"/invite/{known}", data={"password": PASSWORD}).status_code == 303
    assert web.membership(other.id).role == "member"
    again = owner.post(f"{web.members_url()}/invite", data={"csrf_token": csrf, "email": "known@example.com",
                                                            "role": "member"})
    assert again.status_code == 409 and "already a member" in text(again)
    bad = owner.post(f"{web.members_url()}/invite", data={"csrf_token": csrf, "email": "not an email",
                                                          "role": "member"})
    assert bad.status_code == 422 and "Not a valid email address." in text(bad)
    # An invitation made before the account existed: accepting needs the account's password.
    invited = owner.post(f"{web.members_url()}/invite", data={"csrf_token": csrf, "email": "later@example.com",
                                                              "role": "member", "okr_access": "0"})
    token = unescape(re.search(r"/invite/(okrsnap_inv_[^\"]+)\"", invited.get_data(as_text=True)).group(1))
    later, _ = web.add("later@example.com", "owner", workspace="Third")
    page = web.browser().get(f"/invite/{token}")
    assert "An account exists for this email" in text(page)
    wrong = web.browser().post(f"/invite/{token}", data={"password": "wrong password!"})
    assert wrong.status_code == 401 and "enter its password" in text(wrong)
    ok = web.browser().post(f"/invite/{token}", data={"display_name": "ignored", "password": PASSWORD})
    assert ok.status_code == 303
    assert web.membership(later.id).okr_access is False
    with web.container.uow() as uow:
        assert uow.repo.user(later.id).display_name == ""  # an existing account keeps its own name


def test_invite_page_is_rate_limited(tmp_path):
    w = Web(tmp_path, OKRSNAP_LOGIN_RATE="2/60")
    try:
        owner = w.browser("lead@example.com")
        invited = owner.post(f"{w.members_url()}/invite", data={"csrf_token": csrf_of(owner, w.members_url()),
                                                                "email": "n@example.com", "role": "member"})
        token = unescape(re.search(r"/invite/(okrsnap_inv_[^\"]+)\"", invited.get_data(as_text=True)).group(1))
        data = {"display_name": "N", "password": "short", "repeat_password": "short"}
        statuses = [w.browser().post(f"/invite/{token}", data=data).status_code for _ in range(3)]
        assert statuses == [422, 422, 429]
        limited = w.browser().post(f"/invite/{token}", data={**data, "password": PASSWORD,
                                                              "repeat_password": PASSWORD})
        assert limited.status_code == 429 and "Try again in" in text(limited)
        assert w.browser().get(f"/invite/{token}").status_code == 200  # looking at it is not an attempt
    finally:
        w.container.database.dispose()


def test_guessing_invitation_links_is_rate_limited_per_address(tmp_path):
    w = Web(tmp_path, OKRSNAP_LOGIN_IP_RATE="2/60")
    try:
        statuses = [w.browser().get(f"/invite/okrsnap_inv_guess{n}").status_code for n in range(3)]
        assert statuses == [404, 404, 429]
        assert w.browser().get("/invite/okrsnap_inv_guess", environ_base={"REMOTE_ADDR": "10.0.0.9"}
                               ).status_code == 404
    finally:
        w.container.database.dispose()


def test_only_an_owner_grants_owner_and_the_last_owner_stays(web):
    admin_user, _ = web.add("admin@example.com", "admin")
    member, _ = web.add("member@example.com", "member")
    admin = web.browser("admin@example.com")
    csrf = csrf_of(admin, web.members_url())
    refused = admin.post(f"{web.members_url()}/invite", data={"csrf_token": csrf, "email": "boss@example.com",
                                                              "role": "owner"})
    assert refused.status_code == 403 and "Only an owner may make someone an owner." in text(refused)
    demote = admin.post(f"{web.members_url()}/{web.owner.id}", data={"csrf_token": csrf, "role": "member",
                                                                     "okr_access": ["0", "1"]})
    assert demote.status_code == 403 and "Only an owner may" in text(demote)
    changed = admin.post(f"{web.members_url()}/{member.id}", data={"csrf_token": csrf, "role": "viewer",
                                                                   "okr_access": "0"})
    assert changed.status_code == 303 and changed.headers["Location"].endswith("done=changed")
    m = web.membership(member.id)
    assert m.role == "viewer" and m.okr_access is False

    owner = web.browser("lead@example.com")
    csrf = csrf_of(owner, web.members_url())
    last = owner.post(f"{web.members_url()}/{web.owner.id}", data={"csrf_token": csrf, "role": "admin",
                                                                   "okr_access": ["0", "1"]})
    assert last.status_code == 409 and "at least one owner" in text(last)
    assert web.membership(web.owner.id).role == "owner"
    confirm = owner.get(f"{web.members_url()}/{web.owner.id}/remove")
    assert confirm.status_code == 200 and "This is you" in text(confirm)
    stays = owner.post(f"{web.members_url()}/{web.owner.id}/remove", data={"csrf_token": csrf, "confirm": "yes"})
    assert stays.status_code == 409 and "at least one owner" in text(stays)


def test_removing_a_member_asks_first(web):
    member, _ = web.add("member@example.com", "member")
    owner = web.browser("lead@example.com")
    csrf = csrf_of(owner, web.members_url())
    url = f"{web.members_url()}/{member.id}/remove"
    confirm = owner.get(url)
    assert confirm.status_code == 200 and "Remove member@example.com" in text(confirm)
    assert 'name="confirm" value="yes"' in confirm.get_data(as_text=True)
    unconfirmed = owner.post(url, data={"csrf_token": csrf})
    assert unconfirmed.status_code == 200 and web.membership(member.id) is not None
    removed = owner.post(url, data={"csrf_token": csrf, "confirm": "yes"})
    assert removed.status_code == 303 and removed.headers["Location"].endswith("done=removed")
    assert web.membership(member.id) is None
    assert owner.get(url).status_code == 404
    assert web.browser("member@example.com").get(web.members_url()).status_code == 404


# -- admin: audit log --------------------------------------------------------------------------------

def test_audit_page_lists_newest_first_and_pages(web):
    web.container.settings = dataclasses.replace(web.container.settings, invite_rate=(100, 3600))
    owner = web.browser("lead@example.com")
    csrf = csrf_of(owner, web.members_url())
    for n in range(52):
        assert owner.post(f"{web.members_url()}/invite", data={"csrf_token": csrf, "email": f"n{n}@example.com",
                                                               "role": "member"}).status_code == 201
    member, _ = web.add("m@example.com", "member")
    owner.post(f"{web.members_url()}/{member.id}", data={"csrf_token": csrf, "role": "viewer", "okr_access": "1"})
    page = owner.get(web.audit_url())
    assert page.status_code == 200
    raw = page.get_data(as_text=True)
    body = unescape(raw)
    assert body.index("member.changed") < body.index("member.invited")
    assert "role: member → viewer" in body and "email: n51@example.com" in body
    assert "lead@example.com" in body and "(UTC)" in body
    assert "okrsnap_inv_" not in body  # never a token
    assert body.count("<code>member.invited</code>") == 49
    older = re.search(r'href="([^"]*before=\d+)"', raw)
    assert older
    rest = owner.get(unescape(older.group(1)))
    rest_body = text(rest)
    assert rest.status_code == 200 and rest_body.count("<code>member.invited</code>") == 3
    assert "email: n0@example.com" in rest_body and "before=" not in rest.get_data(as_text=True).split("Newest")[-1]
    assert owner.get(web.audit_url() + "?before=nonsense").status_code == 200


def test_detail_text_is_short_and_never_shows_secrets():
    from services.gateway.web.admin import detail_text

    assert detail_text(None) == ""
    assert detail_text({"before": {"role": "member", "okr_access": True},
                        "after": {"role": "admin", "okr_access": True}}) == "role: member → admin"
    assert detail_text({"name": "ci", "token": "okrsnap_pat_x", "password_hash": "h"}) == "name: ci"
    assert detail_text({"before": {"okr_access": True}, "after": {"okr_access": False}}) == "okr_access: yes → no"
    assert detail_text({"email": "a@b.c", "okr_access": False, "expires_at": None}) == (
        "email: a@b.c, okr_access: no, expires_at: –")
    assert len(detail_text({"email": "x" * 500})) == 160


def test_the_sign_in_form_refuses_a_forged_post(web):
    """Login CSRF: a form posted from elsewhere (no cookie set by our sign-in page) signs nobody in."""
    forged = web.app.test_client().post("/login", data={"email": "lead@example.com", "password": PASSWORD})
    assert forged.status_code == 400 and SESSION_COOKIE not in forged.headers.get("Set-Cookie", "")
    assert "sign-in form expired" in forged.get_data(as_text=True)
    client = web.app.test_client()
    client.get("/login")
    wrong = client.post("/login", data={"email": "lead@example.com", "password": PASSWORD,
                                        "okrsnap_login_csrf": "guessed"})
    assert wrong.status_code == 400
    assert sign_in(web.app.test_client(), "lead@example.com", PASSWORD).status_code == 303
