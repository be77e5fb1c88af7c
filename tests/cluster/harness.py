"""okrsnap on a three-node RabbitMQ cluster while the node leading its quorum queues goes away.

The chaos harness's stack (tests/chaos/harness.py: gateway, check-in and snapshot services under
gunicorn, the check-in relay, snapshot workers, a client sending Check-ins at a steady rate and
recording every 201), pointed at every node of the cluster as kombu failover URLs
(`amqp://...:p1;amqp://...:p2;amqp://...:p3`). The schedule: steady traffic; the node leading
`<namespace>.snapshot.events` is stopped (`rabbitmqctl stop`); a week ends while it is away; it
is started again and rejoins; in the long form (`make cluster-test`) the new leader is then
SIGKILLed and restarted too. The verdict is the chaos run's: every acknowledged Check-in applied
exactly once, nothing dead-lettered, every ended week sealed with a valid chain."""
from __future__ import annotations

import time
from pathlib import Path

from tests.chaos.harness import Client, Run, Stack
from tests.cluster.rabbit import RabbitCluster
from tests.conftest import ROOT, wait_until

START, END = "<!-- cluster figures: start (written by make cluster-test) -->", "<!-- cluster figures: end -->"


class ClusterRun(Run):
    """A chaos Run whose faults are RabbitMQ nodes going away."""

    def __init__(self, stack: Stack, client: Client, cluster: RabbitCluster, log=print):
        super().__init__(stack, client, log=log)
        self.cluster = cluster
        self.queue = f"{stack.namespace}.snapshot.events"
        self.events: list[dict] = []

    def _new_leader(self, old: str) -> tuple[str, float]:
        """Waits until another node leads the queue; (that node, seconds it took)."""
        started = time.monotonic()
        leader = wait_until(lambda: (lambda now: now if now and now != old else None)(self.cluster.leaders(
            self.queue).get(self.queue)), timeout=60, interval=0.2, message=f"a new leader of {self.queue}")
        return leader, time.monotonic() - started

    def take_leader_away(self, *, kill: bool, down_seconds: float) -> None:
        # Each rabbitmqctl call boots an Erlang VM (seconds on a busy machine): two calls here.
        leaders = self.cluster.leaders(self.stack.namespace)
        old = leaders[self.queue]
        node = self.cluster.node(old)
        led = sum(1 for leader in leaders.values() if leader == old)
        connections = self.cluster.connections()
        how = "SIGKILL" if kill else "rabbitmqctl stop"
        record = self._begin(f"{how} {node.short}, leader of {self.queue.split('.', 1)[1]} and {led} of "
                             f"{len(leaders)} quorum queues, holding {connections.get(old, 0)} of okrsnap's "
                             f"{sum(connections.values())} connections")
        started = time.monotonic()
        if kill:
            self.cluster.kill_node(node)
        else:
            self.cluster.stop_node(node)
        stopped = time.monotonic() - started
        new, election = self._new_leader(old)
        self._restored(record)  # recovery: the Snapshot catches up on the two nodes left
        record.notes = f"node gone in {stopped:.1f}s; {self.cluster.node(new).short} leads after {election:.1f}s"
        self.log(f"[{self.elapsed():6.1f}s] {old} is down; {new} leads {self.queue}")
        self.steady(down_seconds / 2)
        self.next_week()  # a week ends while the node is away: it must still be sealed
        self.steady(down_seconds / 2)
        back = self._begin(f"{node.short} started again ({down_seconds:.0f}s after the new leader took over)")
        started = time.monotonic()
        self.cluster.start_node(node)
        wait_until(lambda: old in self.cluster.running_nodes(), timeout=120, interval=0.5,
                   message=f"{old} running in the cluster again")
        rejoined = time.monotonic() - started
        self._restored(back)
        back.notes = f"running in the cluster {rejoined:.1f}s after its start"
        self.events.append({"node": old, "how": how, "stop_seconds": round(stopped, 1),
                            "new_leader": new, "election_seconds": round(election, 1),
                            "rejoin_seconds": round(rejoined, 1), "queues_led": led,
                            "connections_on_it": connections.get(old, 0),
                            "connections": sum(connections.values())})


def run_schedule(run: ClusterRun, *, rounds: int, steady: float, down: float) -> None:
    run.steady(steady)
    for index in range(rounds):
        run.take_leader_away(kill=index % 2 == 1, down_seconds=down)
        run.steady(steady)


def prepare_stack(workdir: Path, database_url: str, cluster: RabbitCluster, namespace: str, *, workers: int = 2) -> Stack:
    """The chaos stack with every process's broker URL listing all the nodes (the chaos harness's
    own RabbitMQ proxy is left unused: here the faults are the nodes themselves)."""
    stack = Stack(workdir, database_url, cluster.nodes[0].url(), namespace, workers=workers)
    url = cluster.failover_url()
    for env in (stack.env, stack.worker_env, stack.direct_env):  # the Processes hold these dicts
        env["OKRSNAP_BROKER_URL"] = url
    stack.broker_url = url
    return stack


def check(report: dict) -> None:
    """The promises; a report that breaks one fails the run."""
    assert report["acknowledged"] > 0, report
    assert report["lost"] == 0, report
    assert report["applied_twice"] == 0, report
    assert report["lost_at_source"] == 0, report
    assert report["server_errors"] == 0, report  # the broker is never on a request's path (outbox)
    assert report["dead_lettered"] == 0, report
    assert report["chain_valid"] and report["sealed_weeks"] >= 2, report
    assert report["sealed_check_ins"] >= report["acknowledged"], report
    assert report["nodes"] and all(e["new_leader"] != e["node"] for e in report["nodes"]), report


FIGURES = (("Check-ins sent", "sent"), ("acknowledged (201)", "acknowledged"),
           ("lost (acknowledged, not in the Snapshot)", "lost"), ("applied twice", "applied_twice"),
           ("5xx answers", "server_errors"), ("requests without an answer", "transport_errors"),
           ("dead-lettered", "dead_lettered"))


def figures_markdown(report: dict) -> str:
    lines = [
        START,
        f"Last run: {report['finished_at']}, {report['duration_seconds']} s, RabbitMQ {report['rabbitmq']} x 3 nodes "
        f"on one machine, {report['workers']} snapshot workers, about {report['rate']:g} Check-ins a second "
        "(`make cluster-test`).",
        "",
        "| figure | value |",
        "| --- | --- |",
        *(f"| {label} | {report[key]} |" for label, key in FIGURES),
        f"| sealed weeks, chain valid | {report['sealed_weeks']}, {'yes' if report['chain_valid'] else 'NO'} |",
        "",
        "Per event: seconds from the new leader's election (or the node's return) until the Snapshot held every "
        "Check-in acknowledged by then, and until the first 201 after it.",
        "",
        "| # | what happened | Snapshot complete after (s) | first 201 after (s) | notes |",
        "| --- | --- | --- | --- | --- |",
        *("| " + " | ".join(str(cell) for cell in (n, f["fault"], f["recovery_seconds"], f["first_201_after_seconds"],
                                                    f["notes"])) + " |" for n, f in enumerate(report["faults"], 1)),
        END,
    ]
    return "\n".join(lines)


def write_figures(report: dict, path: Path = ROOT / "RELIABILITY.md") -> None:
    current = path.read_text()
    before, rest = current.split(START, 1)
    after = rest.split(END, 1)[1]
    path.write_text(before + figures_markdown(report) + after)
