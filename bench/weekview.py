"""The week view through the gateway under gunicorn (`okrsnap up`, 2 web workers per service), cold
and warm, against a raw read of the same rows as text, in one run, each okrsnap read followed by a
raw read.

Views: the sealed week (the newest sealed one), the live week between changes, the live week right
after a Check-in (posted through the gateway, read once the snapshot service has applied it), each
for all owners and one owner. Cold: the first reads after a restart of okrsnap (the first of them
is the process's first read; gunicorn's kernel-balanced accept decides which worker answers the
next ones, so the slowest of reads 2 to COLD_READS is reported as "first read on another worker").

The raw baseline reads the week's rows as text with psycopg: each item's newest state before the
week's end (`state::text` of the snapshot service's item versions) and the week's Check-ins
(`row_to_json(...)::text`), filtered by owner for the owner view. It decodes nothing.

    python -m bench.weekview --kr 10000
"""
from __future__ import annotations

import argparse
import random
import time

import psycopg
import requests

from bench.stack import median, percentile, seeded_stack, sizes

SAMPLES = 20
AFTER_CHECK_IN = 8
COLD_READS = 4
TARGET_RATIO, TARGET_P50_MS = 3.0, 100.0

# The newest version of each item is chosen on narrow rows (ids only), then its state is read as
# text: sorting every version with its state would spill to disk and make the baseline slow.
NEWEST = """
SELECT DISTINCT ON (entity_id) id FROM snapshot.item_versions
WHERE session_id = %(s)s AND effective_at < %(ends)s ORDER BY entity_id, sequence DESC"""
RAW_ITEMS = f"""
SELECT v.state::text FROM snapshot.item_versions v JOIN ({NEWEST}) newest ON newest.id = v.id
WHERE %(owner)s::text IS NULL OR v.state ->> 'owner_id' = %(owner)s"""
RAW_CHECK_INS = """
SELECT row_to_json(c)::text FROM snapshot.check_ins c
WHERE session_id = %(s)s AND effective_at >= %(starts)s AND effective_at < %(ends)s"""


class Raw:
    def __init__(self, libpq: str, session_id: str):
        self.conn = psycopg.connect(libpq, autocommit=True)
        self.session_id = session_id

    def read(self, bounds: tuple[str, str], owner: str | None) -> float:
        started = time.perf_counter()
        params = {"s": self.session_id, "starts": bounds[0], "ends": bounds[1], "owner": owner}
        rows = self.conn.execute(RAW_ITEMS, params).fetchall() + self.conn.execute(RAW_CHECK_INS, params).fetchall()
        elapsed = (time.perf_counter() - started) * 1000
        assert rows
        return elapsed

    def close(self) -> None:
        self.conn.close()


def _get(http: requests.Session, url: str, owner: str) -> tuple[float, dict | None, int]:
    started = time.perf_counter()
    response = http.get(url, params={"owner": owner}, timeout=300)
    body = response.content
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed, response, len(body)


def measure(stack, session_id: str, key_results: int, samples: int = SAMPLES) -> dict:
    live, sealed = stack.week_labels(session_id)
    week = sealed[-1]
    owner = stack.owner_ids[1]
    views = {"sealed week|all": (week, "all"), "sealed week|one owner": (week, owner),
             "live week|all": (live, "all"), "live week|one owner": (live, owner)}
    url = lambda w: f"{stack.api}/sessions/{session_id}/snapshots/{w}"  # noqa: E731
    bounds, sizes_ = {}, {}
    rows: dict = {key: {"cold": [], "warm": [], "raw": [], "after": [], "raw_after": []} for key in views}

    stack.restart()  # cold: nothing read since the processes started
    raw = Raw(stack.database.libpq, session_id)
    try:
        for key, (w, who) in views.items():
            http = stack.http()
            for _ in range(COLD_READS):
                elapsed, response, size = _get(http, url(w), who)
                rows[key]["cold"].append(elapsed)
                http = stack.http()  # a new connection: the gateway's next worker may take it
            body = response.json()
            bounds[w] = (body["starts_at"], body["ends_at"])
            sizes_[key] = size
        http = stack.http()
        for _ in range(samples):  # warm, each read followed by the raw read of the same rows
            for key, (w, who) in views.items():
                rows[key]["warm"].append(_get(http, url(w), who)[0])
                rows[key]["raw"].append(raw.read(bounds[w], None if who == "all" else who))
        # the live week right after a Check-in: post, wait until applied, read once
        count = lambda: stack.database.query(  # noqa: E731
            "SELECT count(*) FROM snapshot.check_ins WHERE session_id = %s", (session_id,))[0][0]
        krs = [str(r[0]) for r in stack.database.query("SELECT id FROM checkin.key_results WHERE session_id = %s",
                                                       (session_id,))]
        rng = random.Random(7)
        for _ in range(AFTER_CHECK_IN):
            for who in ("all", owner):
                before = count()
                http.post(f"{stack.api}/key-results/{rng.choice(krs)}/check-ins", timeout=60,
                          json={"value": 50.0, "status": "on_track", "comment": "bench"}).raise_for_status()
                deadline = time.monotonic() + 120
                while count() <= before:
                    if time.monotonic() > deadline:
                        raise RuntimeError("a Check-in did not reach the snapshot service in 120 s")
                    time.sleep(0.02)
                key = "live week|all" if who == "all" else "live week|one owner"
                rows[key]["after"].append(_get(http, url(live), who)[0])
                rows[key]["raw_after"].append(raw.read(bounds[live], None if who == "all" else who))
    finally:
        raw.close()
    return {"key_results": key_results, "week": week, "live": live, "sizes": sizes_, "rows": rows}


def _verdict(ratio: float, p50: float | None = None) -> str:
    ok = ratio <= TARGET_RATIO and (p50 is None or p50 < TARGET_P50_MS)
    return "met" if ok else "NOT met"


def report(results: list[dict]) -> str:
    lines = ["## Week view through the gateway (gunicorn) vs a raw read of the same rows as text", "",
             "`python -m bench.weekview --kr 10000`. A Session imported with 26 weeks of Check-ins (5% of the Key "
             "Results a week), one Objective and one Initiative per ten Key Results, 25 weeks sealed. Request to "
             "last byte over loopback through the gateway. Cold: the first read of each view after `okrsnap up` "
             "restarted, and the slowest of the next reads on new connections (where the other gunicorn workers "
             "meet the view for the first time). Warm: p50 / p99 of "
             f"{SAMPLES} reads, each followed by the raw read. *After a Check-in*: a Check-in posted through the "
             "gateway, then one read once the snapshot service has applied it. Raw: psycopg reading the week's "
             "newest item states (`state::text`) and its Check-ins (`row_to_json(...)::text`), median. "
             f"Targets: within {TARGET_RATIO:.0f}x raw, cold and warm; p50 under {TARGET_P50_MS:.0f} ms warm at 10,000 KRs. "
             "For the owner filter the raw read has to parse every newest state to find its owner (the item "
             "versions have no owner column), so that baseline costs about what the all-owner one does and the "
             "owner ratios flatter okrsnap.",
             "", "| KRs | view | size | raw (median) | cold: first read | cold: slowest first read on another "
             "worker | warm p50 / p99 | ratio warm p50 | ratio cold | target |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        for key, d in r["rows"].items():
            label, who = key.split("|")
            raw = median(d["raw"])
            warm50, warm99 = percentile(d["warm"], 0.5), percentile(d["warm"], 0.99)
            cold1, cold_other = d["cold"][0], max(d["cold"][1:])
            cold_ratio = max(cold1, cold_other) / raw
            p50_target = warm50 if r["key_results"] >= 10_000 else None
            verdict = _verdict(max(warm50 / raw, cold_ratio), p50_target)
            lines.append(f"| {r['key_results']:,} | {label}, {who} | {r['sizes'][key] / 1024:,.0f} KiB | "
                         f"{raw:.0f} ms | {cold1:.0f} ms | {cold_other:.0f} ms | {warm50:.0f} / {warm99:.0f} ms | "
                         f"{warm50 / raw:.1f}x | {cold_ratio:.1f}x | {verdict} |")
            if d["after"]:
                raw_after = median(d["raw_after"])
                after50, after_max = percentile(d["after"], 0.5), max(d["after"])
                lines.append(f"| {r['key_results']:,} | {label} right after a Check-in, {who} | | {raw_after:.0f} ms | "
                             f"| | {after50:.0f} / max {after_max:.0f} ms (n={len(d['after'])}) | "
                             f"{after50 / raw_after:.1f}x | | {_verdict(after50 / raw_after)} |")
    return "\n".join(lines + [""])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kr", default="10000", help="Session sizes in Key Results, comma-separated")
    parser.add_argument("--samples", type=int, default=SAMPLES)
    args = parser.parse_args(argv)
    results = []
    for n in sizes(args.kr):
        with seeded_stack(n) as (stack, session_id, *_):
            results.append(measure(stack, session_id, n, args.samples))
    print(report(results))


if __name__ == "__main__":
    main()
