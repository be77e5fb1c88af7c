"""Users, Workspaces and memberships: who a request acts for. Pure."""
from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from shared.access import ROLES

EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
MIN_PASSWORD = 10
DISPLAY_NAME_MAX = 80
# Not control characters by category (Cc) but as dangerous in a name: they reorder or hide text
# around them (bidi embeddings, overrides and isolates) or break lines.
_HIDDEN_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                             "\u2066\u2067\u2068\u2069\u2028\u2029")


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


def normalise_display_name(name) -> str:
    """A display name as stored: stripped, NFC, 1-80 characters, no control characters
    (zero-width joiners stay: some scripts and emoji need them)."""
    if not isinstance(name, str):
        raise IdentityError("A display name must be text.", "display_name")
    name = unicodedata.normalize("NFC", name).strip()
    if not 1 <= len(name) <= DISPLAY_NAME_MAX:
        raise IdentityError(f"A display name needs 1 to {DISPLAY_NAME_MAX} characters.", "display_name")
    if any(unicodedata.category(ch) == "Cc" or ch in _HIDDEN_CONTROLS for ch in name):
        raise IdentityError("A display name cannot contain control characters.", "display_name")
    return name


def email_local_part(email: str) -> str:
    return email.split("@", 1)[0]


def name_or_email_local(display_name: str | None, email: str) -> str:
    """What people see for a user: the display name, else the email before "@"."""
    return display_name or email_local_part(email)


@dataclass
class User:
    id: uuid.UUID
    email: str
    password_hash: str
    created_at: datetime
    display_name: str = ""  # "" until the user names themselves: shown as the email's local part
    token_generation: int = 0  # access tokens carry it; a password change counts it up, ending them

    def name_or_email_local(self) -> str:
        return name_or_email_local(self.display_name, self.email)


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
