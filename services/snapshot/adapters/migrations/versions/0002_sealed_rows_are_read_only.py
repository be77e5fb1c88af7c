"""The database itself refuses changes to sealed weeks, not only the code.

A sealed week's row never changes or goes away; an item version or Check-in that counts in a
sealed week (effective before its end) is never updated or deleted.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GUARDED = ("item_versions", "check_ins")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION refuse_sealed_week_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'sealed weeks are read-only (% on sealed_weeks)', TG_OP
                    USING ERRCODE = 'integrity_constraint_violation';
            END $$;
            CREATE TRIGGER sealed_weeks_read_only BEFORE UPDATE OR DELETE ON sealed_weeks
                FOR EACH ROW EXECUTE FUNCTION refuse_sealed_week_change();

            CREATE FUNCTION refuse_sealed_row_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF EXISTS (SELECT 1 FROM sealed_weeks s
                           WHERE s.session_id = OLD.session_id AND s.ends_at > OLD.effective_at) THEN
                    RAISE EXCEPTION 'this row belongs to a sealed week (% on %)', TG_OP, TG_TABLE_NAME
                        USING ERRCODE = 'integrity_constraint_violation';
                END IF;
                IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
                RETURN NEW;
            END $$;
        """)
        for table in GUARDED:
            op.execute(f"""CREATE TRIGGER {table}_sealed_read_only BEFORE UPDATE OR DELETE ON {table}
                           FOR EACH ROW EXECUTE FUNCTION refuse_sealed_row_change()""")
    else:  # SQLite
        for action in ("UPDATE", "DELETE"):
            op.execute(f"""CREATE TRIGGER sealed_weeks_no_{action.lower()} BEFORE {action} ON sealed_weeks
                           BEGIN SELECT RAISE(ABORT, 'sealed weeks are read-only'); END""")
            for table in GUARDED:
                op.execute(f"""CREATE TRIGGER {table}_sealed_no_{action.lower()} BEFORE {action} ON {table}
                               WHEN EXISTS (SELECT 1 FROM sealed_weeks s WHERE s.session_id = OLD.session_id
                                            AND s.ends_at > OLD.effective_at)
                               BEGIN SELECT RAISE(ABORT, 'this row belongs to a sealed week'); END""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in GUARDED:
            op.execute(f"DROP TRIGGER {table}_sealed_read_only ON {table}")
        op.execute("DROP TRIGGER sealed_weeks_read_only ON sealed_weeks")
        op.execute("DROP FUNCTION refuse_sealed_row_change(); DROP FUNCTION refuse_sealed_week_change()")
    else:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER sealed_weeks_no_{action}")
            for table in GUARDED:
                op.execute(f"DROP TRIGGER {table}_sealed_no_{action}")
