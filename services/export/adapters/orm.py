"""The export service's tables (SQLAlchemy Core); migrations in adapters/migrations."""
from sqlalchemy import JSON, Column, Index, Integer, MetaData, String, Table, Text, Uuid

from shared.db import UtcDateTime
from shared.messaging import outbox_table, processed_events_table

metadata = MetaData()

export_jobs = Table(
    "export_jobs", metadata,
    Column("id", Uuid, primary_key=True),
    Column("workspace_id", Uuid, nullable=False),
    Column("session_id", Uuid, nullable=False),
    Column("week", String(8), nullable=False),
    Column("owner_filter", String(36), nullable=False),
    Column("format", String(8), nullable=False),
    Column("status", String(10), nullable=False),
    Column("requested_by", Uuid, nullable=False),
    Column("principal_claims", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("error", Text, nullable=True),
    Column("file_name", String(100), nullable=True),
    Column("row_count", Integer, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("download_title", String(200), nullable=True),
    Column("progress", Integer, nullable=False, default=0, server_default="0"),
    Column("heartbeat_at", UtcDateTime(), nullable=True),
    Column("file_expires_at", UtcDateTime(), nullable=True),
    Index("ix_export_jobs_requester_status", "requested_by", "status"),
    Index("ix_export_jobs_status_created", "status", "created_at"),
    Index("ix_export_jobs_status_file_expires", "status", "file_expires_at"),
    Index("ix_export_jobs_requester_created", "requested_by", "created_at"),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)
