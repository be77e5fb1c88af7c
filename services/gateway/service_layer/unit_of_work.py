from services.gateway.adapters.repository import IdentityRepository
from shared.uow import SqlAlchemyUnitOfWork


class GatewayUnitOfWork(SqlAlchemyUnitOfWork):
    repo: IdentityRepository

    def _bind(self, session):
        self.repo = IdentityRepository(session)
