"""Repository: export job rows to domain objects and back. One DB session, owned by the UoW."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.orm import Session as DbSession

from services.export.adapters import orm
from services.export.domain.model import ACTIVE, DONE, QUEUED, RUNNING, ExportJob
from shared.events import Event
from shared.messaging import add_to_outbox, already_processed, mark_processed

CONSUMER = "export.jobs"
_MUTABLE = ("status", "started_at", "finished_at", "error", "file_name", "row_count", "attempts",
            "download_title", "progress", "heartbeat_at", "file_expires_at")


class SqlRepository:
    def __init__(self, db: DbSession):
        self.db = db

    def add(self, job: ExportJob) -> None:
        self.db.execute(orm.export_jobs.insert().values(**vars(job)))

    def get(self, job_id: uuid.UUID, *, for_update: bool = False) -> ExportJob | None:
        query = select(orm.export_jobs).where(orm.export_jobs.c.id == job_id)
        if for_update:
            query = query.with_for_update()
        row = self.db.execute(query).mappings().first()
        return ExportJob(**row) if row else None

    def save(self, job: ExportJob) -> None:
        self.db.execute(update(orm.export_jobs).where(orm.export_jobs.c.id == job.id)
                        .values({name: getattr(job, name) for name in _MUTABLE}))

    def lock_requester(self, requester: uuid.UUID) -> None:
        """Serialises one requester's concurrent requests so the limit on active exports holds.
        SQLite needs nothing: its writers already queue on BEGIN IMMEDIATE."""
        if self.db.get_bind().dialect.name == "postgresql":
            key = requester.int & 0x7FFF_FFFF_FFFF_FFFF  # fits PostgreSQL's signed bigint
            self.db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    def count_active(self, requester: uuid.UUID) -> int:
        jobs = orm.export_jobs
        return self.db.execute(select(func.count()).select_from(jobs).where(
            jobs.c.requested_by == requester, jobs.c.status.in_(ACTIVE))).scalar_one()

    def stranded(self, *, running_before: datetime, queued_before: datetime, limit: int) -> list[ExportJob]:
        """Jobs whose builder died (running past the lease) or whose message never came (queued
        too long), locked so that only one worker takes each."""
        jobs = orm.export_jobs
        rows = self.db.execute(
            select(jobs).where(or_(
                and_(jobs.c.status == RUNNING,
                     func.coalesce(jobs.c.heartbeat_at, jobs.c.started_at) < running_before),
                and_(jobs.c.status == QUEUED, jobs.c.created_at < queued_before),
            )).order_by(jobs.c.created_at).limit(limit).with_for_update(skip_locked=True)
        ).mappings()
        return [ExportJob(**row) for row in rows]

    def past_retention(self, now: datetime, *, limit: int) -> list[ExportJob]:
        """Finished jobs whose file is due for deletion, locked so that only one worker takes each."""
        jobs = orm.export_jobs
        rows = self.db.execute(
            select(jobs).where(jobs.c.status == DONE, jobs.c.file_expires_at <= now)
            .order_by(jobs.c.file_expires_at).limit(limit).with_for_update(skip_locked=True)
        ).mappings()
        return [ExportJob(**row) for row in rows]

    def requested_by(self, requester: uuid.UUID, *, workspace_ids: list[uuid.UUID],
                     session_id: uuid.UUID | None, limit: int, offset: int) -> tuple[list[ExportJob], int]:
        """A requester's jobs in the given Workspaces, newest first, and how many there are."""
        jobs = orm.export_jobs
        where = [jobs.c.requested_by == requester, jobs.c.workspace_id.in_(workspace_ids)]
        if session_id is not None:
            where.append(jobs.c.session_id == session_id)
        total = self.db.execute(select(func.count()).select_from(jobs).where(*where)).scalar_one()
        rows = self.db.execute(select(jobs).where(*where)
                               .order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit).offset(offset))
        return [ExportJob(**row) for row in rows.mappings()], total

    # Outbox and processed events
    def add_event(self, event: Event) -> None:
        add_to_outbox(self.db, orm.outbox, event, event.occurred_at)

    def already_processed(self, event_id) -> bool:
        return already_processed(self.db, orm.processed_events, CONSUMER, event_id)

    def mark_processed(self, event_id, now: datetime) -> None:
        mark_processed(self.db, orm.processed_events, CONSUMER, event_id, now)
