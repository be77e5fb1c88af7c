from services.snapshot.adapters.repository import SnapshotRepository
from shared.uow import SqlAlchemyUnitOfWork


class SnapshotUnitOfWork(SqlAlchemyUnitOfWork):
    repository_class = SnapshotRepository
    repo: SnapshotRepository
