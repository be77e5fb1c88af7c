"""The sealed-week guard without its gaps (issue 10, defect 8).

- The trigger functions name their tables with the schema they were created in: a trigger runs
  with the caller's search_path, and an UPDATE of a live row from outside the service's path
  failed on "relation sealed_weeks does not exist".
- A row is checked as it was (OLD) and as it would be (NEW): an INSERT into a sealed week and an
  UPDATE that moves a row into one are refused, not only changes of rows already there.
- TRUNCATE of a guarded table, of sealed_weeks or of week_closes is refused once a week is sealed.
- A sealed week's close record (week_closes) never changes or goes away either.

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

GUARDED = ("item_versions", "check_ins")
TRUNCATE_GUARDED = ("item_versions", "check_ins", "sealed_weeks", "week_closes")


def _postgresql_upgrade() -> None:
    schema = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    sealed = f'"{schema}".sealed_weeks'
    op.execute(f"""
        CREATE OR REPLACE FUNCTION "{schema}".refuse_sealed_row_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('UPDATE', 'DELETE') AND EXISTS (
                    SELECT 1 FROM {sealed} s WHERE s.session_id = OLD.session_id AND s.ends_at > OLD.effective_at) THEN
                RAISE EXCEPTION 'this row belongs to a sealed week (% on %)', TG_OP, TG_TABLE_NAME
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') AND EXISTS (
                    SELECT 1 FROM {sealed} s WHERE s.session_id = NEW.session_id AND s.ends_at > NEW.effective_at) THEN
                RAISE EXCEPTION 'a sealed week cannot gain or change a row (% on %)', TG_OP, TG_TABLE_NAME
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
            RETURN NEW;
        END $$;

        CREATE OR REPLACE FUNCTION "{schema}".refuse_sealed_close_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM {sealed} s WHERE s.session_id = OLD.session_id AND s.week = OLD.week) THEN
                RAISE EXCEPTION 'a sealed week''s close record is read-only (% on week_closes)', TG_OP
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
            RETURN NEW;
        END $$;

        CREATE OR REPLACE FUNCTION "{schema}".refuse_sealed_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM {sealed}) THEN
                RAISE EXCEPTION 'sealed weeks are read-only (TRUNCATE on %)', TG_TABLE_NAME
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NULL;
        END $$;
    """)
    for table in GUARDED:
        op.execute(f"DROP TRIGGER {table}_sealed_read_only ON {table}")
        op.execute(f"""CREATE TRIGGER {table}_sealed_read_only BEFORE INSERT OR UPDATE OR DELETE ON {table}
                       FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse_sealed_row_change()""")
    op.execute(f"""CREATE TRIGGER week_closes_sealed_read_only BEFORE UPDATE OR DELETE ON week_closes
                   FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse_sealed_close_change()""")
    for table in TRUNCATE_GUARDED:
        op.execute(f"""CREATE TRIGGER {table}_sealed_no_truncate BEFORE TRUNCATE ON {table}
                       FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".refuse_sealed_truncate()""")


def _sqlite_upgrade() -> None:
    for table in GUARDED:
        op.execute(f"""CREATE TRIGGER {table}_sealed_no_insert BEFORE INSERT ON {table}
                       WHEN EXISTS (SELECT 1 FROM sealed_weeks s WHERE s.session_id = NEW.session_id
                                    AND s.ends_at > NEW.effective_at)
                       BEGIN SELECT RAISE(ABORT, 'a sealed week cannot gain a row'); END""")
        op.execute(f"""CREATE TRIGGER {table}_sealed_no_move_in BEFORE UPDATE ON {table}
                       WHEN EXISTS (SELECT 1 FROM sealed_weeks s WHERE s.session_id = NEW.session_id
                                    AND s.ends_at > NEW.effective_at)
                       BEGIN SELECT RAISE(ABORT, 'a sealed week cannot gain a row'); END""")
    for action in ("UPDATE", "DELETE"):
        op.execute(f"""CREATE TRIGGER week_closes_sealed_no_{action.lower()} BEFORE {action} ON week_closes
                       WHEN EXISTS (SELECT 1 FROM sealed_weeks s WHERE s.session_id = OLD.session_id
                                    AND s.week = OLD.week)
                       BEGIN SELECT RAISE(ABORT, 'a sealed week''s close record is read-only'); END""")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_upgrade()
    else:  # SQLite has no TRUNCATE: a DELETE without WHERE meets the row triggers
        _sqlite_upgrade()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TRUNCATE_GUARDED:
            op.execute(f"DROP TRIGGER {table}_sealed_no_truncate ON {table}")
        op.execute("DROP TRIGGER week_closes_sealed_read_only ON week_closes")
        for table in GUARDED:
            op.execute(f"DROP TRIGGER {table}_sealed_read_only ON {table}")
            op.execute(f"""CREATE TRIGGER {table}_sealed_read_only BEFORE UPDATE OR DELETE ON {table}
                           FOR EACH ROW EXECUTE FUNCTION refuse_sealed_row_change()""")
        op.execute("DROP FUNCTION refuse_sealed_truncate(); DROP FUNCTION refuse_sealed_close_change()")
    else:
        for table in GUARDED:
            op.execute(f"DROP TRIGGER {table}_sealed_no_insert")
            op.execute(f"DROP TRIGGER {table}_sealed_no_move_in")
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER week_closes_sealed_no_{action}")
