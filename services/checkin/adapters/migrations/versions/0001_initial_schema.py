"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 10:29:11.012573
"""
import sqlalchemy as sa
from alembic import op

import shared.db

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('event_type', sa.String(length=200), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('created_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', shared.db.UtcDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_sent_at'), ['sent_at'], unique=False)

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
    sa.Column('last_sequence', sa.Integer(), nullable=False),
    sa.Column('created_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sessions_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('initiatives',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('owner_id', sa.Uuid(), nullable=True),
    sa.Column('canvas', sa.JSON(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('removed_at', shared.db.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('initiatives', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_initiatives_session_id'), ['session_id'], unique=False)

    op.create_table('objectives',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('owner_id', sa.Uuid(), nullable=True),
    sa.Column('parent_id', sa.Uuid(), nullable=True),
    sa.Column('private', sa.Boolean(), nullable=False),
    sa.Column('visible_to', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('removed_at', shared.db.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['parent_id'], ['objectives.id'], ),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('objectives', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_objectives_session_id'), ['session_id'], unique=False)

    op.create_table('week_markers',
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('week', sa.String(length=8), nullable=False),
    sa.Column('closed_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], ),
    sa.PrimaryKeyConstraint('session_id', 'week')
    )
    op.create_table('initiative_check_ins',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('initiative_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('author_id', sa.Uuid(), nullable=True),
    sa.Column('checked_in_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['initiative_id'], ['initiatives.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('initiative_check_ins', schema=None) as batch_op:
        batch_op.create_index('ix_initiative_check_ins_time', ['initiative_id', 'checked_in_at'], unique=False)

    op.create_table('key_results',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('objective_id', sa.Uuid(), nullable=False),
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('owner_id', sa.Uuid(), nullable=True),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('start_value', sa.Float(), nullable=False),
    sa.Column('target_value', sa.Float(), nullable=False),
    sa.Column('current_value', sa.Float(), nullable=False),
    sa.Column('unit', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('confidence', sa.Integer(), nullable=True),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('removed_at', shared.db.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['objective_id'], ['objectives.id'], ),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('key_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_key_results_objective_id'), ['objective_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_key_results_session_id'), ['session_id'], unique=False)

    op.create_table('check_ins',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('key_result_id', sa.Uuid(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('confidence', sa.Integer(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('author_id', sa.Uuid(), nullable=True),
    sa.Column('checked_in_at', shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['key_result_id'], ['key_results.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('check_ins', schema=None) as batch_op:
        batch_op.create_index('ix_check_ins_key_result_time', ['key_result_id', 'checked_in_at'], unique=False)

    op.create_table('initiative_key_results',
    sa.Column('initiative_id', sa.Uuid(), nullable=False),
    sa.Column('key_result_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['initiative_id'], ['initiatives.id'], ),
    sa.ForeignKeyConstraint(['key_result_id'], ['key_results.id'], ),
    sa.PrimaryKeyConstraint('initiative_id', 'key_result_id')
    )
    with op.batch_alter_table('initiative_key_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_initiative_key_results_key_result_id'), ['key_result_id'], unique=False)

    


def downgrade() -> None:
    
    with op.batch_alter_table('initiative_key_results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_initiative_key_results_key_result_id'))

    op.drop_table('initiative_key_results')
    with op.batch_alter_table('check_ins', schema=None) as batch_op:
        batch_op.drop_index('ix_check_ins_key_result_time')

    op.drop_table('check_ins')
    with op.batch_alter_table('key_results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_key_results_session_id'))
        batch_op.drop_index(batch_op.f('ix_key_results_objective_id'))

    op.drop_table('key_results')
    with op.batch_alter_table('initiative_check_ins', schema=None) as batch_op:
        batch_op.drop_index('ix_initiative_check_ins_time')

    op.drop_table('initiative_check_ins')
    op.drop_table('week_markers')
    with op.batch_alter_table('objectives', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_objectives_session_id'))

    op.drop_table('objectives')
    with op.batch_alter_table('initiatives', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_initiatives_session_id'))

    op.drop_table('initiatives')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sessions_workspace_id'))

    op.drop_table('sessions')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_sent_at'))

    op.drop_table('outbox')
    
