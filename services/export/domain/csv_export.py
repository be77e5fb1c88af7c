"""A week view as CSV. Pure functions: no I/O.

One row per Key Result; an Objective without Key Results still gets one row, so the file holds
exactly the items the requester sees on screen (context items included and marked).
"""
from __future__ import annotations

import csv
import io
from typing import Iterable

COLUMNS = ("session", "week", "objective", "objective_owner_id", "key_result",
           "key_result_owner_id", "start_value", "target_value", "current_value", "unit",
           "progress", "status", "context")

# A text cell starting with one of these is run as a formula by spreadsheets (CWE-1236).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

# With a byte-order mark, Excel - what leadership opens exports with - reads the file as UTF-8;
# without one it guesses the local code page and garbles units like "k€" and non-Latin names.
# csv readers and LibreOffice skip the mark.
ENCODING = "utf-8-sig"

Cell = str | float | int | None


def neutralise(cell: Cell) -> Cell:
    """Text that a spreadsheet would run as a formula gets a leading quote; numbers stay numbers."""
    if isinstance(cell, str) and cell.startswith(FORMULA_TRIGGERS):
        return "'" + cell
    return cell


def _id(value) -> str:
    return "" if value is None else str(value)


def _percent(progress: float | None) -> float | None:
    return None if progress is None else round(progress * 100, 1)


def rows(view: dict) -> list[tuple[Cell, ...]]:
    session, week = view["session"]["name"], view["week"]
    out = []
    for objective in view["objectives"]:
        lead = (session, week, objective["title"], _id(objective["owner_id"]))
        key_results = objective["key_results"]
        if not key_results:
            out.append(lead + ("", "", None, None, None, "", None, "", objective["context"]))
        for kr in key_results:
            out.append(lead + (kr["title"], _id(kr["owner_id"]), kr["start_value"], kr["target_value"],
                               kr["current_value"], kr["unit"], _percent(kr["progress"]), kr["status"],
                               kr["context"]))
    return out


def render(data_rows: Iterable[tuple[Cell, ...]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180
    writer.writerow(COLUMNS)
    for row in data_rows:
        writer.writerow([_cell(value) for value in row])
    return buffer.getvalue().encode(ENCODING)


def _cell(value: Cell | bool) -> Cell:
    if isinstance(value, bool):
        return "true" if value else "false"
    return neutralise(value)
