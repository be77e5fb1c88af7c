"""What an operator does from the command line (`okrsnap user ...`): create an account without
ever overwriting one, reset a password, list accounts, remove one. Each use case owns its
transaction; slow password hashing runs outside it (SQLite holds its write lock for a whole
transaction)."""
from __future__ import annotations

from services.gateway.adapters.accounts import AccountDirectory
from services.gateway.domain.model import IdentityError, User, Workspace, check_password_strength, normalise_email
from services.gateway.service_layer import handlers
from services.gateway.service_layer.handlers import NO_CONTEXT, AddUser


class AccountExists(IdentityError):
    def __init__(self, email: str):
        super().__init__(f"{email} already has an account: nothing was changed. Use `okrsnap user set-password` to "
                         "reset its password, or invite it to a Workspace from the Members page.", "email")


def create_user(cmd: AddUser, *, uow, clock) -> tuple[User, Workspace]:
    """A new account, member of the named Workspace (created when missing); an existing account
    is refused, never reset (it once left a Workspace without its owner)."""
    email = normalise_email(cmd.email)
    with uow:
        if uow.repo.user_by_email(email) is not None:
            raise AccountExists(email)
    return handlers.add_user(cmd, uow=uow, clock=clock)


def set_password(email: str, password: str, *, uow, clock) -> User:
    """A reset by the operator: the new password, and every credential of the account ends."""
    email = normalise_email(email)
    check_password_strength(password)
    new_hash = handlers.hash_password(password)
    now = clock.now()
    with uow:
        user = uow.repo.user_by_email(email)
        if user is None:
            raise IdentityError(f"No account for {email}.", "email")
        user.password_hash = new_hash
        uow.repo.set_password(user)
        ended = uow.repo.end_credentials(user.id, now)
        uow.repo.add_audit(handlers.audit_event(now, "password.reset", NO_CONTEXT, target=user.id,
                                                detail={"via": "okrsnap user set-password", **ended}))
        uow.commit()
    return user


def list_users(*, uow) -> list[tuple[User, list[tuple[str, str]]]]:
    with uow:
        return AccountDirectory(uow.session).users_with_workspaces()


def remove_user(email: str, *, uow, clock) -> User:
    """Removes the account and its memberships, tokens and sessions; refused while it is the
    only owner of a Workspace. Their items keep their owner id and show as a former member."""
    email = normalise_email(email)
    now = clock.now()
    with uow:
        user = uow.repo.user_by_email(email)
        if user is None:
            raise IdentityError(f"No account for {email}.", "email")
        accounts = AccountDirectory(uow.session)
        sole = accounts.sole_owner_of(user.id)
        if sole:
            raise IdentityError(f"{email} is the only owner of {', '.join(sole)}: make someone else owner "
                                "first (Members page), then remove the account.", "email")
        uow.repo.end_credentials(user.id, now)
        accounts.delete_user(user.id)
        uow.repo.add_audit(handlers.audit_event(now, "user.removed", NO_CONTEXT, target=user.id,
                                                detail={"via": "okrsnap user remove", "email": email}))
        uow.commit()
    return user
