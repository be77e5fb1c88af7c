"""The demo's story as a team lead meets it in the browser (services/demo.py): the offsite week
without a Snapshot, the late amendment on its sealed week, the signals to click, the owner
filter for a one-on-one, the member list, and the private Objective a viewer never sees."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from services.demo import DEMO_PASSWORD, LATE_AMENDMENT, LATE_WEEK, PEOPLE, QUIET_WEEK

pytestmark = pytest.mark.e2e

PRIVATE = "Prepare the Series B data room"


def _weeks(world) -> list[dict]:
    return [w for m in world.demo_api.get(f"/sessions/{world.session_id}/snapshots")["months"] for w in m["weeks"]]


def test_the_quiet_week_and_the_late_amendment(demo_page, world):
    weeks = _weeks(world)
    page = demo_page
    page.goto(world.snapshot(weeks[QUIET_WEEK]["week"]))
    box = page.locator("#no-snapshot")
    expect(box).to_be_visible()
    expect(box.get_by_role("link", name=re.compile("before"))).to_have_attribute(
        "href", re.compile(rf"week={weeks[QUIET_WEEK - 1]['week']}"))

    page.goto(world.snapshot(weeks[LATE_WEEK]["week"]))
    expect(page.locator("[data-week-state]")).to_have_attribute("data-week-state", "sealed")
    late = page.locator("#late-amendments")
    expect(late).to_contain_text(LATE_AMENDMENT[-1])
    expect(late).to_contain_text("Lena Fischer")
    # on the sealed week the questionnaire is still not done: the amendment counts later
    questionnaire = page.locator("article.kr", has_text="Security questionnaire answered")
    expect(questionnaire.locator(".kr-value strong")).to_have_text("0")


def test_a_one_on_one_with_tomas_and_the_signals(demo_page, world):
    page = demo_page
    page.goto(world.snapshot())
    expect(page.locator("#hierarchy")).to_contain_text("Operator guide pages rewritten")
    page.select_option("#owner", label="Tomás Ortega")
    expect(page.locator("article.kr h3 a")).to_have_text(
        ["Median first reply time", "Self-service help centre launched", "Tickets older than 7 days"])
    expect(page.locator("details.objective.context", has_text="Delight our customers")).to_have_count(1)
    expect(page.locator("#hierarchy")).not_to_contain_text("Operator guide pages rewritten")


def test_every_demo_member_is_listed_with_name_and_role(demo_page, world):
    page = demo_page
    page.goto(f"/workspaces/{world.workspace_id}/members")
    for person in PEOPLE:
        row = page.locator("tbody tr", has_text=person.email)
        expect(row).to_contain_text(person.name)
        expect(row.get_by_label(f"Role of {person.email}")).to_have_value(person.role)


def test_the_demo_viewer_never_sees_the_private_objective(open_page, world):
    sam = next(p for p in PEOPLE if p.role == "viewer")
    page = open_page(sam.email, DEMO_PASSWORD)
    page.goto(world.snapshot())
    expect(page.locator("#hierarchy")).to_contain_text("Grow recurring revenue")
    assert PRIVATE not in page.content()
    page.goto(f"/sessions/{world.session_id}/tree")
    expect(page.locator("#tree")).to_contain_text("Grow recurring revenue")
    assert PRIVATE not in page.content()
