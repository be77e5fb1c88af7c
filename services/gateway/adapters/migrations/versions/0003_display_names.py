"""display names and password changes: users.display_name ('' until set; shown as the email's
local part) and users.token_generation (access tokens issued before a password change stop working)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09 10:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('display_name', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('token_generation', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('token_generation')
        batch_op.drop_column('display_name')
