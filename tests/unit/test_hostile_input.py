"""Hostile input on the embedded SQLite (issue 11): very deep JSON, unpaired surrogates, NUL bytes
and integers beyond 64 bits are a 4xx in the one error shape, never a 500."""
import pytest

from tests.conftest import make_settings
from tests.hostile_input import DEEP, CheckinClient, assert_refused, check_the_checkin_service_refuses_hostile_input
from tests.unit.test_gateway_identity import API, Stack


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    yield s
    s.container.database.dispose()


def test_the_checkin_service_refuses_hostile_input(tmp_path):
    checkin = CheckinClient(make_settings(tmp_path))
    try:
        check_the_checkin_service_refuses_hostile_input(checkin)
    finally:
        checkin.close()


def test_the_gateway_refuses_hostile_input(stack):
    login = f"{API}/auth/login"
    json_headers = {"Content-Type": "application/json"}
    assert_refused(stack.client.post(login, data=DEEP, headers=json_headers), 400)
    assert_refused(stack.client.post(login, data=b'{"email": "lead@example.com", "password": "\\ud800"}',
                                     headers=json_headers), 422, "password")
    assert_refused(stack.client.post(login, json={"email": "lead\x00@example.com", "password": "x"}), 422, "email")
    audit = f"{API}/workspaces/{stack.workspace.id}/audit"
    assert_refused(stack.client.get(audit, headers=stack.bearer(), query_string={"before": str(2 ** 63)}),
                   422, "before")
    assert [r["action"] for r in stack.audit_rows()] == ["login"]  # nothing else was written


@pytest.mark.parametrize("email", ["lead\x00@example.com", "lead@exa\nmple.com", "a\x7f@b.co"])
def test_an_email_with_a_control_character_is_not_an_email(email):
    """The web forms call the handlers directly: the domain refuses what would reach the database."""
    from services.gateway.domain.model import IdentityError, normalise_email

    with pytest.raises(IdentityError):
        normalise_email(email)
