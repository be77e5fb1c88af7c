"""The owner filter keeps the owner's Initiatives, also those connected only to someone else's
Key Results: that Key Result and its Objectives stay as context (issue 9)."""
from services.snapshot.domain.views import OwnerFilter, build_tree

ANN, BOB = "a" * 8, "b" * 8
OBJECTIVES = [
    {"id": "root", "title": "Company", "owner_id": None, "parent_id": None},
    {"id": "ops", "title": "Ops", "owner_id": BOB, "parent_id": "root"},
    {"id": "grow", "title": "Grow", "owner_id": ANN, "parent_id": None},
]
KEY_RESULTS = [
    {"id": "uptime", "title": "Uptime", "objective_id": "ops", "owner_id": BOB, "progress": 0.5},
    {"id": "latency", "title": "Latency", "objective_id": "ops", "owner_id": BOB, "progress": 0.0},
    {"id": "revenue", "title": "Revenue", "objective_id": "grow", "owner_id": ANN, "progress": 1.0},
]
INITIATIVES = [
    {"id": "fix", "title": "Ann's fix", "owner_id": ANN, "key_result_ids": ["uptime"]},
    {"id": "bobs", "title": "Bob's work", "owner_id": BOB, "key_result_ids": ["uptime", "revenue"]},
    {"id": "orphan", "title": "Nobody's", "owner_id": None, "key_result_ids": ["latency"]},
]


def outline(tree):
    return [(o["id"], o["depth"], o["context"], [(k["id"], k["context"], [i["id"] for i in k["initiatives"]])
                                                 for k in o["key_results"]]) for o in tree]


def test_the_owners_initiative_keeps_someone_elses_key_result_and_its_objectives_as_context():
    assert outline(build_tree(OBJECTIVES, KEY_RESULTS, INITIATIVES, OwnerFilter(ANN))) == [
        ("root", 0, True, []),
        ("ops", 1, True, [("uptime", True, ["fix"])]),  # only Ann's Initiative under the context Key Result
        ("grow", 0, False, [("revenue", False, ["bobs"])]),  # Ann's own Key Result: all its Initiatives
    ]


def test_an_unassigned_initiative_stays_under_the_unassigned_filter():
    assert outline(build_tree(OBJECTIVES, KEY_RESULTS, INITIATIVES, OwnerFilter("unassigned"))) == [
        ("root", 0, False, []),  # unassigned itself
        ("ops", 1, True, [("latency", True, ["orphan"])]),
    ]


def test_the_others_and_all_are_unchanged():
    assert outline(build_tree(OBJECTIVES, KEY_RESULTS, INITIATIVES, OwnerFilter(BOB))) == [
        ("root", 0, True, []),
        ("ops", 1, False, [("latency", False, ["orphan"]), ("uptime", False, ["fix", "bobs"])]),
        ("grow", 0, True, [("revenue", True, ["bobs"])]),  # Bob's Initiative under Ann's Key Result
    ]
    everything = build_tree(OBJECTIVES, KEY_RESULTS, INITIATIVES, OwnerFilter("all"))
    assert not any(o["context"] or any(k["context"] for k in o["key_results"]) for o in everything)
    assert [k["id"] for o in everything for k in o["key_results"]] == ["latency", "uptime", "revenue"]


def test_under_an_owner_filter_every_new_or_removed_item_of_the_owner_is_named():
    """Not only Key Results: an owner's new Objective and Initiative are new in their view, and
    what they had and no longer have is removed from it (issue 9)."""
    from services.snapshot.domain.review import deltas, owned_changes

    key_results = [dict(kr, current_value=kr["progress"], status="on_track") for kr in KEY_RESULTS]
    before = {"objective": OBJECTIVES[:2], "key_result": key_results[:2], "initiative": INITIATIVES}
    after = {"objective": OBJECTIVES + [{"id": "hire", "title": "Hire", "owner_id": ANN, "parent_id": None}],
             "key_result": key_results, "initiative": INITIATIVES[:2] + [
                 {"id": "launch", "title": "Launch", "owner_id": ANN, "key_result_ids": ["revenue"]}]}
    changes = deltas(before, after)

    def named(owner):
        owned = owned_changes(changes, OwnerFilter(owner))
        return ({(i["type"], i["id"]) for i in owned["new"]}, {(i["type"], i["id"]) for i in owned["removed"]})

    assert named(ANN) == ({("objective", "grow"), ("objective", "hire"), ("key_result", "revenue"),
                           ("initiative", "launch")}, set())
    assert named("unassigned") == (set(), {("initiative", "orphan")})
    assert named(BOB) == (set(), set())
    assert named("all") == ({("objective", "grow"), ("objective", "hire"), ("key_result", "revenue"),
                             ("initiative", "launch")}, {("initiative", "orphan")})
