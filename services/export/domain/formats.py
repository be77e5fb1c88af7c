"""An export Document written as CSV (a ZIP of three tables), XLSX or JSON. Each writer takes a
binary file object and writes the document in one pass, row by row (XLSX in constant memory), so
a large week costs no more memory than its rows already do.

Why a ZIP of three CSV files rather than one items CSV repeating Session, week and owner filter on
every row: the Check-ins and the metadata (seal hashes, baseline week, who generated it) are tables
of their own; squeezed into the items table they would either be lost or repeated on every row,
and a reader would have to know which columns to ignore. Three plain tables open as they are in
any spreadsheet, and the ZIP keeps them together as one file that cannot be separated by accident
from its week and Session.
"""
from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import operator
import re
import zipfile
from datetime import datetime

import xlsxwriter

from services.export.domain.document import (
    CHECK_IN_COLUMNS,
    ITEM_COLUMNS,
    METADATA_FIELDS,
    Document,
)

CSV, XLSX, JSON = "csv", "xlsx", "json"
EXTENSIONS = {CSV: "csv.zip", XLSX: "xlsx", JSON: "json"}
MEDIA_TYPES = {CSV: "application/zip",
               XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
               JSON: "application/json"}
SCHEMA_VERSION = 1

# A text cell that a spreadsheet may run as a formula (CWE-1236): one starting with =, +, - or @,
# also after leading blanks or invisible characters (space, tab, CR, LF, NBSP, zero-width and
# bidi controls), which some spreadsheets strip before parsing; or starting with tab or CR.
_INVISIBLE = "\\s\u00a0\u061c\u180e\u200b-\u200f\u2028-\u202f\u205f-\u206f\ufeff"
FORMULA = re.compile(f"^[{_INVISIBLE}]*[=+\\-@\uff1d\uff0b\uff0d\uff20]|^[\t\r]")
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# A first character with which a cell may match FORMULA: a column none of whose cells starts with
# one needs no guard, which is checked over the column's distinct first characters only.
LEADS = re.compile(f"[{_INVISIBLE}=+\\-@\uff1d\uff0b\uff0d\uff20\t\r]")
_FIRST = operator.itemgetter(0)


def neutralise(cell):
    """Text that a spreadsheet would run as a formula gets a leading quote; numbers stay numbers."""
    if isinstance(cell, str) and cell and not cell[0].isalnum() and FORMULA.match(cell):
        return "'" + cell
    return cell


# Columns whose cells are numbers or true/false: every other column is text and guarded.
NUMBER_KEYS = frozenset({"start_value", "target_value", "current_value", "progress_percent", "confidence",
                         "delta_progress_points", "delta_value", "key_results_served", "value"})
FLAG_KEYS = frozenset({"new", "context", "repeated", "late", "late_amendment"})
LIST_KEYS = frozenset({"signals"})


FLAG_TEXT = {True: "true", False: "false"}  # .get(None) is None: an unknown flag stays empty
CHUNK = 2_000  # rows turned into CSV cells at a time: bounded memory, column-wise work


def csv_chunks(rows, keys):
    """The rows (sequences of cells in `keys` order), a chunk at a time, as tuples of their cells
    ready for csv.writer: text guarded against formulas, flags as true/false, lists joined, None
    left for the writer to leave empty.

    The work goes column by column over chunks of rows, so that it runs in C (zip, map, set): a text
    column is checked through the set of its cells' first characters, and only a column holding a
    suspect cell is guarded cell by cell. Per-cell Python would double the time."""
    kinds = [("flag" if k in FLAG_KEYS else "list" if k in LIST_KEYS else "number" if k in NUMBER_KEYS
              else "text") for k in keys]
    rows = iter(rows)
    while chunk := list(itertools.islice(rows, CHUNK)):
        columns = []
        for kind, column in zip(kinds, zip(*chunk)):
            if kind == "flag":
                column = map(FLAG_TEXT.get, column)
            elif kind != "number":
                if kind == "list":
                    column = list(map(", ".join, column))
                if any(map(LEADS.match, set(map(_FIRST, filter(None, column))))):
                    column = map(neutralise, column)
            columns.append(column)
        yield zip(*columns)


REPORT_EVERY = 2_000  # rows between two progress reports


def reporting(rows, on_rows):
    """`rows`, telling `on_rows(n)` every REPORT_EVERY rows (and the rest at the end) how many
    more were handed out; `rows` itself when nobody listens."""
    if on_rows is None:
        return rows

    def counted():
        count = 0
        for count, row in enumerate(rows, start=1):
            if count % REPORT_EVERY == 0:
                on_rows(REPORT_EVERY)
            yield row
        if count % REPORT_EVERY:
            on_rows(count % REPORT_EVERY)
    return counted()


# -- CSV (ZIP) -------------------------------------------------------------------------------

def write_csv_zip(doc: Document, out, on_rows=None) -> None:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        _csv_member(archive, "items.csv", [h for _, h in ITEM_COLUMNS], [k for k, _ in ITEM_COLUMNS],
                    reporting(doc.items, on_rows))
        _csv_member(archive, "check_ins.csv", [h for _, h in CHECK_IN_COLUMNS], [k for k, _ in CHECK_IN_COLUMNS],
                    reporting(doc.check_ins, on_rows))
        _csv_member(archive, "metadata.csv", ["Field", "Value"], ["label", "value"],
                    ((label, _plain(doc.metadata.get(key))) for key, label in METADATA_FIELDS))


def _csv_member(archive: zipfile.ZipFile, name: str, header, keys, rows) -> None:
    with archive.open(name, "w", force_zip64=True) as raw:
        # With a byte-order mark, Excel - what leadership opens exports with - reads the file as
        # UTF-8; without one it guesses the local code page and garbles "k€" and non-Latin names
        # (csv readers and LibreOffice skip it). Written here, not by the utf-8-sig codec, whose
        # encoder is slow Python where utf-8's is C.
        raw.write(codecs.BOM_UTF8)
        stream = io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=False)
        writer = csv.writer(stream, lineterminator="\r\n")  # RFC 4180
        writer.writerow(header)
        for chunk in csv_chunks(rows, keys):
            writer.writerows(chunk)
        stream.flush()
        stream.detach()


def _plain(value):
    """A metadata value as text (the metadata table mixes numbers, text and datetimes)."""
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else str(value)


# -- XLSX ------------------------------------------------------------------------------------

WORKBOOK_OPTIONS = {"strings_to_formulas": False, "strings_to_urls": False, "constant_memory": True}
_WIDTHS = {"kind": 11, "title": 40, "parent_path": 40, "owner_name": 20, "owner_email": 26, "unit": 8,
           "progress_percent": 11, "status": 12, "signals": 28, "comment": 50, "key_result": 36,
           "author_name": 20, "author_email": 26, "checked_in_at": 24, "id": 38, "key_result_id": 38}
_PERCENT = {"progress_percent"}
_POINTS = {"delta_progress_points"}
_INTEGERS = {"confidence", "key_results_served"}
_NUMBERS = {"start_value", "target_value", "current_value", "delta_value", "value"}
_LISTS = {"signals"}


def write_xlsx(doc: Document, out, on_rows=None) -> None:
    workbook = xlsxwriter.Workbook(out, WORKBOOK_OPTIONS)
    formats = {
        "header": workbook.add_format({"bold": True, "bg_color": "#E8EEF4", "bottom": 1, "text_wrap": True,
                                       "valign": "top"}),
        "percent": workbook.add_format({"num_format": "0.0%"}),
        "points": workbook.add_format({"num_format": "+0.0;-0.0;0.0"}),
        "integer": workbook.add_format({"num_format": "0"}),
        "number": workbook.add_format({"num_format": "General"}),
        "label": workbook.add_format({"bold": True, "valign": "top"}),
        "wrap": workbook.add_format({"text_wrap": True, "valign": "top"}),
    }
    _sheet(workbook, "Items", ITEM_COLUMNS, reporting(doc.items, on_rows), formats)
    _sheet(workbook, "Check-ins", CHECK_IN_COLUMNS, reporting(doc.check_ins, on_rows), formats)
    meta = workbook.add_worksheet("Metadata")
    meta.set_column(0, 0, 34)
    meta.set_column(1, 1, 90)
    meta.write_row(0, 0, ["Field", "Value"], formats["header"])
    meta.freeze_panes(1, 0)
    for n, (key, label) in enumerate(METADATA_FIELDS, start=1):
        meta.write_string(n, 0, label, formats["label"])
        _write(meta, n, 1, doc.metadata.get(key), formats["wrap"])
    workbook.close()


def _sheet(workbook, name: str, columns, rows, formats) -> None:
    sheet = workbook.add_worksheet(name)
    keys = [k for k, _ in columns]
    for col, key in enumerate(keys):
        cell_format = (formats["percent"] if key in _PERCENT else formats["points"] if key in _POINTS
                       else formats["integer"] if key in _INTEGERS else formats["number"] if key in _NUMBERS
                       else None)
        sheet.set_column(col, col, _WIDTHS.get(key, 13), cell_format)  # cells written plain take it
    sheet.write_row(0, 0, [h for _, h in columns], formats["header"])
    sheet.freeze_panes(1, 0)
    percents = [keys.index(k) for k in _PERCENT if k in keys]
    lists = [keys.index(k) for k in _LISTS if k in keys]
    write_row = sheet.write_row
    count = 0
    # Each row goes out through write_row as plain values, like raw XlsxWriter: numbers as numbers,
    # text as text (strings_to_formulas and strings_to_urls are off), None as nothing.
    for count, row in enumerate(rows, start=1):
        values = list(row)
        for col in percents:
            if values[col] is not None:
                values[col] /= 100  # the cell holds the fraction; its format shows percent
        for col in lists:
            values[col] = ", ".join(values[col]) or None
        write_row(count, 0, values)
    sheet.autofilter(0, 0, max(count, 1), len(keys) - 1)


def _write(sheet, row: int, col: int, value, cell_format) -> None:
    if value is None:
        return  # constant memory: a cell not written stays empty
    if isinstance(value, bool):
        sheet.write_boolean(row, col, value, cell_format)
    elif isinstance(value, (int, float)):
        sheet.write_number(row, col, value, cell_format)
    elif isinstance(value, list):
        sheet.write_string(row, col, ", ".join(value), cell_format)
    else:
        sheet.write_string(row, col, str(value), cell_format)  # never a formula, never a URL


# -- JSON ------------------------------------------------------------------------------------

def write_json(doc: Document, out, on_rows=None) -> None:
    """One object (docs/export.schema.json): metadata, items and check_ins, written item by item."""
    stream = io.TextIOWrapper(out, encoding="utf-8", newline="\n")
    stream.write('{"schema_version": %d,\n"metadata": ' % SCHEMA_VERSION)
    stream.write(json.dumps({key: doc.metadata.get(key) for key, _ in METADATA_FIELDS}, ensure_ascii=False,
                            default=_default))
    for name, columns, rows in (("items", ITEM_COLUMNS, doc.items), ("check_ins", CHECK_IN_COLUMNS, doc.check_ins)):
        keys = [key for key, _ in columns]
        stream.write(',\n"%s": [' % name)
        for n, row in enumerate(reporting(rows, on_rows)):
            stream.write(",\n" if n else "\n")
            stream.write(json.dumps(dict(zip(keys, row)), ensure_ascii=False, default=_default))
        stream.write("\n]")
    stream.write("}\n")
    stream.flush()
    stream.detach()


def _default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


WRITERS = {CSV: write_csv_zip, XLSX: write_xlsx, JSON: write_json}


def write(doc: Document, fmt: str, out, on_rows=None) -> None:
    """`on_rows(n)`: told every few thousand rows how many more were written (progress)."""
    WRITERS[fmt](doc, out, on_rows)
