"""`make chaos`: the long chaos run. At least `--target` acknowledged Check-ins (10,000 by
default) through rounds of every fault, the first round starting with a snapshot worker
SIGKILLed five times while its database is down. Writes the figures to var/chaos/last-run.json
and into RELIABILITY.md (between its figure markers); exits non-zero if a promise broke.

PostgreSQL and RabbitMQ: OKRSNAP_TEST_DATABASE_URL / OKRSNAP_TEST_BROKER_URL, else the local
servers. The run uses a database and broker names of its own and drops them afterwards."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from tests.chaos import schedules
from tests.chaos.harness import Client, Run, Stack
from tests.chaos.test_chaos import check
from tests.conftest import ROOT, _delete_topology, fresh_database

START, END = "<!-- chaos figures: start (written by make chaos) -->", "<!-- chaos figures: end -->"


def figures_markdown(report: dict, args) -> str:
    when = report["finished_at"]
    lines = [
        START,
        f"Last long run: {when}, {report['duration_seconds'] // 60} min, {args.workers} snapshot workers, "
        f"about {args.rate:g} Check-ins a second from {args.threads} client threads (`make chaos`).",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| Check-ins sent | {report['sent']} |",
        f"| acknowledged (201) | {report['acknowledged']} |",
        f"| lost (acknowledged, not in the Snapshot) | {report['lost']} |",
        f"| applied twice | {report['applied_twice']} |",
        f"| applied without the client seeing its 201 | {report['applied_without_201']} |",
        f"| 5xx answers | {report['server_errors']} ({', '.join(f'{v} x {k}' for k, v in report['server_errors_by_status'].items()) or 'none'}) |",
        f"| 5xx outside a PostgreSQL outage | {report['unexpected_server_errors']} |",
        f"| requests without an answer (timeouts, resets) | {report['transport_errors']} |",
        f"| dead-lettered | {report['dead_lettered']} |",
        f"| sealed weeks, chain valid | {report['sealed_weeks']}, {'yes' if report['chain_valid'] else 'NO'} |",
        f"| Check-ins inside sealed weeks | {report['sealed_check_ins']} |",
        f"| worker exit after SIGTERM (s) | {', '.join(str(s) for s in report['sigterm_seconds'])} |",
        "",
        "Recovery per fault: seconds from the fault's end until the Snapshot held every Check-in acknowledged "
        "before it ended, and until the first 201 after it.",
        "",
        "| # | fault | recovery (s) | first 201 after (s) | notes |",
        "| --- | --- | --- | --- | --- |",
    ]
    for index, fault in enumerate(report["faults"], 1):
        lines.append(f"| {index} | {fault['fault']} | {fault['recovery_seconds']} | "
                     f"{fault['first_201_after_seconds']} | {fault['notes']} |")
    lines.append(END)
    return "\n".join(lines)


def write_reliability(report: dict, args) -> None:
    path = ROOT / "RELIABILITY.md"
    current = path.read_text()
    block = figures_markdown(report, args)
    if START in current and END in current:
        before, rest = current.split(START, 1)
        after = rest.split(END, 1)[1]
        path.write_text(before + block + after)
    else:
        path.write_text(current.rstrip("\n") + "\n\n" + block + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=int, default=10_000, help="acknowledged Check-ins to reach")
    parser.add_argument("--rate", type=float, default=14.0, help="Check-ins a second")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not touch RELIABILITY.md")
    args = parser.parse_args()
    database = os.environ.get("OKRSNAP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    broker = os.environ.get("OKRSNAP_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    namespace = f"okrsnap-chaos-{uuid.uuid4().hex[:10]}"
    out = ROOT / "var" / "chaos"
    out.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        print(line, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="okrsnap-chaos-"))
    log(f"chaos run: target {args.target} acknowledged Check-ins; work folder {workdir}")
    try:
        with fresh_database(database, prefix="okrsnap_chaos") as database_url:
            stack = Stack(workdir, database_url, broker, namespace, workers=args.workers)
            client = None
            try:
                stack.start()
                client = Client(stack, rate=args.rate, threads=args.threads)
                client.prepare()
                client.start()
                run = Run(stack, client, log=log)
                schedules.long(run, args.target)
                report = run.finish()
            finally:
                if client is not None:
                    client.stop()
                stack.stop()
    finally:
        _delete_topology(broker, namespace)
    report["finished_at"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    (out / "last-run.json").write_text(json.dumps(report, indent=1))
    log(json.dumps(report, indent=1))
    failed = None
    try:
        check(report)
        if report["acknowledged"] < args.target:
            raise AssertionError(f"only {report['acknowledged']} acknowledged, target {args.target}")
    except AssertionError as exc:
        failed = exc
    if not args.no_write:
        write_reliability(report, args)
    if failed:
        log(f"A PROMISE BROKE: {failed}")
        return 1
    log("every promise held")
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")  # the stack is stopped and its database dropped


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    code = main()
    print(f"chaos run took {time.monotonic() - started:.0f}s", flush=True)
    sys.exit(code)
