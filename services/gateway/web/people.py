"""Owners and authors by name: a Workspace's members as the signed-in user may list them."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from services.gateway.domain.members import MemberRuleError
from services.gateway.service_layer import handlers
from shared.http import container


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    email: str
    role: str


def display_name(user) -> str:
    name = (getattr(user, "display_name", "") or "").strip()
    return name or user.email.split("@", 1)[0]


class People:
    """Who is who in one Workspace; someone no longer a member shows as 'former member'."""

    def __init__(self, members: list[Person]):
        self.members = sorted(members, key=lambda p: p.name.lower())
        self._by_id = {p.id: p for p in members}

    @classmethod
    def of(cls, identity, workspace_id) -> "People":
        try:
            found = handlers.list_members(identity, uuid.UUID(str(workspace_id)), uow=container().uow())
        except MemberRuleError:
            found = []
        return cls([Person(str(u.id), display_name(u), u.email, m.role) for u, m in found])

    def get(self, user_id) -> Person | None:
        return self._by_id.get(str(user_id)) if user_id else None

    def name(self, user_id) -> str:
        if not user_id:
            return "Unassigned"
        person = self.get(user_id)
        return person.name if person else "Former member"

    def email(self, user_id) -> str:
        person = self.get(user_id)
        return person.email if person else ""
