"""okrsnap on a three-node RabbitMQ cluster: Check-ins at a steady rate while the node leading
the quorum queues is stopped and started again (and, with OKRSNAP_CLUSTER_ROUNDS=2, the next
leader SIGKILLed and restarted); every acknowledged Check-in is applied exactly once, nothing is
dead-lettered, every ended week is sealed. `make cluster-test` runs it and writes the figures
into RELIABILITY.md ("RabbitMQ cluster")."""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from datetime import datetime, timezone

import pytest

from tests.chaos.harness import Client
from tests.cluster.harness import ClusterRun, check, prepare_stack, run_schedule, write_figures
from tests.cluster.rabbit import SBIN
from tests.conftest import fresh_database

pytestmark = pytest.mark.timeout(900)
RATE, WORKERS = 10.0, 2


def test_every_acknowledged_check_in_is_applied_once_while_the_leader_node_goes_away(
        tmp_path, postgres_server_url, rabbit_cluster):
    rounds = int(os.environ.get("OKRSNAP_CLUSTER_ROUNDS", "1"))
    namespace = f"okrsnap-cluster-{uuid.uuid4().hex[:8]}"
    with fresh_database(postgres_server_url, prefix="okrsnap_cluster") as database_url:
        stack = prepare_stack(tmp_path / "stack", database_url, rabbit_cluster, namespace, workers=WORKERS)
        client = None
        try:
            stack.start()
            client = Client(stack, rate=RATE)
            client.prepare()
            client.start()
            run = ClusterRun(stack, client, rabbit_cluster)
            # The queues are declared through the first node, so it leads them, and every process
            # connects to the first URL that answers: the first node taken away holds them all.
            run_schedule(run, rounds=rounds, steady=10, down=20)
            report = run.finish()
        finally:
            if client is not None:
                client.stop()
            stack.stop()
    report.update(nodes=run.events, rate=RATE, workers=WORKERS,
                  finished_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  rabbitmq=subprocess.run([str(SBIN / "rabbitmqctl"), "version"], capture_output=True,
                                          text=True).stdout.strip() or "?")
    print(json.dumps(report, indent=1))
    check(report)
    if os.environ.get("OKRSNAP_CLUSTER_WRITE_FIGURES") == "1":
        write_figures(report)
