"""`python -m bench` (or `make bench`): every measure of issue 13, results merged into
bench/results.json and BENCHMARKS.md rewritten from them.

    python -m bench                                   # everything at the default sizes
    python -m bench --kr 1000,10000 --ingest-kr 500,10000
    python -m bench --parts weekview,memory --kr 10000   # re-measure some parts; the rest is kept
    python -m bench --report                          # only rewrite BENCHMARKS.md from results.json

Parts: history, weekview, memory, export (through the stack, at the largest --kr), ingest,
consumer, export_writer (in process, 100,000 rows), footprint. One okrsnap per Session size
serves every part at that size (seeding it is the history import); ingest runs last on it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

from bench import consumer, export, footprint, history, ingest, memory, weekview
from bench.stack import WEEKS, median, percentile, seeded_stack, sizes

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results.json"
PARTS = ("history", "weekview", "memory", "export", "ingest", "consumer", "export_writer", "footprint")
# Sections measured by other scripts (scripts/quickstart.py, bench/web.py), copied over from the current
# BENCHMARKS.md with the date they carry.
KEPT = ("## The Snapshot page", "## Quick start")


def _load() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def _save(results: dict) -> None:
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True, default=str))


def _revision() -> str:
    """The commit measured: OKRSNAP_BENCH_REVISION when the run is from an exported tree (`git archive
    HEAD`, so that other people's uncommitted edits in a shared checkout are not what gets measured)."""
    if os.environ.get("OKRSNAP_BENCH_REVISION"):
        return os.environ["OKRSNAP_BENCH_REVISION"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _stamp(results: dict, part: str, key: str, value) -> None:
    results.setdefault(part, {})[key] = dict(value, measured=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                             revision=_revision())
    _save(results)


def measure(parts: set[str], kr: list[int], ingest_kr: list[int], events: int, objectives: int) -> dict:
    results = _load()
    stack_parts = parts & {"history", "weekview", "memory", "export", "ingest"}
    for n in sorted(set(kr if stack_parts - {"ingest"} else []) | set(ingest_kr if "ingest" in parts else [])):
        at_size = {p for p in stack_parts - {"ingest"} if n in kr}
        if "ingest" in parts and n in ingest_kr:
            at_size.add("ingest")
        if not kr or n != max(kr):
            at_size.discard("export")  # the largest Session only: it is the one that matters
        if not at_size:
            continue
        only_ingest = at_size == {"ingest"}
        print(f"== {n:,} Key Results: {', '.join(sorted(at_size))}", flush=True)
        with seeded_stack(n, weeks=2 if only_ingest else WEEKS) as (stack, session_id, imported, applied, doc):
            if not only_ingest:
                items = len(doc["objectives"]) + len(doc["key_results"]) + len(doc["initiatives"])
                _stamp(results, "history", str(n), {"key_results": n, "import": imported, "applied": applied,
                                                    "check_ins": len(doc["check_ins"]), "items": items})
            if "weekview" in at_size:
                _stamp(results, "weekview", str(n), weekview.measure(stack, session_id, n))
            if "memory" in at_size:
                _stamp(results, "memory", str(n), memory.measure(stack, session_id, n))
            if "export" in at_size:
                _stamp(results, "export", str(n), export.measure_stack(stack, session_id, n))
            if "ingest" in at_size:
                _stamp(results, "ingest", str(n), ingest.measure(stack, session_id, n))
    if "consumer" in parts:
        _stamp(results, "consumer", str(events), consumer.measure(events))
    if "export_writer" in parts:
        _stamp(results, "export_writer", str(objectives), export.run(objectives))
    if "footprint" in parts:
        _stamp(results, "footprint", "embedded", footprint.measure())
    return results


def _kept_sections(kept) -> str:
    current = (ROOT / "BENCHMARKS.md").read_text() if (ROOT / "BENCHMARKS.md").exists() else ""
    out = []
    for section in current.split("\n## ")[1:]:
        if any(f"## {section}".startswith(prefix) for prefix in kept):
            out.append(f"## {section.rstrip()}\n")
    return "\n".join(out)


def _by_size(results: dict, part: str) -> list[dict]:
    return [results[part][k] for k in sorted(results.get(part, {}), key=int)]


def summary(results: dict) -> str:
    """One line per target of issue 13: the figure, the ratio, met or not."""
    rows = []

    def add(target, figure, ok):
        rows.append(f"| {target} | {figure} | {'met' if ok else '**NOT met**'} |")

    for r in _by_size(results, "ingest"):
        o, p = r["okrsnap"], r["peer"]
        add(f"ingest >= 0.6x peer ({r['key_results']:,} KRs)", f"{o['rate']:.0f}/s vs {p['rate']:.0f}/s = "
            f"{o['rate'] / p['rate']:.2f}x", o["rate"] / p["rate"] >= 0.6)
        add(f"CPU per Check-in <= 2x peer ({r['key_results']:,} KRs)", f"{o['cpu_ms']:.1f} vs {p['cpu_ms']:.1f} ms = "
            f"{o['cpu_ms'] / p['cpu_ms']:.1f}x", o["cpu_ms"] / p["cpu_ms"] <= 2)
        if o["visible"]:
            p99 = percentile(o["visible"], 0.99)
            add(f"Check-in visible p99 <= 250 ms at half rate ({r['key_results']:,} KRs)", f"{p99:.0f} ms", p99 <= 250)
    ingest_runs = _by_size(results, "ingest")
    if len(ingest_runs) > 1:
        growth = ingest_runs[-1]["okrsnap"]["cpu_ms"] / ingest_runs[0]["okrsnap"]["cpu_ms"]
        add("cost of a Check-in independent of Session size", f"{growth:.2f}x CPU per Check-in at "
            f"{ingest_runs[-1]['key_results']:,} vs {ingest_runs[0]['key_results']:,} KRs", growth <= 1.25)
    for r in _by_size(results, "weekview"):
        for key, d in r["rows"].items():
            raw = median(d["raw"])
            warm = percentile(d["warm"], 0.5)
            cold = max(d["cold"])
            big = r["key_results"] >= 10_000
            add(f"week view {key.replace('|', ', ')} <= 3x raw, cold and warm ({r['key_results']:,} KRs)"
                + (", p50 < 100 ms" if big else ""),
                f"warm p50 {warm:.0f} ms = {warm / raw:.1f}x, cold worst {cold:.0f} ms = {cold / raw:.1f}x "
                f"(raw {raw:.0f} ms)", warm / raw <= 3 and cold / raw <= 3 and (not big or warm < 100))
            if d["after"]:
                after, raw_after = median(d["after"]), median(d["raw_after"])
                add(f"{key.replace('|', ', ')} right after a Check-in <= 3x raw ({r['key_results']:,} KRs)",
                    f"median {after:.0f} ms (max {max(d['after']):.0f}) = {after / raw_after:.1f}x",
                    after / raw_after <= 3)
    for r in _by_size(results, "consumer"):
        add(f"consumer >= 0.5x raw kombu ({r['events']:,} events, quorum)",
            f"{r['okrsnap']:.0f}/s vs {r['raw']:.0f}/s = {r['okrsnap'] / r['raw']:.2f}x", r["okrsnap"] / r["raw"] >= 0.5)
        add("consumer: one transaction per batch", f"{r['commits']:.1f} per batch of {r.get('batch', 50)}", r["commits"] <= 1.2)
    for r in _by_size(results, "export"):
        for fmt in ("csv", "xlsx"):
            e = r[fmt]
            add(f"export {fmt.upper()} <= 1.5x raw SQL + writer ({e['rows']:,} rows, through the stack)",
                f"{e['okrsnap']:.2f} s vs {e['raw']:.2f} s = {e['okrsnap'] / e['raw']:.2f}x", e["okrsnap"] / e["raw"] <= 1.5)
    for r in _by_size(results, "export_writer"):
        for fmt in ("csv", "xlsx"):
            e = r[fmt]
            add(f"export {fmt.upper()} at {r['rows']:,} rows, in process (document + writer vs raw writer)",
                f"{e['okrsnap']:.2f} s vs {e['raw']:.2f} s CPU = {e['okrsnap'] / e['raw']:.2f}x",
                e["okrsnap"] / e["raw"] <= 1.5)
    for r in _by_size(results, "memory"):
        worst = max(mb for _, _, mb in r["processes"])
        add(f"snapshot processes < 300 MB after every sealed week ({r['key_results']:,} KRs)", f"largest {worst:.0f} MB",
            worst < 300)
    for r in _by_size(results, "history"):
        if r["key_results"] == 10_000:
            add("history import 10,000 KRs x 26 weeks < 60 s", f"{r['import']:.1f} s", r["import"] < 60)
    hist = _by_size(results, "history")
    if len(hist) > 1:
        a, b = hist[0], hist[-1]
        growth = (b["import"] / b["key_results"]) / (a["import"] / a["key_results"])
        add("history import linear", f"time per KR {growth:.2f}x at {b['key_results']:,} vs {a['key_results']:,} KRs",
            growth <= 1.5)
    runs = [f"{part} {int(key):,}: {entry.get('revision', '?')} at {entry.get('measured', '?')}"
            for part in PARTS if part != "footprint"
            for key, entry in sorted(results.get(part, {}).items(), key=lambda kv: int(kv[0]))]
    return "\n".join(["## Targets of issue 13 at a glance", "", "| target | measured | verdict |",
                      "| --- | --- | --- |", *rows, "", "Measured on (part, size: commit at time): " + "; ".join(runs)
                      + ".", ""])


def scale_table(results: dict, not_run: list[int]) -> str:
    lines = ["## Scale: the key figures by Session size", "",
             "| KRs | import | applied + sealed | sealed week warm p50 (raw) | live week right after a Check-in, "
             "median | snapshot max RSS | ingest ratio to peer | CPU / Check-in |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    history_, views = results.get("history", {}), results.get("weekview", {})
    mem, ing = results.get("memory", {}), results.get("ingest", {})
    for key in sorted(set(history_) | set(views) | set(ing), key=int):
        h, v, m, i = history_.get(key), views.get(key), mem.get(key), ing.get(key)
        cells = [f"{int(key):,}", f"{h['import']:.1f} s" if h else "", f"{h['applied']:.1f} s" if h else ""]
        if v:
            d = v["rows"]["sealed week|all"]
            after = v["rows"]["live week|all"]["after"]
            cells += [f"{percentile(d['warm'], 0.5):.0f} ms ({median(d['raw']):.0f} ms)",
                      f"{median(after):.0f} ms" if after else ""]
        else:
            cells += ["", ""]
        cells.append(f"{max(mb for _, _, mb in m['processes']):.0f} MB" if m else "")
        cells += ([f"{i['okrsnap']['rate'] / i['peer']['rate']:.2f}x", f"{i['okrsnap']['cpu_ms']:.1f} ms"]
                  if i else ["", ""])
        lines.append("| " + " | ".join(cells) + " |")
    for n in not_run:
        lines.append(f"| {n:,} | not run | | | | | | |")
    return "\n".join(lines + [""])


def write_report(results: dict, not_run: list[int]) -> str:
    sections = [f"""# Benchmarks

`make bench` (`python -m bench`) on {platform.machine()} with {os.cpu_count()} cores shared with other work,
against PostgreSQL and RabbitMQ on the same machine; every figure below was measured on the revision named
with it in `bench/results.json` (the code on main at the time). Every okrsnap figure is a ratio to a raw
baseline measured in the same run, interleaved with it: raw reads of the same rows as text, raw kombu on
the same queue type, a minimal peer pipeline (`bench/peer.py`), raw csv.writer / XlsxWriter. Each part
runs alone too: `python -m bench.<part> --kr 10000` (ingest, weekview, memory, export, history,
consumer --events N, footprint). The okrsnap parts run the real processes (`okrsnap up` on
PostgreSQL and RabbitMQ, gunicorn with 2 workers x 4 threads per HTTP service), each run on a fresh
database and broker namespace that it deletes afterwards. Sessions are seeded through the check-in
service's history import endpoint.

What the earlier bench got wrong and this one does instead (issue 13): it compared a cached view with
a real query (now cold reads after a restart and on each worker are reported beside warm ones, and
the live week is read right after a Check-in); its raw baseline decoded JSON row by row (now the raw
read fetches the same rows as text); it ran views through Flask's test client (now through the
gateway under gunicorn); it divided the consumer's rate by publish-plus-consume on a classic queue
(now raw consume alone on a quorum queue, same message count and bodies); it sent every event to one
Key Result with the outbox filled before the timer (now Check-ins spread over the whole Session,
through the gateway, timed until the read side has them); it counted two snapshot tables (now every
table in the schema); it left exchanges and queues behind (now deleted in `finally`).

The machine is shared: while these ran, other work kept its load average between 8 and 20 on 2 cores,
so absolute figures are slow and noisy; the ratios compare runs that saw the same machine.
""", summary(results), scale_table(results, not_run)]
    if results.get("ingest"):
        sections.append(ingest.report(_by_size(results, "ingest")))
    if results.get("weekview"):
        sections.append(weekview.report(_by_size(results, "weekview")))
    if results.get("consumer"):
        sections += [consumer.report(r) for r in _by_size(results, "consumer")]
    if results.get("export"):
        sections += [export.report_stack(r) for r in _by_size(results, "export")]
    kept = KEPT
    if results.get("export_writer"):
        sections += [export.report(r) for r in _by_size(results, "export_writer")]
    else:
        kept += ("## Exports (",)
    if results.get("memory"):
        sections.append(memory.report(_by_size(results, "memory")))
    if results.get("history"):
        sections.append(history.report(_by_size(results, "history"), [n for n in not_run if n > history.MAX_IMPORT]))
    if results.get("footprint"):
        sections.append(footprint.section(results["footprint"]["embedded"]))
    else:
        kept += ("## An idle okrsnap",)
    sections.append(_kept_sections(kept))
    report = "\n".join(sections)
    (ROOT / "BENCHMARKS.md").write_text(report)
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of: {', '.join(PARTS)}")
    parser.add_argument("--kr", default="1000,10000", help="Session sizes for history, weekview, memory, export")
    parser.add_argument("--ingest-kr", default="500,10000", help="Session sizes for ingest")
    parser.add_argument("--not-run", default="50000", help="sizes to list as not run in the scale table")
    parser.add_argument("--events", type=int, default=consumer.EVENTS)
    parser.add_argument("--objectives", type=int, default=export.OBJECTIVES, help="in-process export (10 rows each)")
    parser.add_argument("--report", action="store_true", help="only rewrite BENCHMARKS.md from bench/results.json")
    args = parser.parse_args(argv)
    results = _load() if args.report else measure(set(args.parts.split(",")), sizes(args.kr), sizes(args.ingest_kr),
                                                   args.events, args.objectives)
    print(write_report(results, sizes(args.not_run)))


if __name__ == "__main__":
    main()
