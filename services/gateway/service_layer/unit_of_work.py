from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from sqlalchemy import Connection

from services.gateway.adapters.repository import IdentityRepository
from shared.uow import SqlAlchemyUnitOfWork


class GatewayUnitOfWork(SqlAlchemyUnitOfWork):
    repository_class = IdentityRepository
    repo: IdentityRepository

    def __init__(self, session_factory, connect: Callable[[], Connection] | None = None):
        super().__init__(session_factory)
        self._connect = connect

    @contextmanager
    def reading(self) -> Iterator[IdentityRepository]:
        """A repository for lookups that change nothing (every request's credential, the names in
        an answer): on a pooled connection in autocommit, so a lookup costs its statement's round
        trip only, with no BEGIN before it and no ROLLBACK after it. Each statement sees the rows
        committed before it, so a revocation counts from the next request on."""
        if self._connect is None:  # no engine to borrow from: an ordinary unit of work
            with self:
                yield self.repo
            return
        with self._connect() as connection:
            yield self.repository_class(connection.execution_options(isolation_level="AUTOCOMMIT"))
