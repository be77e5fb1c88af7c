"""Identity use cases: add users to Workspaces, log in, resolve the principal of a token."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from werkzeug.security import check_password_hash, generate_password_hash

from services.gateway.domain.model import (
    Identity,
    IdentityError,
    Membership,
    User,
    Workspace,
    check_password_strength,
    normalise_email,
)
from shared import tokens

# Compared against when the email is unknown, so a login takes as long either way.
_DUMMY_HASH = generate_password_hash("okrsnap-timing-equaliser")


class LoginFailed(Exception):
    pass


@dataclass(frozen=True)
class AddUser:
    email: str
    password: str
    workspace: str
    role: str = "member"


def add_user(cmd: AddUser, *, uow, clock) -> tuple[User, Workspace]:
    """Create the user (or update the password of an existing one) and make them a member of
    the named Workspace, creating it if it does not exist."""
    email = normalise_email(cmd.email)
    check_password_strength(cmd.password)
    if not cmd.workspace.strip():
        raise IdentityError("A Workspace name is needed.", "workspace")
    now = clock.now()
    with uow:
        user = uow.repo.user_by_email(email)
        if user is None:
            user = User(uuid.uuid4(), email, generate_password_hash(cmd.password), now)
            uow.repo.add_user(user)
        else:
            user.password_hash = generate_password_hash(cmd.password)
            uow.repo.set_password(user)
        workspace = uow.repo.workspace_by_name(cmd.workspace.strip())
        if workspace is None:
            workspace = Workspace(uuid.uuid4(), cmd.workspace.strip(), now)
            uow.repo.add_workspace(workspace)
        uow.repo.set_membership(Membership(workspace.id, user.id, cmd.role))
        uow.commit()
    return user, workspace


def login(email: str, password: str, *, uow, settings) -> tuple[str, User]:
    try:
        email = normalise_email(email)
    except IdentityError:
        email = ""
    with uow:
        user = uow.repo.user_by_email(email) if email else None
    if not check_password_hash(user.password_hash if user else _DUMMY_HASH, password) or user is None:
        raise LoginFailed()
    token = tokens.issue(settings.access_token_secret, typ=tokens.ACCESS, audience=tokens.API_AUDIENCE,
                         subject=str(user.id), ttl=settings.access_token_ttl)
    return token, user


def identity_for_token(token: str, *, uow, settings) -> Identity:
    """The user behind a bearer token, with their current memberships (read on every request,
    so a removed member loses access at once)."""
    claims = tokens.verify(settings.access_token_secret, token, typ=tokens.ACCESS,
                           audience=tokens.API_AUDIENCE)
    try:
        user_id = uuid.UUID(claims["sub"])
    except ValueError:
        raise tokens.InvalidToken("bad subject") from None
    with uow:
        user = uow.repo.user(user_id)
        if user is None:
            raise tokens.InvalidToken("unknown user")
        return Identity(user, uow.repo.memberships(user_id))


def workspaces_of(user_id, *, uow):
    with uow:
        return uow.repo.workspaces_of(user_id)


def members_among(principal: tokens.Principal, workspace_id, user_ids, *, uow) -> set:
    """Which of these users are members of the Workspace (asked by services validating owners);
    only a member may ask."""
    if not principal.member_of(workspace_id):
        return set()
    with uow:
        return uow.repo.members_among(workspace_id, user_ids)
