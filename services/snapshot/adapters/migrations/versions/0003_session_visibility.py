"""Sessions visible to the whole Workspace or restricted to listed members (session events v2);
item versions indexed by type, for the Objectives' privacy read on every non-admin view.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.add_column(sa.Column("visibility", sa.String(length=10), nullable=False,
                                      server_default="workspace"))
        batch_op.add_column(sa.Column("members", sa.JSON(), nullable=False, server_default="[]"))
    op.create_index("ix_item_versions_session_type", "item_versions", ["session_id", "entity_type"])


def downgrade() -> None:
    op.drop_index("ix_item_versions_session_type", table_name="item_versions")
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.drop_column("members")
        batch_op.drop_column("visibility")
