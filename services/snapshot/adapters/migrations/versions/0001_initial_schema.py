"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 11:00:53.146875
"""
import sqlalchemy as sa
from alembic import op

import shared.db

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('applied_sequences',
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('session_id', 'sequence')
    )
    op.create_table('check_ins',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('key_result_id', sa.Uuid(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('confidence', sa.Integer(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('author_id', sa.Uuid(), nullable=True),
    sa.Column('checked_in_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('effective_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('check_ins', schema=None) as batch_op:
        batch_op.create_index('ix_snapshot_check_ins_session_effective', ['session_id', 'effective_at'], unique=False)
        batch_op.create_index('ix_snapshot_check_ins_session_time', ['session_id', 'checked_in_at'], unique=False)

    op.create_table('item_versions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('entity_type', sa.String(length=20), nullable=False),
    sa.Column('entity_id', sa.Uuid(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('occurred_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('effective_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('entity_id', 'sequence', name='uq_item_versions_entity_sequence'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('item_versions', schema=None) as batch_op:
        batch_op.create_index('ix_item_versions_session_effective', ['session_id', 'effective_at'], unique=False)

    op.create_table('parked_events',
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('parked_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    with op.batch_alter_table('parked_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parked_events_session_id'), ['session_id'], unique=False)

    op.create_table('processed_events',
    sa.Column('consumer', sa.String(length=100), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('processed_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'event_id')
    )
    op.create_table('sealed_weeks',
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('week', sa.String(length=8), nullable=False),
    sa.Column('ends_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('close_sequence', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('previous_hash', sa.String(length=64), nullable=True),
    sa.Column('item_count', sa.Integer(), nullable=False),
    sa.Column('check_in_count', sa.Integer(), nullable=False),
    sa.Column('sealed_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('session_id', 'week')
    )
    op.create_table('session_weeks',
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('week', sa.String(length=8), nullable=False),
    sa.Column('events', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('session_id', 'week')
    )
    op.create_table('sessions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('week_start_day', sa.String(length=10), nullable=False),
    sa.Column('checkin_cadence', sa.String(length=10), nullable=False),
    sa.Column('checkin_weekday', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sessions_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('week_closes',
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('week', sa.String(length=8), nullable=False),
    sa.Column('starts_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('close_sequence', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('session_id', 'week')
    )
    


def downgrade() -> None:
    
    op.drop_table('week_closes')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sessions_workspace_id'))

    op.drop_table('sessions')
    op.drop_table('session_weeks')
    op.drop_table('sealed_weeks')
    op.drop_table('processed_events')
    with op.batch_alter_table('parked_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parked_events_session_id'))

    op.drop_table('parked_events')
    with op.batch_alter_table('item_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_item_versions_session_effective')

    op.drop_table('item_versions')
    with op.batch_alter_table('check_ins', schema=None) as batch_op:
        batch_op.drop_index('ix_snapshot_check_ins_session_time')
        batch_op.drop_index('ix_snapshot_check_ins_session_effective')

    op.drop_table('check_ins')
    op.drop_table('applied_sequences')
    
