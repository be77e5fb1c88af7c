from services.checkin.adapters.repository import SqlRepository
from shared.uow import SqlAlchemyUnitOfWork


class CheckinUnitOfWork(SqlAlchemyUnitOfWork):
    repo: SqlRepository

    def _bind(self, session):
        self.repo = SqlRepository(session)
