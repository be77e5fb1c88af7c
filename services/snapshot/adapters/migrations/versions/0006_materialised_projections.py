"""Materialised week views (issue 13): each item's newest version (item_latest, kept with every
applied batch) and each sealed week's item states (sealed_projections, stored when it is sealed),
both filled here from the item versions already stored. A sealed week's projection is read-only,
like its seal.

Revision ID: 0006
Revises: 0005
"""
import orjson
import sqlalchemy as sa
from alembic import op

from shared.db import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

VERSIONS = sa.table("item_versions", sa.column("session_id", sa.Uuid), sa.column("entity_type", sa.String),
                    sa.column("entity_id", sa.Uuid), sa.column("sequence", sa.Integer),
                    sa.column("effective_at", UtcDateTime), sa.column("state", sa.Text))
SEALS = sa.table("sealed_weeks", sa.column("session_id", sa.Uuid), sa.column("week", sa.String),
                 sa.column("ends_at", UtcDateTime))


def _newest(bind, *where):
    """The newest version (by sequence) of each item among those `where` selects."""
    v = VERSIONS
    ranked = sa.select(v.c.session_id, v.c.entity_type, v.c.entity_id, v.c.sequence, v.c.effective_at,
                       sa.cast(v.c.state, sa.Text).label("state"),
                       sa.func.row_number().over(partition_by=v.c.entity_id, order_by=v.c.sequence.desc())
                       .label("rank")).where(*where).subquery()
    return bind.execute(sa.select(ranked).where(ranked.c.rank == 1).order_by(ranked.c.entity_id)).all()


def upgrade() -> None:
    bind = op.get_bind()
    latest = op.create_table(
        "item_latest",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("entity_type", sa.String(length=20), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("effective_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "entity_id"))
    projections = op.create_table(
        "sealed_projections",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("week", sa.String(length=8), nullable=False),
        sa.Column("states", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "week"))
    rows = [{k: v for k, v in r._mapping.items() if k != "rank"} for r in _newest(bind)]
    if rows:
        op.bulk_insert(latest, rows)
    for seal in bind.execute(sa.select(SEALS)).all():
        states = {"objective": [], "key_result": [], "initiative": []}
        for row in _newest(bind, VERSIONS.c.session_id == seal.session_id, VERSIONS.c.effective_at < seal.ends_at):
            state = orjson.loads(row.state)
            if not state.get("removed"):
                states.setdefault(row.entity_type, []).append(state)
        op.bulk_insert(projections, [{"session_id": seal.session_id, "week": seal.week,
                                      "states": orjson.dumps(states).decode()}])
    if bind.dialect.name == "postgresql":
        schema = bind.exec_driver_sql("SELECT current_schema()").scalar_one()
        op.execute(f"""CREATE TRIGGER sealed_projections_read_only BEFORE UPDATE OR DELETE ON sealed_projections
                       FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse_sealed_week_change()""")
        op.execute(f"""CREATE TRIGGER sealed_projections_no_truncate BEFORE TRUNCATE ON sealed_projections
                       FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".refuse_sealed_truncate()""")
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"""CREATE TRIGGER sealed_projections_no_{action.lower()} BEFORE {action}
                           ON sealed_projections BEGIN SELECT RAISE(ABORT, 'sealed weeks are read-only'); END""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER sealed_projections_no_truncate ON sealed_projections")
        op.execute("DROP TRIGGER sealed_projections_read_only ON sealed_projections")
    op.drop_table("sealed_projections")
    op.drop_table("item_latest")
