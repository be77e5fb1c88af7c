"""The check-in service's tables (SQLAlchemy Core); migrations in adapters/migrations."""
from sqlalchemy import (
                        JSON,
                        Boolean,
                        Column,
                        Date,
                        Float,
                        ForeignKey,
                        Index,
                        Integer,
                        MetaData,
                        String,
                        Table,
                        Text,
                        Uuid,
)

from shared.db import UtcDateTime
from shared.messaging import outbox_table

metadata = MetaData()

sessions = Table(
    "sessions", metadata,
    Column("id", Uuid, primary_key=True),
    Column("workspace_id", Uuid, nullable=False, index=True),
    Column("name", Text, nullable=False),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("week_start_day", String(10), nullable=False),
    Column("checkin_cadence", String(10), nullable=False),
    Column("checkin_weekday", String(10), nullable=False),
    Column("status", String(10), nullable=False),
    Column("visibility", String(10), nullable=False, server_default="workspace"),
    Column("members", JSON, nullable=False, server_default="[]"),
    Column("version", Integer, nullable=False),
    Column("last_sequence", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

objectives = Table(
    "objectives", metadata,
    Column("id", Uuid, primary_key=True),
    Column("session_id", Uuid, ForeignKey("sessions.id"), nullable=False, index=True),
    Column("workspace_id", Uuid, nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("owner_id", Uuid, nullable=True),
    Column("parent_id", Uuid, ForeignKey("objectives.id"), nullable=True),
    Column("private", Boolean, nullable=False),
    Column("visible_to", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("removed_at", UtcDateTime(), nullable=True),
)

key_results = Table(
    "key_results", metadata,
    Column("id", Uuid, primary_key=True),
    Column("objective_id", Uuid, ForeignKey("objectives.id"), nullable=False, index=True),
    Column("session_id", Uuid, ForeignKey("sessions.id"), nullable=False, index=True),
    Column("workspace_id", Uuid, nullable=False),
    Column("title", Text, nullable=False),
    Column("owner_id", Uuid, nullable=True),
    Column("kind", String(10), nullable=False),
    Column("start_value", Float, nullable=False),
    Column("target_value", Float, nullable=False),
    Column("current_value", Float, nullable=False),
    Column("unit", String(32), nullable=False),
    Column("status", String(20), nullable=False),
    Column("confidence", Integer, nullable=True),
    Column("weight", Float, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("removed_at", UtcDateTime(), nullable=True),
)

initiatives = Table(
    "initiatives", metadata,
    Column("id", Uuid, primary_key=True),
    Column("session_id", Uuid, ForeignKey("sessions.id"), nullable=False, index=True),
    Column("workspace_id", Uuid, nullable=False),
    Column("title", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("owner_id", Uuid, nullable=True),
    Column("canvas", JSON, nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("removed_at", UtcDateTime(), nullable=True),
)

initiative_key_results = Table(
    "initiative_key_results", metadata,
    Column("initiative_id", Uuid, ForeignKey("initiatives.id"), primary_key=True),
    Column("key_result_id", Uuid, ForeignKey("key_results.id"), primary_key=True, index=True),
    Column("position", Integer, nullable=False),
)

check_ins = Table(
    "check_ins", metadata,
    Column("id", Uuid, primary_key=True),
    Column("key_result_id", Uuid, ForeignKey("key_results.id"), nullable=False),
    Column("value", Float, nullable=False),
    Column("status", String(20), nullable=False),
    Column("confidence", Integer, nullable=True),
    Column("comment", Text, nullable=False),
    Column("author_id", Uuid, nullable=True),
    Column("checked_in_at", UtcDateTime(), nullable=False),
    Index("ix_check_ins_key_result_time", "key_result_id", "checked_in_at"),
)

initiative_check_ins = Table(
    "initiative_check_ins", metadata,
    Column("id", Uuid, primary_key=True),
    Column("initiative_id", Uuid, ForeignKey("initiatives.id"), nullable=False),
    Column("status", String(20), nullable=False),
    Column("comment", Text, nullable=False),
    Column("author_id", Uuid, nullable=True),
    Column("checked_in_at", UtcDateTime(), nullable=False),
    Index("ix_initiative_check_ins_time", "initiative_id", "checked_in_at"),
)

# The weeks whose week_closed marker is in the outbox: each is closed once.
week_markers = Table(
    "week_markers", metadata,
    Column("session_id", Uuid, ForeignKey("sessions.id"), primary_key=True),
    Column("week", String(8), primary_key=True),
    Column("closed_at", UtcDateTime(), nullable=False),
)

outbox = outbox_table(metadata)
