"""Display names: the rule for a name, the fallback to the email's local part, and the gateway
adding owner_name / author_name beside the ids in the services' answers."""
import copy
import json
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone

import pytest

from services.gateway.domain import names
from services.gateway.domain.model import IdentityError, User, normalise_display_name
from services.gateway.service_layer import handlers
from tests.unit.test_gateway_identity import API, PASSWORD, Stack

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


# -- the rule for a name -----------------------------------------------------------------------------

@pytest.mark.parametrize("given, kept", [
    ("Ada Lovelace", "Ada Lovelace"),
    ("  Grace Hopper \t", "Grace Hopper"),
    ("x", "x"),
    ("é" * 80, "é" * 80),
    ("e\u0301", "\u00e9"),                        # NFC
    ("👩\u200d💻 Ana", "👩\u200d💻 Ana"),          # a zero-width joiner is part of the emoji
])
def test_good_names_are_kept_trimmed(given, kept):
    assert normalise_display_name(given) == kept


@pytest.mark.parametrize("given", [
    "", "   ", "a" * 81, "Ada\nLovelace", "Ada\x00", "Ada\x1b[31m", "\x7f", "A\u0085da",
    "evil\u202egnp.exe", "a\u2066b", "line\u2028break", None, 42,
])
def test_bad_names_are_refused_naming_the_field(given):
    with pytest.raises(IdentityError) as refused:
        normalise_display_name(given)
    assert refused.value.field == "display_name"


def test_without_a_name_people_see_the_email_local_part():
    user = User(uuid.uuid4(), "ada.lovelace@example.com", "x", NOW)
    assert user.display_name == "" and user.name_or_email_local() == "ada.lovelace"
    assert handlers.display_name_of(user) == "ada.lovelace"
    user.display_name = "Ada"
    assert handlers.display_name_of(user) == "Ada"


# -- finding ids and writing names (pure) --------------------------------------------------------------

ADA, BOB, GONE = (str(uuid.uuid4()) for _ in range(3))
WS, OTHER_WS = str(uuid.uuid4()), str(uuid.uuid4())


def week_view() -> dict:
    initiative = {"id": "i1", "title": "Ship", "owner_id": BOB, "status": "active", "signals": []}
    return {
        "session": {"id": "s", "workspace_id": WS, "name": "Q1"},
        "objectives": [{"id": "o1", "owner_id": ADA, "parent_id": None, "key_results": [
            {"id": "k1", "owner_id": None, "initiatives": [initiative], "delta": None},
            {"id": "k2", "owner_id": GONE, "initiatives": []}]}],
        "check_ins": [{"id": "c1", "author_id": ADA, "comment": "owner_id: not a key"}],
        "late_amendments": [],
        "signals": {"unassigned": 1},
    }


def test_every_owner_and_author_is_found_once_with_its_holder():
    holders, ids = names.references(week_view())
    assert ids == {ADA, BOB, GONE}
    assert sorted((h[0]["id"], h[1]) for h in holders) == [
        ("c1", "author_id"), ("i1", "owner_id"), ("k1", "owner_id"), ("k2", "owner_id"), ("o1", "owner_id")]


def test_names_are_written_beside_their_ids_and_null_when_unknown_or_unassigned():
    answer = week_view()
    holders, _ = names.references(answer)
    names.apply(holders, {ADA: "Ada", BOB: "Bob"})
    objective = answer["objectives"][0]
    assert objective["owner_name"] == "Ada" and answer["check_ins"][0]["author_name"] == "Ada"
    assert objective["key_results"][0]["owner_name"] is None          # unassigned
    assert objective["key_results"][1]["owner_name"] is None          # no longer a member
    assert objective["key_results"][0]["initiatives"][0]["owner_name"] == "Bob"
    assert "owner_name" not in answer["session"] and answer["signals"] == {"unassigned": 1}


def test_a_deep_tree_and_a_bare_list_are_walked_without_recursion():
    node = leaf = {"owner_id": ADA}
    for _ in range(5000):
        node = {"children": [node]}
    holders, ids = names.references([node, "text", 1, None])
    assert ids == {ADA} and holders[0][0] is leaf


@pytest.mark.parametrize("answer, workspace", [
    ({"workspace_id": WS, "id": "s"}, WS),
    ({"session": {"workspace_id": WS}, "objectives": []}, WS),
    ({"items": [], "total": 0}, None),
    ([{"workspace_id": WS}], None),
])
def test_the_answer_says_its_workspace_where_it_can(answer, workspace):
    assert names.answer_workspace(answer) == workspace


# -- the same on raw JSON bytes (what the gateway forwards) -------------------------------------------

@pytest.mark.parametrize("dumps", [
    lambda v: json.dumps(v, separators=(",", ":")).encode(),            # the snapshot service's fast_json
    lambda v: json.dumps(v, indent=2, ensure_ascii=False).encode(),     # spaces and newlines
])
def test_raw_json_gets_the_same_names_as_the_parsed_answer(dumps):
    answer = week_view()
    answer["check_ins"].append({"id": "c2", "author_id": BOB, "comment": 'a quote: \\"owner_id\\": "x" \u00e9'})
    raw = dumps(answer)
    assert names.ids_in_json(raw) == {ADA, BOB, GONE} and names.workspace_in_json(raw) == WS
    lookup = {ADA: 'Ada "the Countess" Lovelace', BOB: "Bøb"}
    named = json.loads(names.name_json(raw, lookup))
    holders, _ = names.references(answer)
    names.apply(holders, lookup)
    assert named == answer
    assert list(named["objectives"][0])[:3] == ["id", "owner_id", "owner_name"]  # right beside the id


def test_raw_json_names_one_workspace_or_none():
    assert names.workspace_in_json(b'{"items":[]}') is None
    assert names.workspace_in_json(b'[{"workspace_id":"a"},{"workspace_id":"b"}]') is None
    assert names.workspace_in_json(b'[{"workspace_id":"a"},{"workspace_id" : "a"}]') == "a"


def test_name_people_json_queries_once_and_passes_a_body_without_ids_untouched():
    uow = _uow()
    raw = json.dumps(week_view()).encode()
    named = json.loads(handlers.name_people_json(raw, [WS, OTHER_WS], uow=uow))
    assert named == handlers.name_people(week_view(), [WS, OTHER_WS], uow=_uow())
    assert len(uow.repo.queries) == 1
    assert handlers.name_people_json(b'{"items":[]}', [WS], uow=uow) == b'{"items":[]}'
    assert len(uow.repo.queries) == 1


# -- name_people: one query, scoped to the answer's Workspace ------------------------------------------

class NamesRepo:
    def __init__(self, members: dict):
        self.members = members  # workspace id -> {user id: (display name, email)}
        self.queries = []

    def names_among(self, workspace_ids, user_ids):
        self.queries.append((set(workspace_ids), set(user_ids)))
        return {u: found for w in workspace_ids for u, found in self.members.get(str(w), {}).items()
                if u in user_ids}


class NamesUow:
    def __init__(self, repo):
        self.repo = repo

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    @contextmanager
    def reading(self):
        yield self.repo


def _uow():
    return NamesUow(NamesRepo({
        WS: {uuid.UUID(ADA): ("Ada Lovelace", "ada@example.com"), uuid.UUID(BOB): ("", "bob.b@example.com")},
        OTHER_WS: {uuid.UUID(GONE): ("Gone Elsewhere", "gone@example.com")},
    }))


def test_names_come_from_one_query_among_the_answers_workspace_only():
    uow = _uow()
    answer = handlers.name_people(week_view(), [WS, OTHER_WS], uow=uow)
    key_results = answer["objectives"][0]["key_results"]
    assert answer["objectives"][0]["owner_name"] == "Ada Lovelace"
    assert key_results[0]["initiatives"][0]["owner_name"] == "bob.b"   # no name: the email's local part
    assert key_results[1]["owner_name"] is None   # a member of another Workspace is not named here
    assert uow.repo.queries == [({uuid.UUID(WS)}, {uuid.UUID(ADA), uuid.UUID(BOB), uuid.UUID(GONE)})]


def test_an_answer_without_its_workspace_is_named_among_the_requesters_workspaces():
    uow = _uow()
    items = {"items": [{"id": "k", "owner_id": GONE}, {"id": "o", "owner_id": ADA}], "total": 2}
    handlers.name_people(items, [OTHER_WS], uow=uow)
    assert [i["owner_name"] for i in items["items"]] == ["Gone Elsewhere", None]


def test_no_query_without_ids_and_none_for_a_workspace_the_requester_lacks():
    uow = _uow()
    assert handlers.name_people({"items": [{"id": "x"}]}, [WS], uow=uow) == {"items": [{"id": "x"}]}
    unassigned = handlers.name_people({"owner_id": None, "author_id": "not-a-uuid"}, [WS], uow=uow)
    assert unassigned == {"owner_id": None, "owner_name": None, "author_id": "not-a-uuid", "author_name": None}
    foreign = handlers.name_people(week_view(), [OTHER_WS], uow=uow)  # the answer's Workspace is not theirs
    assert foreign["objectives"][0]["owner_name"] is None
    assert uow.repo.queries == []


def test_a_check_in_by_the_requester_is_named_without_a_query():
    uow = _uow()
    me = User(uuid.UUID(ADA), "ada@example.com", "", datetime.now(timezone.utc), "Ada (renamed just now)")
    check_in = json.dumps({"id": "c", "author_id": ADA, "session": {"workspace_id": WS}}).encode()
    named = json.loads(handlers.name_people_json(check_in, [WS], uow=uow, requester=me))
    assert named["author_name"] == "Ada (renamed just now)" and uow.repo.queries == []
    both = json.dumps({"author_id": ADA, "owner_id": BOB, "workspace_id": WS}).encode()
    named = json.loads(handlers.name_people_json(both, [WS], uow=uow, requester=me))
    assert (named["author_name"], named["owner_name"]) == ("Ada (renamed just now)", "bob.b")
    assert uow.repo.queries == [({uuid.UUID(WS)}, {uuid.UUID(BOB)})]  # only the others are looked up
    foreign = json.dumps({"author_id": ADA, "workspace_id": OTHER_WS}).encode()
    assert json.loads(handlers.name_people_json(foreign, [WS], uow=uow, requester=me))["author_name"] is None


# -- through the gateway's forwarder (SQLite, a fake upstream) ----------------------------------------

@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    yield s
    s.container.database.dispose()


def test_the_gateway_adds_names_to_json_answers_of_flagged_routes_only(stack):
    member, _ = handlers.add_user(handlers.AddUser("ada@example.com", PASSWORD, "Acme", "member", "Ada Lovelace"),
                                  uow=stack.container.uow(), clock=stack.container.clock)
    answer = {"session": {"workspace_id": str(stack.workspace.id)},
              "objectives": [{"owner_id": str(member.id)}, {"owner_id": str(stack.owner.id)}],
              "check_ins": [{"author_id": str(uuid.uuid4())}]}
    stack.container.upstream.answer = (200, copy.deepcopy(answer))
    stack.container.upstream.answer_headers = {"Content-Length": "999"}
    headers = stack.bearer()
    week = stack.client.get(f"{API}/sessions/{uuid.uuid4()}/snapshots/2026-W48", headers=headers)
    assert week.status_code == 200 and week.headers.get("Content-Length") == str(len(week.data))
    assert [o["owner_name"] for o in week.json["objectives"]] == ["Ada Lovelace", "lead"]
    assert week.json["check_ins"][0]["author_name"] is None

    # A week view above BIG_ANSWER is named from the Workspace's members: the same names
    other, _ = handlers.add_user(handlers.AddUser("eve@example.com", PASSWORD, "Elsewhere", "owner", "Eve"),
                                 uow=stack.container.uow(), clock=stack.container.clock)
    big = {"session": {"workspace_id": str(stack.workspace.id)},
           "objectives": [{"owner_id": str(member.id), "title": "x" * 100}] * 3000
           + [{"owner_id": str(other.id)}, {"owner_id": None}, {"owner_id": str(stack.owner.id)}]}
    stack.container.upstream.answer = (200, big)
    week = stack.client.get(f"{API}/sessions/{uuid.uuid4()}/snapshots/2026-W48", headers=headers)
    assert len(week.data) > handlers.BIG_ANSWER
    assert [o["owner_name"] for o in week.json["objectives"][-4:]] == ["Ada Lovelace", None, None, "lead"]
    stack.container.upstream.answer = (200, copy.deepcopy(answer))

    calendar = stack.client.get(f"{API}/sessions/{uuid.uuid4()}/snapshots", headers=headers)
    assert json.loads(calendar.data) == answer  # not flagged: passed on as the service said

    stack.container.upstream.answer = (404, {"code": 404, "owner_id": str(member.id)})
    refused = stack.client.get(f"{API}/objectives/{uuid.uuid4()}", headers=headers)
    assert refused.status_code == 404 and "owner_name" not in refused.json
