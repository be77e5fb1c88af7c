"""Who may do what, decided in one place for every service (the gateway vouches for roles).

Anything a principal may not read is reported as not found, so ids of other Workspaces reveal
nothing."""
from __future__ import annotations

from shared.tokens import Principal

ROLES = ("owner", "admin", "member", "viewer")
WRITERS = ("owner", "admin", "member")


class NotFound(Exception):
    def __init__(self, kind: str):
        super().__init__(f"{kind} not found.")
        self.kind = kind


class Forbidden(Exception):
    pass


def can_read(principal: Principal, workspace_id) -> bool:
    return principal.member_of(workspace_id)


def can_write(principal: Principal, workspace_id) -> bool:
    return principal.workspaces.get(str(workspace_id)) in WRITERS


def ensure_readable(principal: Principal, workspace_id, kind: str) -> None:
    if not can_read(principal, workspace_id):
        raise NotFound(kind)


def ensure_writable(principal: Principal, workspace_id, kind: str) -> None:
    ensure_readable(principal, workspace_id, kind)
    if not can_write(principal, workspace_id):
        raise Forbidden(f"Your role may view but not change this {kind}.")
