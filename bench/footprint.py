"""What an idle embedded okrsnap costs the machine: processes, memory and CPU of `okrsnap up`
(no demo, nothing happening) once it is up and has settled.

    python -m bench.footprint                      # the code of this checkout
    python -m bench.footprint --source /tmp/old    # another checkout's code (a git worktree), to compare

Memory is the sum of the processes' PSS (shared pages split between the processes sharing them,
so nothing is counted twice); idle CPU is the CPU time all of them used over the sample, as a
share of one core.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.stack import proc_tree as tree

ROOT = Path(__file__).resolve().parent.parent
SETTLE_SECONDS = 10.0
SAMPLE_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def pss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def measure(source: Path = ROOT, extra: list[str] | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, OKRSNAP_DATA_DIR=str(Path(tmp) / "var"), OKRSNAP_ENV="development",
                   **{f"OKRSNAP_{name}_PORT": str(free_port()) for name in ("GATEWAY", "CHECKIN", "SNAPSHOT", "EXPORT")})
        for name in ("OKRSNAP_DATABASE_URL", "OKRSNAP_BROKER_URL"):
            env.pop(name, None)  # the embedded default
        env["PYTHONPATH"] = str(source)
        log = Path(tmp) / "up.log"
        process = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--no-demo", *(extra or [])],
                                   cwd=source, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        try:
            started = time.monotonic()
            while "okrsnap is up" not in log.read_text():
                if process.poll() is not None or time.monotonic() - started > 180:
                    raise SystemExit(f"okrsnap up did not come up:\n{log.read_text()}")
                time.sleep(0.2)
            up_after = time.monotonic() - started
            time.sleep(SETTLE_SECONDS)  # a measurement, not a test: it waits a fixed time on purpose
            pids = tree(process.pid)
            before = cpu_ticks(pids)
            time.sleep(SAMPLE_SECONDS)
            used = (cpu_ticks(pids) - before) / os.sysconf("SC_CLK_TCK")
            return {"processes": len(pids), "pss_mb": pss_kb(pids) / 1024, "idle_cpu_percent": 100 * used / SAMPLE_SECONDS,
                    "up_seconds": up_after}
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def report(r: dict, label: str = "") -> str:
    return (f"{label}{r['processes']} processes, {r['pss_mb']:.0f} MB (PSS), idle CPU {r['idle_cpu_percent']:.1f} % "
            f"of one core (up after {r['up_seconds']:.1f} s)")


# Measured with `python -m bench.footprint --source <worktree of 23bb9f2>` (before issue 12): two web
# workers per service, a process per relay and worker, and a snapshot worker polling its broker
# database fifty times a second (kombu ignored the transport meant to poll less).
BEFORE = {"processes": 17, "pss_mb": 822, "idle_cpu_percent": 18.2}


def section(r: dict) -> str:
    return "\n".join([
        "## An idle okrsnap (embedded default, `okrsnap up --no-demo`)", "",
        f"`python -m bench.footprint`: {SETTLE_SECONDS:.0f} s after it is up, then sampled for {SAMPLE_SECONDS:.0f} s; "
        "memory is the processes' PSS (shared pages split, nothing counted twice), CPU a share of one core.", "",
        "| | processes | memory (PSS) | idle CPU |", "| --- | ---: | ---: | ---: |",
        f"| before (23bb9f2) | {BEFORE['processes']} | {BEFORE['pss_mb']} MB | {BEFORE['idle_cpu_percent']:.1f} % |",
        f"| now | {r['processes']} | {r['pss_mb']:.0f} MB | {r['idle_cpu_percent']:.1f} % |", "",
        "Now: one web worker per HTTP service on the embedded default, the relays and workers as threads of one "
        "process, consumers polling every 0.5 s once the broker has been quiet for 2 s (every 50 ms while messages "
        "flow) and relays backing off to 0.5 s on an empty outbox. On PostgreSQL and RabbitMQ the layout stays "
        "as production's: two web workers each, a process per relay and worker.", ""])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=ROOT, help="the checkout whose code runs")
    parser.add_argument("extra", nargs="*", help="more arguments for okrsnap up")
    args = parser.parse_args()
    print(report(measure(args.source, args.extra)))
