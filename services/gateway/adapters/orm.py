from sqlalchemy import Boolean, Column, ForeignKey, MetaData, String, Table, Text, Uuid

from shared.db import UtcDateTime

metadata = MetaData()

users = Table(
    "users", metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
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
