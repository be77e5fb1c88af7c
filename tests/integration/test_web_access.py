"""The web pages obey the same access decisions as the API: the permission matrix's world (four
services over HTTP on PostgreSQL; owner, admin, member, viewer, member without Goals/OKRs access,
non-member), each principal signed in through the sign-in form, every page of every resource.
No page's HTML holds a title, id or canvas link its reader may not see, and a hidden item's page
answers like an unknown one."""
from __future__ import annotations

import re
import uuid

import pytest

from tests.integration.test_permission_matrix import PASSWORD, RESOURCES, ROLES, sees, world  # noqa: F401

pytestmark = pytest.mark.integration
SIGNED_IN = ROLES + ("no_okr_access", "non_member")
EMAILS = {"owner": "owner@acme.example", "admin": "admin@acme.example", "member": "member@acme.example",
          "viewer": "viewer@acme.example", "no_okr_access": "no-okr@acme.example",
          "non_member": "stranger@else.example"}


def browser(world, who):
    client = world.app.test_client()
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="okrsnap_login_csrf" value="([^"]+)"', form).group(1)
    signed = client.post("/login", data={"email": EMAILS[who], "password": PASSWORD, "okrsnap_login_csrf": token})
    assert signed.status_code == 303, signed.get_data(as_text=True)
    return client


def pages(world, resource: str) -> list[tuple[str, str, bool]]:
    """(name, path, session-wide) of every page showing the resource or its Session."""
    r = getattr(world, resource)
    s, o, k, i = (r[key]["id"] for key in ("session", "objective", "key_result", "initiative"))
    member = world.users["member"]["id"]
    return [
        ("snapshot", f"/sessions/{s}/snapshot", True),
        ("snapshot unassigned", f"/sessions/{s}/snapshot?owner=unassigned", True),
        ("snapshot member", f"/sessions/{s}/snapshot?owner={member}", True),
        ("snapshot at_risk", f"/sessions/{s}/snapshot?signal=unassigned", True),
        ("list", f"/sessions/{s}/list", True),
        ("list search", f"/sessions/{s}/list?q={resource}", True),
        ("tree", f"/sessions/{s}/tree", True),
        ("compare", f"/sessions/{s}/compare", True),
        ("trend", f"/sessions/{s}/trend", True),
        ("verify", f"/sessions/{s}/verify", True),
        ("settings", f"/sessions/{s}/edit", True),
        ("new key result", f"/sessions/{s}/new/key_result", True),
        ("objective", f"/objectives/{o}", False),
        ("key result", f"/key_results/{k}", False),
        ("initiative", f"/initiatives/{i}", False),
        ("explain", f"/explain?resource=objective:{o}", False),
    ]


@pytest.mark.parametrize("who", SIGNED_IN)
def test_no_page_shows_what_its_reader_may_not_see(world, who):
    client = browser(world, who)
    hidden = [secret for resource in RESOURCES if not sees(who, resource)
              for secret in getattr(world, resource)["secrets"]]
    problems = []
    for resource in RESOURCES:
        visible = sees(who, "own" if resource == "private" else resource)
        for name, path, session_wide in pages(world, resource):
            response = client.get(path)
            html = response.get_data(as_text=True)
            problems += [f"{name} of {resource}: shows {secret!r}" for secret in hidden if secret in html]
            if who not in ("owner", "admin") and "docs.example/canvas-own" in html:
                problems.append(f"{name} of {resource}: shows the canvas link")
            shown = visible if session_wide else sees(who, resource)
            if name == "explain":
                continue  # explains to members why; outsiders get what an unknown id gets (matrix test)
            if name == "settings" and shown and who not in ("owner", "admin"):
                continue  # the page itself is readable; its form is refused by the service on save
            if shown and response.status_code != 200:
                problems.append(f"{name} of {resource}: {response.status_code} for a reader who may see it")
            if not shown and response.status_code != 404:
                problems.append(f"{name} of {resource}: {response.status_code}, wanted 404 like an unknown id")
    assert not problems, "\n".join(problems)


def test_a_hidden_item_answers_like_an_unknown_one(world):
    client = browser(world, "viewer")
    hidden = client.get(f"/objectives/{world.private['objective']['id']}")
    unknown = client.get(f"/objectives/{uuid.uuid4()}")
    assert hidden.status_code == unknown.status_code == 404

    def text(response):
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))

    assert text(hidden) == text(unknown)


def test_a_viewer_gets_no_form_and_a_member_only_on_own_items(world):
    viewer, member = browser(world, "viewer"), browser(world, "member")
    s = world.own["session"]["id"]
    assert 'class="check-in-form"' not in viewer.get(f"/sessions/{s}/snapshot").get_data(as_text=True)
    own = member.get(f"/sessions/{s}/snapshot").get_data(as_text=True)
    assert f'action="/key_results/{world.own["key_result"]["id"]}/check-ins"' in own
    refused = viewer.post(f"/key_results/{world.own['key_result']['id']}/check-ins",
                          data={"value": "3", "status": "on_track", "csrf_token": _csrf(viewer, s)})
    assert refused.status_code == 403 and "Check-in was not saved" in refused.get_data(as_text=True)


def _csrf(client, session_id) -> str:
    html = client.get(f"/sessions/{session_id}/list").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_a_session_restricted_from_its_form_is_seen_only_by_its_members(world):
    owner = browser(world, "owner")
    acme = world.acme
    form = owner.get(f"/workspaces/{acme}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    assert 'name="visibility"' in form  # owners and admins choose who sees it
    created = owner.post(f"/workspaces/{acme}", data={
        "csrf_token": csrf, "name": "Board only", "start_date": "2026-10-01", "end_date": "2026-12-31",
        "timezone": "Europe/Berlin", "visibility": "restricted", "members": [world.users["member"]["id"]]})
    assert created.status_code == 303, created.get_data(as_text=True)
    snapshot = created.headers["Location"].split("?")[0]
    world.sync_snapshots()  # the snapshot service learns of the Session (the broker is another test's subject)
    assert browser(world, "member").get(snapshot).status_code == 200
    assert browser(world, "viewer").get(snapshot).status_code == 404
    assert "Board only" not in browser(world, "viewer").get(f"/workspaces/{acme}").get_data(as_text=True)
    assert 'name="visibility"' not in browser(world, "member").get(f"/workspaces/{acme}").get_data(as_text=True)
