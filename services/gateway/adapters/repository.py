from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from services.gateway.adapters import orm
from services.gateway.domain.model import Membership, User, Workspace


class IdentityRepository:
    def __init__(self, db: DbSession):
        self.db = db

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
