from services.checkin.adapters.repository import SqlRepository
from shared.uow import SqlAlchemyUnitOfWork


class CheckinUnitOfWork(SqlAlchemyUnitOfWork):
    repository_class = SqlRepository
    repo: SqlRepository
