"""History import: a Session of N Key Results (one Objective and one Initiative per ten) with 26
weeks of Check-ins (5% of the Key Results a week), POSTed to the check-in service's import endpoint
of a running okrsnap (straight to the service: the gateway's upstream timeout is 30 s), and the
time until the snapshot service has applied it and sealed the 25 past weeks.
Target: linear, 10,000 Key Results in under a minute.

    python -m bench.history --kr 1000,10000,50000
"""
from __future__ import annotations

import argparse

from bench.stack import WEEKS, Stack, sizes

TARGET_SECONDS_AT_10K = 60
MAX_IMPORT = 20_000  # the import endpoint's own limit per list (services/checkin/entrypoints/schemas.py)


def measure(stack: Stack, key_results: int) -> dict:
    session_id, seconds, doc = stack.import_history(key_results)
    items = len(doc["objectives"]) + len(doc["key_results"]) + len(doc["initiatives"])
    applied = stack.wait_until_applied(session_id, items, WEEKS - 1)
    return {"key_results": key_results, "import": seconds, "applied": applied, "check_ins": len(doc["check_ins"]),
            "items": items, "session_id": session_id}


def report(results: list[dict], skipped: list[int] = ()) -> str:
    lines = ["## History import", "",
             "`python -m bench.history --kr 1000,10000`: the import request (items and dated Check-ins of 26 weeks, "
             "straight to the check-in service) until its answer, then until the snapshot service has applied "
             "everything and sealed the past weeks (the calendar says so). Linear means the time per Key Result "
             "stays flat.", "",
             "| KRs | items | Check-ins | import request | per 1,000 KRs | then applied and sealed | target |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        target = ""
        if r["key_results"] == 10_000:
            target = f"< {TARGET_SECONDS_AT_10K} s: {'met' if r['import'] < TARGET_SECONDS_AT_10K else 'NOT met'}"
        lines.append(f"| {r['key_results']:,} | {r['items']:,} | {r['check_ins']:,} | {r['import']:.1f} s | "
                     f"{1000 * r['import'] / r['key_results']:.1f} s | {r['applied']:.1f} s | {target} |")
    for n in skipped:
        lines.append(f"| {n:,} | | | not run | | | the import endpoint takes at most {MAX_IMPORT:,} per list |")
    return "\n".join(lines + [""])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kr", default="1000,10000", help="Session sizes in Key Results, comma-separated")
    args = parser.parse_args(argv)
    wanted = sizes(args.kr)
    stack = Stack()
    results = []
    try:
        stack.start()
        for n in wanted:
            if n <= MAX_IMPORT:
                results.append(measure(stack, n))
                print(f"  {n} KRs: {results[-1]}", flush=True)
    finally:
        stack.close()
    print(report(results, [n for n in wanted if n > MAX_IMPORT]))


if __name__ == "__main__":
    main()
