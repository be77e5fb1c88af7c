"""item_latest says which Objectives are private (their newest version), so a view for a member
asks one indexed question instead of reading every Objective (issue 13).

Revision ID: 0008
Revises: 0007
"""
import orjson
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

LATEST = sa.table("item_latest", sa.column("entity_id", sa.Uuid), sa.column("entity_type", sa.String),
                  sa.column("state", sa.Text), sa.column("private", sa.Boolean))


def upgrade() -> None:
    with op.batch_alter_table("item_latest") as batch_op:
        batch_op.add_column(sa.Column("private", sa.Boolean(), nullable=False, server_default=sa.false()))
    bind = op.get_bind()
    private = [row.entity_id for row in bind.execute(sa.select(LATEST.c.entity_id, LATEST.c.state).where(
        LATEST.c.entity_type == "objective")) if orjson.loads(row.state).get("private")]
    if private:
        bind.execute(sa.update(LATEST).where(LATEST.c.entity_id.in_(private)).values(private=True))


def downgrade() -> None:
    with op.batch_alter_table("item_latest") as batch_op:
        batch_op.drop_column("private")
