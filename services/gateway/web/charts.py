"""Trend charts drawn on the server: plain geometry for an SVG template (no script, no inline
style: the page's CSP forbids both), with the same figures given to a data table beside it."""
from __future__ import annotations

from dataclasses import dataclass, field

from services.gateway.web.filters import percent

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28


@dataclass
class Series:
    title: str
    points: list[dict]           # [{"week": "2026-W43", "progress": 0.31 or None}]
    kind: str = "key_result"
    item_id: str | None = None
    moved_late: bool = False
    key_results: list["Series"] = field(default_factory=list)


@dataclass
class Chart:
    weeks: list[str]
    lines: list[dict]            # [{"css": "line-0", "points": "x,y x,y", "dots": [(x, y, label)]}]
    x_labels: list[tuple[float, str]]
    y_labels: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT


def _x(index: int, count: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return round(LEFT + (span * index / (count - 1) if count > 1 else span / 2), 1)


def _y(progress: float) -> float:
    clamped = max(0.0, min(1.0, progress))
    return round(TOP + (HEIGHT - TOP - BOTTOM) * (1 - clamped), 1)


def chart(weeks: list[str], series: list[Series]) -> Chart:
    lines = []
    for number, s in enumerate(series):
        by_week = {p["week"]: p["progress"] for p in s.points if p.get("progress") is not None}
        dots = [(_x(i, len(weeks)), _y(by_week[w]), f"{s.title}, {w}: {percent(by_week[w])}")
                for i, w in enumerate(weeks) if w in by_week]
        css = f"line-{number % 6}" + (" objective-line" if s.kind == "objective" else "")
        lines.append({"css": css, "title": s.title,
                      "points": " ".join(f"{x},{y}" for x, y, _ in dots), "dots": dots})
    step = max(1, len(weeks) // 8)  # at most about eight labels on the axis
    x_labels = [(_x(i, len(weeks)), w.split("-")[-1]) for i, w in enumerate(weeks) if i % step == 0]
    y_labels = [(_y(v / 100), f"{v}%") for v in (0, 25, 50, 75, 100)]
    return Chart(weeks, lines, x_labels, y_labels)


def trend_series(trend: dict, tree: dict) -> list[Series]:
    """One series per Objective (the mean of its Key Results' progress, as the Snapshot computes an
    Objective's progress) with its Key Results' series under it. Key Results no longer in the
    Session come last."""
    by_kr = {k["id"]: k for k in trend.get("key_results", [])}
    weeks = trend.get("weeks", [])
    out, placed = [], set()

    def walk(nodes):
        for node in nodes:
            objective = node["objective"]
            members = []
            for entry in node["key_results"]:
                kr = entry["key_result"]
                found = by_kr.get(kr["id"])
                if found is None:
                    continue
                placed.add(kr["id"])
                members.append((found, 1.0))  # the Snapshot's Objective progress: each Key Result counts once
            if members:
                points = []
                for week in weeks:
                    total = weight_sum = 0.0
                    for found, weight in members:
                        value = next((p["progress"] for p in found["points"] if p["week"] == week), None)
                        if value is not None:
                            total += value * weight
                            weight_sum += weight
                    points.append({"week": week, "progress": total / weight_sum if weight_sum else None})
                out.append(Series(objective["title"], points, "objective", objective["id"], key_results=[
                    Series(f["title"], f["points"], "key_result", f["id"], f.get("moved_late", False))
                    for f, _ in members]))
            walk(node.get("children", []))

    walk(tree.get("objectives", []))
    rest = [k for k in trend.get("key_results", []) if k["id"] not in placed]
    if rest:
        out.append(Series("Key Results no longer in the Session", [], "group", None, key_results=[
            Series(k["title"], k["points"], "key_result", k["id"], k.get("moved_late", False)) for k in rest]))
    return out
