from alembic import context

from services.export.adapters.orm import metadata
from shared.migrations import run_env

run_env(context, metadata)
