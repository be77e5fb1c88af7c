"""The snapshot service's tables. Each item version is stored once, valid from the moment it
occurred: a week's state is the newest version of each item before the week's end, so storage
grows with change, not with weeks times items."""
from sqlalchemy import (
                        JSON,
                        Boolean,
                        Column,
                        Date,
                        Float,
                        Index,
                        Integer,
                        MetaData,
                        String,
                        Table,
                        Text,
                        UniqueConstraint,
                        Uuid,
                        false,
)

from shared.db import UtcDateTime
from shared.messaging import processed_events_table

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
)

item_versions = Table(
    "item_versions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", Uuid, nullable=False),
    Column("entity_type", String(20), nullable=False),  # objective | key_result | initiative
    Column("entity_id", Uuid, nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
    # When it counts: when it occurred, or - for an event that arrived after its week was closed
    # (a late amendment) - the end of the last week closed before it, so sealed weeks never change.
    Column("effective_at", UtcDateTime(), nullable=False),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("state", JSON, nullable=False),
    UniqueConstraint("entity_id", "sequence", name="uq_item_versions_entity_sequence"),
    Index("ix_item_versions_session_effective", "session_id", "effective_at"),
    Index("ix_item_versions_session_type", "session_id", "entity_type"),
)

check_ins = Table(
    "check_ins", metadata,
    Column("id", Uuid, primary_key=True),
    Column("session_id", Uuid, nullable=False),
    Column("key_result_id", Uuid, nullable=False),
    Column("value", Float, nullable=False),
    Column("status", String(20), nullable=False),
    Column("confidence", Integer, nullable=True),
    Column("comment", Text, nullable=False),
    Column("author_id", Uuid, nullable=True),
    Column("checked_in_at", UtcDateTime(), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("effective_at", UtcDateTime(), nullable=False),
    Index("ix_snapshot_check_ins_session_time", "session_id", "checked_in_at"),
    Index("ix_snapshot_check_ins_session_effective", "session_id", "effective_at"),
)

# A week is "saved" when its Session had activity in it.
session_weeks = Table(
    "session_weeks", metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("week", String(8), primary_key=True),
    Column("events", Integer, nullable=False),
)

# Which per-Session sequence numbers have been applied: a week can be sealed once every number
# below its week_closed marker's is here.
applied_sequences = Table(
    "applied_sequences", metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("sequence", Integer, primary_key=True),
)

week_closes = Table(
    "week_closes", metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("week", String(8), primary_key=True),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("close_sequence", Integer, nullable=False),
)

# One row per sealed week: no item is copied; the hash covers the week's state and the previous
# sealed week's hash (a tamper-evident chain).
sealed_weeks = Table(
    "sealed_weeks", metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("week", String(8), primary_key=True),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("close_sequence", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("previous_hash", String(64), nullable=True),
    Column("item_count", Integer, nullable=False),
    Column("check_in_count", Integer, nullable=False),
    Column("sealed_at", UtcDateTime(), nullable=False),
)

# The live projection: each item's newest version (by sequence), written in the transaction that
# applies its event, so the live week and the privacy rules read one row per item instead of
# ranking every version of the Session. State is JSON text, decoded for all rows at once.
item_latest = Table(
    "item_latest", metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("entity_id", Uuid, primary_key=True),
    Column("entity_type", String(20), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("effective_at", UtcDateTime(), nullable=False),
    Column("state", Text, nullable=False),
    # A private Objective (its newest version): whether a non-admin's views must be filtered is
    # answered without reading every Objective (migration 0008).
    Column("private", Boolean, nullable=False, server_default=false()),
)

# A sealed week's item states (removed items left out), stored once when it is sealed: the same
# states its hash covers, so a view of it reads one row instead of re-deriving the week from every
# item version. Read-only like the seal itself (migration 0006).
sealed_projections = Table(
    "sealed_projections", metadata,
    Column("session_id", Uuid, primary_key=True),
    Column("week", String(8), primary_key=True),
    Column("states", Text, nullable=False),
)

# Sealed weeks' views as answered (JSON), keyed by everything such a view depends on (see
# handlers.week_view_key): rendered by the first worker that answers one, read by every other
# worker and replica after it. A cache: any row may go; a few per week are kept.
rendered_views = Table(
    "rendered_views", metadata,
    Column("key", String(64), primary_key=True),
    Column("session_id", Uuid, nullable=False),
    Column("week", String(8), nullable=False),
    Column("body", Text, nullable=False),
    Column("rendered_at", UtcDateTime(), nullable=False),
    Index("ix_rendered_views_session_week", "session_id", "week"),
)

# Events that arrived before their Session's own event (several workers, any order): kept here,
# acknowledged, and applied as soon as the Session is known.
parked_events = Table(
    "parked_events", metadata,
    Column("event_id", Uuid, primary_key=True),
    Column("session_id", Uuid, nullable=False, index=True),
    Column("body", JSON, nullable=False),
    Column("parked_at", UtcDateTime(), nullable=False),
)

processed_events = processed_events_table(metadata)
