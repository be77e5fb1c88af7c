"""Reading export files back (csv ZIP, xlsx, json) into one comparable shape, and what a week
view says those files must hold: written apart from services/export so a test compares the
export with the week view, not the export with itself."""
from __future__ import annotations

import csv
import io
import json
import zipfile

import openpyxl

from services.export.domain.document import CHECK_IN_COLUMNS, ITEM_COLUMNS, METADATA_FIELDS
from services.export.domain.formats import FORMULA

ITEM_KEYS = [k for k, _ in ITEM_COLUMNS]
CHECK_IN_KEYS = [k for k, _ in CHECK_IN_COLUMNS]
ITEM_HEADERS = [h for _, h in ITEM_COLUMNS]
CHECK_IN_HEADERS = [h for _, h in CHECK_IN_COLUMNS]
METADATA_LABELS = dict(METADATA_FIELDS)


NUMERIC = {"start_value", "target_value", "current_value", "progress_percent", "confidence",
           "delta_progress_points", "delta_value", "key_results_served", "value"}


def canon(value, key: str = "") -> str:
    """One spelling per value whatever the format: empty, true/false, numbers without noise."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(value)
    if key in NUMERIC or isinstance(value, (int, float)):
        return f"{round(float(value), 6) + 0.0:g}"  # -0.0 reads as 0
    return str(value)


def unquote(value: str) -> str:
    """A CSV cell as written before the formula guard quoted it."""
    return value[1:] if value.startswith("'") and FORMULA.match(value[1:]) else value


def read_csv_zip(content: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.namelist() == ["items.csv", "check_ins.csv", "metadata.csv"]
        tables = {}
        for name in archive.namelist():
            raw = archive.read(name)
            assert raw.startswith("\ufeff".encode()) and raw.endswith(b"\r\n")
            tables[name] = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    items, check_ins, meta = tables["items.csv"], tables["check_ins.csv"], tables["metadata.csv"]
    assert items[0] == ITEM_HEADERS and check_ins[0] == CHECK_IN_HEADERS and meta[0] == ["Field", "Value"]
    return {"items": [{k: canon(unquote(v), k) for k, v in zip(ITEM_KEYS, row)} for row in items[1:]],
            "check_ins": [{k: canon(unquote(v), k) for k, v in zip(CHECK_IN_KEYS, row)} for row in check_ins[1:]],
            "metadata": {label: value for label, value in meta[1:]}}


def read_xlsx(content: bytes) -> dict:
    workbook = openpyxl.load_workbook(io.BytesIO(content))  # not read_only: freeze panes, filters
    assert workbook.sheetnames == ["Items", "Check-ins", "Metadata"]
    out = {}
    for sheet_name, key, keys, headers in (("Items", "items", ITEM_KEYS, ITEM_HEADERS),
                                           ("Check-ins", "check_ins", CHECK_IN_KEYS, CHECK_IN_HEADERS)):
        sheet = workbook[sheet_name]
        rows = list(sheet.iter_rows(values_only=True))
        assert list(rows[0]) == headers
        assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref
        table = []
        for row, cells in zip(rows[1:], sheet.iter_rows(min_row=2)):  # sheet[n] is O(cells) per call
            values = dict(zip(keys, row))
            if values.get("progress_percent") is not None:
                values["progress_percent"] = round(values["progress_percent"] * 100, 1)
            for name, cell in zip(keys, cells):
                if name == "progress_percent" and cell.value is not None:
                    assert cell.number_format == "0.0%"
                if isinstance(cell.value, str):
                    assert cell.data_type == "s"  # text stays text: never a formula
            table.append({k: canon(v, k) for k, v in values.items()})
        out[key] = table
    meta = list(workbook["Metadata"].iter_rows(values_only=True))
    assert list(meta[0]) == ["Field", "Value"]
    out["metadata"] = {label: "" if value is None else str(value) for label, value in meta[1:]}
    return out


def read_json(content: bytes) -> dict:
    body = json.loads(content)
    assert body["schema_version"] == 1
    assert list(body["metadata"]) == [k for k, _ in METADATA_FIELDS]
    for row in body["items"]:
        assert list(row) == ITEM_KEYS
    return {"items": [{k: canon(v, k) for k, v in row.items()} for row in body["items"]],
            "check_ins": [{k: canon(v, k) for k, v in row.items()} for row in body["check_ins"]],
            "metadata": {METADATA_LABELS[k]: "" if v is None else str(v) for k, v in body["metadata"].items()}}


READERS = {"csv": read_csv_zip, "xlsx": read_xlsx, "json": read_json}


def expected_items(view: dict, names: dict) -> list[dict]:
    """The item rows a week view says an export holds (the subset of columns that identify them
    and carry the review): `names`: {user id: (name, email)}."""
    def who(user_id):
        if user_id is None:
            return ("", "")
        return names.get(str(user_id), ("(no longer a member)", ""))

    baseline = (view.get("deltas") or {}).get("against") is not None
    new = {(r["type"], str(r["id"])) for r in (view.get("deltas") or {}).get("new", [])}
    served: dict = {}
    for o in view["objectives"]:
        for kr in o["key_results"]:
            for i in kr.get("initiatives", []):
                served[str(i["id"])] = served.get(str(i["id"]), 0) + 1
    titles, parents, rows = {}, {}, []
    for o in view["objectives"]:
        titles[str(o["id"])], parents[str(o["id"])] = o["title"], o.get("parent_id")
        path, parent = [], o.get("parent_id")
        while parent is not None:
            path.insert(0, titles[str(parent)])
            parent = parents[str(parent)]
        owner = who(o["owner_id"])
        rows.append({"kind": "Objective", "title": o["title"], "parent_path": " › ".join(path),
                     "owner_name": owner[0], "owner_email": owner[1],
                     "progress_percent": canon(None if o.get("progress") is None else round(o["progress"] * 100, 1)),
                     "status": "", "new": canon((("objective", str(o["id"])) in new) if baseline else None),
                     "context": canon(bool(o["context"])), "repeated": "", "key_results_served": "",
                     "delta_progress_points": "", "id": str(o["id"])})
        for kr in o["key_results"]:
            delta = kr.get("delta") or {}
            owner = who(kr["owner_id"])
            rows.append({"kind": "Key Result", "title": kr["title"], "parent_path": " › ".join(path + [o["title"]]),
                         "owner_name": owner[0], "owner_email": owner[1],
                         "progress_percent": canon(round(kr["progress"] * 100, 1)), "status": kr["status"],
                         "new": canon(bool(delta.get("new")) if baseline else None),
                         "context": canon(bool(kr["context"])), "repeated": "", "key_results_served": "",
                         "delta_progress_points": canon(None if delta.get("progress_points") is None
                                                        else round(delta["progress_points"], 1)),
                         "id": str(kr["id"])})
            for i in kr.get("initiatives", []):
                owner = who(i["owner_id"])
                rows.append({"kind": "Initiative", "title": i["title"],
                             "parent_path": " › ".join(path + [o["title"], kr["title"]]),
                             "owner_name": owner[0], "owner_email": owner[1], "progress_percent": "",
                             "status": i["status"],
                             "new": canon((("initiative", str(i["id"])) in new) if baseline else None),
                             "context": canon(bool(i.get("context"))),
                             "repeated": canon(served[str(i["id"])] > 1),
                             "key_results_served": canon(served[str(i["id"])]),
                             "delta_progress_points": "", "id": str(i["id"])})
    return rows


def project(rows: list[dict], like: list[dict]) -> list[dict]:
    """Each row cut to the columns of `like`'s rows."""
    keys = list(like[0]) if like else []
    return [{k: row[k] for k in keys} for row in rows]
