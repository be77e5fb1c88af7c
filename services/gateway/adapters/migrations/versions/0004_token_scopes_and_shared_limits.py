"""personal token scopes (read, check_in, admin; earlier tokens keep admin) and rate-limit counters
in the database, shared by every gateway process when there is no Redis

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 08:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('personal_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.String(length=20), server_default='admin', nullable=False))
    op.create_table(
        'rate_limit_counts',
        sa.Column('bucket', sa.String(length=120), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('bucket'),
    )
    op.create_index('ix_rate_limit_counts_expires_at', 'rate_limit_counts', ['expires_at'])


def downgrade() -> None:
    op.drop_index('ix_rate_limit_counts_expires_at', table_name='rate_limit_counts')
    op.drop_table('rate_limit_counts')
    with op.batch_alter_table('personal_tokens', schema=None) as batch_op:
        batch_op.drop_column('scope')
