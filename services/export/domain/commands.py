"""What a user asks the export service to do; entrypoints build these from HTTP."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from shared.tokens import Principal


@dataclass(frozen=True)
class RequestExport:
    principal: Principal
    session_id: uuid.UUID
    week: str
    owner: str = "all"
    format: str = "csv"
