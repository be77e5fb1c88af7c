"""export jobs: progress, the builder's heartbeat (the lease runs from it) and when the file is deleted

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 07:40:00
"""
import sqlalchemy as sa
from alembic import op

from shared.db import UtcDateTime

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('export_jobs') as batch:  # SQLite rebuilds the table for the index
        batch.add_column(sa.Column('progress', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('heartbeat_at', UtcDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('file_expires_at', UtcDateTime(timezone=True), nullable=True))
        batch.create_index('ix_export_jobs_status_file_expires', ['status', 'file_expires_at'])
        batch.create_index('ix_export_jobs_requester_created', ['requested_by', 'created_at'])


def downgrade() -> None:
    with op.batch_alter_table('export_jobs') as batch:
        batch.drop_index('ix_export_jobs_requester_created')
        batch.drop_index('ix_export_jobs_status_file_expires')
        batch.drop_column('file_expires_at')
        batch.drop_column('heartbeat_at')
        batch.drop_column('progress')
