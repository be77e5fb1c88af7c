"""Which faults a chaos run applies, in order. The bounded run (in `make test`) tries each kind
once in about two and a half minutes; the long run (`make chaos`) repeats rounds of them until
enough Check-ins were acknowledged."""
from __future__ import annotations

from tests.chaos.harness import Run


def bounded(run: Run) -> None:
    run.steady(8)
    run.kill_worker(0)
    run.steady(6)
    run.next_week()
    run.worker_database_down_with_kills(25, kills=5, index=0)
    run.steady(8)
    run.kill_relay()
    run.steady(5)
    run.broker_cut(10)
    run.steady(8)
    run.next_week()
    run.postgres_cut(10, kill_worker=True)
    run.steady(8)
    run.sigterm_worker(1)
    run.steady(4)
    run.sigterm_worker_broker_down(2)
    run.steady(5)
    run.broker_blackhole(12)
    run.steady(8)
    run.next_week()
    run.steady(4)


def long(run: Run, target_acked: int) -> None:
    """Rounds of every fault until `target_acked` Check-ins were acknowledged (and at least two
    rounds); the first round starts with the worker killed five times while its database is down."""
    rounds = 0
    while rounds < 2 or run.client.acked < target_acked:
        rounds += 1
        run.log(f"--- round {rounds}")
        run.steady(20)
        run.worker_database_down_with_kills(60 if rounds == 1 else 30, kills=5, index=rounds % 3)
        run.steady(20)
        run.kill_worker(rounds % 3)
        run.steady(10)
        run.next_week()
        run.kill_relay()
        run.steady(15)
        run.broker_cut(20)
        run.steady(20)
        run.postgres_cut(15, kill_worker=True)
        run.steady(20)
        run.next_week()
        run.sigterm_worker((rounds + 1) % 3)
        run.steady(10)
        run.sigterm_worker_broker_down((rounds + 2) % 3)
        run.steady(15)
        run.broker_blackhole(20)
        run.steady(20)
        run.next_week()
