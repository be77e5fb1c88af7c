"""Security in the browser: the Content-Security-Policy, user text shown as text, CSRF on forms."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.browser.conftest import XSS_TITLE

pytestmark = pytest.mark.e2e


def test_pages_send_a_strict_content_security_policy(demo_page, world):
    response = demo_page.goto(world.snapshot())
    assert response.status == 200
    headers = response.headers
    policy = headers.get("content-security-policy", "")
    assert policy, headers
    directives = {d.strip().split()[0]: d.strip().split()[1:] for d in policy.split(";") if d.strip()}
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, policy
    assert directives.get("frame-ancestors") == ["'none'"], policy
    assert "script-src" in directives or "default-src" in directives, policy
    assert headers.get("x-content-type-options") == "nosniff"


def test_markup_in_a_title_is_shown_as_text(demo_page, world):
    page = demo_page
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    pages = {"Snapshot": world.snapshot(session_id=world.import_session_id),
             "Tree": f"/sessions/{world.import_session_id}/tree",
             "List": f"/sessions/{world.import_session_id}/list",
             "Objective": f"/objectives/{world.xss_objective_id}"}
    for name, url in pages.items():
        response = page.goto(url, wait_until="load")
        assert response.status == 200, f"{name}: {response.status}"
        shown = page.get_by_text("<img src=x onerror=alert(1)>", exact=False)
        expect(shown.first, f"{name} shows the title as text").to_be_visible()
        assert XSS_TITLE in shown.first.text_content(), f"{name}: {shown.first.text_content()!r}"
        expect(page.locator('img[src="x"]')).to_have_count(0)
        assert "&lt;img src=x" in page.content(), name
    assert dialogs == [], dialogs


def test_a_form_post_without_its_csrf_token_is_refused(demo_page, world):
    page = demo_page
    page.goto(world.snapshot())
    url = f"/sessions/{world.session_id}/exports"
    form = {"week": world.current_week, "owner": "all", "format": "csv"}

    missing = page.request.post(url, form=form, max_redirects=0)
    assert missing.status == 403, missing.status
    wrong = page.request.post(url, form={**form, "csrf_token": "x" * 43}, max_redirects=0)
    assert wrong.status == 403, wrong.status

    # With the page's own token the same request is accepted (the 403 above was the CSRF check).
    token = page.locator("#export input[name=csrf_token]").get_attribute("value")
    accepted = page.request.post(url, form={**form, "csrf_token": token}, max_redirects=0)
    assert accepted.status == 303, accepted.status
    assert re.search(r"/exports/[0-9a-f-]{36}$", accepted.headers["location"]), accepted.headers
