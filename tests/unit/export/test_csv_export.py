import csv
import io
import uuid

from hypothesis import given
from hypothesis import strategies as st

from services.export.domain import csv_export
from services.export.domain.csv_export import (
    COLUMNS,
    FORMULA_TRIGGERS,
    neutralise,
    render,
    rows,
)
from services.export.domain.model import unexportable_reason
from tests.unit.export.fakes import key_result, objective, week_view


def parse(content: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"), newline="")))


def test_one_row_per_key_result_and_one_for_an_objective_without_any():
    owner = uuid.uuid4()
    view = week_view(objectives=[
        objective("Grow revenue", owner_id=owner, key_results=[key_result("ARR"), key_result("Churn")]),
        objective("Hire well"),
    ])

    parsed = parse(render(rows(view)))

    assert [(r["objective"], r["key_result"]) for r in parsed] == [
        ("Grow revenue", "ARR"), ("Grow revenue", "Churn"), ("Hire well", "")]
    assert parsed[0]["objective_owner_id"] == str(owner)
    assert parsed[0]["key_result_owner_id"] == ""
    assert parsed[2]["start_value"] == parsed[2]["progress"] == parsed[2]["status"] == ""


def test_values_and_progress_in_percent():
    view = week_view(session_name="Q4 2026", objectives=[objective(key_results=[
        key_result(start=10.0, target=20.0, current=15.0, unit="k€", progress=0.5, status="at_risk")])])

    [row] = parse(render(rows(view)))

    assert row == {"session": "Q4 2026", "week": "2026-W48", "objective": "Grow revenue",
                   "objective_owner_id": "", "key_result": "ARR", "key_result_owner_id": "",
                   "start_value": "10.0", "target_value": "20.0", "current_value": "15.0",
                   "unit": "k€", "progress": "50.0", "status": "at_risk", "context": "false"}


def test_context_items_are_marked():
    view = week_view(objectives=[objective("Parent", context=True),
                                 objective("Mine", key_results=[key_result(context=False)])])

    assert [r["context"] for r in parse(render(rows(view)))] == ["true", "false"]


def test_header_bom_and_crlf():
    content = render([])
    assert content.startswith("\ufeff".encode())
    assert content.decode(csv_export.ENCODING) == ",".join(COLUMNS) + "\r\n"


def test_formula_titles_are_neutralised_but_negative_numbers_stay_numbers():
    view = week_view(objectives=[objective("=HYPERLINK(\"http://evil\")", key_results=[
        key_result("@SUM(A1)", start=-5.0, target=-1.0, current=-3.0, unit="-kg")])])

    [row] = parse(render(rows(view)))

    assert row["objective"] == "'=HYPERLINK(\"http://evil\")"
    assert row["key_result"] == "'@SUM(A1)"
    assert row["unit"] == "'-kg"
    assert (row["start_value"], row["target_value"], row["current_value"]) == ("-5.0", "-1.0", "-3.0")


@given(st.text())
def test_neutralise_never_leaves_a_formula_and_loses_nothing(text):
    cell = neutralise(text)
    assert not cell.startswith(FORMULA_TRIGGERS)
    assert cell in (text, "'" + text)
    assert (cell != text) == text.startswith(FORMULA_TRIGGERS)


@given(st.text(), st.text(), st.floats(allow_nan=False, allow_infinity=False))
def test_no_text_cell_of_a_written_file_starts_a_formula(objective_title, kr_title, value):
    view = week_view(objectives=[objective(objective_title, key_results=[
        key_result(kr_title, start=value, current=value)])])

    [row] = parse(render(rows(view)))

    for column in ("session", "week", "objective", "key_result", "unit", "status"):
        assert not row[column].startswith(FORMULA_TRIGGERS)
    assert row["objective"] in (objective_title, "'" + objective_title)
    assert float(row["start_value"]) == value


def test_a_week_without_a_snapshot_names_the_nearest_saved_weeks():
    view = week_view(week="2026-W47", status="no_snapshot", before="2026-W46", after="2026-W49")

    assert unexportable_reason(view) == \
        "No Snapshot is saved for 2026-W47; nearest saved weeks: 2026-W46, 2026-W49."
    assert "no week of this Session is saved yet" in unexportable_reason(week_view(status="no_snapshot"))
    assert "has not started yet" in unexportable_reason(week_view(status="future"))
    assert unexportable_reason(week_view(status="current")) is None
    assert unexportable_reason(week_view(status="past")) is None
