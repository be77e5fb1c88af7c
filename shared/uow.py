"""The unit of work every service builds on: one DB session, rolled back unless committed."""
from __future__ import annotations

from typing import Callable

from sqlalchemy.orm import Session


class SqlAlchemyUnitOfWork:
    repository_class: type | None = None  # set by each service: its repository, bound per session

    def __init__(self, session_factory: Callable[[], Session]):
        self.session_factory = session_factory
        self.session: Session | None = None

    def __enter__(self):
        self.session = self.session_factory()
        self._bind(self.session)
        return self

    def _bind(self, session: Session) -> None:
        self.repo = self.repository_class(session)

    def __exit__(self, *exc_info):
        try:
            self.rollback()
        finally:
            self.session.close()
            self.session = None

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()
