"""Who may do what: one function, `decide`, for every service (the gateway vouches for roles,
each service supplies the facts of the resource it holds). docs/permissions.md is its table.

What a principal may not see is reported as not found, under the resource's own name, so an id
of another Workspace, a restricted Session or a private item reveals nothing. A resource they may
see but not change answers 403 (role, canvas) or 409 (archived), saying why.
"""
from __future__ import annotations

from dataclasses import dataclass

from shared.tokens import Principal

ROLES = ("owner", "admin", "member", "viewer")
WRITERS = ("owner", "admin", "member")
ADMINS = ("owner", "admin")

# Actions on a Session or its items.
VIEW = "view"                      # read the Session, an item, its Snapshots; verify the chain
CHECK_IN = "check_in"              # record a Check-in on a Key Result or an Initiative
EDIT = "edit"                      # add, change, remove, connect items; change a Session
OPEN_CANVAS = "open_canvas"        # see an Initiative's canvas link
CREATE_SESSION = "create_session"  # in a Workspace
ARCHIVE = "archive"                # archive a Session (read-only from then on)
IMPORT = "import"                  # bring a Session's history
RESTRICT = "restrict"              # change who may see a Session, or an Objective's privacy
EXPORT = "export"                  # export a week the principal can view
SEAL = "seal"                      # nobody: weeks are sealed by the service when they end
MANAGE_MEMBERS = "manage_members"  # invite, change and remove members; read the audit log
ACTIONS = (VIEW, CHECK_IN, EDIT, OPEN_CANVAS, CREATE_SESSION, ARCHIVE, IMPORT, RESTRICT, EXPORT, SEAL,
           MANAGE_MEMBERS)

# Why an action is refused: (code, HTTP status, message). Hidden reasons answer 404.
REASONS = {
    "not_signed_in": (401, "Sign in first."),
    "not_member": (404, "You are not a member of this Workspace."),
    "no_okr_access": (404, "Your membership of this Workspace has no Goals/OKRs access; ask an admin."),
    "session_restricted": (404, "This Session is restricted to its listed members."),
    "item_private": (404, "This item is private to its owner, the members it lists, and admins."),
    "role": (403, "Your role in this Workspace does not allow this."),
    "not_item_owner": (403, "Members change and check in on items they own or unassigned ones; "
                            "ask the owner or an admin."),
    "leaves_private": (403, "Only the private Objective's owner or an admin may move an Objective out from "
                            "under it (that would show it to everyone)."),
    "privacy_owner": (403, "Only the Objective's owner or an admin may change who sees it (private, visible_to) "
                           "or hand a private Objective to someone else."),
    "sealed_calendar": (403, "This Session has sealed weeks: only owners and admins change its dates, timezone "
                             "or week start day."),
    "canvas_permission": (403, "You do not have permission to open this canvas; ask its owner to add you."),
    "archived": (409, "The Session is archived: it is read-only, and still reviewable."),
    "automatic": (403, "Weeks are sealed by okrsnap when they end; nobody seals or unseals by hand."),
}
HIDDEN = frozenset(code for code, (status, _) in REASONS.items() if status == 404)


@dataclass(frozen=True)
class SessionFacts:
    workspace_id: str
    restricted: bool = False
    members: frozenset[str] = frozenset()
    archived: bool = False


@dataclass(frozen=True)
class PrivateGuard:
    """A private Objective above (or at) an item: who it admits."""

    owner_id: str | None
    visible_to: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ItemFacts:
    owner_id: str | None = None
    private_guards: tuple[PrivateGuard, ...] = ()
    canvas_access: frozenset[str] | None = None  # an Initiative's canvas access list, if it has one
    reachable: bool = True  # False: an Initiative all of whose Key Results are hidden from the principal


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str | None = None

    @property
    def status(self) -> int:
        return 200 if self.allowed else REASONS[self.reason][0]

    @property
    def message(self) -> str:
        return "Allowed." if self.allowed else REASONS[self.reason][1]

    @property
    def hidden(self) -> bool:
        return self.reason in HIDDEN


ALLOW = Decision(True)


def decide(principal: Principal, action: str, *, workspace_id, session: SessionFacts | None = None,
           item: ItemFacts | None = None) -> Decision:
    """May `principal` do `action` on this Workspace / Session / item? The checks run from the
    outside in, so the first refusal is the one that hides the most."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if principal.anonymous:
        return Decision(False, "not_signed_in")
    workspace_id = str(workspace_id)
    role = principal.role_in(workspace_id)
    if role is None:
        return Decision(False, "no_okr_access" if workspace_id in principal.without_okr_access else "not_member")
    user, admin = str(principal.user_id), role in ADMINS
    if session is not None and session.restricted and not admin and user not in session.members:
        return Decision(False, "session_restricted")
    if item is not None and not admin:
        if not item.reachable:
            return Decision(False, "item_private")
        for guard in item.private_guards:
            if user != str(guard.owner_id) and user not in guard.visible_to:
                return Decision(False, "item_private")
    if action in (VIEW, EXPORT):
        return ALLOW
    if action == SEAL:
        return Decision(False, "automatic")
    if action == OPEN_CANVAS:
        if item is None or item.canvas_access is None or admin or user == str(item.owner_id) \
                or user in item.canvas_access:
            return ALLOW
        return Decision(False, "canvas_permission")
    if role not in WRITERS:
        return Decision(False, "role")
    if action in (ARCHIVE, IMPORT, RESTRICT, MANAGE_MEMBERS) and not admin:
        return Decision(False, "role")
    if session is not None and session.archived and action != MANAGE_MEMBERS:
        return Decision(False, "archived")
    if action in (EDIT, CHECK_IN) and item is not None and not admin \
            and item.owner_id is not None and str(item.owner_id) != user:
        return Decision(False, "not_item_owner")
    return ALLOW


class AccessDenied(Exception):
    """A refused decision, named for the resource (hidden ones read as "<kind> not found.")."""

    def __init__(self, decision: Decision, kind: str):
        self.decision, self.kind = decision, kind
        message = f"{kind} not found." if decision.hidden else decision.message
        super().__init__(message)
        self.status = decision.status
        self.message = message


class NotFound(AccessDenied):
    """Unknown, or hidden from the principal: the two answer alike."""

    def __init__(self, kind: str, decision: Decision | None = None):
        super().__init__(decision or Decision(False, "not_member"), kind)


def ensure(principal: Principal, action: str, kind: str, **facts) -> None:
    decision = decide(principal, action, **facts)
    if not decision.allowed:
        raise NotFound(kind, decision) if decision.hidden else AccessDenied(decision, kind)


def can(principal: Principal, action: str, **facts) -> bool:
    return decide(principal, action, **facts).allowed


# Kept for the Workspace-level checks of services that hold no Session facts.
def can_read(principal: Principal, workspace_id) -> bool:
    return can(principal, VIEW, workspace_id=workspace_id)


def ensure_readable(principal: Principal, workspace_id, kind: str) -> None:
    ensure(principal, VIEW, kind, workspace_id=workspace_id)




# --- Which items of a Session a principal sees ---------------------------------------------

def _field(item, name: str):
    return item.get(name) if isinstance(item, dict) else getattr(item, name)


def _ids(values) -> frozenset[str]:
    return frozenset(str(v) for v in values or ())


@dataclass(frozen=True)
class Visibility:
    """The items of one Session a principal may see (ids as strings), and the Initiatives whose
    canvas they may open. `everything`: nothing is hidden from them."""

    objectives: frozenset[str]
    key_results: frozenset[str]
    initiatives: frozenset[str]
    canvases: frozenset[str]
    everything: bool = False


def private_guards(objectives) -> dict[str, tuple[PrivateGuard, ...]]:
    """For each Objective, the private Objectives at or above it (a private parent hides what
    hangs below it). Objectives: mappings or objects with id, parent_id, private, owner_id,
    visible_to."""
    by_id = {str(_field(o, "id")): o for o in objectives}
    memo: dict[str, tuple[PrivateGuard, ...]] = {}

    def guards(objective_id: str, trail: frozenset = frozenset()) -> tuple[PrivateGuard, ...]:
        if objective_id in memo:
            return memo[objective_id]
        objective = by_id.get(objective_id)
        if objective is None or objective_id in trail:  # unknown parent, or a cycle in stored data
            return ()
        parent = _field(objective, "parent_id")
        above = guards(str(parent), trail | {objective_id}) if parent is not None else ()
        own = (PrivateGuard(None if _field(objective, "owner_id") is None else str(_field(objective, "owner_id")),
                            _ids(_field(objective, "visible_to"))),) if _field(objective, "private") else ()
        memo[objective_id] = own + above
        return memo[objective_id]

    for objective_id in by_id:
        guards(objective_id)
    return memo


def item_facts(owner_id=None, guards: tuple[PrivateGuard, ...] = (), canvas=None) -> ItemFacts:
    access = None
    if canvas is not None:
        access = _ids(_field(canvas, "access"))
    return ItemFacts(None if owner_id is None else str(owner_id), guards, access)


def visible_items(principal: Principal, session: SessionFacts, objectives, key_results, initiatives,
                  privacy_objectives=None) -> Visibility:
    """What of a Session's items the principal sees, decided item by item by `decide`.

    An Objective is hidden by any private Objective at or above it; a Key Result with its
    Objective; an Initiative when every Key Result it connects to is hidden (one with no
    connection is seen by all who see the Session). `privacy_objectives` (default: `objectives`)
    supplies the current privacy when the items are those of an earlier week."""
    guards = private_guards(objectives if privacy_objectives is None else privacy_objectives)
    if privacy_objectives is not None:  # Objectives that no longer exist keep their own flags
        extra = private_guards(objectives)
        guards = {k: guards.get(k, v) for k, v in extra.items()} | guards
    workspace_id = session.workspace_id

    def sees(owner_id, item_guards, canvas=None, action=VIEW) -> bool:
        return can(principal, action, workspace_id=workspace_id, session=session,
                   item=item_facts(owner_id, item_guards, canvas))

    if not can(principal, VIEW, workspace_id=workspace_id, session=session):
        return Visibility(frozenset(), frozenset(), frozenset(), frozenset())
    if any(guards.values()):
        objective_ids = frozenset(str(_field(o, "id")) for o in objectives
                                  if sees(_field(o, "owner_id"), guards.get(str(_field(o, "id")), ())))
        key_result_ids = frozenset(str(_field(k, "id")) for k in key_results
                                   if sees(_field(k, "owner_id"), guards.get(str(_field(k, "objective_id")), ())))
    else:  # nothing private: the Session's own check above decided for every item
        objective_ids = frozenset(str(_field(o, "id")) for o in objectives)
        key_result_ids = frozenset(str(_field(k, "id")) for k in key_results)
    initiative_ids, canvases = set(), set()
    for initiative in initiatives:
        connected = _ids(_field(initiative, "key_result_ids"))
        if connected and not connected & key_result_ids:
            continue
        initiative_id = str(_field(initiative, "id"))
        initiative_ids.add(initiative_id)
        canvas = _field(initiative, "canvas")
        if canvas is None or sees(_field(initiative, "owner_id"), (), canvas, OPEN_CANVAS):
            canvases.add(initiative_id)
    everything = (len(objective_ids) == len(objectives) and len(key_result_ids) == len(key_results)
                  and len(initiative_ids) == len(initiatives) == len(canvases))
    return Visibility(objective_ids, key_result_ids, frozenset(initiative_ids), frozenset(canvases), everything)


def session_facts(session) -> SessionFacts:
    """From a Session (mapping or object) with workspace_id, visibility, members, status."""
    visibility = _field(session, "visibility") if _has(session, "visibility") else "workspace"
    return SessionFacts(str(_field(session, "workspace_id")), visibility == "restricted",
                        _ids(_field(session, "members") if _has(session, "members") else ()),
                        _field(session, "status") == "archived")


def _has(item, name: str) -> bool:
    return name in item if isinstance(item, dict) else hasattr(item, name)
