"""Hostile bodies and query strings (issue 11): each must be a 4xx in the one error shape, naming
the field where there is one, and write nothing. Shared by the SQLite unit tests and the
PostgreSQL integration tests (where NUL bytes and wide integers used to reach the database)."""
from __future__ import annotations

import uuid
from datetime import date, timedelta

from services.checkin.bootstrap import bootstrap as checkin_bootstrap
from services.checkin.entrypoints.app import create_app as checkin_app
from tests.helpers import EveryoneIsAMember, internal_headers

ERROR_KEYS = {"code", "status", "message", "errors"}
DEEP = b"[" * 100_000 + b"]" * 100_000  # within the body limit; json.loads alone recurses past Python's limit


def assert_refused(response, status: int, field: str | None = None):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    assert set(response.json) == ERROR_KEYS and response.json["code"] == status
    if field is not None:
        assert field in [e["field"] for e in response.json["errors"]], response.json


class CheckinClient:
    """The check-in service in process (its own database), called as the gateway would."""

    def __init__(self, settings):
        self.container = checkin_bootstrap(settings)
        self.container.migrate()
        self.container.members = EveryoneIsAMember()
        self.settings = settings
        self.client = checkin_app(self.container).test_client()
        self.workspace, self.user = uuid.uuid4(), uuid.uuid4()
        self.headers = internal_headers(settings, "checkin", self.user, {self.workspace: "owner"})
        today = date.today()
        created = self.client.post(f"/workspaces/{self.workspace}/sessions", headers=self.headers, json={
            "name": "Q", "start_date": str(today - timedelta(days=10)), "end_date": str(today + timedelta(days=60)),
            "timezone": "UTC"})
        assert created.status_code == 201, created.json
        self.session = created.json["id"]

    def objectives(self) -> int:
        return len(self.client.get(f"/sessions/{self.session}/items?type=objective",
                                   headers=self.headers).json["items"])

    def post_objective(self, body: bytes | dict):
        url = f"/sessions/{self.session}/objectives"
        if isinstance(body, bytes):
            return self.client.post(url, headers={**self.headers, "Content-Type": "application/json"}, data=body)
        return self.client.post(url, headers=self.headers, json=body)

    def close(self):
        self.container.database.dispose()


def check_the_checkin_service_refuses_hostile_input(checkin: CheckinClient) -> None:
    assert_refused(checkin.post_objective(DEEP), 400)
    assert_refused(checkin.post_objective(b'{"title": ' + b"[" * 70 + b"1" + b"]" * 70 + b"}"), 422, "title")
    assert_refused(checkin.post_objective(b'{"title": "a\\ud800b"}'), 422, "title")
    assert_refused(checkin.post_objective(b'{"title": "x", "description": "\\udfff"}'), 422, "description")
    assert_refused(checkin.post_objective({"title": "nul\x00byte"}), 422, "title")
    assert_refused(checkin.post_objective({"title": "x", "visible_to": ["a\x00"]}), 422, "visible_to.0")
    assert_refused(checkin.post_objective(b'{"title": "x", "weight": 1' + b"0" * 5000 + b"}"), 400)
    assert_refused(checkin.post_objective({"title": "x", "unknown": 2 ** 70}), 422, "unknown")
    headers = checkin.headers
    items = f"/sessions/{checkin.session}/items"
    assert_refused(checkin.client.get(f"{items}?q=a%00b", headers=headers), 422, "q")
    assert_refused(checkin.client.get(f"{items}?offset=99999999999999999999999", headers=headers), 422, "offset")
    assert_refused(checkin.client.get(f"{items}?limit=-9223372036854775809", headers=headers), 422, "limit")
    assert checkin.objectives() == 0
