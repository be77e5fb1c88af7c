from services.snapshot.adapters.repository import SnapshotRepository
from shared.uow import SqlAlchemyUnitOfWork


class SnapshotUnitOfWork(SqlAlchemyUnitOfWork):
    repo: SnapshotRepository

    def _bind(self, session):
        self.repo = SnapshotRepository(session)
