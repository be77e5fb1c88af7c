"""Identity use cases: users and Workspaces, logging in and out, the credentials a request may
carry (access token, personal API token, browser session), Workspace members and invitations,
and the audit log.

Slow scrypt work (checking or hashing a password) never runs inside a transaction: on the
embedded SQLite every transaction holds the database's write lock (BEGIN IMMEDIATE), so a login
flood would stall every request. A password is checked against a hash read in one short
transaction, and the write that follows applies only if that hash is still the stored one.

Passwords are stored with werkzeug's salted scrypt (N=32768, r=8, p=1); a hash made with a weaker
setting is replaced at the next successful login. Times of credentials and audit events follow the
real wall clock (`clock` here is the container's wall_clock), never the settable business clock.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from werkzeug.security import check_password_hash, generate_password_hash

from services.gateway.domain import members as rules
from services.gateway.domain import names
from services.gateway.domain.credentials import (
    INVITATION_DAYS,
    PAT_DEFAULT_DAYS,
    PAT_SCOPES,
    USER_AGENT_MAX,
    AuditEvent,
    BrowserSession,
    Invitation,
    PersonalToken,
    hash_secret,
    is_pat,
    new_pat_secret,
    new_secret,
)
from services.gateway.domain.model import (
    Identity,
    IdentityError,
    Membership,
    User,
    Workspace,
    check_password_strength,
    name_or_email_local,
    normalise_display_name,
    normalise_email,
)
from shared import tokens
from shared.clock import SystemClock

PASSWORD_METHOD = "scrypt:32768:8:1"
INVITATION_PREFIX = "okrsnap_inv_"
MAX_PERSONAL_TOKENS = 50
_WALL = SystemClock()


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_METHOD)


# Compared against when the email is unknown, so a login takes as long either way.
_DUMMY_HASH = hash_password("okrsnap-timing-equaliser")


class LoginFailed(Exception):
    pass


class InvitationInvalid(Exception):
    pass


INVITATION_RATE = (20, 3600)  # invitations per member and Workspace per window (seconds)


@dataclass(frozen=True)
class RequestContext:
    """Where a request came from, for the audit log."""
    ip: str | None = None
    user_agent: str | None = None


NO_CONTEXT = RequestContext()


@dataclass(frozen=True)
class Authenticated:
    identity: Identity
    method: str                   # "access", "pat" or "session"
    credential_id: str            # the access token's jti, the PAT's id, the session's id hash
    expires_at: datetime | None
    scope: str = "admin"          # a personal token's scope (read, check_in, admin); others: admin


def _audit(uow, now: datetime, action: str, ctx: RequestContext, *, actor: User | None = None,
           actor_email: str | None = None, workspace_id=None, target=None, detail: dict | None = None) -> None:
    uow.repo.add_audit(audit_event(now, action, ctx, actor_user_id=actor.id if actor else None,
                                   actor_email=actor.email if actor else actor_email, workspace_id=workspace_id,
                                   target=target, detail=detail))


def audit_event(now: datetime, action: str, ctx: RequestContext, *, actor_user_id=None, actor_email=None,
                workspace_id=None, target=None, detail: dict | None = None) -> AuditEvent:
    """An audit event with its free-text parts cut to their column sizes."""
    return AuditEvent(at=now, action=action, actor_user_id=actor_user_id,
                      actor_email=actor_email[:254] if actor_email else None, workspace_id=workspace_id,
                      target=str(target) if target is not None else None, ip=ctx.ip[:64] if ctx.ip else None,
                      user_agent=ctx.user_agent[:USER_AGENT_MAX] if ctx.user_agent else None, detail=detail)


def record(event: AuditEvent, *, uow) -> None:
    with uow:
        uow.repo.add_audit(event)
        uow.commit()


# -- users and Workspaces ------------------------------------------------------------------------

@dataclass(frozen=True)
class AddUser:
    email: str
    password: str
    workspace: str
    role: str = "member"
    display_name: str | None = None  # None: a new user has none yet, an existing one keeps theirs


def add_user(cmd: AddUser, *, uow, clock) -> tuple[User, Workspace]:
    """Create the user (or update the password, and the display name if given, of an existing
    one) and make them a member of the named Workspace, creating it if it does not exist."""
    email = normalise_email(cmd.email)
    check_password_strength(cmd.password)
    display_name = normalise_display_name(cmd.display_name) if cmd.display_name is not None else None
    if not cmd.workspace.strip():
        raise IdentityError("A Workspace name is needed.", "workspace")
    # The slow scrypt work outside any transaction: hashing the password, and checking whether an
    # existing account already has it (then nothing is reset).
    new_hash = hash_password(cmd.password)
    with uow:
        known = uow.repo.user_by_email(email)
    same_password = known is not None and check_password_hash(known.password_hash, cmd.password)
    now = clock.now()
    with uow:
        user = uow.repo.user_by_email(email)
        if user is None:
            user = User(uuid.uuid4(), email, new_hash, now, display_name or "")
            uow.repo.add_user(user)
        else:
            # A password reset: everything signed in with the old password ends.
            if not same_password or known is None or user.password_hash != known.password_hash:
                user.password_hash = new_hash
                uow.repo.set_password(user)
                ended = uow.repo.end_credentials(user.id, now)
                _audit(uow, now, "password.reset", NO_CONTEXT, actor_email=None, target=user.id,
                       detail={"via": "okrsnap user add", **ended})
            if display_name is not None and display_name != user.display_name:
                user.display_name = display_name
                uow.repo.set_display_name(user)
        workspace = uow.repo.workspace_by_name(cmd.workspace.strip())
        if workspace is None:
            workspace = Workspace(uuid.uuid4(), cmd.workspace.strip(), now)
            uow.repo.add_workspace(workspace)
        uow.repo.set_membership(Membership(workspace.id, user.id, cmd.role))
        uow.commit()
    return user, workspace


# -- passwords, access tokens, browser sessions ---------------------------------------------------

@dataclass(frozen=True)
class _Checked:
    user: User
    rehash: str | None  # the same password under today's scrypt setting, if the stored hash is weaker


def _checked_user(email: str, password: str, *, uow, now, ctx, via: str) -> _Checked:
    """The user with this email and password. The hash is read in one short transaction and
    checked outside any; a failure is audited (its own short transaction) and raises LoginFailed."""
    try:
        normalised = normalise_email(email)
    except IdentityError:
        normalised = ""
    user = None
    if normalised:
        with uow:
            user = uow.repo.user_by_email(normalised)
    if not check_password_hash(user.password_hash if user else _DUMMY_HASH, password) or user is None:
        record(audit_event(now, "login.failed", ctx, actor_email=normalised or email.strip(),
                           detail={"via": via}), uow=uow)
        raise LoginFailed()
    rehash = None if user.password_hash.startswith(PASSWORD_METHOD + "$") else hash_password(password)
    return _Checked(user, rehash)


def _still_checked(uow, checked: _Checked) -> User:
    """Inside the write transaction: the user as stored, if their password is still the one
    checked (else LoginFailed: it changed meanwhile); a weaker hash is replaced."""
    user = uow.repo.user(checked.user.id)
    if user is None or user.password_hash != checked.user.password_hash:
        raise LoginFailed()
    if checked.rehash is not None:
        uow.repo.rehash_password(user.id, user.password_hash, checked.rehash)
        user.password_hash = checked.rehash
    return user


TOKEN_GENERATION_CLAIM = "gen"


def _access_token(user: User, settings) -> str:
    return tokens.issue(settings.access_token_secret, typ=tokens.ACCESS, audience=tokens.API_AUDIENCE,
                        subject=str(user.id), ttl=settings.access_token_ttl,
                        claims={TOKEN_GENERATION_CLAIM: user.token_generation})


def login(email: str, password: str, *, uow, settings, clock=_WALL, ctx: RequestContext = NO_CONTEXT
          ) -> tuple[str, User]:
    checked = _checked_user(email, password, uow=uow, now=clock.now(), ctx=ctx, via="password")
    with uow:
        user = _still_checked(uow, checked)
        _audit(uow, clock.now(), "login", ctx, actor=user, detail={"via": "access_token"})
        uow.commit()
    return _access_token(user, settings), user


def start_session(email: str, password: str, *, uow, settings, clock=_WALL, ctx: RequestContext = NO_CONTEXT
                  ) -> tuple[str, BrowserSession, User]:
    """A browser session: its secret (for the cookie) is returned once, only its hash is kept."""
    now = clock.now()
    checked = _checked_user(email, password, uow=uow, now=now, ctx=ctx, via="session")
    with uow:
        user = _still_checked(uow, checked)
        secret = new_secret()
        session = BrowserSession(hash_secret(secret), user.id, now, now + timedelta(seconds=settings.session_ttl))
        uow.repo.add_browser_session(session)
        uow.repo.prune_expired(now)
        _audit(uow, now, "login.session", ctx, actor=user)
        uow.commit()
    return secret, session, user


def logout(auth: Authenticated, *, uow, clock=_WALL, ctx: RequestContext = NO_CONTEXT) -> None:
    """Ends the credential the request was authenticated with, at once."""
    if auth.method == "pat":
        raise IdentityError("A personal API token is revoked with DELETE /api/v1/me/tokens/{id}.", "Authorization")
    now = clock.now()
    with uow:
        if auth.method == "access":
            # Kept a little past the token's expiry: verification allows a few seconds of leeway.
            uow.repo.revoke_jti(auth.credential_id, (auth.expires_at or now) + timedelta(seconds=30))
        else:
            uow.repo.remove_browser_session(auth.credential_id)
        uow.repo.prune_expired(now)
        _audit(uow, now, "logout", ctx, actor=auth.identity.user, detail={"via": auth.method})
        uow.commit()


def _identity(uow, user_id) -> Identity:
    """The user with their current memberships (read on every request, so a removed member or
    a turned-off Goals/OKRs access takes effect at once)."""
    user = uow.repo.user(user_id)
    if user is None:
        raise tokens.InvalidToken("unknown user")
    return Identity(user, uow.repo.memberships(user_id))


# Every request's credential is checked against the database, in one statement that reads the
# credential (or its revocation), its user and their memberships, outside any transaction: a
# logout, a password change, a sign-out everywhere, a revoked personal token or a removed
# membership counts from the very next request, in every gateway process, with no cache to expire.

def authenticate_bearer(token: str, *, uow, settings, clock=_WALL) -> Authenticated:
    if is_pat(token):
        return _authenticate_pat(token, uow=uow, clock=clock)
    claims = tokens.verify(settings.verification_keys("access_token"), token, typ=tokens.ACCESS,
                           audience=tokens.API_AUDIENCE)
    try:
        user_id = uuid.UUID(claims["sub"])
    except ValueError:
        raise tokens.InvalidToken("bad subject") from None
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 64:
        raise tokens.InvalidToken("no token id")
    with uow.reading() as repo:
        identity, revoked = repo.access_identity(user_id, jti)
    if revoked:
        raise tokens.InvalidToken("revoked")
    if identity is None:
        raise tokens.InvalidToken("unknown user")
    # Issued before the user's last password change (a token without the claim predates
    # generations: generation 0).
    if claims.get(TOKEN_GENERATION_CLAIM, 0) != identity.user.token_generation:
        raise tokens.InvalidToken("issued before a password change")
    return Authenticated(identity, "access", jti, datetime.fromtimestamp(claims["exp"], timezone.utc))


PAT_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token


def _authenticate_pat(secret: str, *, uow, clock) -> Authenticated:
    now = clock.now()
    with uow.reading() as repo:
        pat, identity = repo.personal_token_identity(hash_secret(secret))
    if pat is None or not pat.usable(now):
        raise tokens.InvalidToken("unknown, revoked or expired personal token")
    if pat.last_used_at is None or now - pat.last_used_at >= PAT_TOUCH_EVERY:
        with uow:  # only the timestamp: never revives a token revoked since the read above
            uow.repo.touch_personal_token(pat.id, now)
            uow.commit()
    return Authenticated(identity, "pat", str(pat.id), pat.ends_at, pat.scope)


def authenticate_session(secret: str, *, uow, clock=_WALL) -> Authenticated:
    now = clock.now()
    with uow.reading() as repo:
        session, identity = repo.browser_session_identity(hash_secret(secret))
    if session is None or now >= session.expires_at:
        raise tokens.InvalidToken("unknown or ended session")
    return Authenticated(identity, "session", session.id_hash, session.expires_at)


def identity_for_token(token: str, *, uow, settings) -> Identity:
    return authenticate_bearer(token, uow=uow, settings=settings).identity


def workspaces_of(user_id, *, uow):
    with uow.reading() as repo:
        return repo.workspaces_of(user_id)


def members_among(principal: tokens.Principal, workspace_id, user_ids, *, uow) -> set:
    """Which of these users are members of the Workspace (asked by services validating owners);
    only a member may ask."""
    if not principal.member_of(workspace_id):
        return set()
    with uow.reading() as repo:
        return repo.members_among(workspace_id, user_ids)


# -- the signed-in user's profile and password ---------------------------------------------------

def display_name_of(user) -> str:
    """What people see for a user: their display name, else the part of their email before "@"."""
    return name_or_email_local(getattr(user, "display_name", ""), user.email)


def set_display_name(auth: Authenticated, display_name: str, *, uow, clock=_WALL,
                     ctx: RequestContext = NO_CONTEXT) -> User:
    name = normalise_display_name(display_name)
    now = clock.now()
    with uow:
        user = uow.repo.user(auth.identity.user.id)
        if user is None:
            raise tokens.InvalidToken("unknown user")
        if user.display_name != name:
            before, user.display_name = user.display_name, name
            uow.repo.set_display_name(user)
            _audit(uow, now, "user.renamed", ctx, actor=user, target=user.id,
                   detail={"before": before, "after": name})
            uow.commit()
    return user


def change_password(auth: Authenticated, current_password: str, new_password: str, *, uow, clock=_WALL,
                    ctx: RequestContext = NO_CONTEXT) -> None:
    """Replaces the password and ends every other credential of the user: their other browser
    sessions, all personal API tokens and all access tokens (the one that made the request too).
    Only a browser session that made the request stays: the user stays signed in on that page.

    Both slow scrypt steps (checking the current password, hashing the new one) run outside any
    transaction (SQLite holds its write lock for a whole transaction); the write then applies only
    if the hash is still the one checked against. A wrong current password is audited like a
    failed login and raises LoginFailed; a weak new one raises IdentityError("new_password")."""
    try:
        check_password_strength(new_password)
    except IdentityError as exc:
        raise IdentityError(exc.message, "new_password") from None
    user_id = auth.identity.user.id
    with uow:
        user = uow.repo.user(user_id)
    if user is None or not check_password_hash(user.password_hash, current_password):
        record(audit_event(clock.now(), "login.failed", ctx, actor_user_id=user_id,
                           actor_email=auth.identity.user.email, detail={"via": "password_change"}), uow=uow)
        raise LoginFailed()
    new_hash = hash_password(new_password)
    now = clock.now()
    with uow:
        if not uow.repo.replace_password(user_id, user.password_hash, new_hash):
            raise LoginFailed()  # changed meanwhile: the password given was checked against an old one
        ended = uow.repo.remove_browser_sessions_of(
            user_id, keep=auth.credential_id if auth.method == "session" else None)
        revoked = uow.repo.revoke_personal_tokens_of(user_id, now)
        uow.repo.prune_expired(now)
        _audit(uow, now, "password.changed", ctx, actor=user, target=user_id,
               detail={"via": auth.method, "browser_sessions_ended": ended, "personal_tokens_revoked": revoked})
        uow.commit()


def sign_out_everywhere(auth: Authenticated, *, uow, clock=_WALL, ctx: RequestContext = NO_CONTEXT) -> dict:
    """Ends every credential of the signed-in user at once: all access tokens (this one too),
    browser sessions (this one too) and personal API tokens."""
    if auth.method == "pat":
        raise rules.NotPermitted("A personal API token cannot sign its user out; sign in with your password.")
    now = clock.now()
    user = auth.identity.user
    with uow:
        ended = uow.repo.end_credentials(user.id, now)
        uow.repo.prune_expired(now)
        _audit(uow, now, "signed_out.everywhere", ctx, actor=user, target=user.id,
               detail={"via": auth.method, **ended})
        uow.commit()
    return ended


def sign_out_member(identity: Identity, workspace_id, user_id, *, uow, clock=_WALL,
                    ctx: RequestContext = NO_CONTEXT) -> dict:
    """An owner or admin ends every credential of a member (a lost laptop, a leaked token):
    their access tokens, browser sessions and personal API tokens. Only an owner signs out an
    owner."""
    now = clock.now()
    with uow:
        if uow.repo.lock_workspace(workspace_id) is None:
            raise rules.WorkspaceHidden()
        rules.check_sign_out(uow.repo.membership(workspace_id, identity.user.id),
                             uow.repo.membership(workspace_id, user_id))
        ended = uow.repo.end_credentials(user_id, now)
        uow.repo.prune_expired(now)
        _audit(uow, now, "member.signed_out", ctx, actor=identity.user, workspace_id=workspace_id, target=user_id,
               detail=ended)
        uow.commit()
    return ended


# -- names in the services' answers ---------------------------------------------------------------

def _scope(workspace_ids, answer_workspace: str | None) -> set[str]:
    """Whose names an answer may carry: members of the answer's Workspace (where it says which and
    it is one of `workspace_ids`), else of any of `workspace_ids`."""
    scope = {str(w) for w in workspace_ids}
    return scope & {answer_workspace} if answer_workspace is not None else scope


def _names(ids, workspace_ids, answer_workspace: str | None, *, uow, requester: User | None = None
           ) -> dict[str, str]:
    """{id as written: name} of those ids that are members of the answer's Workspace (where it
    says which), else of any of `workspace_ids`. One query, none when the only id is the
    `requester`'s (read with this request's credential; a member of each of `workspace_ids`,
    which are theirs): what a Check-in's answer names."""
    scope = _scope(workspace_ids, answer_workspace)
    parsed = {}
    for raw in ids:
        try:
            parsed[raw] = uuid.UUID(raw)
        except ValueError:
            pass
    if not parsed or not scope:
        return {}
    wanted, found = set(parsed.values()), {}
    if requester is not None and requester.id in wanted:
        found[requester.id] = (requester.display_name, requester.email)
        wanted.discard(requester.id)
    if wanted:
        with uow.reading() as repo:
            found.update(repo.names_among([uuid.UUID(w) for w in scope], wanted))
    return {raw: name_or_email_local(*found[user_id]) for raw, user_id in parsed.items() if user_id in found}


def name_people(answer, workspace_ids, *, uow):
    """Adds `owner_name` beside every `owner_id` and `author_name` beside every `author_id`
    anywhere in a parsed JSON answer (changed in place, and returned). Only members of the
    Workspace the answer belongs to are named (where it says which: a Session, or an answer
    about one), else members of any of `workspace_ids`: the Workspaces whose Goals/OKRs the
    requester may reach, so nobody learns a name they could not list anyway. A former member,
    or no id, is null. One query, whatever the size of the answer."""
    holders, ids = names.references(answer)
    if holders:
        names.apply(holders, _names(ids, workspace_ids, names.answer_workspace(answer), uow=uow))
    return answer


def workspace_people(principal: tokens.Principal, workspace_id, user_ids, *, uow) -> dict | None:
    """The Workspace's name and the display name and email of those of `user_ids` who are its
    members (for the export service, which keeps no people of its own). Asked for a requester:
    only one whose Goals/OKRs in this Workspace they may reach now; None otherwise."""
    workspace_id = uuid.UUID(str(workspace_id))
    if principal.anonymous or not principal.member_of(workspace_id):
        return None
    with uow.reading() as repo:
        workspace = next((w for w, _ in repo.workspaces_of(uuid.UUID(principal.user_id))
                          if w.id == workspace_id), None)
        if workspace is None:  # no longer a member, whatever the token says
            return None
        found = repo.names_among([workspace_id], {uuid.UUID(str(u)) for u in user_ids})
    return {"workspace": {"id": workspace.id, "name": workspace.name},
            "people": [{"id": user_id, "name": name_or_email_local(name, email), "email": email}
                       for user_id, (name, email) in sorted(found.items(), key=lambda kv: str(kv[0]))]}


# Above this size an answer (a week view: ~5 MB at 10,000 Key Results) is named from every member
# of its Workspace, read in one query, instead of finding its ids first: that search costs more
# (~25 ms of CPU at 5 MB) than reading a Workspace's people.
BIG_ANSWER = 256 * 1024


def name_people_json(raw: bytes, workspace_ids, *, uow, requester: User | None = None) -> bytes:
    """name_people on a raw JSON body, without parsing it (what the gateway forwards)."""
    answer_workspace = names.workspace_in_json(raw)
    if len(raw) > BIG_ANSWER:
        scope, found = _scope(workspace_ids, answer_workspace), {}
        if scope:
            with uow.reading() as repo:
                people = repo.member_names([uuid.UUID(w) for w in scope])
            found = {str(user_id): name_or_email_local(*person) for user_id, person in people.items()}
    else:
        found = _names(names.ids_in_json(raw), workspace_ids, answer_workspace, uow=uow, requester=requester)
    return names.name_json(raw, found)


# -- personal API tokens -------------------------------------------------------------------------

def create_personal_token(auth: Authenticated, name: str, expires_in_days: int | None, *, uow, clock=_WALL,
                          ctx: RequestContext = NO_CONTEXT, scope: str = "read") -> tuple[str, PersonalToken]:
    """A token for scripts; its secret is returned once. It always expires (PAT_DEFAULT_DAYS
    unless asked otherwise) and has a scope: read, check_in or admin. A personal token cannot
    create more of them: a leaked script token must not be able to mint itself a longer life."""
    if auth.method == "pat":
        raise rules.NotPermitted("A personal API token cannot create personal API tokens; "
                                 "sign in with your password to create one.")
    if scope not in PAT_SCOPES:
        raise IdentityError(f"A scope is one of {', '.join(PAT_SCOPES)}.", "scope")
    now = clock.now()
    secret = new_pat_secret()
    token = PersonalToken(uuid.uuid4(), auth.identity.user.id, name.strip(), hash_secret(secret), now,
                          now + timedelta(days=expires_in_days or PAT_DEFAULT_DAYS), scope=scope)
    with uow:
        active = [t for t in uow.repo.personal_tokens_of(token.user_id) if t.usable(now)]
        if len(active) >= MAX_PERSONAL_TOKENS:
            raise rules.Conflict(f"At most {MAX_PERSONAL_TOKENS} personal API tokens may be active; revoke one first.")
        uow.repo.add_personal_token(token)
        _audit(uow, now, "token.created", ctx, actor=auth.identity.user, target=token.id,
               detail={"name": token.name, "scope": token.scope, "expires_at": token.expires_at.isoformat()})
        uow.commit()
    return secret, token


def personal_tokens(auth: Authenticated, *, uow) -> list[PersonalToken]:
    with uow:
        return uow.repo.personal_tokens_of(auth.identity.user.id)


def revoke_personal_token(auth: Authenticated, token_id, *, uow, clock=_WALL,
                          ctx: RequestContext = NO_CONTEXT) -> None:
    now = clock.now()
    with uow:
        token = uow.repo.personal_token(auth.identity.user.id, token_id)
        if token is None:
            raise rules.NotFound("Personal API token not found.")
        if token.revoked_at is None:
            token.revoked_at = now
            uow.repo.update_personal_token(token)
            _audit(uow, now, "token.revoked", ctx, actor=auth.identity.user, target=token.id,
                   detail={"name": token.name})
            uow.commit()


# -- Workspace members and invitations -----------------------------------------------------------

@dataclass(frozen=True)
class Invited:
    member: tuple[User, Membership] | None = None
    invitation: Invitation | None = None
    token: str | None = None  # the invitation's secret, returned once


def list_members(identity: Identity, workspace_id, *, uow) -> list[tuple[User, Membership]]:
    with uow:
        rules.check_list(uow.repo.membership(workspace_id, identity.user.id))
        return uow.repo.members_of(workspace_id)


def invite_member(identity: Identity, workspace_id, email: str, role: str, okr_access: bool, *, uow,
                  clock=_WALL, ctx: RequestContext = NO_CONTEXT, rate: tuple[int, int] = INVITATION_RATE) -> Invited:
    """A pending invitation, whose one-time token (returned once, kept hashed) expires in
    INVITATION_DAYS days, whether or not the email has an account: nobody joins a Workspace
    without accepting, and the answer says nothing of other Workspaces' people. A member sends
    at most `rate` invitations per Workspace per window (429 with the seconds to wait)."""
    now = clock.now()
    with uow:
        if uow.repo.lock_workspace(workspace_id) is None:
            raise rules.WorkspaceHidden()
        rules.check_invite(uow.repo.membership(workspace_id, identity.user.id), role)
        email = normalise_email(email)
        limit, window = rate
        if uow.repo.member_invitations_since(workspace_id, identity.user.id, now - timedelta(seconds=window)) >= limit:
            raise rules.TooMany(f"At most {limit} invitations per {window} seconds: try again later.", window)
        user = uow.repo.user_by_email(email)
        detail = {"email": email, "role": role, "okr_access": okr_access}
        if user is not None and uow.repo.membership(workspace_id, user.id) is not None:
            raise rules.Conflict("This person is already a member of the Workspace.")
        uow.repo.withdraw_open_invitations(workspace_id, email)
        secret = INVITATION_PREFIX + new_secret()
        invitation = Invitation(uuid.uuid4(), workspace_id, email, role, okr_access, hash_secret(secret),
                                identity.user.id, now, now + timedelta(days=INVITATION_DAYS))
        uow.repo.add_invitation(invitation)
        _audit(uow, now, "member.invited", ctx, actor=identity.user, workspace_id=workspace_id,
               target=invitation.id, detail=detail)
        uow.commit()
        return Invited(invitation=invitation, token=secret)


def change_member(identity: Identity, workspace_id, user_id, *, role: str | None = None,
                  okr_access: bool | None = None, uow, clock=_WALL, ctx: RequestContext = NO_CONTEXT
                  ) -> tuple[User, Membership]:
    now = clock.now()
    with uow:
        if uow.repo.lock_workspace(workspace_id) is None:
            raise rules.WorkspaceHidden()
        target = uow.repo.membership(workspace_id, user_id)
        rules.check_change(uow.repo.membership(workspace_id, identity.user.id), target, role,
                           uow.repo.owners_count(workspace_id))
        changed = Membership(workspace_id, user_id, role or target.role,
                             target.okr_access if okr_access is None else okr_access)
        uow.repo.set_membership(changed)
        _audit(uow, now, "member.changed", ctx, actor=identity.user, workspace_id=workspace_id, target=user_id,
               detail={"before": {"role": target.role, "okr_access": target.okr_access},
                       "after": {"role": changed.role, "okr_access": changed.okr_access}})
        user = uow.repo.user(user_id)
        uow.commit()
    return user, changed


def remove_member(identity: Identity, workspace_id, user_id, *, uow, clock=_WALL,
                  ctx: RequestContext = NO_CONTEXT) -> None:
    now = clock.now()
    with uow:
        if uow.repo.lock_workspace(workspace_id) is None:
            raise rules.WorkspaceHidden()
        target = uow.repo.membership(workspace_id, user_id)
        rules.check_remove(uow.repo.membership(workspace_id, identity.user.id), target,
                           uow.repo.owners_count(workspace_id))
        uow.repo.remove_membership(workspace_id, user_id)
        _audit(uow, now, "member.removed", ctx, actor=identity.user, workspace_id=workspace_id, target=user_id,
               detail={"role": target.role})
        uow.commit()


def invitation_preview(token: str, *, uow, clock=_WALL) -> tuple[Invitation | None, bool]:
    """The invitation behind a token while it can still be accepted, and whether its email has an
    account already: what the invitation page shows before anyone accepts (accepting re-checks
    everything under a lock)."""
    with uow:
        invitation = uow.repo.invitation_by_hash(hash_secret(token))
        if invitation is None or not invitation.open(clock.now()):
            return None, False
        return invitation, uow.repo.user_by_email(invitation.email) is not None


def accept_invitation(token: str, password: str, *, uow, settings, clock=_WALL,
                      ctx: RequestContext = NO_CONTEXT, display_name: str | None = None) -> tuple[str, User]:
    """Turns an invitation into an account (or, for an email that has one by now, checks its
    password) and a membership; the invitation can be used once. A display name, if given, names
    a new account (an existing one keeps its own: PATCH /me changes it)."""
    if display_name is not None:
        display_name = normalise_display_name(display_name)
    now = clock.now()
    token_hash = hash_secret(token)
    with uow:  # read, then the slow password work outside any transaction
        invitation = uow.repo.invitation_by_hash(token_hash)
        if invitation is None or not invitation.open(now):
            raise InvitationInvalid()
        known = uow.repo.user_by_email(invitation.email)
    if known is None:
        check_password_strength(password)
        new_hash = hash_password(password)
    elif not check_password_hash(known.password_hash, password):
        raise LoginFailed()
    with uow:
        invitation = uow.repo.invitation_by_hash(token_hash, lock=True)
        if invitation is None or not invitation.open(now):
            raise InvitationInvalid()
        user = uow.repo.user_by_email(invitation.email)
        if user is None and known is None:
            user = User(uuid.uuid4(), invitation.email, new_hash, now, display_name or "")
            uow.repo.add_user(user)
        elif user is None or known is None or user.password_hash != known.password_hash:
            raise LoginFailed()  # the account appeared or changed its password meanwhile
        if uow.repo.membership(invitation.workspace_id, user.id) is None:
            uow.repo.set_membership(Membership(invitation.workspace_id, user.id, invitation.role,
                                               invitation.okr_access))
        invitation.accepted_at = now
        uow.repo.mark_accepted(invitation)
        _audit(uow, now, "invitation.accepted", ctx, actor=user, workspace_id=invitation.workspace_id,
               target=invitation.id, detail={"role": invitation.role, "okr_access": invitation.okr_access})
        uow.commit()
    return _access_token(user, settings), user


# -- audit log -----------------------------------------------------------------------------------

def audit_page(identity: Identity, workspace_id, *, limit: int, before: int | None, uow) -> list[AuditEvent]:
    with uow:
        rules.check_audit(uow.repo.membership(workspace_id, identity.user.id))
        return uow.repo.audit_page(workspace_id, limit, before)


def still_reads(user_id, workspace_id, *, uow) -> bool:
    """Whether the user is still a member of the Workspace with Goals/OKRs access (read now, so
    removing a member or their access stops their outstanding download links too)."""
    with uow.reading() as repo:
        return any(m.workspace_id == workspace_id and m.okr_access for m in repo.memberships(user_id))


def current_principal(user_id, *, uow) -> tokens.Principal:
    """What a user may reach now, as the gateway vouches for it on each request."""
    with uow.reading() as repo:
        memberships = repo.memberships(user_id)
    identity = Identity(None, memberships)
    return tokens.Principal(str(user_id), identity.workspace_roles(), identity.workspaces_without_okr_access())
