"""Hostile input on real PostgreSQL (issue 11), where a NUL byte in text used to reach the
database and answer 500: now a 422 in the one error shape, naming the field, nothing written."""
import pytest

from tests.conftest import make_settings
from tests.hostile_input import CheckinClient, assert_refused, check_the_checkin_service_refuses_hostile_input
from tests.unit.test_gateway_identity import API, Stack

pytestmark = pytest.mark.integration


def test_the_checkin_service_refuses_hostile_input_on_postgresql(tmp_path, database_url):
    checkin = CheckinClient(make_settings(tmp_path, OKRSNAP_DATABASE_URL=database_url))
    try:
        check_the_checkin_service_refuses_hostile_input(checkin)
    finally:
        checkin.close()


def test_the_gateway_refuses_nul_bytes_on_postgresql(tmp_path, database_url):
    stack = Stack(tmp_path, OKRSNAP_DATABASE_URL=database_url)
    try:
        for route in ("login", "session"):
            assert_refused(stack.client.post(f"{API}/auth/{route}", json={"email": "lead\x00@example.com",
                                                                          "password": "x"}), 422, "email")
        assert_refused(stack.client.post(f"{API}/auth/accept-invite", json={"token": "t\x00", "password": "x"}),
                       422, "token")
        headers = stack.bearer()
        assert_refused(stack.client.patch(f"{API}/me", headers=headers, json={"display_name": "Ada\x00"}),
                       422, "display_name")
        assert_refused(stack.client.post(f"{API}/workspaces/{stack.workspace.id}/members", headers=headers,
                                         json={"email": "a\x00@example.com", "role": "member"}), 422, "email")
        assert_refused(stack.client.get(f"{API}/workspaces/{stack.workspace.id}/audit", headers=headers,
                                        query_string={"before": str(2 ** 64)}), 422, "before")
        assert [r["action"] for r in stack.audit_rows()] == ["login"]
    finally:
        stack.container.database.dispose()
