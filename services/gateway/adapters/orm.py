from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
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

metadata = MetaData()

users = Table(
    "users", metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("display_name", Text, nullable=False, server_default=""),
    Column("token_generation", Integer, nullable=False, server_default="0"),
)

workspaces = Table(
    "workspaces", metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

memberships = Table(
    "memberships", metadata,
    Column("workspace_id", Uuid, ForeignKey("workspaces.id"), primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id"), primary_key=True, index=True),
    Column("role", String(20), nullable=False),
    Column("okr_access", Boolean, nullable=False),
)

# Access tokens revoked before their expiry (logout); rows past expires_at are pruned.
revoked_tokens = Table(
    "revoked_tokens", metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

personal_tokens = Table(
    "personal_tokens", metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id"), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("last_used_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("scope", String(20), nullable=False, server_default="admin"),
)

browser_sessions = Table(
    "browser_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id"), nullable=False, index=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

invitations = Table(
    "invitations", metadata,
    Column("id", Uuid, primary_key=True),
    Column("workspace_id", Uuid, ForeignKey("workspaces.id"), nullable=False, index=True),
    Column("email", String(254), nullable=False),
    Column("role", String(20), nullable=False),
    Column("okr_access", Boolean, nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("invited_by", Uuid, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("accepted_at", UtcDateTime(), nullable=True),
)

audit_events = Table(
    "audit_events", metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor_user_id", Uuid, nullable=True),
    Column("actor_email", String(254), nullable=True),
    Column("workspace_id", Uuid, nullable=True),
    Column("action", String(40), nullable=False),
    Column("target", Text, nullable=True),
    Column("ip", String(64), nullable=True),
    Column("user_agent", String(200), nullable=True),
    Column("detail", JSON, nullable=True),
)
Index("ix_audit_events_workspace_id_id", audit_events.c.workspace_id, audit_events.c.id)

# Rate-limit counters shared by every gateway process without Redis (one row per key and window).
rate_limit_counts = Table(
    "rate_limit_counts", metadata,
    Column("bucket", String(120), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),  # epoch seconds: the row is pruned after
)
