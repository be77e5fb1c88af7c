"""Reads and writes of the snapshot store."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session as DbSession

from services.snapshot.adapters import orm
from shared.messaging import already_processed, mark_processed

CONSUMER = "snapshot"


class SnapshotRepository:
    def __init__(self, db: DbSession):
        self.db = db

    # consumer bookkeeping
    def already_processed(self, event_id) -> bool:
        return already_processed(self.db, orm.processed_events, CONSUMER, event_id)

    def mark_processed(self, event_id, now: datetime) -> None:
        mark_processed(self.db, orm.processed_events, CONSUMER, event_id, now)

    # sessions
    def get_session(self, session_id) -> dict | None:
        row = self.db.execute(select(orm.sessions).where(orm.sessions.c.id == session_id)).mappings().first()
        return dict(row) if row else None

    def put_session(self, state: dict) -> None:
        """Insert, or replace with a newer version (events may arrive out of order)."""
        values = {c.name: state[c.name] for c in orm.sessions.columns}
        current = self.get_session(state["id"])
        if current is None:
            self.db.execute(orm.sessions.insert().values(**values))
        elif current["version"] < values["version"]:
            self.db.execute(update(orm.sessions).where(orm.sessions.c.id == state["id"]).values(**values))

    def count_activity(self, session_id, week: str) -> None:
        changed = self.db.execute(update(orm.session_weeks).where(
            orm.session_weeks.c.session_id == session_id, orm.session_weeks.c.week == week,
        ).values(events=orm.session_weeks.c.events + 1)).rowcount
        if not changed:
            self.db.execute(orm.session_weeks.insert().values(session_id=session_id, week=week, events=1))

    def activity(self, session_id) -> list[tuple[str, int]]:
        """(week, events applied in it) for every week that had any."""
        return list(self.db.execute(select(orm.session_weeks.c.week, orm.session_weeks.c.events).where(
            orm.session_weeks.c.session_id == session_id)).all())

    def saved_weeks(self, session_id) -> list[str]:
        return list(self.db.execute(select(orm.session_weeks.c.week).where(
            orm.session_weeks.c.session_id == session_id).order_by(orm.session_weeks.c.week)).scalars())

    # items
    def add_version(self, *, session_id, entity_type: str, entity_id, sequence: int,
                    occurred_at: datetime, event_id, state: dict) -> None:
        self.db.execute(orm.item_versions.insert().values(
            session_id=session_id, entity_type=entity_type, entity_id=entity_id, sequence=sequence,
            occurred_at=occurred_at, event_id=event_id, state=state))

    def add_check_in(self, session_id, state: dict) -> None:
        self.db.execute(orm.check_ins.insert().values(session_id=session_id, **state))

    def states_as_of(self, session_id, moment: datetime) -> dict[str, list[dict]]:
        """The newest version of every item that occurred before `moment`, by entity type."""
        v = orm.item_versions
        ranked = select(
            v.c.entity_type, v.c.state,
            func.row_number().over(partition_by=v.c.entity_id,
                                   order_by=(v.c.occurred_at.desc(), v.c.sequence.desc())).label("rank"),
        ).where(v.c.session_id == session_id, v.c.occurred_at < moment).subquery()
        rows = self.db.execute(select(ranked.c.entity_type, ranked.c.state).where(ranked.c.rank == 1))
        out: dict[str, list[dict]] = {"objective": [], "key_result": [], "initiative": []}
        for entity_type, state in rows:
            if not state.get("removed"):
                out.setdefault(entity_type, []).append(state)
        return out

    def last_check_ins(self, session_id, before: datetime) -> dict:
        """When each Key Result last had a Check-in, before a moment."""
        c = orm.check_ins
        rows = self.db.execute(select(c.c.key_result_id, func.max(c.c.checked_in_at)).where(
            c.c.session_id == session_id, c.c.checked_in_at < before).group_by(c.c.key_result_id))
        return {str(kr): at for kr, at in rows}

    def check_in_times(self, session_id) -> list[datetime]:
        return list(self.db.execute(select(orm.check_ins.c.checked_in_at).where(
            orm.check_ins.c.session_id == session_id)).scalars())

    def check_ins_between(self, session_id, start: datetime, end: datetime) -> list[dict]:
        c = orm.check_ins
        rows = self.db.execute(select(c).where(
            c.c.session_id == session_id, c.c.checked_in_at >= start, c.c.checked_in_at < end,
        ).order_by(c.c.checked_in_at.desc())).mappings()
        return [dict(r) for r in rows]

