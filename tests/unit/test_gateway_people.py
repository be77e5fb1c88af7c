"""The gateway's internal people route: names and emails for the export service."""
import uuid

import pytest

from shared import tokens
from tests.unit.test_gateway_identity import Stack


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    yield s
    s.container.database.dispose()


def _internal(stack, principal):
    return {tokens.INTERNAL_HEADER: tokens.internal_token(stack.container.settings.internal_secret, "gateway",
                                                          principal)}


def test_people_answers_names_and_emails_of_members_only_to_a_member(stack):
    member, _ = stack.add("ana.lopez@example.com", "member")
    stranger, _ = stack.add("stranger@example.com", "member", workspace="Other")
    ws = str(stack.workspace.id)
    url = f"/internal/workspaces/{ws}/people"
    ids = {"id": [str(member.id), str(stranger.id), str(uuid.uuid4()), str(stack.owner.id)]}
    lead = tokens.Principal(str(stack.owner.id), {ws: "owner"})
    assert stack.client.get(url, query_string=ids).status_code == 401  # internal callers only
    assert stack.client.get(url, query_string=ids, headers=stack.bearer()).status_code == 401
    answer = stack.client.get(url, query_string=ids, headers=_internal(stack, lead))
    assert answer.status_code == 200, answer.json
    assert answer.json["workspace"] == {"id": ws, "name": "Acme"}
    people = {p["id"]: p for p in answer.json["people"]}
    assert set(people) == {str(member.id), str(stack.owner.id)}  # never a non-member's name
    assert people[str(member.id)] == {"id": str(member.id), "name": "ana.lopez", "email": "ana.lopez@example.com"}
    # a requester who cannot read the Workspace learns nothing
    outsider = tokens.Principal(str(stranger.id), {ws: "member"})  # a forged claim: not a member now
    assert stack.client.get(url, query_string=ids, headers=_internal(stack, outsider)).status_code == 404
    nobody = tokens.Principal(None)
    assert stack.client.get(url, query_string=ids, headers=_internal(stack, nobody)).status_code == 404
    assert stack.client.get(url, headers=_internal(stack, lead)).status_code == 422  # ids required
