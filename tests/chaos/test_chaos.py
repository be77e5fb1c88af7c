"""The bounded chaos run (part of `make test`; `make chaos` runs the long one): Check-ins sent
through the gateway at a steady rate while workers and the relay are SIGKILLed (a worker five
times while its database is down), RabbitMQ and PostgreSQL are cut or black-holed and workers are
stopped with SIGTERM. Then: every acknowledged Check-in is in the Snapshot exactly once, nothing
healthy was dead-lettered, and every ended week is sealed with a valid chain."""
from __future__ import annotations

import json

import pytest

from tests.chaos import schedules
from tests.chaos.harness import Client, Run, Stack
from tests.conftest import fresh_database

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]


def check(report: dict) -> None:
    """The promises; a report that breaks one fails the run."""
    assert report["acknowledged"] > 0
    assert report["lost"] == 0, report
    assert report["applied_twice"] == 0, report
    assert report["lost_at_source"] == 0, report
    assert report["unexpected_server_errors"] == 0, report
    assert report["dead_lettered"] == 0, report
    assert report["chain_valid"] and report["chain_weeks"] >= 3, report
    assert report["sealed_check_ins"] >= report["acknowledged"], report
    assert all(seconds < 15 for seconds in report["sigterm_seconds"]), report


def test_bounded_chaos_run(tmp_path, postgres_server_url, broker_url, namespace):
    with fresh_database(postgres_server_url, prefix="okrsnap_chaos") as database_url:
        stack = Stack(tmp_path, database_url, broker_url, namespace)
        client = None
        try:
            stack.start()
            client = Client(stack, rate=10)
            client.prepare()
            client.start()
            run = Run(stack, client)
            schedules.bounded(run)
            report = run.finish()
        finally:
            if client is not None:
                client.stop()
            stack.stop()
    print(json.dumps(report, indent=1))
    check(report)
