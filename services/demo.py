"""Seeds a demo Workspace with several weeks of history, so the first look is not empty.

Check-ins are recorded through the check-in service's own handlers, each with a clock set to
its day in the past: the events carry their real dates, and the Snapshots of past weeks fill."""
from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta, timezone

from services.checkin.bootstrap import Checkin
from services.checkin.domain import commands
from services.checkin.service_layer import handlers as checkin
from services.gateway.bootstrap import Gateway
from services.gateway.service_layer import handlers as identity
from shared.tokens import Principal

DEMO_EMAIL = "demo@okrsnap.local"
DEMO_PASSWORD = "okrsnap-demo-2026"
DEMO_WORKSPACE = "Demo Workspace"
DEMO_NAME = "Demo Lead"
WEEKS_OF_HISTORY = 6

PLAN = [
    ("Delight our customers", [
        ("Net promoter score", 20, 45, "pts"),
        ("Median support reply time", 12, 4, "h"),  # decreasing metric
    ]),
    ("Grow recurring revenue", [
        ("Annual recurring revenue", 1.2, 2.0, "M€"),
        ("Enterprise pilots signed", 0, 5, ""),
    ]),
    ("Ship weekly Snapshots", [
        ("Teams reviewing weekly", 0, 12, "teams"),
    ]),
]


class LocalDirectory:
    """The member directory read straight from the gateway's database: the demo runs before
    (and without) the gateway process."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway

    def non_members(self, principal, workspace_id, user_ids) -> set:
        known = identity.members_among(principal, workspace_id, user_ids, uow=self.gateway.uow())
        return set(user_ids) - known


def seed(gateway: Gateway, checkin_service: Checkin, *, today: date | None = None) -> dict:
    now = checkin_service.clock.now()
    today = today or now.date()
    user, workspace = identity.add_user(
        identity.AddUser(DEMO_EMAIL, DEMO_PASSWORD, DEMO_WORKSPACE, role="owner", display_name=DEMO_NAME),
        uow=gateway.uow(), clock=gateway.clock)
    principal = Principal(str(user.id), {str(workspace.id): "owner"})
    start = today - timedelta(weeks=WEEKS_OF_HISTORY)
    if checkin.list_sessions(principal, workspace.id, uow=checkin_service.uow()):
        return {"user": user, "workspace": workspace, "session": None}  # seeded once, ever
    session = checkin.import_history(commands.ImportHistory(principal, workspace.id, history(
        start, now, owner_id=user.id)), uow=checkin_service.uow(), clock=checkin_service.clock,
        members=LocalDirectory(gateway))
    return {"user": user, "workspace": workspace, "session": session}


def history(start: date, now: datetime, *, owner_id) -> dict:
    """A history import document: the plan above, with weekly Check-ins up to now."""
    rng = random.Random(48)
    created = datetime.combine(start, time(9), tzinfo=timezone.utc)
    doc: dict = {"session": {"name": f"Demo Session from {start:%Y-%m-%d}", "start_date": start,
                             "end_date": start + timedelta(weeks=13), "timezone": "Europe/Berlin",
                             "week_start_day": "monday", "checkin_cadence": "weekly",
                             "checkin_weekday": "friday", "created_at": created},
                 "objectives": [], "key_results": [], "initiatives": [], "check_ins": []}
    for o, (title, krs) in enumerate(PLAN):
        doc["objectives"].append({"ref": f"o{o}", "title": title, "description": "", "owner_id": owner_id,
                                  "parent_ref": None, "created_at": created + timedelta(minutes=5 + o)})
        for k, (kr_title, start_value, target, unit) in enumerate(krs):
            owner = None if kr_title.startswith("Enterprise") else owner_id  # one unassigned signal
            doc["key_results"].append({
                "ref": f"k{o}{k}", "objective_ref": f"o{o}", "title": kr_title, "kind": "metric",
                "owner_id": owner, "start_value": start_value, "target_value": target, "unit": unit,
                "weight": 1.0, "created_at": created + timedelta(minutes=10 + o)})
    doc["initiatives"].append({"ref": "i0", "title": "Weekly review ritual", "status": "in_progress",
                               "owner_id": owner_id, "canvas": None, "key_result_refs": ["k20", "k00"],
                               "created_at": created + timedelta(minutes=30)})
    for week in range(WEEKS_OF_HISTORY + 1):  # the past weeks and the current one so far
        for kr in doc["key_results"]:
            if rng.random() < 0.25:
                continue  # not every owner checks in every week
            day = datetime.combine(start + timedelta(weeks=week, days=rng.randint(0, 4)),
                                   time(rng.randint(8, 17), rng.randint(0, 59)), tzinfo=timezone.utc)
            if day > now or day < created:
                continue
            share = min(1.0, (week + 1) / 10 + rng.uniform(-0.05, 0.1))
            value = round(kr["start_value"] + (kr["target_value"] - kr["start_value"]) * share, 2)
            status = rng.choice(["on_track", "on_track", "at_risk", "off_track"])
            doc["check_ins"].append({"key_result_ref": kr["ref"], "value": value, "status": status,
                                     "confidence": rng.randint(4, 9),
                                     "comment": f"Week {week + 1}: {status.replace('_', ' ')}",
                                     "checked_in_at": day})
    return doc
