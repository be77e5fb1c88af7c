"""Sealed weeks' views as answered, shared by every worker and replica (issue 13).

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

from shared.db import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rendered_views",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("week", sa.String(length=8), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("rendered_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"))
    op.create_index("ix_rendered_views_session_week", "rendered_views", ["session_id", "week"])


def downgrade() -> None:
    op.drop_index("ix_rendered_views_session_week", table_name="rendered_views")
    op.drop_table("rendered_views")
