"""Credentials other than the signed access token: personal API tokens, browser sessions,
invitations. Only a SHA-256 hash of each secret is ever stored. Pure."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

PAT_PREFIX = "okrsnap_pat_"
INVITATION_DAYS = 7
PAT_MAX_DAYS = 366


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


def csrf_matches(key: str, session_secret: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(key, session_secret), presented)


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

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


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
