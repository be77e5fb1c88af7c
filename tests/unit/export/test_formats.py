"""Export content and formats: every format read back (csv ZIP, openpyxl, json) equals the week
view it was built from; the formula guard; numbers for people; metadata."""
import csv
import io
import json
import uuid
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.export.domain import document, formats
from services.export.domain.document import human_number, percent
from services.export.domain.formats import FORMULA_TRIGGERS, neutralise
from services.export.domain.model import download_title, unexportable_reason
from tests.export_files import ITEM_KEYS, NUMERIC, READERS, canon, expected_items, project
from tests.unit.export.fakes import key_result, objective, week_view

ANA, BOB = uuid.uuid4(), uuid.uuid4()
NAMES = {str(ANA): ("Ana López", "ana@example.com"), str(BOB): ("Bob Stone", "bob@example.com")}
PEOPLE = {k: document.Person(*v) for k, v in NAMES.items()}
GENERATED = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)


def review_week(owner="all") -> dict:
    """A sealed week of a multi-week Session: a cascade, an Initiative under two Key Results, a
    Check-in and a late amendment, deltas against the week before."""
    o1, o2, kr1, kr2, playbook = "o1", "o2", "kr1", "kr2", "i1"
    initiative = {"id": playbook, "title": "Sales playbook", "owner_id": BOB, "status": "in_progress",
                  "signals": ["active_without_impact"], "context": False}
    objectives = [
        {"id": o1, "title": "Grow revenue", "owner_id": ANA, "parent_id": None, "depth": 0,
         "progress": 0.4166666666666667, "context": owner != "all" and owner != str(ANA),
         "key_results": [dict(key_result("ARR", owner_id=ANA, start=10.0, target=20.0, current=13.3,
                                         progress=0.33000000000000007, status="at_risk"),
                              id=kr1, confidence=6, initiatives=[initiative], signals=["status_changed", "moved", "at_risk"],
                              delta={"new": False, "progress_points": 12.46, "value": 0.30000000000000004,
                                     "status_from": "on_track", "status_to": "at_risk"})]},
        {"id": o2, "title": "Win EMEA", "owner_id": BOB, "parent_id": o1, "depth": 1, "progress": 0.5,
         "context": False,
         "key_results": [dict(key_result("=EMEA deals", owner_id=BOB, start=0.0, target=8.0, current=4.0,
                                         progress=0.5, unit="deals"),
                              id=kr2, confidence=None, initiatives=[initiative], signals=[],
                              delta={"new": True, "progress_points": None, "value": None, "status_from": None,
                                     "status_to": "on_track"})]},
    ]
    view = week_view(session_name="Q4 2026", week="2026-W48", status="sealed", objectives=objectives)
    view["session"]["timezone"] = "Europe/Berlin"
    view["owner"] = owner
    view["starts_at"] = datetime(2026, 11, 22, 23, 0, tzinfo=timezone.utc)
    view["ends_at"] = datetime(2026, 11, 29, 23, 0, tzinfo=timezone.utc)
    view["seal"] = {"content_hash": "c" * 64, "previous_hash": "b" * 64,
                    "sealed_at": datetime(2026, 11, 30, 0, 5, tzinfo=timezone.utc)}
    view["deltas"] = {"against": "2026-W47", "new": [{"type": "key_result", "id": kr2, "title": "=EMEA deals"}],
                      "removed": [{"type": "initiative", "id": "i0", "title": "Old pilot"}]}
    view["check_ins"] = [{"id": uuid.uuid4(), "key_result_id": kr1, "value": 13.3, "status": "at_risk",
                          "confidence": 6, "comment": "+1 lost deal; =why", "author_id": ANA, "late": False,
                          "checked_in_at": datetime(2026, 11, 26, 15, 4, 5, tzinfo=timezone.utc)}]
    view["late_amendments"] = [{"id": uuid.uuid4(), "key_result_id": kr2, "value": 5.0, "status": "on_track",
                                "confidence": 7, "comment": "forgot Friday's deal", "author_id": BOB,
                                "late": True, "checked_in_at": datetime(2026, 11, 29, 22, 30, tzinfo=timezone.utc)}]
    return view


def build(view, people=PEOPLE):
    return document.build(view, people=people, workspace_name="Acme", generated_at=GENERATED,
                          generated_by=ANA, version="1.2.3")


def written(view, fmt) -> bytes:
    out = io.BytesIO()
    formats.write(build(view), fmt, out)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "json"])
@pytest.mark.parametrize("owner", ["all", str(ANA)])
def test_each_format_read_back_equals_the_week_view(fmt, owner):
    view = review_week(owner)
    read = READERS[fmt](written(view, fmt))

    expected = expected_items(view, NAMES)
    assert project(read["items"], expected) == expected
    assert [r["kind"] for r in read["items"]] == ["Objective", "Key Result", "Initiative", "Objective",
                                                  "Key Result", "Initiative"]
    arr, playbook, emea = read["items"][1], read["items"][2], read["items"][4]
    assert (arr["delta_progress_points"], arr["delta_value"], arr["status_from"], arr["status_to"], arr["new"]) \
        == ("12.5", "0.3", "on_track", "at_risk", "false")
    assert (arr["current_value"], arr["progress_percent"], arr["confidence"], arr["signals"]) \
        == ("13.3", "33", "6", "status_changed, moved, at_risk")
    assert (emea["new"], emea["delta_progress_points"], emea["title"]) == ("true", "", "=EMEA deals")
    assert (playbook["repeated"], playbook["key_results_served"], playbook["owner_name"]) == ("true", "2", "Bob Stone")
    assert read["items"][5]["parent_path"] == "Grow revenue › Win EMEA › =EMEA deals"
    assert read["items"][0]["context"] == canon(owner != "all" and owner != str(ANA))

    check_in, amendment = read["check_ins"]
    assert (check_in["author_name"], check_in["checked_in_at"], check_in["comment"], check_in["late_amendment"]) \
        == ("Ana López", "2026-11-26 16:04:05 CET", "+1 lost deal; =why", "false")
    assert (amendment["key_result"], amendment["author_email"], amendment["late"], amendment["late_amendment"]) \
        == ("=EMEA deals", "bob@example.com", "true", "true")

    meta = read["metadata"]
    assert meta["Workspace"] == "Acme" and meta["Session"] == "Q4 2026" and meta["Week"] == "2026-W48"
    assert (meta["Week starts"], meta["Week ends"], meta["Timezone"]) == ("2026-11-23", "2026-11-29", "Europe/Berlin")
    assert meta["State"].startswith("sealed")
    assert (meta["Seal hash"], meta["Previous seal hash"]) == ("c" * 64, "b" * 64)
    assert meta["Baseline week (deltas compare against)"] == "2026-W47"
    assert meta["Removed since baseline"] == "initiative: Old pilot"
    assert meta["Owner filter"] == ("all owners" if owner == "all" else "Ana López <ana@example.com>")
    assert meta["Generated at"] == "2026-12-01 10:30:00 CET"
    assert meta["Generated by"] == "Ana López <ana@example.com>"
    assert meta["okrsnap version"] == "1.2.3"
    assert "strategy and owner context" in meta["Notice"]


def test_the_csv_zip_quotes_formulas_and_the_xlsx_and_json_keep_text_as_text():
    view = review_week()
    with zipfile.ZipFile(io.BytesIO(written(view, "csv"))) as archive:
        items = archive.read("items.csv").decode("utf-8-sig")
        check_ins = archive.read("check_ins.csv").decode("utf-8-sig")
    assert "'=EMEA deals" in items and "'+1 lost deal; =why" in check_ins
    sheet = openpyxl.load_workbook(io.BytesIO(written(view, "xlsx")))["Items"]
    cell = sheet["B6"]
    assert (cell.value, cell.data_type) == ("=EMEA deals", "s")
    assert json.loads(written(view, "json"))["items"][4]["title"] == "=EMEA deals"


def test_xlsx_has_frozen_headers_filters_widths_and_number_formats():
    workbook = openpyxl.load_workbook(io.BytesIO(written(review_week(), "xlsx")))
    items = workbook["Items"]
    assert items.freeze_panes == "A2" and items.auto_filter.ref == "A1:V7"
    assert items.column_dimensions["B"].width > 30  # titles
    assert items["J3"].number_format == "0.0%" and items["J3"].value == pytest.approx(0.33)
    assert items["M3"].number_format == "+0.0;-0.0;0.0" and items["M3"].value == 12.5
    assert items["H3"].value == 13.3 and items["Q3"].value is False and items["Q6"].value is True
    assert workbook["Check-ins"].freeze_panes == "A2"
    assert workbook["Metadata"]["A2"].value == "Workspace"


def test_json_matches_its_schema():
    schema = json.loads((Path(__file__).parents[3] / "docs" / "export.schema.json").read_text())
    body = json.loads(written(review_week(str(ANA)), "json"))
    _validate(body, schema, schema)


def _validate(value, schema, root, where="$"):
    """The few JSON Schema keywords docs/export.schema.json uses (no validator dependency)."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    types = schema.get("type")
    if types:
        types = [types] if isinstance(types, str) else types
        python = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
                  "integer": int, "number": (int, float)}
        assert any(isinstance(value, python[t]) and not (t in ("integer", "number") and isinstance(value, bool))
                   for t in types), f"{where}: {value!r} is not {types}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            assert key in value, f"{where}: {key} missing"
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(schema.get("properties", {})), f"{where}: {set(value) - set(schema['properties'])}"
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                _validate(value[key], sub, root, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for n, item in enumerate(value):
            _validate(item, schema["items"], root, f"{where}[{n}]")


def test_an_initiative_under_one_key_result_is_not_repeated_and_unknown_people_are_said_so():
    view = week_view(objectives=[dict(objective("Solo", owner_id=BOB), id="o", key_results=[
        dict(key_result("KR", owner_id=uuid.uuid4()), id="k", initiatives=[
            {"id": "i", "title": "Pilot", "owner_id": None, "status": "planned", "signals": ["unassigned"]}])])])
    doc = build(view)
    objective_row, kr_row, initiative_row = doc.items
    assert (initiative_row["repeated"], initiative_row["key_results_served"]) == (False, 1)
    assert (initiative_row["owner_name"], initiative_row["owner_email"]) == ("", "")  # unassigned
    assert kr_row["owner_name"] == "(no longer a member)"
    assert objective_row["owner_email"] == "bob@example.com"
    assert doc.metadata["baseline_week"].startswith("none")
    assert kr_row["new"] is None  # no baseline: nothing is new against it


def test_numbers_for_people():
    assert human_number(0.1 + 0.2) == 0.3
    assert human_number(20.0) == 20 and isinstance(human_number(20.0), int)
    assert human_number(1234567.891) == 1234567.891
    assert human_number(-0.0) == 0
    assert human_number(float("nan")) is None
    assert percent(0.33333333) == 33.3 and percent(1.0) == 100 and percent(None) is None


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", " =1", "\n=1", "\u00a0=1",
                                  "\u200b=1", "\u202e=1", "\u2066@x", "  \u200d-x", "\ufeff+1", "\t", "\rx"])
def test_the_formula_guard_covers_leading_blanks_and_invisible_characters(cell):
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["ARR", "a=b", " plain", "\u00a0text", "", "'=already"])
def test_plain_text_is_left_alone(cell):
    assert neutralise(cell) == cell


@given(st.text())
def test_neutralise_never_leaves_a_formula_and_loses_nothing(text):
    cell = neutralise(text)
    assert not cell.startswith(FORMULA_TRIGGERS)
    assert cell in (text, "'" + text)
    assert not formats.FORMULA.match(cell)


@settings(max_examples=40, deadline=None)
@given(st.text(), st.text(), st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_no_text_cell_of_a_written_csv_starts_a_formula(objective_title, kr_title, value):
    view = week_view(objectives=[dict(objective(objective_title), id="o", key_results=[
        dict(key_result(kr_title, start=value, current=value), id="k")])])
    with zipfile.ZipFile(io.BytesIO(written(view, "csv"))) as archive:
        rows = list(csv.reader(io.StringIO(archive.read("items.csv").decode("utf-8-sig"), newline="")))
    for row in rows[1:]:
        for key, cell in zip(ITEM_KEYS, row):
            if key not in NUMERIC:  # a negative number stays a number
                assert not formats.FORMULA.match(cell)
    assert float(rows[2][5]) == pytest.approx(value, rel=1e-11, abs=1e-11)


def test_download_titles_say_what_the_file_is_and_carry_nothing_dangerous():
    assert download_title("Q4 2026", "2026-W48", "all") == "Q4 2026-2026-W48-all"
    assert download_title('a/b\\c"d\r\ne\u202e', "2026-W48", "Ana López") == "a_b_c_d_e_-2026-W48-Ana López"
    assert len(download_title("x" * 500, "2026-W48", "y" * 500)) <= 120


def test_a_week_without_a_snapshot_names_the_nearest_saved_weeks():
    view = week_view(week="2026-W47", status="no_snapshot", before="2026-W46", after="2026-W49")

    assert unexportable_reason(view) == \
        "No Snapshot is saved for 2026-W47; nearest saved weeks: 2026-W46, 2026-W49."
    assert "no week of this Session is saved yet" in unexportable_reason(week_view(status="no_snapshot"))
    assert "has not started yet" in unexportable_reason(week_view(status="future"))
    assert unexportable_reason(week_view(status="current")) is None
    assert unexportable_reason(week_view(status="past")) is None


@st.composite
def random_weeks(draw):
    """A random week view: a cascade, Key Results, Initiatives shared between them, owners some
    of whom are members, context rows, deltas against a baseline or none."""
    people = [ANA, BOB, uuid.uuid4(), None]
    names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)  # XLSX: no control chars
    initiatives = [{"id": f"i{n}", "title": draw(names), "owner_id": draw(st.sampled_from(people)),
                    "status": draw(st.sampled_from(["planned", "in_progress", "done"])),
                    "signals": draw(st.lists(st.sampled_from(["unassigned", "active_without_impact"]), unique=True))}
                   for n in range(draw(st.integers(0, 4)))]
    baseline = draw(st.booleans())
    objectives, new = [], []
    for n in range(draw(st.integers(0, 5))):
        parent = draw(st.sampled_from([None] + [o["id"] for o in objectives]))
        key_results = []
        for m in range(draw(st.integers(0, 3))):
            progress = draw(st.floats(0, 1.5, allow_nan=False))
            is_new = baseline and draw(st.booleans())
            key_results.append(dict(
                key_result(draw(names), owner_id=draw(st.sampled_from(people)),
                           current=draw(st.floats(-1e6, 1e6, allow_nan=False)), progress=progress,
                           context=draw(st.booleans())),
                id=f"k{n}-{m}", confidence=draw(st.none() | st.integers(0, 10)),
                initiatives=draw(st.lists(st.sampled_from(initiatives), unique_by=lambda i: i["id"])) if initiatives else [],
                signals=[], delta={"new": is_new, "progress_points": None if is_new else draw(st.floats(-100, 100)),
                                   "value": None, "status_from": None, "status_to": "on_track"}))
        objectives.append({"id": f"o{n}", "title": draw(names), "owner_id": draw(st.sampled_from(people)),
                           "parent_id": parent, "progress": draw(st.none() | st.floats(0, 1)),
                           "context": draw(st.booleans()), "key_results": key_results})
        if baseline and draw(st.booleans()):
            new.append({"type": "objective", "id": f"o{n}", "title": objectives[-1]["title"]})
    view = week_view(objectives=objectives)
    view["owner"] = draw(st.sampled_from(["all", "unassigned", str(ANA)]))
    view["deltas"] = {"against": "2026-W47" if baseline else None, "new": new, "removed": []}
    return view


@settings(max_examples=15, deadline=None)
@given(random_weeks(), st.sampled_from(["csv", "xlsx", "json"]))
def test_any_week_read_back_in_any_format_equals_its_week_view(view, fmt):
    read = READERS[fmt](written(view, fmt))
    expected = expected_items(view, NAMES)
    assert project(read["items"], expected) == expected
    assert read["metadata"]["Rows"] == str(len(expected))


TEXT_KEYS = [k for k in ITEM_KEYS if k not in formats.NUMBER_KEYS | formats.FLAG_KEYS | formats.LIST_KEYS]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({key: st.one_of(st.none(), st.text(max_size=6)) for key in TEXT_KEYS}),
                min_size=1, max_size=30),
       st.lists(st.lists(st.text(max_size=4), max_size=3), min_size=30, max_size=30))
def test_csv_cells_are_guarded_column_by_column_exactly_like_cell_by_cell(texts, signals):
    """The column-wise writer (one search over a column joined) against neutralise on each cell:
    the same cells, whatever NULs, blanks or invisible characters the text holds."""
    rows = [{**dict.fromkeys(ITEM_KEYS), **cells, "signals": signals[n], "new": n % 2 == 0, "context": None}
            for n, cells in enumerate(texts)]
    written = [cell for chunk in formats.csv_chunks([tuple(row[k] for k in ITEM_KEYS) for row in rows], ITEM_KEYS)
               for cell in chunk]
    expected = [tuple(neutralise(", ".join(row[k])) if k == "signals"
                      else formats.FLAG_TEXT.get(row[k]) if k in formats.FLAG_KEYS
                      else neutralise(row[k]) for k in ITEM_KEYS) for row in rows]
    assert written == expected


def _many(objectives: int) -> dict:
    """A week of `objectives` Objectives, 5 Key Results each, with Check-ins and Initiatives."""
    tree, check_ins = [], []
    for o in range(objectives):
        krs = [dict(key_result(f"KR {o}.{k}", owner_id=ANA, current=10.0 + k + o % 7 / 10), id=f"k{o}-{k}",
                    signals=["moved"], initiatives=[{"id": f"i{o}", "title": f"Pilot {o}", "owner_id": BOB}])
               for k in range(5)]
        tree.append(dict(objective(f"Objective {o}", owner_id=BOB, key_results=krs), id=f"o{o}"))
        check_ins.append({"id": str(uuid.uuid4()), "key_result_id": f"k{o}-0", "value": 12.5, "status": "on_track",
                          "author_id": ANA, "checked_in_at": datetime(2026, 11, 26, 15, tzinfo=timezone.utc)})
    view = week_view(objectives=tree)
    view["check_ins"] = check_ins
    return view


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "json"])
def test_an_export_holds_no_copy_of_its_rows_beyond_the_week_view(fmt, tmp_path):
    """Laying out and writing the file adds memory that does not grow with the rows (a few lookups
    per Key Result aside): the rows are made as the writer takes them, never all held at once."""
    import gc
    import tracemalloc

    peaks, rows = [], []
    for objectives in (100, 1_000):
        view = _many(objectives)  # what the week view itself takes is not counted
        gc.collect()
        tracemalloc.start()
        doc = build(view)
        with open(tmp_path / f"export.{fmt}", "wb") as out:
            formats.write(doc, fmt, out)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        rows.append(len(doc.items) + len(doc.check_ins))
    per_row = (peaks[1] - peaks[0]) / (rows[1] - rows[0])
    assert rows[1] == 10 * rows[0] == 12_000
    assert per_row < 150, f"{per_row:.0f} bytes more per row (rows held as dicts took about 1,000)"
