"""Credentials other than the signed access token: personal API tokens, browser sessions,
invitations. Only a SHA-256 hash of each secret is ever stored. Pure."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

PAT_PREFIX = "okrsnap_pat_"
INVITATION_DAYS = 7
PAT_MAX_DAYS = 366
PAT_DEFAULT_DAYS = 90  # a personal token always expires: this many days unless asked otherwise

# What a personal API token may do, on top of what its user may do:
#   read      GET requests, and asking for an export (reading a week into a file)
#   check_in  what read may, and record Check-ins
#   admin     everything its user may (but never mint personal tokens)
PAT_SCOPES = ("read", "check_in", "admin")
READ, CHECK_IN, WRITE = "read", "check_in", "write"  # what a request does, for scope_allows


def scope_allows(scope: str, needs: str) -> bool:
    """Whether a personal token of `scope` may make a request that `needs` read, check_in or write."""
    if scope == "admin":
        return True
    if scope == "check_in":
        return needs in (READ, CHECK_IN)
    return needs == READ


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_pat_secret() -> str:
    return PAT_PREFIX + secrets.token_urlsafe(32)


def is_pat(secret: str) -> bool:
    return secret.startswith(PAT_PREFIX)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def csrf_token(key: str, session_secret: str) -> str:
    """The CSRF token of a browser session, derived from its secret: the web app can ask for it
    again after a reload, and a cross-site page can neither read the cookie nor derive it."""
    return hmac.new(key.encode(), b"okrsnap-csrf:" + session_secret.encode(), hashlib.sha256).hexdigest()


def csrf_matches(key: str | tuple[str, ...], session_secret: str, presented: str | None) -> bool:
    """`key`: the key, or the keys to accept (the current one and those being rotated out)."""
    keys = (key,) if isinstance(key, str) else key
    return bool(presented) and any(hmac.compare_digest(csrf_token(k, session_secret), presented) for k in keys)


@dataclass
class PersonalToken:
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    token_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    scope: str = "admin"  # tokens made before scopes existed could do everything their user may

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.ends_at

    @property
    def ends_at(self) -> datetime:
        """When the token stops working: its expiry; a token made before expiries were required
        ends PAT_MAX_DAYS after its creation."""
        return self.expires_at or self.created_at + timedelta(days=PAT_MAX_DAYS)


@dataclass
class BrowserSession:
    id_hash: str
    user_id: uuid.UUID
    created_at: datetime
    expires_at: datetime


@dataclass
class Invitation:
    id: uuid.UUID
    workspace_id: uuid.UUID
    email: str
    role: str
    okr_access: bool
    token_hash: str
    invited_by: uuid.UUID
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None = None

    def open(self, now: datetime) -> bool:
        return self.accepted_at is None and now < self.expires_at


@dataclass
class AuditEvent:
    at: datetime
    action: str
    actor_user_id: uuid.UUID | None = None
    actor_email: str | None = None
    workspace_id: uuid.UUID | None = None
    target: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    detail: dict | None = None
    id: int | None = None


USER_AGENT_MAX = 200
