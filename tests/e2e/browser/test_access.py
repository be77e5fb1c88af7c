"""Who sees what in the browser: a viewer never meets a private Objective, a member without canvas
permission sees the Initiative but not its canvas (and learns why), signing out ends the session."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.browser.conftest import DEMO_EMAIL, DEMO_PASSWORD, sign_in

pytestmark = pytest.mark.e2e


def _review_pages(world) -> dict[str, str]:
    s = world.session_id
    return {"Snapshot": world.snapshot(), "List": f"/sessions/{s}/list", "Tree": f"/sessions/{s}/tree",
            "Compare": f"/sessions/{s}/compare", "Trend": f"/sessions/{s}/trend"}


def test_a_viewer_never_sees_the_private_objective(viewer_page, demo_page, world):
    secrets = (world.private_title, world.private_kr_title)
    problems = []
    for name, url in _review_pages(world).items():  # every page is checked, then all problems reported
        response = viewer_page.goto(url)
        html = viewer_page.content()
        leaked = [secret for secret in secrets if secret in html]
        if leaked:
            problems.append(f"the viewer sees {leaked} on the {name} page")
        if response.status != 200:
            problems.append(f"{name} answered {response.status} (the check needs the page itself)")
        elif "Net promoter score" not in html:  # the Session is shown, not an empty page
            problems.append(f"{name} does not show the Session's Key Results")
    # The same pages show it to its owner: the check above looked in the right places.
    for name in ("Snapshot", "Tree"):
        demo_page.goto(_review_pages(world)[name])
        assert world.private_title in demo_page.content(), name
    assert not problems, "\n".join(problems)


def test_a_member_without_canvas_permission_sees_why(member_page, demo_page, world):
    page = member_page
    page.goto(world.snapshot())
    initiative = page.locator("li.initiative", has_text=world.initiative_title)
    expect(initiative).to_have_count(1)
    expect(initiative.get_by_role("link", name=world.initiative_title)).to_be_visible()
    expect(page.locator(".canvas-link")).to_have_count(0)
    assert world.canvas_url not in page.content()
    explain = initiative.locator(".explain-link")
    expect(explain).to_be_visible()
    explain.click()
    expect(page).to_have_url(re.compile(rf"/explain\?resource=canvas(:|%3A){world.initiative_id}"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Why can't I open this?")
    expect(page.locator("ul.access")).to_contain_text("You may not open its canvas.")
    expect(page.locator("main")).to_contain_text("A canvas has its own access list")

    # The Initiative's own page says the same.
    page.goto(f"/initiatives/{world.initiative_id}")
    expect(page.locator(".canvas-link")).to_have_count(0)
    expect(page.locator(".explain-link")).to_be_visible()

    # Its owner, on the access list, gets the link, opened without referrer or opener.
    demo_page.goto(world.snapshot())
    link = demo_page.locator("li.initiative", has_text=world.initiative_title).locator(".canvas-link")
    expect(link).to_have_count(1)
    expect(link).to_have_attribute("href", world.canvas_url)
    rel = (link.get_attribute("rel") or "").split()
    assert "noopener" in rel and "noreferrer" in rel, rel
    expect(demo_page.locator("li.initiative", has_text=world.initiative_title).locator(".explain-link")) \
        .to_have_count(0)


def test_sign_out_ends_the_session(open_page, browser, stack, world):
    page = open_page()
    page.goto("/login")
    sign_in(page, DEMO_EMAIL, DEMO_PASSWORD)
    page.goto(world.snapshot())
    expect(page.locator("[data-week-state]")).to_be_visible()
    cookies = page.context.cookies()
    assert any(c["name"] == "okrsnap_session" for c in cookies)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(world.snapshot())
    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page.locator("#password")).to_be_visible()

    # The old cookie, replayed, is refused too: the session ended on the server.
    replay = open_page()
    replay.context.add_cookies([c for c in cookies if c["name"] == "okrsnap_session"])
    replay.goto(world.snapshot())
    expect(replay).to_have_url(re.compile(r"/login\?next="))
