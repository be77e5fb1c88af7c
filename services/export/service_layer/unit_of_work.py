from services.export.adapters.repository import SqlRepository
from shared.uow import SqlAlchemyUnitOfWork


class ExportUnitOfWork(SqlAlchemyUnitOfWork):
    repository_class = SqlRepository
    repo: SqlRepository
