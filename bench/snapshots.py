"""Snapshots at scale: a Session of 10,000 Key Results with 26 weeks of history and 5% weekly
churn, applied through the snapshot service's real event handler on PostgreSQL.

Measures the week view's latency (all, and filtered by owner) through the service's HTTP app
against a raw SQL read of the same rows in the same process, the time to seal a week, and the
rows stored against a design that copies every item into every week.
"""
from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from services.snapshot.adapters import orm
from services.snapshot.bootstrap import bootstrap
from services.snapshot.entrypoints.app import create_app
from shared import tokens
from shared.clock import FixedClock
from shared.events import Event
from shared.settings import Settings
from shared.weeks import Week

KEY_RESULTS = int(os.environ.get("OKRSNAP_BENCH_KEY_RESULTS", 10_000))
WEEKS = 26
CHURN = 0.05
OWNERS = 50
DB_SERVER = os.environ.get("OKRSNAP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _events(workspace, session_id, start: date):
    """The Session's history as the check-in service would emit it, week by week."""
    rng = random.Random(26)
    t0 = datetime.combine(start, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=8)
    owners = [uuid.uuid4() for _ in range(OWNERS)]
    seq = iter(range(1, 10_000_000))
    state = {"id": session_id, "workspace_id": workspace, "name": "Bench", "start_date": start,
             "end_date": start + timedelta(weeks=WEEKS) - timedelta(days=1), "timezone": "UTC",
             "week_start_day": "monday", "checkin_cadence": "weekly", "checkin_weekday": "friday",
             "status": "active", "visibility": "workspace", "members": [], "version": 1}
    week0 = [Event.new("checkin.session.created", occurred_at=t0, workspace_id=workspace, session_id=session_id,
                       entity_id=session_id, sequence=next(seq), payload=state)]
    key_results = []
    for o in range(KEY_RESULTS // 10):
        objective = {"id": uuid.uuid4(), "session_id": session_id, "workspace_id": workspace, "title": f"Objective {o}",
                     "description": "", "owner_id": rng.choice(owners), "parent_id": None, "private": False,
                     "visible_to": [], "version": 1, "removed": False}
        week0.append(Event.new("checkin.objective.created", occurred_at=t0, workspace_id=workspace,
                               session_id=session_id, entity_id=objective["id"], sequence=next(seq), payload=objective))
        for k in range(10):
            kr = {"id": uuid.uuid4(), "objective_id": objective["id"], "session_id": session_id,
                  "workspace_id": workspace, "title": f"Key Result {o}.{k}", "owner_id": rng.choice(owners + [None]),
                  "kind": "metric", "start_value": 0.0, "target_value": 100.0, "current_value": 0.0, "unit": "%",
                  "status": "not_started", "confidence": None, "weight": 1.0, "progress": 0.0, "version": 1,
                  "removed": False}
            key_results.append(kr)
            week0.append(Event.new("checkin.key_result.created", occurred_at=t0, workspace_id=workspace,
                                   session_id=session_id, entity_id=kr["id"], sequence=next(seq), payload=kr))
    weeks = []
    for w in range(WEEKS):
        moment = t0 + timedelta(weeks=w, days=2)
        batch = week0 if w == 0 else []
        for kr in rng.sample(key_results, int(len(key_results) * CHURN)):
            kr["current_value"] = min(100.0, kr["current_value"] + rng.uniform(1, 15))
            kr["progress"] = kr["current_value"] / 100
            kr["status"] = rng.choice(["on_track", "at_risk", "off_track"])
            kr["version"] += 1
            check_in = {"id": uuid.uuid4(), "key_result_id": kr["id"], "value": kr["current_value"],
                        "status": kr["status"], "confidence": 7, "comment": "moved", "author_id": kr["owner_id"],
                        "checked_in_at": moment}
            batch.append(Event.new("checkin.key_result.checked_in", occurred_at=moment, workspace_id=workspace,
                                   session_id=session_id, entity_id=kr["id"], sequence=next(seq),
                                   payload={"check_in": check_in, "key_result": dict(kr)}))
        week = Week.containing(start + timedelta(weeks=w), "monday")
        starts_at, ends_at = week.bounds("UTC")
        marker = Event.new("checkin.session.week_closed", occurred_at=ends_at + timedelta(hours=1),
                           workspace_id=workspace, session_id=session_id, entity_id=session_id, sequence=next(seq),
                           payload={"session_id": session_id, "week": week.label, "starts_at": starts_at,
                                    "ends_at": ends_at})
        weeks.append((week, batch, marker))
    return weeks, owners


def _more_check_ins(workspace, session_id, weeks, n: int) -> list[Event]:
    """n more Check-ins in the live week, after everything else."""
    template = next(e for e in reversed(weeks[-1][1]) if e.event_type == "checkin.key_result.checked_in")
    last = max(e.sequence for _, batch, marker in weeks for e in (*batch, marker))
    out = []
    for i in range(n):
        check_in = dict(template.payload["check_in"], id=str(uuid.uuid4()), checked_in_at=template.occurred_at)
        out.append(Event.new("checkin.key_result.checked_in", occurred_at=template.occurred_at, workspace_id=workspace,
                             session_id=session_id, entity_id=template.entity_id, sequence=last + 1 + i,
                             payload={"check_in": check_in, "key_result": template.payload["key_result"]}))
    return out


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run() -> dict:
    name = f"okrsnap_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(DB_SERVER), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(DB_SERVER).set(database=name)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            start = date(2026, 1, 5)
            # Wednesday of the last week: 25 weeks sealed, the 26th live.
            clock = FixedClock(datetime.combine(start + timedelta(weeks=WEEKS - 1, days=2), datetime.min.time(),
                                                tzinfo=timezone.utc) + timedelta(hours=12))
            settings = Settings.from_env({"OKRSNAP_ENV": "test", "OKRSNAP_DATA_DIR": str(Path(tmp)),
                                          "OKRSNAP_DATABASE_URL": url.render_as_string(False)})
            store = bootstrap(settings, clock=clock)
            store.migrate()
            workspace, session_id = uuid.uuid4(), uuid.uuid4()
            weeks, owners = _events(workspace, session_id, start)
            applied, apply_seconds, seal_seconds = 0, 0.0, []
            for week, batch, marker in weeks:
                began = time.perf_counter()
                for i in range(0, len(batch), 50):  # as the consumer applies them: batches of 50
                    store.apply_batch(batch[i:i + 50])
                apply_seconds += time.perf_counter() - began
                applied += len(batch)
                if week is weeks[-1][0]:
                    break  # the live week: not closed yet
                began = time.perf_counter()
                store.apply(marker)  # applies the marker and seals the week
                seal_seconds.append(time.perf_counter() - began)
            with store.database.session() as db:
                stored = {t.name: db.execute(select(func.count()).select_from(t)).scalar_one()
                          for t in (orm.item_versions, orm.check_ins, orm.sealed_weeks)}
                sealed = db.execute(select(func.count()).select_from(orm.sealed_weeks)).scalar_one()

            app = create_app(store).test_client()
            principal = tokens.Principal(str(uuid.uuid4()), {str(workspace): "viewer"})
            headers = {tokens.INTERNAL_HEADER: tokens.internal_token(settings.internal_secret, "snapshot", principal)}
            mid = weeks[WEEKS // 2][0]
            _, ends_at = mid.bounds("UTC")

            def timed(path: str, n: int = 25) -> list[float]:
                samples = []
                for _ in range(n):
                    began = time.perf_counter()
                    response = app.get(path, headers=headers)
                    response.get_data()
                    samples.append(time.perf_counter() - began)
                    assert response.status_code == 200, response.json
                return samples

            cold_all = timed(f"/sessions/{session_id}/snapshots/{mid.label}", 1)[0]
            view_all = timed(f"/sessions/{session_id}/snapshots/{mid.label}")
            cold_owner = timed(f"/sessions/{session_id}/snapshots/{mid.label}?owner={owners[0]}", 1)[0]
            view_owner = timed(f"/sessions/{session_id}/snapshots/{mid.label}?owner={owners[0]}")
            live = weeks[-1][0].label
            live_all = timed(f"/sessions/{session_id}/snapshots/{live}", 10)
            live_owner = timed(f"/sessions/{session_id}/snapshots/{live}?owner={owners[0]}", 10)
            changed = []  # the live week read right after each new event: the full work
            extra = _more_check_ins(workspace, session_id, weeks, 5)
            for event in extra:
                store.apply(event)
                changed += timed(f"/sessions/{session_id}/snapshots/{live}", 1)
            raw = []
            with psycopg.connect(url.set(drivername="postgresql").render_as_string(False),
                                 options="-csearch_path=snapshot") as conn:
                for _ in range(25):
                    began = time.perf_counter()
                    rows = conn.execute(
                        "SELECT DISTINCT ON (entity_id) state FROM item_versions WHERE session_id = %s "
                        "AND effective_at < %s ORDER BY entity_id, sequence DESC", (session_id, ends_at)).fetchall()
                    raw.append(time.perf_counter() - began)
            items = KEY_RESULTS + KEY_RESULTS // 10
            changes = applied - 1 - items  # check-ins (each a new Key Result version)
            store.database.dispose()
            return {
                "key_results": KEY_RESULTS, "weeks": WEEKS, "events": applied, "rows_read": len(rows),
                "apply_rate": applied / apply_seconds, "seal_p50": statistics.median(seal_seconds),
                "seal_max": max(seal_seconds), "sealed": sealed,
                "view_all_p50": statistics.median(view_all), "view_all_p99": _percentile(view_all, 0.99),
                "view_owner_p50": statistics.median(view_owner), "view_owner_p99": _percentile(view_owner, 0.99),
                "cold_all": cold_all, "cold_owner": cold_owner,
                "live_all_p50": statistics.median(live_all), "live_all_p99": _percentile(live_all, 0.99),
                "live_owner_p50": statistics.median(live_owner), "live_owner_p99": _percentile(live_owner, 0.99),
                "live_changed_p50": statistics.median(changed), "live_changed_max": max(changed),
                "raw_p50": statistics.median(raw), "stored": stored, "items": items, "changes": changes,
                "full_copy": items * WEEKS,
            }
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


NOTES = """A sealed week never changes, so each process renders its view once (keyed by its seal and
the late amendments listed on it) and serves it from memory after that. The live week's view is
reused until its Session gets a new event (or a minute passes). The first request and the read
right after a change show the work itself: reading the week's state (and the previous week's,
for deltas), signals, and JSON for every item of a 10,000 Key Result Session."""


def report(r: dict) -> str:
    state_rows = r["stored"]["item_versions"] + r["stored"]["sealed_weeks"]
    ms = lambda s: f"{s * 1000:,.1f} ms"  # noqa: E731
    return f"""## Snapshots at scale ({r['key_results']:,} Key Results, {r['weeks']} weeks, 5% weekly churn)

{r['events']:,} events applied through the snapshot service's handler on PostgreSQL; {r['sealed']} weeks sealed.

| measure | okrsnap | raw baseline | ratio | target |
| --- | ---: | ---: | ---: | --- |
| sealed week view p50 / p99, all ({r['rows_read']:,} items, HTTP app incl. JSON) | {ms(r['view_all_p50'])} / {ms(r['view_all_p99'])} | {ms(r['raw_p50'])} (raw SQL read of the same rows) | {r['view_all_p50'] / r['raw_p50']:.2f}x | < 100 ms, within 3x |
| sealed week view p50 / p99, one owner | {ms(r['view_owner_p50'])} / {ms(r['view_owner_p99'])} | | {r['view_owner_p50'] / r['raw_p50']:.2f}x | |
| sealed week view, first request in a process (all / one owner) | {ms(r['cold_all'])} / {ms(r['cold_owner'])} | | {r['cold_all'] / r['raw_p50']:.1f}x | |
| live (current) week view p50 / p99, all (reads between changes) | {ms(r['live_all_p50'])} / {ms(r['live_all_p99'])} | | {r['live_all_p50'] / r['raw_p50']:.2f}x | |
| live (current) week view p50 / p99, one owner | {ms(r['live_owner_p50'])} / {ms(r['live_owner_p99'])} | | {r['live_owner_p50'] / r['raw_p50']:.2f}x | |
| live week view read right after a new event, median / max (all) | {ms(r['live_changed_p50'])} / {ms(r['live_changed_max'])} | | {r['live_changed_p50'] / r['raw_p50']:.1f}x | |
| sealing a week (marker applied, state hashed), median / max | {ms(r['seal_p50'])} / {ms(r['seal_max'])} | | | < 1 s |
| state rows stored (item versions + seals) | {state_rows:,} | {r['items'] + r['changes']:,} items + changes | {state_rows / (r['items'] + r['changes']):.2f}x | < 1.5x |
| Check-in log rows (each Check-in's value, status, comment) | {r['stored']['check_ins']:,} | | | |
| rows a full-copy design would store (items x weeks) | {r['full_copy']:,} | | {state_rows / r['full_copy']:.2f}x of it | |
| events applied per second (batches of 50, no broker) | {r['apply_rate']:,.0f} | | | |

{NOTES}
"""


if __name__ == "__main__":
    print(report(run()))
