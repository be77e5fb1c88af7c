from __future__ import annotations

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session as DbSession

from services.gateway.adapters import orm
from services.gateway.domain.credentials import AuditEvent, BrowserSession, Invitation, PersonalToken
from services.gateway.domain.model import Identity, Membership, User, Workspace


def _prefixed(table, prefix: str) -> list:
    return [c.label(f"{prefix}{c.name}") for c in table.c]


def _unprefixed(row, table, prefix: str) -> dict:
    return {c.name: row[f"{prefix}{c.name}"] for c in table.c}


# The columns of one credential lookup: the credential's own (prefixed), its user's (prefixed) and
# one membership per row (none: a user without Workspaces still gets one row, outer-joined).
_USER_COLUMNS = _prefixed(orm.users, "user_")
_MEMBERSHIP_COLUMNS = [orm.memberships.c.workspace_id.label("m_workspace_id"),
                       orm.memberships.c.role.label("m_role"), orm.memberships.c.okr_access.label("m_okr_access")]


def _with_identity(*columns):
    """SELECT columns, the user, their memberships FROM users LEFT JOIN memberships"""
    return select(*columns, *_USER_COLUMNS, *_MEMBERSHIP_COLUMNS).select_from(
        orm.users.outerjoin(orm.memberships, orm.memberships.c.user_id == orm.users.c.id))


def _credential_with_identity(table, key):
    return _with_identity(*_prefixed(table, "c_")).join(table, table.c.user_id == orm.users.c.id).where(
        key == bindparam("key"))


# Built once: every request runs one of these, and building a statement costs more than running it.
_ACCESS_IDENTITY = _with_identity(select(orm.revoked_tokens.c.jti).where(
    orm.revoked_tokens.c.jti == bindparam("jti")).exists().label("revoked")).where(
    orm.users.c.id == bindparam("user_id"))
_PAT_IDENTITY = _credential_with_identity(orm.personal_tokens, orm.personal_tokens.c.token_hash)
_SESSION_IDENTITY = _credential_with_identity(orm.browser_sessions, orm.browser_sessions.c.id_hash)


def _identity_of(rows) -> Identity:
    user = User(**_unprefixed(rows[0], orm.users, "user_"))
    return Identity(user, [Membership(r["m_workspace_id"], user.id, r["m_role"], r["m_okr_access"])
                           for r in rows if r["m_workspace_id"] is not None])


class IdentityRepository:
    def __init__(self, db: DbSession):
        self.db = db

    # -- a request's credential with its user and memberships: one statement each ---------------

    def access_identity(self, user_id, jti: str) -> tuple[Identity | None, bool]:
        """(the user with their memberships, whether the access token `jti` is revoked)"""
        rows = self.db.execute(_ACCESS_IDENTITY, {"user_id": user_id, "jti": jti}).mappings().all()
        return (_identity_of(rows), bool(rows[0]["revoked"])) if rows else (None, False)

    def personal_token_identity(self, token_hash: str) -> tuple[PersonalToken | None, Identity | None]:
        return self._credential_identity(PersonalToken, orm.personal_tokens, _PAT_IDENTITY, token_hash)

    def browser_session_identity(self, id_hash: str) -> tuple[BrowserSession | None, Identity | None]:
        return self._credential_identity(BrowserSession, orm.browser_sessions, _SESSION_IDENTITY, id_hash)

    def _credential_identity(self, kind, table, query, key):
        """(the credential the query finds by `key`, its user with their memberships)"""
        rows = self.db.execute(query, {"key": key}).mappings().all()
        return (kind(**_unprefixed(rows[0], table, "c_")), _identity_of(rows)) if rows else (None, None)

    def user_by_email(self, email: str) -> User | None:
        row = self.db.execute(select(orm.users).where(orm.users.c.email == email)).mappings().first()
        return User(**row) if row else None

    def user(self, user_id) -> User | None:
        row = self.db.execute(select(orm.users).where(orm.users.c.id == user_id)).mappings().first()
        return User(**row) if row else None

    def add_user(self, user: User) -> None:
        self.db.execute(orm.users.insert().values(**vars(user)))

    def set_password(self, user: User) -> None:
        self.db.execute(orm.users.update().where(orm.users.c.id == user.id).values(password_hash=user.password_hash))

    def replace_password(self, user_id, old_hash: str, new_hash: str) -> bool:
        """Sets the new hash, and counts the user's token generation up (ending their access
        tokens), only if the stored hash is still old_hash: the one the current password was
        checked against, outside this transaction."""
        result = self.db.execute(orm.users.update().where(
            orm.users.c.id == user_id, orm.users.c.password_hash == old_hash).values(
            password_hash=new_hash, token_generation=orm.users.c.token_generation + 1))
        return result.rowcount == 1

    def rehash_password(self, user_id, old_hash: str, new_hash: str) -> None:
        """The same password under a stronger hash (after a login): credentials stay valid."""
        self.db.execute(orm.users.update().where(orm.users.c.id == user_id, orm.users.c.password_hash == old_hash)
                        .values(password_hash=new_hash))

    def end_credentials(self, user_id, now, *, keep_session: str | None = None) -> dict:
        """Signs the user out everywhere: every access token (the token generation counts up),
        browser session (but `keep_session`) and personal API token ends now."""
        self.db.execute(orm.users.update().where(orm.users.c.id == user_id).values(
            token_generation=orm.users.c.token_generation + 1))
        return {"browser_sessions_ended": self.remove_browser_sessions_of(user_id, keep=keep_session),
                "personal_tokens_revoked": self.revoke_personal_tokens_of(user_id, now)}

    def set_display_name(self, user: User) -> None:
        self.db.execute(orm.users.update().where(orm.users.c.id == user.id).values(display_name=user.display_name))

    def names_among(self, workspace_ids, user_ids) -> dict:
        """{user id: (display name, email)} of those users who are members of any of these
        Workspaces: one query."""
        if not workspace_ids or not user_ids:
            return {}
        return self.member_names(workspace_ids, among=user_ids)

    def member_names(self, workspace_ids, *, among=None) -> dict:
        """{user id: (display name, email)} of every member of these Workspaces (or only those
        `among` these users): one query."""
        query = (select(orm.users.c.id, orm.users.c.display_name, orm.users.c.email).distinct()
                 .join(orm.memberships, orm.memberships.c.user_id == orm.users.c.id)
                 .where(orm.memberships.c.workspace_id.in_(list(workspace_ids))))
        if among is not None:
            query = query.where(orm.users.c.id.in_(list(among)))
        return {r.id: (r.display_name, r.email) for r in self.db.execute(query)}

    def workspace_by_name(self, name: str) -> Workspace | None:
        row = self.db.execute(select(orm.workspaces).where(orm.workspaces.c.name == name)
                              .order_by(orm.workspaces.c.created_at)).mappings().first()
        return Workspace(**row) if row else None

    def add_workspace(self, workspace: Workspace) -> None:
        self.db.execute(orm.workspaces.insert().values(**vars(workspace)))

    def memberships(self, user_id) -> list[Membership]:
        rows = self.db.execute(select(orm.memberships).where(orm.memberships.c.user_id == user_id)).mappings()
        return [Membership(**r) for r in rows]

    def workspaces_of(self, user_id) -> list[tuple[Workspace, Membership]]:
        rows = self.db.execute(
            select(orm.workspaces, orm.memberships.c.role, orm.memberships.c.okr_access)
            .join(orm.memberships, orm.memberships.c.workspace_id == orm.workspaces.c.id)
            .where(orm.memberships.c.user_id == user_id).order_by(orm.workspaces.c.name)).mappings()
        return [(Workspace(r["id"], r["name"], r["created_at"]),
                 Membership(r["id"], user_id, r["role"], r["okr_access"])) for r in rows]

    def members_among(self, workspace_id, user_ids) -> set:
        rows = self.db.execute(select(orm.memberships.c.user_id).where(
            orm.memberships.c.workspace_id == workspace_id, orm.memberships.c.user_id.in_(list(user_ids))))
        return set(rows.scalars())

    def set_membership(self, membership: Membership) -> None:
        existing = self.db.execute(select(orm.memberships).where(
            orm.memberships.c.workspace_id == membership.workspace_id,
            orm.memberships.c.user_id == membership.user_id)).first()
        if existing:
            self.db.execute(orm.memberships.update().where(
                orm.memberships.c.workspace_id == membership.workspace_id,
                orm.memberships.c.user_id == membership.user_id,
            ).values(role=membership.role, okr_access=membership.okr_access))
        else:
            self.db.execute(orm.memberships.insert().values(**vars(membership)))

    # -- members of one Workspace ------------------------------------------------------------

    def lock_workspace(self, workspace_id) -> Workspace | None:
        """The Workspace, locked until commit: member changes of one Workspace run one at a time,
        so two owners demoting each other cannot leave it without an owner."""
        row = self.db.execute(select(orm.workspaces).where(orm.workspaces.c.id == workspace_id)
                              .with_for_update()).mappings().first()
        return Workspace(**row) if row else None

    def membership(self, workspace_id, user_id) -> Membership | None:
        row = self.db.execute(select(orm.memberships).where(
            orm.memberships.c.workspace_id == workspace_id,
            orm.memberships.c.user_id == user_id)).mappings().first()
        return Membership(**row) if row else None

    def members_of(self, workspace_id) -> list[tuple[User, Membership]]:
        rows = self.db.execute(
            select(orm.users, orm.memberships.c.role, orm.memberships.c.okr_access)
            .join(orm.memberships, orm.memberships.c.user_id == orm.users.c.id)
            .where(orm.memberships.c.workspace_id == workspace_id).order_by(orm.users.c.email)).mappings()
        return [(User(r["id"], r["email"], r["password_hash"], r["created_at"], r["display_name"],
                      r["token_generation"]),
                 Membership(workspace_id, r["id"], r["role"], r["okr_access"])) for r in rows]

    def owners_count(self, workspace_id) -> int:
        return self.db.execute(select(func.count()).select_from(orm.memberships).where(
            orm.memberships.c.workspace_id == workspace_id, orm.memberships.c.role == "owner")).scalar_one()

    def remove_membership(self, workspace_id, user_id) -> None:
        self.db.execute(delete(orm.memberships).where(
            orm.memberships.c.workspace_id == workspace_id, orm.memberships.c.user_id == user_id))

    # -- revoked access tokens ---------------------------------------------------------------

    def revoke_jti(self, jti: str, expires_at) -> None:
        if not self.is_revoked(jti):
            self.db.execute(orm.revoked_tokens.insert().values(jti=jti, expires_at=expires_at))

    def is_revoked(self, jti: str) -> bool:
        return self.db.execute(select(orm.revoked_tokens.c.jti).where(
            orm.revoked_tokens.c.jti == jti)).first() is not None

    def prune_expired(self, now) -> None:
        """Revocations of tokens that expired anyway, and ended browser sessions."""
        self.db.execute(delete(orm.revoked_tokens).where(orm.revoked_tokens.c.expires_at < now))
        self.db.execute(delete(orm.browser_sessions).where(orm.browser_sessions.c.expires_at < now))

    # -- personal API tokens -----------------------------------------------------------------

    def add_personal_token(self, token: PersonalToken) -> None:
        self.db.execute(orm.personal_tokens.insert().values(**vars(token)))

    def personal_token_by_hash(self, token_hash: str) -> PersonalToken | None:
        row = self.db.execute(select(orm.personal_tokens).where(
            orm.personal_tokens.c.token_hash == token_hash)).mappings().first()
        return PersonalToken(**row) if row else None

    def personal_token(self, user_id, token_id) -> PersonalToken | None:
        row = self.db.execute(select(orm.personal_tokens).where(
            orm.personal_tokens.c.id == token_id, orm.personal_tokens.c.user_id == user_id)).mappings().first()
        return PersonalToken(**row) if row else None

    def personal_tokens_of(self, user_id) -> list[PersonalToken]:
        rows = self.db.execute(select(orm.personal_tokens).where(orm.personal_tokens.c.user_id == user_id)
                               .order_by(orm.personal_tokens.c.created_at.desc())).mappings()
        return [PersonalToken(**r) for r in rows]

    def revoke_personal_tokens_of(self, user_id, now) -> int:
        result = self.db.execute(update(orm.personal_tokens).where(
            orm.personal_tokens.c.user_id == user_id, orm.personal_tokens.c.revoked_at.is_(None)
        ).values(revoked_at=now))
        return result.rowcount

    def update_personal_token(self, token: PersonalToken) -> None:
        self.db.execute(update(orm.personal_tokens).where(orm.personal_tokens.c.id == token.id).values(
            last_used_at=token.last_used_at, revoked_at=token.revoked_at))

    def touch_personal_token(self, token_id, at) -> None:
        self.db.execute(update(orm.personal_tokens).where(orm.personal_tokens.c.id == token_id)
                        .values(last_used_at=at))

    # -- browser sessions --------------------------------------------------------------------

    def add_browser_session(self, session: BrowserSession) -> None:
        self.db.execute(orm.browser_sessions.insert().values(**vars(session)))

    def browser_session(self, id_hash: str) -> BrowserSession | None:
        row = self.db.execute(select(orm.browser_sessions).where(
            orm.browser_sessions.c.id_hash == id_hash)).mappings().first()
        return BrowserSession(**row) if row else None

    def remove_browser_session(self, id_hash: str) -> None:
        self.db.execute(delete(orm.browser_sessions).where(orm.browser_sessions.c.id_hash == id_hash))

    def remove_browser_sessions_of(self, user_id, *, keep: str | None = None) -> int:
        """Ends every browser session of the user but `keep` (an id hash)."""
        query = delete(orm.browser_sessions).where(orm.browser_sessions.c.user_id == user_id)
        if keep is not None:
            query = query.where(orm.browser_sessions.c.id_hash != keep)
        return self.db.execute(query).rowcount

    # -- invitations -------------------------------------------------------------------------

    def add_invitation(self, invitation: Invitation) -> None:
        self.db.execute(orm.invitations.insert().values(**vars(invitation)))

    def withdraw_open_invitations(self, workspace_id, email: str) -> None:
        self.db.execute(delete(orm.invitations).where(
            orm.invitations.c.workspace_id == workspace_id, orm.invitations.c.email == email,
            orm.invitations.c.accepted_at.is_(None)))

    def invitation_by_hash(self, token_hash: str, *, lock: bool = False) -> Invitation | None:
        query = select(orm.invitations).where(orm.invitations.c.token_hash == token_hash)
        row = self.db.execute(query.with_for_update() if lock else query).mappings().first()
        return Invitation(**row) if row else None

    def mark_accepted(self, invitation: Invitation) -> None:
        self.db.execute(update(orm.invitations).where(orm.invitations.c.id == invitation.id)
                        .values(accepted_at=invitation.accepted_at))

    # -- audit -------------------------------------------------------------------------------

    def add_audit(self, event: AuditEvent) -> None:
        values = {k: v for k, v in vars(event).items() if k != "id"}
        self.db.execute(orm.audit_events.insert().values(**values))

    def member_invitations_since(self, workspace_id, inviter_id, since) -> int:
        """How many invitations this member sent in this Workspace since then (the audit log
        keeps every one, also those withdrawn by a later invitation to the same email)."""
        return self.db.execute(select(func.count()).select_from(orm.audit_events).where(
            orm.audit_events.c.workspace_id == workspace_id, orm.audit_events.c.actor_user_id == inviter_id,
            orm.audit_events.c.action == "member.invited", orm.audit_events.c.at >= since)).scalar_one()

    def audit_page(self, workspace_id, limit: int, before: int | None) -> list[AuditEvent]:
        """The Workspace's events, and the events of no Workspace (logins, failed logins, logouts,
        password changes, personal tokens) of its current members."""
        member_ids = select(orm.memberships.c.user_id).where(orm.memberships.c.workspace_id == workspace_id)
        member_emails = select(orm.users.c.email).join(
            orm.memberships, orm.memberships.c.user_id == orm.users.c.id).where(
            orm.memberships.c.workspace_id == workspace_id)
        query = select(orm.audit_events).where(or_(
            orm.audit_events.c.workspace_id == workspace_id,
            and_(orm.audit_events.c.workspace_id.is_(None),
                 or_(orm.audit_events.c.actor_user_id.in_(member_ids),
                     orm.audit_events.c.actor_email.in_(member_emails)))))
        if before is not None:
            query = query.where(orm.audit_events.c.id < before)
        rows = self.db.execute(query.order_by(orm.audit_events.c.id.desc()).limit(limit)).mappings()
        return [AuditEvent(**r) for r in rows]
