"""What a weekly review looks at: deltas against an earlier week, review signals, trends. Pure:
works on item states (dicts as carried by the events) as of given moments."""
from __future__ import annotations

from datetime import datetime, timedelta

CADENCE_DAYS = {"weekly": 7, "biweekly": 14, "monthly": 31}
TROUBLE = ("at_risk", "off_track")
SIGNALS = ("status_changed", "moved", "at_risk", "off_track", "stale", "unassigned",
           "active_without_impact")
ITEM_TYPES = ("objective", "key_result", "initiative")


def deltas(previous: dict[str, list[dict]] | None, current: dict[str, list[dict]]) -> dict:
    """Per Key Result: progress change in points, value change, status from and to; plus the items
    new or removed since `previous` (None: there is nothing to compare against)."""
    before = {kr["id"]: kr for kr in (previous or {}).get("key_result", [])}
    per_key_result = {}
    unchanged: dict = {}  # one delta dict per kind of zero: most Key Results did not change
    for kr in current.get("key_result", []):
        old = before.get(kr["id"])
        if old is None:
            per_key_result[kr["id"]] = {"new": previous is not None, "progress_points": None, "value": None,
                                        "status_from": None, "status_to": kr["status"]}
        elif old == kr:  # the same state: the arithmetic below gives zeros of the values' types
            zero = (type(kr["progress"]), type(kr["current_value"]), kr["status"])
            delta = unchanged.get(zero)
            if delta is None:
                delta = unchanged[zero] = {
                    "new": False, "progress_points": round((kr["progress"] - old["progress"]) * 100, 2),
                    "value": round(kr["current_value"] - old["current_value"], 6),
                    "status_from": old["status"], "status_to": kr["status"]}
            per_key_result[kr["id"]] = delta
        else:
            per_key_result[kr["id"]] = {
                "new": False, "progress_points": round((kr["progress"] - old["progress"]) * 100, 2),
                "value": round(kr["current_value"] - old["current_value"], 6),
                "status_from": old["status"], "status_to": kr["status"]}
    added, removed = [], []
    if previous is not None:
        for kind in ITEM_TYPES:
            now_ids = {i["id"]: i for i in current.get(kind, [])}
            then_ids = {i["id"]: i for i in previous.get(kind, [])}
            added += [{"type": kind, "id": i, "title": now_ids[i]["title"], "owner_id": now_ids[i].get("owner_id")}
                      for i in now_ids if i not in then_ids]
            removed += [{"type": kind, "id": i, "title": then_ids[i]["title"],
                         "owner_id": then_ids[i].get("owner_id")} for i in then_ids if i not in now_ids]
    return {"key_results": per_key_result, "new": added, "removed": removed}


def owned_changes(changes: dict, owner) -> dict:
    """The items new or removed since the baseline that belong to the owner filter (`owner`: an
    OwnerFilter): an owner's new Objective or Initiative is new in their view as much as a new
    Key Result, and what they had and no longer have is removed from it."""
    return {"new": [i for i in changes["new"] if owner.matches(i["owner_id"])],
            "removed": [i for i in changes["removed"] if owner.matches(i["owner_id"])]}


def key_result_signals(kr: dict, delta: dict | None, last_check_in: datetime | None, as_of: datetime,
                       cadence: str, stale_before: datetime | None = None) -> list[str]:
    """`stale_before`: stale_cutoff(as_of, cadence), when computed once for many Key Results."""
    signals = []
    if delta and not delta["new"] and delta["status_from"] not in (None, delta["status_to"]):
        signals.append("status_changed")
    if delta and delta["progress_points"]:
        signals.append("moved")
    if kr["status"] in TROUBLE:
        signals.append(kr["status"])
    if stale_before is None:
        stale_before = stale_cutoff(as_of, cadence)
    if last_check_in is None or last_check_in < stale_before:
        signals.append("stale")
    if kr.get("owner_id") is None:
        signals.append("unassigned")
    return signals


def stale_cutoff(as_of: datetime, cadence: str) -> datetime:
    """A Key Result whose last Check-in came before this is stale (more than the cadence ago)."""
    return as_of - timedelta(days=CADENCE_DAYS.get(cadence, 7))


def initiative_signals(initiative: dict, moved_key_results: set) -> list[str]:
    """An Initiative busy while none of its Key Results moved: activity without impact."""
    signals = []
    if initiative["status"] == "in_progress" and initiative.get("key_result_ids") \
            and not moved_key_results.intersection(initiative["key_result_ids"]):
        signals.append("active_without_impact")
    if initiative.get("owner_id") is None:
        signals.append("unassigned")
    return signals


def summary(signal_lists) -> dict[str, int]:
    counts = dict.fromkeys(SIGNALS, 0)
    for signals in signal_lists:
        for signal in signals:
            counts[signal] = counts.get(signal, 0) + 1
    return counts


def moved_late(points: list[tuple[datetime, float]], session_start: datetime, session_end: datetime) -> bool:
    """For retrospectives: most of the progress came in the last third of the Session."""
    if len(points) < 2:
        return False
    cut = session_start + (session_end - session_start) * 2 / 3
    first, last = points[0][1], points[-1][1]
    at_cut = first
    for moment, value in points:
        if moment <= cut:
            at_cut = value
    gained_late, gained_total = last - at_cut, last - first
    return gained_total > 0 and gained_late > gained_total / 2
