from hypothesis import given, strategies as st

from services.checkin.domain.model import progress
from services.snapshot.domain.views import OwnerFilter, build_tree

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


@given(finite, finite, finite)
def test_progress_is_always_between_0_and_1(start, target, current):
    assert 0.0 <= progress(start, target, current) <= 1.0


def test_progress_of_increasing_and_decreasing_metrics():
    assert progress(10, 20, 15) == 0.5
    assert progress(40, 0, 30) == 0.25   # fewer open bugs is progress
    assert progress(40, 0, 50) == 0.0    # worse than the start clamps to 0
    assert progress(10, 20, 30) == 1.0   # beyond the target clamps to 1


ALICE, BOB = "a" * 8, "b" * 8
OBJECTIVES = [
    {"id": "root", "title": "Company", "owner_id": None, "parent_id": None},
    {"id": "team", "title": "Team", "owner_id": BOB, "parent_id": "root"},
    {"id": "other", "title": "Other", "owner_id": BOB, "parent_id": None},
]
KEY_RESULTS = [
    {"id": "k1", "objective_id": "team", "owner_id": ALICE, "progress": 0.5},
    {"id": "k2", "objective_id": "team", "owner_id": BOB, "progress": 1.0},
    {"id": "k3", "objective_id": "other", "owner_id": None, "progress": 0.0},
]


def test_owner_filter_keeps_ancestors_as_context():
    tree = build_tree(OBJECTIVES, KEY_RESULTS, OwnerFilter(ALICE))
    assert [(o["id"], o["context"], [k["id"] for k in o["key_results"]]) for o in tree] == [
        ("root", True, []), ("team", True, ["k1"])]
    assert tree[1]["progress"] == 0.75  # an Objective's progress counts all its Key Results


def test_unassigned_filter_and_all():
    unassigned = build_tree(OBJECTIVES, KEY_RESULTS, OwnerFilter("unassigned"))
    assert [(o["id"], o["context"]) for o in unassigned] == [("root", False), ("other", True)]
    assert [k["id"] for o in unassigned for k in o["key_results"]] == ["k3"]
    everything = build_tree(OBJECTIVES, KEY_RESULTS, OwnerFilter("all"))
    assert not any(o["context"] for o in everything) and len(everything) == 3
