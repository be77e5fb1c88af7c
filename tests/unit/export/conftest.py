"""Fixtures the export handler tests share: an in-memory unit of work, a clock standing at START,
the fake snapshot service, and Alice, a viewer of one Workspace."""
import uuid

import pytest

from shared.clock import FixedClock
from shared.tokens import Principal
from tests.unit.export.fakes import START, FakeSnapshots, FakeUnitOfWork


@pytest.fixture
def uow():
    return FakeUnitOfWork()


@pytest.fixture
def clock():
    return FixedClock(START)


@pytest.fixture
def snapshots():
    return FakeSnapshots()


@pytest.fixture
def workspace():
    return uuid.uuid4()


@pytest.fixture
def alice(workspace):
    return Principal(str(uuid.uuid4()), {str(workspace): "viewer"})
