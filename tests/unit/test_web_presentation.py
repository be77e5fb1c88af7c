"""The web pages' pure parts: numbers and dates for people, the week to open, a signal narrowing,
compare shortcuts, the trend chart's geometry."""
from __future__ import annotations

import pytest

from services.gateway.web import charts, filters, review
from services.gateway.web.people import People, Person


@pytest.mark.parametrize("progress, shown", [
    (0.39375000000000004, "39.4%"), (0.5, "50%"), (1.0, "100%"), (0.0, "0%"), (None, "–"), (0.12345, "12.3%"),
])
def test_progress_reads_as_a_percentage_without_float_noise(progress, shown):
    assert filters.percent(progress) == shown


@pytest.mark.parametrize("value, unit, shown", [
    (8.85, "h", "8.85 h"), (0.1 + 0.2, "", "0.3"), (1_200_000, "users", "1,200,000 users"), (2.0, "M€", "2 M€"),
    (45.0, "%", "45%"), (-1.5, "pts", "-1.5 pts"),
])
def test_values_keep_their_own_precision_and_unit(value, unit, shown):
    assert filters.with_unit(value, unit) == shown


def test_signed_deltas_use_a_real_minus_and_name_zero():
    assert filters.signed(8.0, 1, " pts") == "+8 pts"
    assert filters.signed(-1.7) == "−1.7"
    assert filters.signed(0.04) == "±0"


def test_week_dates_are_in_the_sessions_timezone():
    # 2026-W48 in Berlin: Monday 23 Nov 00:00 local is 22 Nov 23:00 UTC
    assert filters.week_dates("2026-11-22T23:00:00+00:00", "2026-11-29T23:00:00+00:00", "Europe/Berlin") == "23–29 Nov"
    assert filters.week_dates("2026-11-29T23:00:00+00:00", "2026-12-06T23:00:00+00:00", "Europe/Berlin") == \
        "30 Nov – 6 Dec"
    week = {"week": "2026-W48", "starts_at": "2026-11-22T23:00:00+00:00", "ends_at": "2026-11-29T23:00:00+00:00"}
    assert filters.week_title(week, "Europe/Berlin") == "2026-W48 · 23–29 Nov"
    assert filters.local_time("2026-11-25T11:29:00+00:00", "Europe/Berlin", "%H:%M") == "12:29"


def _weeks(*statuses):
    return [{"week": f"2026-W{40 + i}", "status": s} for i, s in enumerate(statuses)]


def test_the_page_opens_the_live_week_else_the_last_saved_one():
    assert review.default_week(_weeks("sealed", "sealed", "current", "future")) == "2026-W42"
    assert review.default_week(_weeks("no_snapshot", "sealed", "past", "future")) == "2026-W42"
    assert review.default_week(_weeks("future", "future")) == "2026-W40"


def test_neighbours_and_compare_shortcuts():
    weeks = _weeks("sealed", "sealed", "sealed", "current", "future")
    assert review.neighbours(weeks, "2026-W40")["previous"] is None
    assert review.neighbours(weeks, "2026-W41")["next"]["week"] == "2026-W42"
    saved = review.saved_weeks(weeks)
    shortcuts = review.shortcuts(saved)
    assert [shortcuts[k]["week"] for k in ("start", "middle", "end")] == ["2026-W40", "2026-W41", "2026-W43"]
    assert review.shortcuts([]) == {}


def _view():
    initiative = {"id": "i1", "title": "Ritual", "owner_id": None, "status": "in_progress", "signals": ["stale"]}
    return {"objectives": [
        {"id": "o1", "title": "O", "owner_id": "u1", "depth": 0, "progress": 0.5, "context": False, "key_results": [
            {"id": "k1", "title": "A", "owner_id": "u1", "progress": 0.25, "signals": ["at_risk"], "initiatives": [],
             "delta": {"new": True}},
            {"id": "k2", "title": "B", "owner_id": None, "progress": 0.75, "signals": [],
             "initiatives": [initiative], "delta": None}]},
        {"id": "o2", "title": "P", "owner_id": "u2", "depth": 0, "progress": 0.1, "context": False, "key_results": [
            {"id": "k3", "title": "C", "owner_id": "u2", "progress": 0.1, "signals": [], "initiatives": [initiative],
             "delta": None}]}],
        "check_ins": [{"key_result_id": "k1", "checked_in_at": "2026-11-24T10:00:00+00:00", "author_id": "u1"},
                      {"key_result_id": "k1", "checked_in_at": "2026-11-25T10:00:00+00:00", "author_id": "gone"}]}


def test_a_clicked_signal_narrows_to_the_items_carrying_it():
    view = _view()
    assert [o["id"] for o in review.narrow(view, None)] == ["o1", "o2"]
    at_risk = review.narrow(view, "at_risk")
    assert [(o["id"], [k["id"] for k in o["key_results"]]) for o in at_risk] == [("o1", ["k1"])]
    stale = review.narrow(view, "stale")  # through the Initiative connected to k2 and k3
    assert [(o["id"], [k["id"] for k in o["key_results"]]) for o in stale] == [("o1", ["k2"]), ("o2", ["k3"])]
    assert review.narrow(view, "moved") == []


def test_present_names_people_and_keeps_a_shared_initiative_once():
    people = People([Person("u1", "Ada", "ada@example.com", "member"), Person("u2", "Bo", "bo@example.com", "owner")])
    view = _view()
    shown = review.present(view["objectives"], people, review.check_ins_by_key_result(view))
    k1, k2 = shown[0].key_results
    assert (k1.owner_name, k1.owner_email, k1.pct, k1.bar) == ("Ada", "ada@example.com", "25%", 25.0)
    assert k2.owner_name == "Unassigned" and k2.owner_email == ""
    assert [c.author_name for c in k1.check_ins] == ["Former member", "Ada"]  # newest first
    assert k2.initiatives[0] is shown[1].key_results[0].initiatives[0]
    with pytest.raises(AttributeError):
        k1.no_such_field  # noqa: B018 - templates must see a missing field as undefined


def test_the_trend_chart_maps_progress_to_the_plot_and_averages_objectives_like_the_snapshot():
    trend = {"weeks": ["2026-W40", "2026-W41"], "key_results": [
        {"id": "k1", "title": "A", "points": [{"week": "2026-W40", "progress": 0.0}, {"week": "2026-W41", "progress": 1.0}]},
        {"id": "k2", "title": "B", "points": [{"week": "2026-W41", "progress": 0.5}]},
        {"id": "gone", "title": "Removed", "points": [{"week": "2026-W40", "progress": 0.2}]}]}
    tree = {"objectives": [{"objective": {"id": "o1", "title": "O"}, "children": [], "key_results": [
        {"key_result": {"id": "k1", "weight": 3.0}}, {"key_result": {"id": "k2", "weight": 1.0}}]}]}
    series = charts.trend_series(trend, tree)
    assert [s.title for s in series] == ["O", "Key Results no longer in the Session"]
    objective = series[0]
    assert [p["progress"] for p in objective.points] == [0.0, pytest.approx(0.75)]  # weights do not count
    chart = charts.chart(trend["weeks"], [objective, *objective.key_results])
    first, second = chart.lines[0]["dots"]
    assert first[0] == charts.LEFT and first[1] == charts.HEIGHT - charts.BOTTOM  # 0% at the bottom left
    assert second[0] == charts.WIDTH - charts.RIGHT and second[2] == "O, 2026-W41: 75%"
    assert len(chart.lines[2]["dots"]) == 1  # a week without a reading draws no point


@pytest.mark.parametrize("typed, sent", [
    ("8.85", 8.85), ("8,85", 8.85), (" 12 ", 12.0), ("", None), ("1 200", 1200.0),
    ("1,200", "1,200"), ("lots", "lots"), ("nan", "nan"), ("inf", "inf"),
])
def test_typed_numbers_reach_the_service_as_numbers_or_as_typed(typed, sent):
    from services.gateway.web.pages import _number

    assert _number(typed) == sent


def test_a_notice_goes_into_the_query_before_the_fragment():
    from services.gateway.web.pages import with_notice

    assert with_notice("/s/1/snapshot?week=2026-W49#kr-7", "checked_in") == \
        "/s/1/snapshot?week=2026-W49&done=checked_in#kr-7"
    assert with_notice("/key_results/7", "checked_in") == "/key_results/7?done=checked_in"


def test_a_very_large_week_is_shown_a_page_of_objectives_at_a_time():
    objectives = [{"id": f"o{n}", "key_results": [{}] * 10} for n in range(1_000)]  # 10,000 Key Results
    shown, paging = review.page_of(objectives, 3)
    assert [o["id"] for o in shown][:1] == ["o200"] and len(shown) == review.OBJECTIVES_PER_PAGE
    assert paging == {"page": 3, "pages": 10, "first": 201, "last": 300, "total": 1_000}
    assert review.page_of(objectives, 99)[1]["page"] == 10
    small = objectives[:100]  # 1,000 Key Results: all on one page
    assert review.page_of(small, 2) == (small, None)
