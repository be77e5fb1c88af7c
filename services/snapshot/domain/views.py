"""The week view, assembled from item states as of the end of a week. Pure."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

CURRENT, PAST, SEALED, FUTURE, NO_SNAPSHOT = "current", "past", "sealed", "future", "no_snapshot"


def week_status(starts_at: datetime, ends_at: datetime, now: datetime, saved: bool, sealed: bool = False) -> str:
    """The current week is always live; a past week is saved only if its Session had activity,
    and `past` until it is sealed (every event before its end applied)."""
    if now < starts_at:
        return FUTURE
    if now < ends_at:
        return CURRENT
    if not saved:
        return NO_SNAPSHOT
    return SEALED if sealed else PAST


@dataclass(frozen=True)
class OwnerFilter:
    """"all", "unassigned" (owner_id is None) or one member's id (as a string)."""

    value: str = "all"

    def matches(self, owner_id) -> bool:
        if self.value == "all":
            return True
        if self.value == "unassigned":
            return owner_id is None
        return owner_id is not None and str(owner_id) == self.value


def build_tree(objectives: list[dict], key_results: list[dict], initiatives: list[dict],
               owner: OwnerFilter) -> list[dict]:
    """Objectives as a tree in outline order (parents first, `depth` from 0, siblings by title)
    with their Key Results, filtered by owner; each Key Result lists the Initiatives connected to
    it (one connected to several shows under each).

    An item of the owner is shown plainly; the Objectives above it are kept as context
    (`context: true`) so the relation to the wider Session stays visible. An Initiative of the
    owner connected to someone else's Key Result keeps that Key Result (and its Objectives) as
    context: a context Key Result lists only the owner's Initiatives."""
    by_id = {o["id"]: o for o in objectives}
    progress = objective_progress(key_results)
    initiatives_of: dict = {}
    for initiative in initiatives:
        for key_result_id in initiative.get("key_result_ids", []):
            initiatives_of.setdefault(key_result_id, []).append(initiative)
    krs_by_objective: dict = {}
    everyone = owner.value == "all"  # no filter: spares a call per Key Result
    for kr in key_results:
        connected = initiatives_of.get(kr["id"], [])
        if everyone or owner.matches(kr.get("owner_id")):
            krs_by_objective.setdefault(kr["objective_id"], []).append(dict(kr, context=False, initiatives=connected))
            continue
        # Someone else's Key Result that one of the owner's Initiatives is connected to: context
        # for that Initiative (which would otherwise have nowhere to show), listing only theirs.
        own = [i for i in connected if owner.matches(i.get("owner_id"))]
        if own:
            krs_by_objective.setdefault(kr["objective_id"], []).append(dict(kr, context=True, initiatives=own))
    shown: dict = {}
    for objective in objectives:
        if owner.matches(objective.get("owner_id")) or objective["id"] in krs_by_objective:
            shown[objective["id"]] = not owner.matches(objective.get("owner_id"))
    for objective_id in list(shown):  # ancestors as context
        parent = by_id.get(objective_id, {}).get("parent_id")
        while parent is not None and parent in by_id and parent not in shown:
            shown[parent] = True
            parent = by_id[parent].get("parent_id")
    def order(item: dict):
        return (item["title"].casefold(), item["id"])

    children: dict = {}
    for objective in objectives:
        if objective["id"] in shown:
            parent = objective.get("parent_id")
            children.setdefault(parent if parent in shown else None, []).append(objective)
    out = []

    def visit(objective: dict, depth: int) -> None:  # the tree, as an outline: parents first
        out.append(dict(objective, depth=depth, context=shown[objective["id"]],
                        progress=progress.get(objective["id"]),
                        key_results=sorted(krs_by_objective.get(objective["id"], []), key=order)))
        for child in sorted(children.get(objective["id"], []), key=order):
            visit(child, depth + 1)

    for root in sorted(children.get(None, []), key=order):
        visit(root, 0)
    return out


def objective_progress(key_results: list[dict]) -> dict:
    """An Objective's progress: the mean of all its Key Results' progress (weight 1 each),
    whatever the owner filter hides."""
    totals: dict = {}
    counts: dict = {}
    for kr in key_results:
        objective_id = kr["objective_id"]
        totals[objective_id] = totals.get(objective_id, 0.0) + kr["progress"]
        counts[objective_id] = counts.get(objective_id, 0) + 1
    return {objective_id: total / counts[objective_id] for objective_id, total in totals.items()}
