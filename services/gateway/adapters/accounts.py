"""The operator's view of accounts (the `okrsnap user` commands): every user with their
Workspaces, and removing an account with what hangs on it. One DB session, owned by the UoW."""
from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session as DbSession

from services.gateway.adapters import orm
from services.gateway.domain.model import User


class AccountDirectory:
    def __init__(self, db: DbSession):
        self.db = db

    def users_with_workspaces(self) -> list[tuple[User, list[tuple[str, str]]]]:
        """Every user by email, with (Workspace name, role) of each membership."""
        users = [User(**row) for row in self.db.execute(select(orm.users).order_by(orm.users.c.email)).mappings()]
        rows = self.db.execute(select(orm.memberships.c.user_id, orm.workspaces.c.name, orm.memberships.c.role)
                               .join(orm.workspaces, orm.workspaces.c.id == orm.memberships.c.workspace_id)
                               .order_by(orm.workspaces.c.name))
        spaces: dict = {}
        for user_id, name, role in rows:
            spaces.setdefault(user_id, []).append((name, role))
        return [(user, spaces.get(user.id, [])) for user in users]

    def sole_owner_of(self, user_id) -> list[str]:
        """Names of the Workspaces where the user is the only owner."""
        owned = select(orm.memberships.c.workspace_id).where(orm.memberships.c.user_id == user_id,
                                                              orm.memberships.c.role == "owner")
        names = []
        for workspace_id, name in self.db.execute(select(orm.workspaces.c.id, orm.workspaces.c.name)
                                                  .where(orm.workspaces.c.id.in_(owned))):
            owners = self.db.execute(select(orm.memberships.c.user_id).where(
                orm.memberships.c.workspace_id == workspace_id, orm.memberships.c.role == "owner")).all()
            if len(owners) == 1:
                names.append(name)
        return names

    def delete_user(self, user_id) -> None:
        for table in (orm.personal_tokens, orm.browser_sessions, orm.memberships):
            self.db.execute(delete(table).where(table.c.user_id == user_id))
        self.db.execute(delete(orm.users).where(orm.users.c.id == user_id))
