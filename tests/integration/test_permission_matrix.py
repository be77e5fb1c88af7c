"""The permission matrix, through the gateway to the real check-in, snapshot and export services
(over HTTP, on PostgreSQL): every public endpoint x (owner, admin, member, viewer, member without
Goals/OKRs access, non-member, anonymous) x (own, private, restricted, other Workspace) resource.
Each answer's status is asserted, and no response body of anyone holds a title or id they may not
see."""
from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from services.checkin.bootstrap import bootstrap as checkin_bootstrap
from services.checkin.entrypoints.app import create_app as checkin_app
from services.export.bootstrap import bootstrap as export_bootstrap
from services.export.entrypoints.app import create_app as export_app
from services.gateway.bootstrap import bootstrap as gateway_bootstrap
from services.gateway.entrypoints.app import create_app as gateway_app
from services.gateway.service_layer import handlers as identity
from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
from services.snapshot.entrypoints.app import create_app as snapshot_app
from shared.events import decode
from shared.weeks import Week
from tests.conftest import make_settings
from tests.helpers import free_port

pytestmark = pytest.mark.integration
API = "/api/v1"
PASSWORD = "a long enough password"
ROLES = ("owner", "admin", "member", "viewer")
PRINCIPALS = ROLES + ("no_okr_access", "non_member", "anonymous")
RESOURCES = ("own", "private", "restricted", "other")



class World:
    """Four services over HTTP; Workspace "Acme" with a member of each role, and "Elsewhere"."""

    def __init__(self, settings):
        self.settings = settings
        self.containers = {"checkin": checkin_bootstrap(settings), "snapshot": snapshot_bootstrap(settings),
                           "export": export_bootstrap(settings), "gateway": gateway_bootstrap(settings)}
        for c in self.containers.values():
            c.migrate()
        apps = {"checkin": checkin_app, "snapshot": snapshot_app, "export": export_app}
        self.app = gateway_app(self.containers["gateway"])
        self.servers = [make_server("127.0.0.1", int(settings.service_urls[name].rsplit(":", 1)[1]),
                                    self.app if name == "gateway" else apps[name](self.containers[name]),
                                    threaded=True)
                        for name in ("checkin", "snapshot", "export", "gateway")]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        self.client = self.app.test_client()
        self.users = {}
        for role in ROLES:
            self.users[role] = self._user(f"{role}@acme.example", "Acme", role)
        self.users["no_okr_access"] = self._user("no-okr@acme.example", "Acme", "member")
        self.users["non_member"] = self._user("stranger@else.example", "Elsewhere", "owner")
        self.users["anonymous"] = {"id": None, "headers": {}}
        self.acme = self.users["owner"]["workspace"]
        answer = self.call("owner", "PATCH", f"/workspaces/{self.acme}/members/{self.users['no_okr_access']['id']}",
                           json={"okr_access": False})
        assert answer.status_code == 200, answer.json

    def _user(self, email: str, workspace: str, role: str) -> dict:
        gw = self.containers["gateway"]
        user, space = identity.add_user(identity.AddUser(email, PASSWORD, workspace, role), uow=gw.uow(),
                                        clock=gw.clock)
        login = self.client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.json
        return {"id": str(user.id), "workspace": str(space.id),
                "headers": {"Authorization": f"Bearer {login.json['access_token']}"}}

    def call(self, who: str, method: str, path: str, **kwargs):
        headers = dict(self.users[who]["headers"], **kwargs.pop("headers", {}))
        response = self.client.open(API + path, method=method, headers=headers, **kwargs)
        response.get_data()
        response.close()
        return response

    def sync_snapshots(self) -> None:
        """The check-in service's events, applied by the snapshot service (the broker is another
        test's subject)."""
        with self.containers["checkin"].database.session() as db:
            bodies = db.execute(text("SELECT body FROM outbox ORDER BY id")).scalars().all()
        self.containers["snapshot"].apply_batch([decode(json.loads(b) if isinstance(b, str) else b) for b in bodies])

    def close(self):
        for server in self.servers:
            server.shutdown()
        for c in self.containers.values():
            c.database.dispose()


def _created(response) -> dict:
    assert response.status_code == 201, response.json
    return response.json


def _session(world, who, workspace, name, **extra) -> dict:
    today = datetime.now(timezone.utc).date()
    return _created(world.call(who, "POST", f"/workspaces/{workspace}/sessions", json={
        "name": name, "start_date": str(today - timedelta(days=20)), "end_date": str(today + timedelta(days=40)),
        "timezone": "UTC", **extra}))


def _items(world, who, session, tag, *, owner_of_items=None, private=False) -> dict:
    objective = _created(world.call(who, "POST", f"/sessions/{session['id']}/objectives", json={
        "title": f"Objective {tag}", "owner_id": owner_of_items if not private else world.users["owner"]["id"],
        "private": private}))
    key_result = _created(world.call(who, "POST", f"/objectives/{objective['id']}/key-results", json={
        "title": f"Key Result {tag}", "target_value": 10, "owner_id": owner_of_items}))
    initiative = _created(world.call(who, "POST", f"/sessions/{session['id']}/initiatives", json={
        "title": f"Initiative {tag}", "key_result_ids": [key_result["id"]],
        "canvas": {"title": f"Canvas {tag}", "url": f"https://docs.example/canvas-{tag}",
                   "access": [world.users[who]["id"]]}}))
    return {"session": session, "objective": objective, "key_result": key_result, "initiative": initiative,
            "secrets": [f"Objective {tag}", f"Key Result {tag}", f"Initiative {tag}", f"canvas-{tag}",
                        objective["id"], key_result["id"], initiative["id"]]}


@pytest.fixture(scope="module")
def world(tmp_path_factory, postgres_server_url):


    name = f"okrsnap_test_{uuid.uuid4().hex[:12]}"
    server = make_url(postgres_server_url).set(drivername="postgresql+psycopg")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    settings = make_settings(tmp_path_factory.mktemp("matrix"),
                             OKRSNAP_DATABASE_URL=server.set(database=name).render_as_string(hide_password=False),
                             OKRSNAP_EXPORT_RATE="1000/3600",
                             **{f"OKRSNAP_{s.upper()}_PORT": str(free_port())
                                for s in ("checkin", "snapshot", "export", "gateway")})
    world = World(settings)
    acme, member = world.acme, world.users["member"]["id"]
    shared = _session(world, "owner", acme, "Session shared")
    world.own = _items(world, "owner", shared, "own", owner_of_items=member)
    world.private = _items(world, "owner", shared, "private", private=True)
    restricted = _session(world, "owner", acme, "Session restricted", visibility="restricted")
    world.restricted = _items(world, "owner", restricted, "restricted")
    world.restricted["secrets"].append("Session restricted")
    world.other = _items(world, "non_member", _session(world, "non_member", world.users["non_member"]["workspace"],
                                                       "Session elsewhere"), "other")
    world.other["secrets"].append("Session elsewhere")
    world.sync_snapshots()
    world.week = Week.of_instant(datetime.now(timezone.utc), "UTC", "monday").label
    yield world
    world.close()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


SESSION_WIDE = {"session", "tree", "list", "canvases", "calendar", "week", "trend", "verify", "export"}


def sees(who: str, resource: str) -> bool:
    return {"own": who in ROLES, "private": who in ("owner", "admin"), "restricted": who in ("owner", "admin"),
            "other": who == "non_member"}[resource]


def _endpoints(world, resource: str) -> list[tuple[str, str, str, dict, object]]:
    """(name, method, path, kwargs, expected status given the principal sees the resource)."""
    r = getattr(world, resource)
    s, o, k, i = (r[key]["id"] for key in ("session", "objective", "key_result", "initiative"))
    writer = {"owner": True, "admin": True, "member": resource == "own", "viewer": False}
    canvas_ok = ("owner", "admin")  # the canvases list only the owner; the Initiatives are unassigned
    return [
        ("session", "GET", f"/sessions/{s}", {}, 200),
        ("tree", "GET", f"/sessions/{s}/tree", {}, 200),
        ("list", "GET", f"/sessions/{s}/items", {}, 200),
        ("canvases", "GET", f"/sessions/{s}/canvases", {}, 200),
        ("objective", "GET", f"/objectives/{o}", {}, 200),
        ("key_result", "GET", f"/key-results/{k}", {}, 200),
        ("initiative", "GET", f"/initiatives/{i}", {}, 200),
        ("check_ins", "GET", f"/key-results/{k}/check-ins", {}, 200),
        ("canvas", "GET", f"/initiatives/{i}/canvas", {}, lambda who: 200 if who in canvas_ok else 403),
        ("calendar", "GET", f"/sessions/{s}/snapshots", {}, 200),
        ("week", "GET", f"/sessions/{s}/snapshots/{world.week}", {}, 200),
        ("trend", "GET", f"/sessions/{s}/snapshots/trend", {}, 200),
        ("verify", "GET", f"/sessions/{s}/snapshots/verify", {}, 200),
        ("explain", "GET", f"/access/explain?resource=objective:{o}", {}, "always 200"),
        ("check_in", "POST", f"/key-results/{k}/check-ins", {"json": {"value": 1, "status": "on_track"}},
         lambda who: 201 if writer.get(who) else 403),
        ("edit", "PATCH", f"/objectives/{o}", {"json": {"title": "renamed"}, "headers": {"If-Match": '"999"'}},
         lambda who: 409 if writer.get(who) and (who != "member" or resource == "own") else 403),
        ("export", "POST", "/exports", {"json": {"session_id": s, "week": world.week}}, 202),
    ]


@pytest.mark.parametrize("resource", RESOURCES)
def test_every_endpoint_for_every_principal(world, resource):
    failures = []
    for who in PRINCIPALS:
        for name, method, path, kwargs, expected in _endpoints(world, resource):
            if who == "anonymous":
                status = 401
            elif expected == "always 200":
                status = 200
            elif not sees(who, "own" if name in SESSION_WIDE and resource == "private" else resource):
                status = 404  # (the private Objective's Session is the shared one, which all roles see)
            else:
                role = "owner" if (who, resource) == ("non_member", "other") else who  # Elsewhere's owner
                status = expected(role) if callable(expected) else expected
            response = world.call(who, method, path, **kwargs)
            if response.status_code != status:
                failures.append(f"{who} {name} on {resource}: {response.status_code} (wanted {status}) "
                                f"{response.get_data(as_text=True)[:200]}")
            if response.status_code >= 400:
                body = response.json
                if set(body) != {"code", "status", "message", "errors"}:
                    failures.append(f"{who} {name} on {resource}: error body {body}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("who", PRINCIPALS)
def test_no_body_holds_what_its_reader_may_not_see(world, who):
    hidden = [secret for resource in RESOURCES if not sees(who, resource)
              for secret in getattr(world, resource)["secrets"]]
    canvas_url = "docs.example/canvas-own"
    leaks = []
    for resource in RESOURCES:
        for name, method, path, kwargs, _ in _endpoints(world, resource):
            if method != "GET" or name == "explain":  # explain echoes the caller's own query; tested below
                continue
            for owner in ("all", "unassigned", world.users["member"]["id"]) if name == "week" else ("all",):
                query = f"{'&' if '?' in path else '?'}owner={owner}" if name == "week" else ""
                body = world.call(who, method, path + query).get_data(as_text=True)
                leaks += [f"{name} on {resource} shows {secret!r}" for secret in hidden if secret in body]
                if who not in ("owner", "admin") and canvas_url in body:
                    leaks.append(f"{name} on {resource} shows the canvas link")
    assert not leaks, "\n".join(leaks)


def test_explain_says_why_without_confirming_what_an_outsider_cannot_know(world):
    private_objective = world.private["objective"]["id"]
    explained = world.call("member", "GET", f"/access/explain?resource=objective:{private_objective}").json
    assert explained["can_view"] is False and explained["reasons"][0]["code"] == "item_private"
    restricted = world.restricted["session"]["id"]
    assert world.call("viewer", "GET", f"/access/explain?resource=session:{restricted}").json["reasons"][0][
        "code"] == "session_restricted"
    no_okr = world.call("no_okr_access", "GET", f"/access/explain?resource=session:{restricted}").json
    assert no_okr["reasons"][0]["code"] == "no_okr_access"
    canvas = world.call("member", "GET", f"/access/explain?resource=canvas:{world.own['initiative']['id']}").json
    assert canvas["can_view"] and not canvas["can_open_canvas"] and canvas["reasons"][0]["code"] == "canvas_permission"
    viewer = world.call("viewer", "GET", f"/access/explain?resource=key_result:{world.own['key_result']['id']}").json
    assert viewer["can_view"] and not viewer["can_check_in"] and viewer["reasons"][0]["code"] == "role"
    stranger = world.call("non_member", "GET", f"/access/explain?resource=objective:{private_objective}").json
    unknown = world.call("non_member", "GET",
                         "/access/explain?resource=objective:00000000-0000-4000-8000-000000000000").json
    assert stranger["reasons"] == unknown["reasons"] and stranger["reasons"][0]["code"] == "not_found"
    bad = world.call("member", "GET", "/access/explain?resource=objective:nope")
    assert bad.status_code == 422 and bad.json["errors"][0]["field"] == "resource"


def test_a_member_sees_the_initiative_but_not_its_canvas_link(world):
    initiative = world.call("member", "GET", f"/initiatives/{world.own['initiative']['id']}").json["initiative"]
    assert initiative["canvas"] == {"title": "Canvas own", "url": None, "access": [], "can_open": False}
    refused = world.call("member", "GET", f"/initiatives/{world.own['initiative']['id']}/canvas")
    assert refused.status_code == 403 and "permission to open this canvas" in refused.json["message"]
    opened = world.call("owner", "GET", f"/initiatives/{world.own['initiative']['id']}/canvas").json
    assert opened["url"] == "https://docs.example/canvas-own"


def test_unknown_query_fields_are_refused_by_every_service(world):
    s = world.own["session"]["id"]
    for path in (f"/sessions/{s}/items?bogus=1", f"/sessions/{s}/snapshots/{world.week}?owner=all&bogus=1",
                 f"/key-results/{world.own['key_result']['id']}/check-ins?bogus=1"):
        answer = world.call("owner", "GET", path)
        assert answer.status_code == 422, (path, answer.json)
        assert answer.json["errors"][0]["field"] == "bogus", answer.json
