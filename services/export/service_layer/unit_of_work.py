from services.export.adapters.repository import SqlRepository
from shared.uow import SqlAlchemyUnitOfWork


class ExportUnitOfWork(SqlAlchemyUnitOfWork):
    repo: SqlRepository

    def _bind(self, session):
        self.repo = SqlRepository(session)
