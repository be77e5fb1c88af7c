"""The gateway directory client: names for an export, asked as its requester."""
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from services.export.adapters.identity import PEOPLE_PER_REQUEST, GatewayIdentities, IdentityUnavailable
from shared import tokens
from tests.unit.export.test_snapshot_client import SECRET, server  # noqa: F401 - the fixture

WORKSPACE = uuid.uuid4()
ALICE = tokens.Principal(str(uuid.uuid4()), {str(WORKSPACE): "member"})


def test_people_are_asked_in_short_requests_as_the_requester(server):  # noqa: F811
    ids = [uuid.uuid4() for _ in range(PEOPLE_PER_REQUEST + 3)]
    server.body = {"workspace": {"id": str(WORKSPACE), "name": "Acme"},
                   "people": [{"id": str(ids[0]), "name": "Ana", "email": "ana@example.com"}]}

    answer = GatewayIdentities(server.url, SECRET).people(WORKSPACE, ids + [None], ALICE)

    assert answer["workspace"]["name"] == "Acme"
    assert answer["people"] == {str(ids[0]): ("Ana", "ana@example.com")}
    assert len(server.requests) == 2
    for path, headers in server.requests:
        url = urlsplit(path)
        assert url.path == f"/internal/workspaces/{WORKSPACE}/people"
        assert len(path) < 4000 and len(parse_qs(url.query)["id"]) <= PEOPLE_PER_REQUEST
        claims = tokens.verify(SECRET, headers[tokens.INTERNAL_HEADER], typ=tokens.INTERNAL,
                               audience=tokens.internal_audience("gateway"))
        assert tokens.Principal.from_claims(claims) == ALICE


def test_a_requester_who_lost_the_workspace_gets_no_names(server):  # noqa: F811
    server.status, server.body = 404, {"message": "Workspace not found."}
    answer = GatewayIdentities(server.url, SECRET).people(WORKSPACE, [uuid.uuid4()], ALICE)
    assert answer["people"] == {} and answer["workspace"]["name"] is None


@pytest.mark.parametrize("status, body", [(503, {}), (200, {"people": "nope"})])
def test_an_outage_or_a_garbled_answer_is_unavailable(server, status, body):  # noqa: F811
    server.status, server.body = status, body
    with pytest.raises(IdentityUnavailable):
        GatewayIdentities(server.url, SECRET).people(WORKSPACE, [uuid.uuid4()], ALICE)
