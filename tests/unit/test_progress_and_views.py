import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.checkin.domain.model import progress
from services.snapshot.domain.views import OwnerFilter, build_tree

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


@given(finite, finite, finite)
def test_progress_is_always_between_0_and_1(start, target, current):
    assert 0.0 <= progress(start, target, current) <= 1.0


@given(finite, finite, st.floats(min_value=0, max_value=1), st.floats(min_value=0, max_value=1))
def test_progress_is_the_share_of_the_way_for_increasing_and_decreasing_metrics(start, target, a, b):
    assume(abs(target - start) > 1e-3 * max(1.0, abs(start), abs(target)))  # away from float noise
    at = lambda share: start + (target - start) * share  # noqa: E731 - a point on the way
    # Halfway is 0.5 whichever way the metric runs; moving towards the target never lowers it.
    assert progress(start, target, at(a)) == pytest.approx(a, abs=1e-6)
    low, high = sorted((a, b))
    assert progress(start, target, at(low)) <= progress(start, target, at(high)) + 1e-9
    # Overshooting either end clamps.
    assert progress(start, target, at(1.5)) == 1.0 and progress(start, target, at(-0.5)) == 0.0


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
    {"id": "k1", "title": "a", "objective_id": "team", "owner_id": ALICE, "progress": 0.5},
    {"id": "k2", "title": "b", "objective_id": "team", "owner_id": BOB, "progress": 1.0},
    {"id": "k3", "title": "c", "objective_id": "other", "owner_id": None, "progress": 0.0},
]

INITIATIVES = [{"id": "i1", "title": "Launch", "owner_id": BOB, "key_result_ids": ["k1", "k2"]}]


def test_owner_filter_keeps_ancestors_as_context():
    tree = build_tree(OBJECTIVES, KEY_RESULTS, INITIATIVES, OwnerFilter(ALICE))
    assert [(o["id"], o["context"], [k["id"] for k in o["key_results"]]) for o in tree] == [
        ("root", True, []), ("team", True, ["k1"])]
    assert tree[1]["progress"] == 0.75  # an Objective's progress counts all its Key Results
    assert [i["id"] for i in tree[1]["key_results"][0]["initiatives"]] == ["i1"]


def test_unassigned_filter_and_all():
    unassigned = build_tree(OBJECTIVES, KEY_RESULTS, INITIATIVES, OwnerFilter("unassigned"))
    assert [(o["id"], o["context"]) for o in unassigned] == [("root", False), ("other", True)]
    assert [k["id"] for o in unassigned for k in o["key_results"]] == ["k3"]
    everything = build_tree(OBJECTIVES, KEY_RESULTS, INITIATIVES, OwnerFilter("all"))
    assert not any(o["context"] for o in everything) and len(everything) == 3
    # An outline of the tree: each parent before its children, siblings by title.
    assert [(o["id"], o["depth"]) for o in everything] == [("root", 0), ("team", 1), ("other", 0)]
    # An Initiative connected to several Key Results shows under each.
    assert [[i["id"] for i in k["initiatives"]] for k in everything[1]["key_results"]] == [["i1"], ["i1"]]


# --- the live Session's List view -------------------------------------------------------------
import uuid as _uuid  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402

from services.checkin.domain.model import KeyResult, Objective, weighted_progress  # noqa: E402
from services.checkin.domain.views import ListQuery, list_items  # noqa: E402

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def _kr(title, current, *, weight=1.0, owner=None, status="on_track", minutes=0, objective=None):
    return KeyResult(_uuid.uuid4(), objective or _uuid.uuid4(), _uuid.uuid4(), _uuid.uuid4(), title, 0, 10, current,
                     weight=weight, owner_id=owner, status=status, updated_at=T0 + timedelta(minutes=minutes))


def test_objective_progress_is_the_weighted_mean():
    assert weighted_progress([_kr("a", 10, weight=3), _kr("b", 0, weight=1)]) == 0.75
    assert weighted_progress([]) is None


def test_milestone_key_results_are_done_or_not():
    done = KeyResult(_uuid.uuid4(), _uuid.uuid4(), _uuid.uuid4(), _uuid.uuid4(), "Ship", kind="milestone",
                     current_value=1.0)
    assert (done.start_value, done.target_value, done.progress) == (0.0, 1.0, 1.0)


def test_list_view_searches_filters_sorts_and_pages():
    owner = _uuid.uuid4()
    objective = Objective(_uuid.uuid4(), _uuid.uuid4(), _uuid.uuid4(), "Grow revenue", updated_at=T0)
    krs = [_kr("Revenue EU", 5, owner=owner, minutes=3, objective=objective.id),
           _kr("Revenue US", 9, status="at_risk", minutes=1, objective=objective.id),
           _kr("Churn", 1, owner=owner, status="off_track", minutes=2, objective=objective.id)]
    query = lambda **kw: list_items([objective], krs, [], ListQuery(**kw))
    assert [r["title"] for r in query(search="REVENUE", types=("key_result",))["items"]] == ["Revenue EU", "Revenue US"]
    assert [r["title"] for r in query(owner="unassigned")["items"]] == ["Grow revenue", "Revenue US"]
    assert [r["title"] for r in query(sort="-progress", types=("key_result",))["items"]] == ["Revenue US", "Revenue EU", "Churn"]
    assert [r["title"] for r in query(sort="status", types=("key_result",))["items"]] == ["Churn", "Revenue US", "Revenue EU"]
    assert [r["title"] for r in query(sort="-updated_at", types=("key_result",))["items"]][0] == "Revenue EU"
    page = query(sort="title", limit=2, offset=2)
    assert page["total"] == 4 and [r["title"] for r in page["items"]] == ["Revenue EU", "Revenue US"]
    assert query(status="off_track")["items"][0]["title"] == "Churn"
    # An Objective's status is the worst of its Key Results.
    assert query(types=("objective",))["items"][0]["status"] == "off_track"
