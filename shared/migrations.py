"""Alembic, driven from code: each service keeps its own migration scripts and version table."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.db import ensure_schema, make_engine
from shared.settings import DatabaseTarget


def upgrade(target: DatabaseTarget, script_location: Path, revision: str = "head") -> None:
    ensure_schema(target)
    engine = make_engine(target)
    try:
        with engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(script_location))
            config.attributes["connection"] = connection
            config.attributes["schema"] = target.schema
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def run_env(context, target_metadata) -> None:
    """The body of every service's alembic env.py (online mode only)."""
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=context.config.attributes.get("schema"),
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
