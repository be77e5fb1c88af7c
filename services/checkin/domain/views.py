"""List and Tree views of the live Session, computed from its items. Pure."""
from __future__ import annotations

from dataclasses import dataclass

from services.checkin.domain.model import (
    Initiative,
    KeyResult,
    Objective,
    Session,
    weighted_progress,
)

SORTS = ("title", "progress", "status", "owner", "updated_at")
TYPES = ("objective", "key_result", "initiative")
STATUS_ORDER = {"off_track": 0, "at_risk": 1, "blocked": 1, "not_started": 2, "on_track": 3,
                "in_progress": 3, "done": 4, "cancelled": 5}


@dataclass(frozen=True)
class ListQuery:
    types: tuple[str, ...] = TYPES
    search: str = ""
    owner: str = "all"          # all | unassigned | member id
    status: str | None = None
    sort: str = "title"         # one of SORTS, "-" in front for descending
    limit: int = 50
    offset: int = 0


def _owner_matches(owner_filter: str, owner_id) -> bool:
    if owner_filter == "all":
        return True
    if owner_filter == "unassigned":
        return owner_id is None
    return owner_id is not None and str(owner_id) == owner_filter


def _rows(objectives, key_results, initiatives) -> list[dict]:
    by_objective: dict = {}
    for kr in key_results:
        by_objective.setdefault(kr.objective_id, []).append(kr)
    rows = []
    for o in objectives:
        krs = by_objective.get(o.id, [])
        rows.append({"type": "objective", "id": o.id, "title": o.title, "owner_id": o.owner_id,
                     "status": _objective_status(krs), "progress": weighted_progress(krs),
                     "updated_at": o.updated_at, "parent_id": o.parent_id, "version": o.version})
    for kr in key_results:
        rows.append({"type": "key_result", "id": kr.id, "title": kr.title, "owner_id": kr.owner_id,
                     "status": kr.status, "progress": kr.progress, "updated_at": kr.updated_at,
                     "parent_id": kr.objective_id, "version": kr.version})
    for i in initiatives:
        rows.append({"type": "initiative", "id": i.id, "title": i.title, "owner_id": i.owner_id,
                     "status": i.status, "progress": None, "updated_at": i.updated_at,
                     "parent_id": None, "version": i.version})
    return rows


def _objective_status(key_results: list[KeyResult]) -> str:
    """The worst status among an Objective's Key Results (not started without any)."""
    if not key_results:
        return "not_started"
    return min((kr.status for kr in key_results), key=lambda s: STATUS_ORDER.get(s, 9))


def list_items(objectives, key_results, initiatives, query: ListQuery) -> dict:
    needle = query.search.casefold()
    rows = [r for r in _rows(objectives, key_results, initiatives)
            if r["type"] in query.types and needle in r["title"].casefold()
            and _owner_matches(query.owner, r["owner_id"])
            and (query.status is None or r["status"] == query.status)]
    descending = query.sort.startswith("-")
    key = query.sort.lstrip("-")

    def sort_key(row):
        value = {"title": row["title"].casefold(), "progress": row["progress"],
                 "status": STATUS_ORDER.get(row["status"], 9), "owner": str(row["owner_id"] or ""),
                 "updated_at": row["updated_at"]}[key]
        # Missing values sort last either way; ties broken by title, then id (stable pages).
        return (value is None, value if value is not None else 0, row["title"].casefold(), str(row["id"]))

    present = sorted((r for r in rows if sort_key(r)[0] is False), key=sort_key, reverse=descending)
    missing = sorted((r for r in rows if sort_key(r)[0] is True), key=sort_key)
    ordered = present + missing
    return {"items": ordered[query.offset:query.offset + query.limit], "total": len(ordered),
            "limit": query.limit, "offset": query.offset}


def tree(session: Session, objectives: list[Objective], key_results: list[KeyResult],
         initiatives: list[Initiative]) -> dict:
    """Cascading Objectives with their Key Results, and the Initiatives connected to each."""
    initiatives_of: dict = {}
    for initiative in initiatives:
        for key_result_id in initiative.key_result_ids:
            initiatives_of.setdefault(key_result_id, []).append(initiative)
    krs_of: dict = {}
    for kr in key_results:
        krs_of.setdefault(kr.objective_id, []).append(kr)
    children: dict = {}
    known = {o.id for o in objectives}
    for o in objectives:
        children.setdefault(o.parent_id if o.parent_id in known else None, []).append(o)

    def node(objective: Objective) -> dict:
        krs = krs_of.get(objective.id, [])
        return {"objective": objective, "progress": weighted_progress(krs),
                "key_results": [{"key_result": kr, "initiatives": initiatives_of.get(kr.id, [])} for kr in krs],
                "children": [node(child) for child in children.get(objective.id, [])]}

    connected = {i.id for items in initiatives_of.values() for i in items}
    return {"session": session, "objectives": [node(o) for o in children.get(None, [])],
            "unconnected_initiatives": [i for i in initiatives if i.id not in connected]}
