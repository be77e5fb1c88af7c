"""Each event's activity counts in the week it counts in (its effective time), not the week it
occurred: a late amendment's change moves to the later week, as its Check-in always did, so the
calendar counts the same event in the same week for every principal (issue 9).

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

from shared.db import UtcDateTime
from shared.weeks import Week

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SESSIONS = sa.table("sessions", sa.column("id", sa.Uuid), sa.column("timezone", sa.String),
                    sa.column("week_start_day", sa.String))
VERSIONS = sa.table("item_versions", sa.column("session_id", sa.Uuid), sa.column("occurred_at", UtcDateTime),
                    sa.column("effective_at", UtcDateTime))
WEEKS = sa.table("session_weeks", sa.column("session_id", sa.Uuid), sa.column("week", sa.String),
                 sa.column("events", sa.Integer))


def _moves(bind, to_effective: bool) -> None:
    sessions = {row.id: row for row in bind.execute(sa.select(SESSIONS))}
    late = bind.execute(sa.select(VERSIONS.c.session_id, VERSIONS.c.occurred_at, VERSIONS.c.effective_at).where(
        VERSIONS.c.effective_at > VERSIONS.c.occurred_at))
    moves: dict = {}
    for session_id, occurred_at, effective_at in late:
        session = sessions.get(session_id)
        if session is None:
            continue
        weeks = [Week.of_instant(m, session.timezone, session.week_start_day).label
                 for m in (occurred_at, effective_at)]
        source, target = weeks if to_effective else weeks[::-1]
        if source != target:
            moves[(session_id, source, target)] = moves.get((session_id, source, target), 0) + 1
    for (session_id, source, target), events in sorted(moves.items(), key=lambda kv: (str(kv[0][0]), kv[0][1:])):
        where = sa.and_(WEEKS.c.session_id == session_id, WEEKS.c.week == source)
        bind.execute(sa.update(WEEKS).where(where).values(events=WEEKS.c.events - events))
        bind.execute(sa.delete(WEEKS).where(where, WEEKS.c.events <= 0))
        target_where = sa.and_(WEEKS.c.session_id == session_id, WEEKS.c.week == target)
        if bind.execute(sa.update(WEEKS).where(target_where).values(events=WEEKS.c.events + events)).rowcount == 0:
            bind.execute(sa.insert(WEEKS).values(session_id=session_id, week=target, events=events))


def upgrade() -> None:
    _moves(op.get_bind(), to_effective=True)


def downgrade() -> None:
    _moves(op.get_bind(), to_effective=False)
