"""Snapshot service memory and storage at size.

Memory: okrsnap restarted, then every sealed week of the seeded Session read once through the
gateway (all owners); then the RSS of each snapshot process (the gunicorn master and workers that
answer week views, and the worker that consumes events). Target: < 300 MB.
Storage: pg_total_relation_size (table, indexes, TOAST) of every table in the snapshot schema,
against the rows a copy of every item into every week would store.

    python -m bench.memory --kr 10000
"""
from __future__ import annotations

import argparse
from pathlib import Path

import psycopg

from bench.stack import cmdline, rss_mb, seeded_stack, sizes

TARGET_MB = 300


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def measure(stack, session_id: str, key_results: int) -> dict:
    stack.restart()
    _, sealed = stack.week_labels(session_id)
    http = stack.http()
    for week in sealed:
        http.get(f"{stack.api}/sessions/{session_id}/snapshots/{week}", params={"owner": "all"},
                 timeout=300).raise_for_status()
    processes = []
    for pid in stack.pids():
        line = cmdline(pid)
        if "services.snapshot" in line:
            role = ("snapshot worker (events)" if "entrypoints.worker" in line
                    else "snapshot web, gunicorn master" if _parent(pid) == stack.process.pid
                    else "snapshot web, gunicorn worker")
            processes.append((role, pid, rss_mb(pid)))
    with psycopg.connect(stack.database.libpq) as conn:
        tables = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'snapshot' AND c.relkind IN ('r', 'p', 'm') ORDER BY 2 DESC").fetchall()
        items = conn.execute("SELECT count(DISTINCT entity_id) FROM snapshot.item_versions WHERE session_id = %s",
                             (session_id,)).fetchone()[0]
    return {"key_results": key_results, "weeks_read": len(sealed), "processes": processes,
            "tables": [(name, size) for name, size in tables], "items": items, "weeks": len(sealed) + 1}


def report(results: list[dict]) -> str:
    lines = ["## Snapshot service memory after reading every sealed week, and storage", "",
             "`python -m bench.memory --kr 10000`: `okrsnap up` restarted, every sealed week read once through the "
             "gateway (all owners), then each snapshot process's RSS. Storage: `pg_total_relation_size` of every "
             "table in the snapshot schema (indexes and TOAST included).", "",
             "| KRs | sealed weeks read | process | RSS | target |", "| ---: | ---: | --- | ---: | --- |"]
    for r in results:
        for role, pid, mb in sorted(r["processes"]):
            lines.append(f"| {r['key_results']:,} | {r['weeks_read']} | {role} (pid {pid}) | {mb:.0f} MB | "
                         f"< {TARGET_MB} MB: {'met' if mb < TARGET_MB else 'NOT met'} |")
    for r in results:
        total = sum(size for _, size in r["tables"])
        lines += ["", f"Storage at {r['key_results']:,} KRs ({r['items']:,} items, {r['weeks']} weeks; a copy of every "
                  f"item into every week would be {r['items'] * r['weeks']:,} rows): {total / 1024 / 1024:.1f} MB in "
                  f"{len(r['tables'])} tables: " + ", ".join(f"{name} {size / 1024 / 1024:.1f} MB"
                                                            for name, size in r["tables"] if size > 64 * 1024) + "."]
    return "\n".join(lines + [""])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kr", default="10000", help="Session sizes in Key Results, comma-separated")
    args = parser.parse_args(argv)
    results = []
    for n in sizes(args.kr):
        with seeded_stack(n) as (stack, session_id, *_):
            results.append(measure(stack, session_id, n))
    print(report(results))


if __name__ == "__main__":
    main()
