"""The live Session through the gateway, on real PostgreSQL and RabbitMQ: every verb, every
validation error, and the event each change emits, read off RabbitMQ with pika (an AMQP client
independent of kombu) - the wire contract."""
from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pika
import pytest
from werkzeug.serving import make_server

from services.checkin.bootstrap import bootstrap as checkin_bootstrap
from services.checkin.entrypoints.app import create_app as checkin_app
from services.gateway.bootstrap import bootstrap as gateway_bootstrap
from services.gateway.entrypoints.app import create_app as gateway_app
from services.gateway.service_layer import handlers as identity
from shared.events import LATEST, decode
from shared.messaging import declare_topology
from tests.conftest import make_settings
from tests.helpers import free_port

pytestmark = pytest.mark.integration
PASSWORD = "a long enough password"
API = "/api/v1"



class Stack:
    """Gateway (in process) -> real HTTP -> check-in service; events read with pika."""

    def __init__(self, settings):
        self.settings = settings
        self.checkin = checkin_bootstrap(settings)
        self.gateway = gateway_bootstrap(settings)
        self.checkin.migrate()
        self.gateway.migrate()
        declare_topology(settings)
        self.app = gateway_app(self.gateway)
        # Both over real HTTP: the gateway forwards to the check-in service, which asks the
        # gateway's member directory about owners.
        self.servers = [make_server("127.0.0.1", int(settings.service_urls[name].rsplit(":", 1)[1]), app,
                                    threaded=True)
                        for name, app in (("checkin", checkin_app(self.checkin)), ("gateway", self.app))]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        self.relay = self.checkin.relay()
        self.amqp = pika.BlockingConnection(pika.URLParameters(settings.broker_url))
        self.channel = self.amqp.channel()
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(self.queue, f"{settings.broker_namespace}.checkin.events", "checkin.#")
        self.tokens = {}

    def user(self, email: str, workspace: str, role: str) -> dict:
        user, space = identity.add_user(identity.AddUser(email, PASSWORD, workspace, role),
                                        uow=self.gateway.uow(), clock=self.gateway.clock)
        login = self.app.test_client().post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
        return {"id": str(user.id), "workspace": str(space.id),
                "headers": {"Authorization": f"Bearer {login.json['access_token']}"}}

    def client(self, who: dict):
        client = self.app.test_client()

        def call(method: str, path: str, **kwargs):
            headers = dict(who["headers"], **kwargs.pop("headers", {}))
            response = client.open(API + path, method=method, headers=headers, **kwargs)
            response.get_data()  # read the streamed body, which closes the request context
            response.close()
            return response

        return call

    def events(self) -> list[tuple[str, dict]]:
        """Everything the relay publishes now, as read off the broker."""
        self.relay.run_once()
        out = []
        while True:
            method, properties, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                return out
            assert properties.delivery_mode == 2 and properties.content_type == "application/json"
            out.append((method.routing_key, json.loads(body)))

    def close(self):
        self.amqp.close()
        self.relay.close()
        for server in self.servers:
            server.shutdown()
        self.checkin.database.dispose()
        self.gateway.database.dispose()


@pytest.fixture
def stack(tmp_path, database_url, broker_url, namespace):
    settings = make_settings(tmp_path, OKRSNAP_DATABASE_URL=database_url, OKRSNAP_BROKER_URL=broker_url,
                             OKRSNAP_BROKER_NAMESPACE=namespace, OKRSNAP_CHECKIN_PORT=str(free_port()),
                             OKRSNAP_GATEWAY_PORT=str(free_port()))
    stack = Stack(settings)
    yield stack
    stack.close()


@pytest.fixture
def owner(stack):
    return stack.user("owner@example.com", "Acme", "owner")


def _session_body(**overrides):
    today = datetime.now(timezone.utc).date()
    body = {"name": "Q4", "start_date": str(today - timedelta(days=30)), "end_date": str(today + timedelta(days=60)),
            "timezone": "Europe/Berlin"}
    return body | overrides


def test_every_change_emits_its_versioned_event_with_the_full_state(stack, owner):
    api = stack.client(owner)
    ws = owner["workspace"]
    session = api("POST", f"/workspaces/{ws}/sessions", json=_session_body(checkin_cadence="biweekly"))
    assert session.status_code == 201 and session.headers["ETag"] == '"1"'
    sid = session.json["id"]
    steps = [("checkin.session.created", session.json)]

    def step(expected_event: str, response, status: int = 200):
        assert response.status_code == status, response.json
        steps.append((expected_event, response.json))
        return response.json

    step("checkin.session.updated", api("PATCH", f"/sessions/{sid}", json={"name": "Q4 – growth 🚀"},
                                        headers={"If-Match": '"1"'}))
    root = step("checkin.objective.created", api("POST", f"/sessions/{sid}/objectives", json={
        "title": "Grow", "owner_id": owner["id"]}), 201)
    child = step("checkin.objective.created", api("POST", f"/sessions/{sid}/objectives", json={
        "title": "Team goal", "parent_id": root["id"], "private": True, "visible_to": [owner["id"]]}), 201)
    step("checkin.objective.updated", api("PATCH", f"/objectives/{child['id']}", json={"description": "why"},
                                          headers={"If-Match": '"1"'}))
    kr = step("checkin.key_result.created", api("POST", f"/objectives/{root['id']}/key-results", json={
        "title": "Open bugs", "start_value": 40, "target_value": 10, "unit": "bugs", "weight": 2}), 201)
    milestone = step("checkin.key_result.created", api("POST", f"/objectives/{root['id']}/key-results", json={
        "title": "Launch", "kind": "milestone"}), 201)
    step("checkin.key_result.updated", api("PATCH", f"/key-results/{kr['id']}", json={"confidence": 7},
                                           headers={"If-Match": '"1"'}))
    checked = step("checkin.key_result.checked_in", api("POST", f"/key-results/{kr['id']}/check-ins", json={
        "value": 25, "status": "on_track", "confidence": 8, "comment": "fixed the flaky ones"}), 201)
    assert checked["key_result"]["progress"] == 0.5 and checked["key_result"]["version"] == 3
    initiative = step("checkin.initiative.created", api("POST", f"/sessions/{sid}/initiatives", json={
        "title": "Bug bash", "key_result_ids": [kr["id"]],
        "canvas": {"title": "Plan", "url": "https://docs.example.com/bug-bash", "access": [owner["id"]]}}), 201)
    step("checkin.initiative.connected", api("PUT", f"/initiatives/{initiative['id']}/key-results/{milestone['id']}"))
    step("checkin.initiative.disconnected",
         api("DELETE", f"/initiatives/{initiative['id']}/key-results/{milestone['id']}"))
    step("checkin.initiative.checked_in", api("POST", f"/initiatives/{initiative['id']}/check-ins", json={
        "status": "in_progress", "comment": "day one done"}), 201)
    step("checkin.initiative.updated", api("PATCH", f"/initiatives/{initiative['id']}", json={"status": "done"},
                                           headers={"If-Match": '"4"'}))
    assert api("DELETE", f"/initiatives/{initiative['id']}", headers={"If-Match": '"5"'}).status_code == 204
    steps.append(("checkin.initiative.removed", None))
    assert api("DELETE", f"/key-results/{milestone['id']}", headers={"If-Match": '"1"'}).status_code == 204
    steps.append(("checkin.key_result.removed", None))
    step("checkin.session.archived", api("POST", f"/sessions/{sid}/archive"))

    events = stack.events()
    assert [name for name, _ in events] == [name for name, _ in steps]
    assert [body["sequence"] for _, body in events] == list(range(1, len(steps) + 1))
    for (name, body), (_, answered) in zip(events, steps):
        event = decode(body)  # the consumer's validation: catalogue schema of that version
        assert (event.event_type, event.event_version) == (name, LATEST[name])
        assert body["occurred_at"].endswith("+00:00") and body["workspace_id"] == ws
        assert body["session_id"] == sid and body["actor_id"] == owner["id"]
        state = body["payload"].get("key_result") or body["payload"].get("initiative") or body["payload"]
        if answered is not None:
            answered_state = answered.get("key_result") or answered.get("initiative") or answered
            for key in ("id", "title", "name", "version", "progress", "status"):
                if key in answered_state:
                    assert state[key] == answered_state[key], (name, key)
    assert events[1][1]["payload"]["name"] == "Q4 – growth 🚀"
    assert events[3][1]["payload"]["private"] is True and events[3][1]["payload"]["parent_id"] == root["id"]
    assert events[9][1]["payload"]["canvas"]["url"] == "https://docs.example.com/bug-bash"
    assert events[-2][1]["payload"]["removed"] is True
    assert events[-1][1]["payload"]["status"] == "archived"


def test_bad_input_names_each_field_and_writes_nothing(stack, owner):
    api = stack.client(owner)
    sid = api("POST", f"/workspaces/{owner['workspace']}/sessions", json=_session_body()).json["id"]
    stack.events()
    cases = [
        ("POST", f"/workspaces/{owner['workspace']}/sessions",
         {"name": "", "start_date": "2026-13-01", "end_date": "2026-12-01", "timezone": "UTC", "id": "x"},
         {"name", "start_date", "id"}),
        ("POST", f"/workspaces/{owner['workspace']}/sessions", _session_body(timezone="Mars/Olympus"), {"timezone"}),
        ("POST", f"/workspaces/{owner['workspace']}/sessions", _session_body(start_date="0001-01-01"), {"start_date"}),
        ("POST", f"/sessions/{sid}/objectives", {"title": "x", "version": 7, "author_id": owner["id"]},
         {"version", "author_id"}),
        ("POST", f"/sessions/{sid}/objectives", {"title": "x", "parent_id": str(uuid.uuid4())}, {"parent_id"}),
        ("POST", f"/sessions/{sid}/initiatives", {"title": "x", "canvas": {"title": "c", "url": "javascript:alert(1)"}},
         {"canvas.url"}),
        ("POST", f"/sessions/{sid}/objectives", {"title": 5, "owner_id": "nobody"}, {"title", "owner_id"}),
        ("POST", f"/sessions/{sid}/objectives", {"title": "x", "owner_id": str(uuid.uuid4())}, {"owner_id"}),
    ]
    for method, path, body, fields in cases:
        response = api(method, path, json=body)
        assert response.status_code in (400, 422), (path, response.json)
        assert {error["field"] for error in response.json["errors"]} == fields, response.json
    huge = api("POST", f"/sessions/{sid}/objectives", json={"title": "x" * 300_000})
    assert huge.status_code == 413
    page = api("GET", f"/sessions/{sid}/items?limit=100000")
    assert page.status_code == 422 and page.json["errors"][0]["field"] == "limit"
    assert stack.events() == []  # nothing was written, so nothing was emitted


def test_unknown_ids_and_other_workspaces_look_the_same(stack, owner):
    api = stack.client(owner)
    sid = api("POST", f"/workspaces/{owner['workspace']}/sessions", json=_session_body()).json["id"]
    objective = api("POST", f"/sessions/{sid}/objectives", json={"title": "Secret plan"}).json
    stranger = stack.client(stack.user("stranger@example.com", "Other Corp", "owner"))
    for path in (f"/sessions/{sid}", f"/objectives/{objective['id']}", f"/sessions/{sid}/tree"):
        theirs, unknown = stranger("GET", path), stranger("GET", path.replace(path.split("/")[2], str(uuid.uuid4())))
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.json["message"] == unknown.json["message"] and "Secret" not in theirs.get_data(as_text=True)
    assert stranger("POST", f"/sessions/{sid}/objectives", json={"title": "x"}).status_code == 404
    assert stranger("GET", f"/workspaces/{owner['workspace']}/sessions").status_code == 404


def test_versions_archive_and_unicode(stack, owner):
    api = stack.client(owner)
    sid = api("POST", f"/workspaces/{owner['workspace']}/sessions", json=_session_body()).json["id"]
    title = "Ünïcode ✓ עברית 🚀 \u200b<b>&amp;</b>"
    objective = api("POST", f"/sessions/{sid}/objectives", json={"title": title}).json
    assert api("GET", f"/objectives/{objective['id']}").json["objective"]["title"] == title
    missing = api("PATCH", f"/objectives/{objective['id']}", json={"title": "x"})
    assert missing.status_code == 428 and missing.json["errors"][0]["field"] == "If-Match"
    assert api("PATCH", f"/objectives/{objective['id']}", json={"title": "x"}, headers={"If-Match": '"1"'}).status_code == 200
    stale = api("PATCH", f"/objectives/{objective['id']}", json={"title": "y"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 409
    assert api("PATCH", f"/objectives/{objective['id']}", json={}, headers={"If-Match": '"2"'}).status_code == 422
    member = stack.client(stack.user("member@example.com", "Acme", "member"))
    assert member("POST", f"/sessions/{sid}/archive").status_code == 403
    assert api("POST", f"/sessions/{sid}/archive").json["status"] == "archived"
    refused = api("POST", f"/sessions/{sid}/objectives", json={"title": "more"})
    assert refused.status_code == 409 and "archived" in refused.json["message"]
    assert api("GET", f"/sessions/{sid}/tree").status_code == 200  # still reviewable


def test_two_clients_edit_the_same_key_result_and_exactly_one_wins(stack, owner):
    api = stack.client(owner)
    sid = api("POST", f"/workspaces/{owner['workspace']}/sessions", json=_session_body()).json["id"]
    objective = api("POST", f"/sessions/{sid}/objectives", json={"title": "O"}).json
    kr = api("POST", f"/objectives/{objective['id']}/key-results", json={"title": "KR", "target_value": 10}).json
    for round_ in range(5):
        version = api("GET", f"/key-results/{kr['id']}").headers["ETag"]
        barrier, statuses = threading.Barrier(2), []

        def edit(title):
            client = stack.client(owner)
            barrier.wait()
            statuses.append(client("PATCH", f"/key-results/{kr['id']}", json={"title": title},
                                   headers={"If-Match": version}).status_code)

        threads = [threading.Thread(target=edit, args=(f"{who} {round_}",)) for who in ("ann", "bob")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(statuses) == [200, 409], statuses
    assert api("GET", f"/key-results/{kr['id']}").json["key_result"]["version"] == 6


def test_list_tree_detail_and_history_import(stack, owner):
    api = stack.client(owner)
    t0 = datetime(2026, 9, 1, 9, tzinfo=timezone.utc)
    document = {
        "session": {"name": "Past", "start_date": "2026-09-01", "end_date": "2026-11-29",
                    "timezone": "Europe/Berlin", "created_at": t0.isoformat()},
        "objectives": [{"ref": "o", "title": "Company", "created_at": t0.isoformat()},
                       {"ref": "c", "title": "Team", "parent_ref": "o", "owner_id": owner["id"],
                        "created_at": t0.isoformat()}],
        "key_results": [{"ref": "k", "objective_ref": "c", "title": "Revenue", "start_value": 0, "target_value": 100,
                         "owner_id": owner["id"], "created_at": (t0 + timedelta(minutes=1)).isoformat()},
                        {"ref": "u", "objective_ref": "c", "title": "Unowned",
                         "created_at": (t0 + timedelta(minutes=2)).isoformat()}],
        "initiatives": [{"ref": "i", "title": "Campaign", "key_result_refs": ["k", "u"],
                         "created_at": (t0 + timedelta(minutes=3)).isoformat()}],
        "check_ins": [{"key_result_ref": "k", "value": 60, "status": "on_track",
                       "checked_in_at": (t0 + timedelta(days=20)).isoformat()},
                      {"key_result_ref": "k", "value": 30, "status": "at_risk",
                       "checked_in_at": (t0 + timedelta(days=10)).isoformat()}],
    }
    member = stack.client(stack.user("member@example.com", "Acme", "member"))
    assert member("POST", f"/workspaces/{owner['workspace']}/sessions/import", json=document).status_code == 403
    imported = api("POST", f"/workspaces/{owner['workspace']}/sessions/import", json=document)
    assert imported.status_code == 201, imported.json
    sid = imported.json["id"]
    events = stack.events()
    times = [body["occurred_at"] for _, body in events]
    assert times == sorted(times) and times[-1] == (t0 + timedelta(days=20)).isoformat()

    tree = api("GET", f"/sessions/{sid}/tree").json
    [company] = tree["objectives"]
    [team] = company["children"]
    assert [k["key_result"]["title"] for k in team["key_results"]] == ["Revenue", "Unowned"]
    assert [i["title"] for k in team["key_results"] for i in k["initiatives"]] == ["Campaign", "Campaign"]
    assert team["progress"] == 0.3  # (0.6 + 0) / 2

    listed = api("GET", f"/sessions/{sid}/items?type=key_result&owner=unassigned").json
    assert [i["title"] for i in listed["items"]] == ["Unowned"] and listed["total"] == 1
    by_progress = api("GET", f"/sessions/{sid}/items?type=key_result&sort=-progress&limit=1").json
    assert by_progress["items"][0]["title"] == "Revenue" and by_progress["total"] == 2
    assert api("GET", f"/sessions/{sid}/items?q=camp").json["items"][0]["type"] == "initiative"

    revenue = next(k for k in team["key_results"] if k["key_result"]["title"] == "Revenue")["key_result"]
    detail = api("GET", f"/key-results/{revenue['id']}").json
    assert [c["value"] for c in detail["check_ins"]] == [60.0, 30.0]  # newest first
    history = api("GET", f"/key-results/{revenue['id']}/check-ins?limit=1&offset=1").json
    assert history["total"] == 2 and history["items"][0]["value"] == 30.0


def test_public_openapi_describes_every_forwarded_route(stack, owner):
    from services.gateway.adapters.openapi import openapi_path
    from services.gateway.entrypoints.routes import ROUTES

    spec = stack.app.test_client().get(f"{API}/openapi.json").json
    checkin_operations = {f"{m} {API}{openapi_path(r.rule)}" for r in ROUTES if r.service == "checkin" for m in r.methods}
    # Only the check-in service runs in this stack: all of its operations are documented.
    assert checkin_operations.isdisjoint(spec.get("x-okrsnap-undocumented", []))
    assert all(openapi_path(r.rule) and f"{API}{openapi_path(r.rule)}" in spec["paths"] for r in ROUTES)
    operation = spec["paths"][f"{API}/key-results/{{key_result_id}}"]["patch"]
    assert operation["security"] == [{"bearerAuth": []}]
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.startswith("#/components/schemas/checkin.")
    assert body.split("/")[-1] in spec["components"]["schemas"]
    assert stack.app.test_client().get(f"{API}/docs").status_code == 200
