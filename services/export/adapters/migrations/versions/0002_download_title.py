"""export jobs: the download's title (<session>-<week>-<owner filter>)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 05:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('export_jobs', sa.Column('download_title', sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column('export_jobs', 'download_title')
