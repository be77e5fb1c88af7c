"""axe-core on every main page: no violation of impact serious or critical."""
from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

BLOCKING = ("serious", "critical")


def _export_page(page, world):
    job = world.demo_api.call("POST", "/exports", expect=202,
                              json={"session_id": world.session_id, "week": world.current_week})
    page.goto(f"/exports/{job['id']}")
    expect(page.locator("#export-status [data-job-status]")).to_have_attribute("data-job-status", "done",
                                                                               timeout=30_000)


def _sealed_snapshot(page, world):
    page.goto(world.snapshot(world.sealed_weeks[-1]))
    expect(page.locator("#verify-result [data-verified]")).to_be_visible()


PAGES = {
    "login": None,
    "snapshot-live": lambda page, world: page.goto(world.snapshot()),
    "snapshot-sealed": _sealed_snapshot,
    "list": lambda page, world: page.goto(f"/sessions/{world.session_id}/list"),
    "tree": lambda page, world: page.goto(f"/sessions/{world.session_id}/tree"),
    "compare": lambda page, world: page.goto(f"/sessions/{world.session_id}/compare"),
    "trend": lambda page, world: page.goto(f"/sessions/{world.session_id}/trend"),
    "item": lambda page, world: page.goto(f"/key_results/{world.key_results['Net promoter score']}"),
    "export": _export_page,
    "exports": lambda page, world: _export_page(page, world) or page.goto("/exports"),
    "account": lambda page, world: page.goto("/account"),
    "members": lambda page, world: page.goto(f"/workspaces/{world.workspace_id}/members"),
}


def _report(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} - {v['helpUrl']}")
        for node in v["nodes"]:
            lines.append(f"    {', '.join(map(str, node['target']))}: {node['html'][:200]}")
            if node.get("failureSummary"):
                lines.append("      " + node["failureSummary"].replace("\n", " | ")[:300])
    return "\n".join(lines)


@pytest.mark.parametrize("name", list(PAGES))
def test_no_serious_accessibility_violations(name, open_page, world):
    if PAGES[name] is None:
        page = open_page()
        page.goto("/login")
    else:
        page = open_page("demo@okrsnap.local")
        response = PAGES[name](page, world)
        if response is not None:
            assert response.status == 200, f"{name}: {response.status} at {page.url}"
    page.wait_for_load_state("load")
    results = Axe().run(page)
    blocking = [v for v in results.response["violations"] if v["impact"] in BLOCKING]
    assert not blocking, f"axe on {name} ({page.url}):\n{_report(blocking)}"
