"""Who may see and manage a Workspace's members and read its audit log. Pure.

- Anyone outside the Workspace learns nothing: the Workspace is "not found" (404).
- Members with Goals/OKRs access may list the members; others inside get 403.
- Owners and admins manage members; only an owner may make, unmake, change or remove an owner.
- The last owner can be neither removed nor demoted (409).
"""
from __future__ import annotations

from services.gateway.domain.model import Membership
from shared.access import MANAGE_MEMBERS, decide
from shared.tokens import Principal

MANAGERS = ("owner", "admin")
OWNER = "owner"


class MemberRuleError(Exception):
    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(MemberRuleError):
    status = 404


class Conflict(MemberRuleError):
    status = 409


class WorkspaceHidden(NotFound):
    status = 404

    def __init__(self, message: str = "Workspace not found."):
        super().__init__(message)


class NotPermitted(MemberRuleError):
    status = 403


class TooMany(MemberRuleError):
    status = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class LastOwner(Conflict):
    def __init__(self, message: str = "A Workspace keeps at least one owner: make someone else owner first."):
        super().__init__(message)


class MemberNotFound(NotFound):
    def __init__(self, message: str = "Member not found."):
        super().__init__(message)


def _inside(actor: Membership | None) -> Membership:
    if actor is None:
        raise WorkspaceHidden()
    return actor


def _manager(actor: Membership | None) -> Membership:
    """Asks shared.access.decide, the one place roles are weighed (docs/permissions.md). Managing
    members is Workspace administration, so it does not hang on the Goals/OKRs access flag."""
    actor = _inside(actor)
    principal = Principal(str(actor.user_id), {str(actor.workspace_id): actor.role})
    if not decide(principal, MANAGE_MEMBERS, workspace_id=actor.workspace_id).allowed:
        raise NotPermitted("Only owners and admins manage this Workspace's members.")
    return actor


def check_list(actor: Membership | None) -> None:
    actor = _inside(actor)
    if not actor.okr_access and actor.role not in MANAGERS:
        raise NotPermitted("Your Goals/OKRs access is turned off in this Workspace.")


def check_audit(actor: Membership | None) -> None:
    try:
        _manager(actor)
    except NotPermitted:
        raise NotPermitted("Only owners and admins read this Workspace's audit log.") from None


def check_invite(actor: Membership | None, role: str) -> None:
    actor = _manager(actor)
    if role == OWNER and actor.role != OWNER:
        raise NotPermitted("Only an owner may make someone an owner.")


def check_change(actor: Membership | None, target: Membership | None, new_role: str | None,
                 owners: int) -> None:
    """actor changes target's role (new_role None: unchanged) or Goals/OKRs access."""
    actor = _manager(actor)
    if target is None:
        raise MemberNotFound()
    if actor.role != OWNER and (target.role == OWNER or new_role == OWNER):
        raise NotPermitted("Only an owner may make, unmake or change an owner.")
    if target.role == OWNER and new_role not in (None, OWNER) and owners <= 1:
        raise LastOwner()


def check_remove(actor: Membership | None, target: Membership | None, owners: int) -> None:
    actor = _manager(actor)
    if target is None:
        raise MemberNotFound()
    if target.role == OWNER and actor.role != OWNER:
        raise NotPermitted("Only an owner may remove an owner.")
    if target.role == OWNER and owners <= 1:
        raise LastOwner()


def check_sign_out(actor: Membership | None, target: Membership | None) -> None:
    """actor ends every credential of target (a member of the same Workspace)."""
    actor = _manager(actor)
    if target is None:
        raise MemberNotFound()
    if target.role == OWNER and actor.role != OWNER:
        raise NotPermitted("Only an owner may sign out an owner.")
