"""A RabbitMQ cluster of three nodes on this machine, from Debian's rabbitmq-server package.

Each node has its own name (`okr1_<run>@localhost` ...), AMQP and distribution ports, data and
log folders under a temporary folder, and an empty rabbitmq-env.conf and enabled_plugins of its
own, so nothing of the machine's node (rabbit@localhost on 5672, /etc/rabbitmq) is read or
touched. The nodes share an Erlang cookie through HOME (the CLI tools find it there too).

Ports are taken below Linux's ephemeral range (32768-60999): a port there that is free when
chosen can be taken a moment later by any outgoing connection's source port, and a node that
restarts must get its own port back."""
from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import wait_until

SBIN = Path("/usr/lib/rabbitmq/bin")  # the Debian package's scripts, without its su-to-rabbitmq wrapper


def installed() -> bool:
    return (SBIN / "rabbitmq-server").exists() and (SBIN / "rabbitmqctl").exists()


def _free_port_below_ephemeral(taken: set[int]) -> int:
    for _ in range(200):
        port = random.randint(20000, 32000)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError("no free port between 20000 and 32000")


@dataclass
class Node:
    name: str  # okr1_<run>@localhost
    amqp_port: int
    dist_port: int
    base: Path
    process: subprocess.Popen | None = None

    @property
    def short(self) -> str:
        return self.name.split("_", 1)[0]

    def url(self, user: str = "guest", password: str = "guest") -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.amqp_port}/%2F"


class RabbitCluster:
    """Three (or `size`) clustered nodes; stop and start any of them; find a queue's leader."""

    def __init__(self, workdir: Path, size: int = 3):
        self.workdir = Path(workdir)
        self.home = self.workdir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        run = secrets.token_hex(3)
        taken: set[int] = set()
        self.nodes = []
        for index in range(1, size + 1):
            base = self.workdir / f"okr{index}"
            base.mkdir(exist_ok=True)
            node = Node(f"okr{index}_{run}@localhost", _free_port_below_ephemeral(taken),
                        _free_port_below_ephemeral(taken), base)
            # guest may connect over 127.0.0.1 only by default; the listener is bound there anyway.
            (base / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}\n")
            (base / "rabbitmq-env.conf").write_text("")
            (base / "enabled_plugins").write_text("[].\n")
            self.nodes.append(node)

    # -- environment and CLI -----------------------------------------------------------------
    def _env(self, node: Node | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        base = (node or self.nodes[0]).base
        env.update(HOME=str(self.home), ERL_EPMD_ADDRESS="127.0.0.1",
                   RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"))
        if node is not None:
            env.update(RABBITMQ_NODENAME=node.name, RABBITMQ_NODE_PORT=str(node.amqp_port),
                       RABBITMQ_DIST_PORT=str(node.dist_port), RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
                       RABBITMQ_LOG_BASE=str(base / "log"), RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
                       RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
                       RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
                       RABBITMQ_PID_FILE=str(base / "pid"))
        return env

    def ctl(self, node: Node, *args: str, tool: str = "rabbitmqctl", timeout: float = 90,
            check: bool = True) -> str:
        done = subprocess.run([str(SBIN / tool), "-n", node.name, *args], env=self._env(), capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{tool} -n {node.name} {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start every node, then join the others to the first."""
        for node in self.nodes:
            self.start_node(node, wait=False)
        for node in self.nodes:
            self.await_node(node)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")
        wait_until(lambda: len(self.running_nodes()) == len(self.nodes), timeout=60, interval=0.5,
                   message="every node running in one cluster")

    def start_node(self, node: Node, *, wait: bool = True) -> None:
        log = (node.base / "server.log").open("a")
        node.process = subprocess.Popen([str(SBIN / "rabbitmq-server")], env=self._env(node), cwd=node.base,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        if wait:
            self.await_node(node)

    def await_node(self, node: Node, timeout: float = 120) -> None:
        def up() -> bool:
            if node.process is not None and node.process.poll() is not None:
                raise AssertionError(f"{node.name} exited: see {node.base / 'server.log'}")
            # Fails at once while the node has not registered with epmd yet, hence the loop.
            return subprocess.run([str(SBIN / "rabbitmqctl"), "-n", node.name, "await_startup", "--timeout", "10"],
                                  env=self._env(), capture_output=True, timeout=30).returncode == 0

        wait_until(up, timeout=timeout, interval=0.5, message=f"{node.name} started")

    def stop_node(self, node: Node) -> float:
        """A clean stop (`rabbitmqctl stop`): the node hands its leaderships over as it goes.
        Returns how long the stop took."""
        started = time.monotonic()
        self.ctl(node, "stop", timeout=120)
        if node.process is not None:
            node.process.wait(timeout=60)
        return time.monotonic() - started

    def kill_node(self, node: Node) -> None:
        """SIGKILL to the node's process group (the Erlang VM and its port programs): a crash."""
        if node.process is not None and node.process.poll() is None:
            os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait(timeout=30)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                try:
                    self.ctl(node, "stop", timeout=60, check=False)
                    node.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.kill_node(node)

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- what the cluster says -------------------------------------------------------------------
    def live_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def running_nodes(self) -> set[str]:
        """Node names the cluster reports running, asked of any node still up."""
        for node in self.live_nodes():
            try:
                out = self.ctl(node, "cluster_status", "--formatter", "json", timeout=30)
            except (RuntimeError, subprocess.TimeoutExpired):
                continue
            return set(json.loads(out)["running_nodes"])
        return set()

    def leaders(self, prefix: str) -> dict[str, str]:
        """Queue name -> the node leading it, for the quorum queues whose names start with prefix."""
        for node in self.live_nodes():
            try:
                out = self.ctl(node, "list_queues", "name", "leader", "--formatter", "json", timeout=30)
            except (RuntimeError, subprocess.TimeoutExpired):
                continue
            return {q["name"]: q["leader"] for q in json.loads(out) if q["name"].startswith(prefix)}
        return {}

    def connections(self) -> dict[str, int]:
        """Client connections per node, cluster-wide (by the AMQP port each one reached)."""
        by_port = {node.amqp_port: node.name for node in self.nodes}
        for node in self.live_nodes():
            try:
                out = self.ctl(node, "list_connections", "port", "--formatter", "json", timeout=30)
            except (RuntimeError, subprocess.TimeoutExpired):
                continue
            counts: dict[str, int] = {}
            for connection in json.loads(out):
                name = by_port.get(connection["port"], "?")
                counts[name] = counts.get(name, 0) + 1
            return counts
        return {}

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def failover_url(self) -> str:
        """Every node's URL, ';'-separated: kombu connects to the first that answers."""
        return ";".join(node.url() for node in self.nodes)
