from services.gateway.adapters.repository import IdentityRepository
from shared.uow import SqlAlchemyUnitOfWork


class GatewayUnitOfWork(SqlAlchemyUnitOfWork):
    repository_class = IdentityRepository
    repo: IdentityRepository
