"""The RabbitMQ cluster tests run with `make cluster-test` (OKRSNAP_CLUSTER_TEST=1), not in
`make test`: three RabbitMQ nodes and okrsnap's processes take several minutes of this
machine's two cores. Without the variable they are deselected, not skipped."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cluster import rabbit
from tests.conftest import IN_CI

HERE = Path(__file__).parent
ENABLED = os.environ.get("OKRSNAP_CLUSTER_TEST") == "1"


def pytest_collection_modifyitems(config, items):
    if ENABLED:
        return
    mine = [item for item in items if HERE in Path(str(item.fspath)).parents]
    if mine:
        config.hook.pytest_deselected(items=mine)
        items[:] = [item for item in items if item not in mine]


@pytest.fixture
def rabbit_cluster(tmp_path):
    if not rabbit.installed():
        message = "rabbitmq-server is not installed (apt-get install rabbitmq-server)"
        if IN_CI:
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(f"SKIPPED LOUDLY: {message}")
    cluster = rabbit.RabbitCluster(tmp_path / "rabbit")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
