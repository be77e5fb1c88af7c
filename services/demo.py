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
from shared.clock import FixedClock
from shared.tokens import Principal

DEMO_EMAIL = "demo@okrsnap.local"
DEMO_PASSWORD = "okrsnap-demo-2026"
DEMO_WORKSPACE = "Demo Workspace"
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


def seed(gateway: Gateway, checkin_service: Checkin, *, today: date | None = None) -> dict:
    now = checkin_service.clock.now()
    today = today or now.date()
    user, workspace = identity.add_user(
        identity.AddUser(DEMO_EMAIL, DEMO_PASSWORD, DEMO_WORKSPACE, role="owner"),
        uow=gateway.uow(), clock=gateway.clock)
    principal = Principal(str(user.id), {str(workspace.id): "owner"})
    name = f"Demo Session from {today - timedelta(weeks=WEEKS_OF_HISTORY):%Y-%m-%d}"
    existing = checkin.list_sessions(principal, workspace.id, uow=checkin_service.uow())
    if any(s.name == name for s in existing):
        return {"user": user, "workspace": workspace, "session": None}

    start = today - timedelta(weeks=WEEKS_OF_HISTORY)
    clock = FixedClock(datetime.combine(start, time(9), tzinfo=timezone.utc))
    session = checkin.create_session(commands.CreateSession(
        principal, workspace.id, name, start, start + timedelta(weeks=13), "Europe/Berlin"),
        uow=checkin_service.uow(), clock=clock)
    rng = random.Random(48)
    key_results = []
    for title, krs in PLAN:
        clock.advance(minutes=5)
        objective = checkin.add_objective(commands.AddObjective(principal, session.id, title),
                                          uow=checkin_service.uow(), clock=clock)
        for kr_title, start_value, target, unit in krs:
            clock.advance(minutes=1)
            owner = None if kr_title.startswith("Enterprise") else user.id  # one unassigned signal
            key_results.append(checkin.add_key_result(commands.AddKeyResult(
                principal, objective.id, kr_title, start_value, target, unit=unit, owner_id=owner),
                uow=checkin_service.uow(), clock=clock))
    for week in range(WEEKS_OF_HISTORY + 1):  # the past weeks and the current one so far
        for kr in key_results:
            if rng.random() < 0.25:
                continue  # not every owner checks in every week
            day = datetime.combine(start + timedelta(weeks=week, days=rng.randint(0, 4)),
                                   time(rng.randint(8, 17), rng.randint(0, 59)), tzinfo=timezone.utc)
            if day > now:
                continue
            clock.set(day)
            share = min(1.0, (week + 1) / 10 + rng.uniform(-0.05, 0.1))
            value = round(kr.start_value + (kr.target_value - kr.start_value) * share, 2)
            status = rng.choice(["on_track", "on_track", "at_risk", "off_track"])
            checkin.record_check_in(commands.RecordCheckIn(
                principal, kr.id, value, status, f"Week {week + 1}: {status.replace('_', ' ')}"),
                uow=checkin_service.uow(), clock=clock)
    return {"user": user, "workspace": workspace, "session": session}



