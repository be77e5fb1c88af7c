"""What the review pages compute from the services' answers: the week to open, neighbouring weeks,
a signal narrowing, compare shortcuts, choices for forms. Pure functions, no I/O."""
from __future__ import annotations

from shared.events import INITIATIVE_STATUSES, STATUSES

# The export service's formats (services/export/domain/model.py FORMATS), with their labels.
EXPORT_FORMATS = (("xlsx", "Excel workbook (XLSX)"), ("csv", "CSV files (ZIP: items, Check-ins, metadata)"),
                  ("json", "JSON"))
# Above this many Key Results a week opens with its Objectives collapsed (one click opens one).
COLLAPSE_ABOVE = 150
# Above this many Key Results a week is shown a page of Objectives at a time (signals, deltas and
# the export still cover the whole week), so a 10,000 Key Result week renders as fast as 1,000.
PAGE_ABOVE = 1_500
OBJECTIVES_PER_PAGE = 100
SAVED = ("sealed", "current", "past")

__all__ = ["STATUSES", "INITIATIVE_STATUSES"]


def all_weeks(calendar: dict) -> list[dict]:
    return [w for month in calendar["months"] for w in month["weeks"]]


def default_week(weeks: list[dict]) -> str:
    """The current week while the Session runs; else its last saved week; else its first."""
    current = [w for w in weeks if w["status"] == "current"]
    if current:
        return current[0]["week"]
    saved = [w for w in weeks if w["status"] in SAVED]
    if saved:
        return saved[-1]["week"]
    return weeks[0]["week"]


def neighbours(weeks: list[dict], week: str) -> dict:
    labels = [w["week"] for w in weeks]
    index = labels.index(week)
    return {"previous": weeks[index - 1] if index > 0 else None,
            "next": weeks[index + 1] if index + 1 < len(weeks) else None}


def month_target(month: dict) -> str:
    """The week a month's control opens: its live week, else its last saved one, else its first."""
    weeks = month["weeks"]
    for w in weeks:
        if w["status"] == "current":
            return w["week"]
    saved = [w for w in weeks if w["status"] in SAVED]
    return (saved[-1] if saved else weeks[0])["week"]


def saved_weeks(weeks: list[dict]) -> list[dict]:
    return [w for w in weeks if w["status"] in SAVED]


def shortcuts(saved: list[dict]) -> dict:
    """Start, middle and end of the Session among its saved weeks (for a retrospective)."""
    if not saved:
        return {}
    return {"start": saved[0], "middle": saved[(len(saved) - 1) // 2], "end": saved[-1]}


def key_result_count(view: dict) -> int:
    return sum(len(o["key_results"]) for o in view.get("objectives", []))


def check_ins_by_key_result(view: dict) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for check_in in view.get("check_ins", []):
        grouped.setdefault(str(check_in["key_result_id"]), []).append(check_in)
    for items in grouped.values():
        items.sort(key=lambda c: c["checked_in_at"], reverse=True)
    return grouped


class Row(dict):
    """A dict whose keys templates read as attributes straight from the instance (Jinja tries
    getattr before the item: a failed attribute lookup per field was a third of the render time
    of a 1,000 Key Result week). A key shadows a dict method of the same name."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.__dict__ = self


def _percent(progress) -> str:
    from services.gateway.web.filters import percent

    return percent(progress)


def present(objectives: list[dict], people, check_ins: dict[str, list[dict]]) -> list[Row]:
    """The week's hierarchy ready to print: owners' names and emails, progress as a percentage
    and a bar value, each Key Result's Check-ins with their authors' names."""
    seen_initiatives: dict[int, Row] = {}

    def who(row: Row, key: str) -> None:
        user_id = row.get(f"{key}_id")
        row[f"{key}_name"] = people.name(user_id)
        row[f"{key}_email"] = people.email(user_id)

    def with_progress(row: Row) -> Row:
        progress = row.get("progress")
        row["pct"] = _percent(progress)
        row["bar"] = round(max(0.0, min(1.0, progress or 0.0)) * 100, 1)
        return row

    out = []
    for objective in objectives:
        o = with_progress(Row(objective))
        who(o, "owner")
        key_results = []
        for key_result in objective["key_results"]:
            k = with_progress(Row(key_result))
            who(k, "owner")
            initiatives = []
            for initiative in key_result["initiatives"]:
                shared = seen_initiatives.get(id(initiative))  # one Initiative under several Key Results
                if shared is None:
                    shared = seen_initiatives[id(initiative)] = Row(initiative)
                    who(shared, "owner")
                initiatives.append(shared)
            k["initiatives"] = initiatives
            k["delta"] = Row(k["delta"]) if k.get("delta") else None
            k["check_ins"] = [Row(c) for c in check_ins.get(str(k["id"]), ())]
            for c in k["check_ins"]:
                who(c, "author")
            key_results.append(k)
        o["key_results"] = key_results
        out.append(o)
    return out


def narrow(view: dict, signal: str | None) -> list[dict]:
    """The Objectives to show: all of them, or, for a clicked review signal, only the Key Results
    carrying it (or with an Initiative carrying it), under their Objectives."""
    objectives = view.get("objectives", [])
    if not signal:
        return objectives
    shown = []
    for objective in objectives:
        krs = [k for k in objective["key_results"]
               if signal in k["signals"] or any(signal in i["signals"] for i in k["initiatives"])]
        if krs:
            shown.append({**objective, "key_results": krs, "narrowed": True})
    return shown


def page_of(objectives: list[dict], page: int) -> tuple[list[dict], dict | None]:
    """One page of Objectives for a very large week, with where it is; everything when small."""
    if sum(len(o["key_results"]) for o in objectives) <= PAGE_ABOVE:
        return objectives, None
    pages = max(1, -(-len(objectives) // OBJECTIVES_PER_PAGE))
    page = min(max(1, page), pages)
    first = (page - 1) * OBJECTIVES_PER_PAGE
    shown = objectives[first:first + OBJECTIVES_PER_PAGE]
    return shown, {"page": page, "pages": pages, "first": first + 1, "last": first + len(shown),
                   "total": len(objectives)}


def tree_options(tree: dict) -> dict:
    """Objectives (indented by depth) and Key Results, for the parent and connection choices."""
    objectives, key_results = [], []

    def walk(nodes, depth):
        for node in nodes:
            objective = node["objective"]
            objectives.append({"id": objective["id"], "title": objective["title"], "depth": depth})
            for kr in node["key_results"]:
                key_results.append({"id": kr["key_result"]["id"], "title": kr["key_result"]["title"],
                                    "objective": objective["title"]})
            walk(node.get("children", []), depth + 1)

    walk(tree.get("objectives", []), 0)
    return {"objectives": objectives, "key_results": key_results}


def related(tree: dict, kind: str, item_id: str) -> dict:
    """What hangs around one item in the live tree: an Objective's Key Results and children, a Key
    Result's Objective and Initiatives, an Initiative's Key Results."""
    out: dict = {"objective": None, "key_results": [], "initiatives": [], "children": []}

    def walk(nodes, parent):
        for node in nodes:
            objective = node["objective"]
            if kind == "objective" and objective["id"] == item_id:
                out["objective"] = parent
                out["key_results"] = [kr["key_result"] for kr in node["key_results"]]
                out["children"] = [child["objective"] for child in node.get("children", [])]
            for kr in node["key_results"]:
                if kind == "key_result" and kr["key_result"]["id"] == item_id:
                    out["objective"] = objective
                    out["initiatives"] = kr["initiatives"]
                if kind == "initiative" and any(i["id"] == item_id for i in kr["initiatives"]):
                    out["key_results"].append(kr["key_result"])
            walk(node.get("children", []), objective)

    walk(tree.get("objectives", []), None)
    return out


def has_canvases(view: dict) -> bool:
    return any(i.get("has_canvas", True) for o in view.get("objectives", []) for k in o["key_results"]
               for i in k["initiatives"])


def canvases(user, session_id, view: dict) -> dict[str, dict]:
    """Canvas links of the week's Initiatives, read from the live Session (a canvas is live: its
    access list decides now, whatever week is shown). Only asked when the week has a canvas."""
    if not has_canvases(view):
        return {}
    from services.gateway.web import client

    answer = client.get(user, "checkin", f"/sessions/{session_id}/canvases")
    return {c["initiative_id"]: c for c in answer["canvases"]}
