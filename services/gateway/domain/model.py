"""Users, Workspaces and memberships: who a request acts for. Pure."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from shared.access import ROLES

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 10


class IdentityError(Exception):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL.match(email) or len(email) > 254:
        raise IdentityError("Not a valid email address.", "email")
    return email


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise IdentityError(f"A password needs at least {MIN_PASSWORD} characters.", "password")


@dataclass
class User:
    id: uuid.UUID
    email: str
    password_hash: str
    created_at: datetime


@dataclass
class Workspace:
    id: uuid.UUID
    name: str
    created_at: datetime


@dataclass
class Membership:
    workspace_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    okr_access: bool = True

    def __post_init__(self):
        if self.role not in ROLES:
            raise IdentityError(f"Role must be one of {', '.join(ROLES)}.", "role")


@dataclass
class Identity:
    user: User
    memberships: list[Membership] = field(default_factory=list)

    def workspace_roles(self) -> dict[str, str]:
        """Workspaces whose Goals/OKRs the user may reach, with their role."""
        return {str(m.workspace_id): m.role for m in self.memberships if m.okr_access}

    def workspaces_without_okr_access(self) -> frozenset[str]:
        """Workspaces the user belongs to with their Goals/OKRs access turned off."""
        return frozenset(str(m.workspace_id) for m in self.memberships if not m.okr_access)

    def membership_in(self, workspace_id) -> Membership | None:
        return next((m for m in self.memberships if str(m.workspace_id) == str(workspace_id)), None)
