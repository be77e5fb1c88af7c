"""Developer tool: `python -m shared.migrations_tool SERVICE "message"` writes a new revision
of a service's schema by comparing its tables with an up-to-date scratch SQLite database."""
from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine


def main(service: str, message: str) -> None:
    location = Path(importlib.import_module(f"services.{service}").__file__).parent / "adapters" / "migrations"
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/scratch.db")
        with engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(location))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            command.revision(config, message=message, autogenerate=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
