"""Signed tokens (RFC 8725): the algorithm is pinned, and every token names its type and
audience, so a download or internal token never passes as a user's access token.

Token times follow the real wall clock, except where a caller passes `now`: an export's download
link expires on okrsnap's own clock, which tests and the demo control like every other deadline.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import jwt

ALGORITHM = "HS256"
ISSUER = "okrsnap"

ACCESS = "access"        # a user's bearer token, audience "okrsnap-api"
INTERNAL = "internal"    # gateway -> service, audience "okrsnap-<service>"
DOWNLOAD = "download"    # an export's download link, audience "okrsnap-download"

API_AUDIENCE = "okrsnap-api"
LEEWAY = 5  # seconds of clock difference tolerated between processes
DOWNLOAD_AUDIENCE = "okrsnap-download"


class InvalidToken(Exception):
    pass


def internal_audience(service: str) -> str:
    return f"okrsnap-{service}"


def issue(secret: str, *, typ: str, audience: str, subject: str | None, ttl: int,
          claims: dict | None = None, now: datetime | None = None) -> str:
    """`now`: the moment the token is issued at (the wall clock when None)."""
    now = int(now.timestamp()) if now is not None else int(time.time())
    payload = {"iss": ISSUER, "aud": audience, "typ": typ, "sub": subject or "",
               "iat": now, "nbf": now - 5, "exp": now + ttl, "jti": uuid.uuid4().hex}
    payload.update(claims or {})
    return jwt.encode(payload, secret, algorithm=ALGORITHM, headers={"typ": "JWT"})


def verify(secret: str | tuple[str, ...] | list[str], token: str, *, typ: str, audience: str,
           now: datetime | None = None) -> dict:
    """`secret`: the key, or the keys to accept (the current one first, then those being rotated
    out: OKRSNAP_<NAME>_PREVIOUS). `now`: the moment to judge the token's times at (the wall clock
    when None)."""
    options = {"require": ["exp", "iat", "iss", "aud", "typ", "sub"]}
    if now is not None:  # PyJWT judges times by the wall clock only: judge them below instead
        options.update(verify_exp=False, verify_nbf=False, verify_iat=False)
    keys = (secret,) if isinstance(secret, str) else tuple(secret)
    for index, key in enumerate(keys):
        try:
            claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=audience, issuer=ISSUER,
                                options=options, leeway=LEEWAY)
            break
        except jwt.InvalidSignatureError as exc:
            if index == len(keys) - 1:
                raise InvalidToken(str(exc)) from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
    else:
        raise InvalidToken("no key to verify with")
    if now is not None:
        moment = now.timestamp()
        if not isinstance(claims["exp"], int) or moment > claims["exp"] + LEEWAY:
            raise InvalidToken("Signature has expired")
        if not isinstance(claims.get("nbf", 0), int) or moment < claims.get("nbf", 0) - LEEWAY:
            raise InvalidToken("The token is not yet valid (nbf)")
    if claims.get("typ") != typ:
        raise InvalidToken(f"token type {claims.get('typ')!r} is not {typ!r}")
    return claims


@dataclass(frozen=True)
class Principal:
    """Who a request acts for, as the gateway vouched: a user, the Workspaces whose Goals/OKRs
    they may reach with their role, and the Workspaces they belong to without Goals/OKRs access
    (those grant nothing; they only let `explain` say why)."""

    user_id: str | None
    workspaces: dict[str, str] = field(default_factory=dict)
    without_okr_access: frozenset[str] = frozenset()

    @property
    def anonymous(self) -> bool:
        return not self.user_id

    def member_of(self, workspace_id) -> bool:
        return str(workspace_id) in self.workspaces

    def role_in(self, workspace_id) -> str | None:
        return self.workspaces.get(str(workspace_id))

    def to_claims(self) -> dict:
        claims = {"ws": dict(self.workspaces)}
        if self.without_okr_access:
            claims["ws_no_okr"] = sorted(self.without_okr_access)
        return claims

    @classmethod
    def from_claims(cls, claims: dict) -> "Principal":
        return cls(claims.get("sub") or None, dict(claims.get("ws") or {}),
                   frozenset(str(w) for w in claims.get("ws_no_okr") or ()))


INTERNAL_HEADER = "X-Okrsnap-Internal-Token"
# On a file answer, for the gateway only (never passed on): whose file it is. The gateway checks
# that its requester still belongs to the Workspace before a link's download goes out, and files
# the download in that Workspace's audit log.
FILE_WORKSPACE_HEADER = "X-Okrsnap-File-Workspace"
FILE_REQUESTER_HEADER = "X-Okrsnap-File-Requester"
INTERNAL_TTL = 60


def internal_token(secret: str, service: str, principal: Principal) -> str:
    return issue(secret, typ=INTERNAL, audience=internal_audience(service),
                 subject=principal.user_id, ttl=INTERNAL_TTL, claims=principal.to_claims())
