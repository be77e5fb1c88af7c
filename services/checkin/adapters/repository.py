"""Repositories: translate rows to domain objects and back. One DB session, owned by the UoW."""
from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session as DbSession

from services.checkin.adapters import orm
from services.checkin.domain.model import CheckIn, KeyResult, Objective, Session
from shared.events import Event
from shared.messaging import add_to_outbox


def _columns(table, obj, names=None) -> dict:
    return {c.name: getattr(obj, c.name) for c in table.columns
            if hasattr(obj, c.name) and (names is None or c.name in names)}


class SqlRepository:
    def __init__(self, db: DbSession):
        self.db = db

    # Sessions
    def add_session(self, session: Session) -> None:
        self.db.execute(orm.sessions.insert().values(**_columns(orm.sessions, session), last_sequence=0))

    def get_session(self, session_id: uuid.UUID) -> Session | None:
        row = self.db.execute(select(orm.sessions).where(orm.sessions.c.id == session_id)).mappings().first()
        return _session(row) if row else None

    def list_sessions(self, workspace_id: uuid.UUID) -> list[Session]:
        rows = self.db.execute(select(orm.sessions).where(orm.sessions.c.workspace_id == workspace_id)
                               .order_by(orm.sessions.c.start_date, orm.sessions.c.name)).mappings()
        return [_session(r) for r in rows]

    def next_sequence(self, session_id: uuid.UUID) -> int:
        """Per-Session event sequence; the UPDATE takes the row lock, so concurrent writers of one
        Session get distinct, gap-free numbers in commit order."""
        return self.db.execute(
            update(orm.sessions).where(orm.sessions.c.id == session_id)
            .values(last_sequence=orm.sessions.c.last_sequence + 1)
            .returning(orm.sessions.c.last_sequence)
        ).scalar_one()

    # Objectives
    def add_objective(self, objective: Objective) -> None:
        self.db.execute(orm.objectives.insert().values(**_columns(orm.objectives, objective)))

    def get_objective(self, objective_id: uuid.UUID) -> Objective | None:
        row = self.db.execute(select(orm.objectives).where(orm.objectives.c.id == objective_id)).mappings().first()
        return Objective(**row) if row else None

    def list_objectives(self, session_id: uuid.UUID) -> list[Objective]:
        rows = self.db.execute(select(orm.objectives).where(orm.objectives.c.session_id == session_id)
                               .order_by(orm.objectives.c.created_at, orm.objectives.c.id)).mappings()
        return [Objective(**r) for r in rows]

    # Key Results
    def add_key_result(self, key_result: KeyResult) -> None:
        self.db.execute(orm.key_results.insert().values(**_columns(orm.key_results, key_result)))

    def get_key_result(self, key_result_id: uuid.UUID, *, for_update: bool = False) -> KeyResult | None:
        query = select(orm.key_results).where(orm.key_results.c.id == key_result_id)
        if for_update:
            query = query.with_for_update()
        row = self.db.execute(query).mappings().first()
        return KeyResult(**row) if row else None

    def list_key_results(self, session_id: uuid.UUID) -> list[KeyResult]:
        rows = self.db.execute(select(orm.key_results).where(orm.key_results.c.session_id == session_id)
                               .order_by(orm.key_results.c.created_at, orm.key_results.c.id)).mappings()
        return [KeyResult(**r) for r in rows]

    def save_key_result(self, key_result: KeyResult) -> None:
        values = _columns(orm.key_results, key_result, {"current_value", "status", "updated_at",
                                                         "title", "owner_id", "unit"})
        self.db.execute(update(orm.key_results).where(orm.key_results.c.id == key_result.id).values(**values))
        for entry in key_result.check_ins:
            self.db.execute(orm.check_ins.insert().values(**_columns(orm.check_ins, entry)))
        key_result.check_ins.clear()

    def list_check_ins(self, key_result_id: uuid.UUID, *, limit: int, offset: int) -> list[CheckIn]:
        rows = self.db.execute(
            select(orm.check_ins).where(orm.check_ins.c.key_result_id == key_result_id)
            .order_by(orm.check_ins.c.checked_in_at.desc(), orm.check_ins.c.id)
            .limit(limit).offset(offset)).mappings()
        return [CheckIn(**r) for r in rows]

    # Outbox
    def add_event(self, event: Event) -> None:
        add_to_outbox(self.db, orm.outbox, event, event.occurred_at)


def _session(row) -> Session:
    values = dict(row)
    values.pop("last_sequence", None)
    return Session(**values)
