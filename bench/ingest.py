"""Ingest: Check-ins through the gateway under gunicorn against the minimal peer pipeline
(bench/peer.py) on the same PostgreSQL and RabbitMQ, in one run, interleaved.

For each Session size (Key Results): ROUNDS rounds of [okrsnap, peer], each DURATION seconds of
16 concurrent keep-alive connections posting Check-ins to Key Results drawn at random from the
whole Session. A run ends when every accepted Check-in has reached the read side (okrsnap: the
snapshot service's Check-in rows; peer: its projection), so the rate is end to end and sustained,
and CPU is summed over every process of the stack and the PostgreSQL backends of its database
(/proc/<pid>/stat before and after; the broker is shared with the rest of the machine and not
counted, for either side).
Then, at half of each side's sustained rate, a probe posts a Check-in and polls the week view
(okrsnap: the KR owner's filter of the live week through the gateway; peer: GET /checkins/<id>)
until it shows up: visibility p50/p99.

    python -m bench.ingest --kr 500,10000
"""
from __future__ import annotations

import argparse
import threading
import time
import uuid

import requests

from bench.peer import PeerStack
from bench.stack import cpu_by_pid, cpu_used, median, percentile, seeded_stack, sizes

CONNECTIONS = 16
DURATION = 12.0
ROUNDS = 3
VISIBILITY_SECONDS = 20.0
TARGETS = {"rate": 0.6, "cpu": 2.0, "visible_p99_ms": 250}


class Okrsnap:
    name = "okrsnap"
    errors = 0  # failed posts: a run with many of them measured something else (the text says how many)

    def __init__(self, stack, session_id):
        self.stack, self.session_id = stack, session_id
        self.key_results = [(str(r[0]), str(r[1]) if r[1] else None) for r in stack.database.query(
            "SELECT id, owner_id FROM checkin.key_results WHERE session_id = %s", (session_id,))]
        self.live_week = stack.week_labels(session_id)[0]

    def client(self) -> requests.Session:
        return self.stack.http()

    def post(self, http: requests.Session, key_result: str, comment: str) -> requests.Response:
        return http.post(f"{self.stack.api}/key-results/{key_result}/check-ins", timeout=60,
                         json={"value": 50.0, "status": "on_track", "confidence": 7, "comment": comment})

    def applied(self) -> int:
        return self.stack.database.query("SELECT count(*) FROM snapshot.check_ins WHERE session_id = %s",
                                         (self.session_id,))[0][0]

    def visible(self, http: requests.Session, key_result: str, owner: str | None, comment: str, _response) -> bool:
        response = http.get(f"{self.stack.api}/sessions/{self.session_id}/snapshots/{self.live_week}",
                            params={"owner": owner or "unassigned"}, timeout=60)
        return comment.encode() in response.content

    def pids(self) -> list[int]:
        return self.stack.all_pids()


class Peer:
    name = "peer"
    errors = 0

    def __init__(self, peer: PeerStack, key_results):
        self.peer, self.key_results = peer, key_results

    def client(self) -> requests.Session:
        return requests.Session()

    def post(self, http, key_result, comment):
        return http.post(f"{self.peer.base}/checkins", json={"key_result_id": key_result, "value": 50.0,
                                                             "comment": comment}, timeout=60)

    def applied(self) -> int:
        return self.peer.applied()

    def visible(self, http, key_result, owner, comment, response) -> bool:
        return http.get(f"{self.peer.base}/checkins/{response.json()['id']}", timeout=60).status_code == 200

    def pids(self) -> list[int]:
        return self.peer.all_pids()


def _load(side, duration: float, rate: float | None = None, probe: bool = False):
    """Posts from CONNECTIONS threads for `duration` seconds (paced to `rate` per second in all
    when given). Returns (accepted, seconds, visibility latencies in ms)."""
    stop = time.monotonic() + duration
    accepted = [0] * CONNECTIONS
    latencies: list[float] = []
    errors: list[str] = []
    interval = CONNECTIONS / rate if rate else 0.0

    def worker(n: int) -> None:
        import random

        rng = random.Random(n)
        http = side.client()
        next_at = time.monotonic() + rng.uniform(0, interval)
        try:
            while time.monotonic() < stop:
                if interval:
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    next_at += interval
                key_result, owner = rng.choice(side.key_results)
                comment = f"bench {uuid.uuid4().hex}"
                response = side.post(http, key_result, comment)
                if response.status_code != 201:
                    errors.append(f"{response.status_code} on connection {n}: {response.text[:200]}")
                    continue
                accepted[n] += 1
                if probe and n == 0:  # the probe connection waits for its Check-in to show
                    posted = time.perf_counter()
                    while not side.visible(http, key_result, owner, comment, response):
                        if time.perf_counter() - posted > 30:
                            errors.append("a Check-in was not visible after 30 s")
                            break
                    else:
                        latencies.append((time.perf_counter() - posted) * 1000)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    began = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        print(f"  {side.name}: {len(errors)} errors, first: {errors[0]}", flush=True)
    side.errors += len(errors)
    return sum(accepted), time.monotonic() - began, latencies


def _sustained(side, duration: float) -> dict:
    """One run: rate end to end (until the read side has every accepted Check-in) and CPU."""
    base = side.applied()
    before = cpu_by_pid(side.pids())
    began = time.monotonic()
    accepted, _, _ = _load(side, duration)
    deadline = time.monotonic() + 600
    while side.applied() - base < accepted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{side.name}: the read side never got all {accepted} Check-ins")
        time.sleep(0.05)
    seconds = time.monotonic() - began
    cpu = cpu_used(before, cpu_by_pid(side.pids()))
    return {"accepted": accepted, "rate": accepted / seconds, "cpu_ms": 1000 * cpu / max(accepted, 1)}


def measure(stack, session_id, key_results: int, *, rounds: int = ROUNDS, duration: float = DURATION) -> dict:
    okrsnap = Okrsnap(stack, session_id)
    peer_stack = PeerStack()
    try:
        peer_stack.start()
        peer = Peer(peer_stack, okrsnap.key_results)
        _load(okrsnap, 2.0)  # warm both: connections, pools, first requests of each worker
        _load(peer, 2.0)
        runs = {"okrsnap": [], "peer": []}
        for n in range(rounds):
            for side in (okrsnap, peer) if n % 2 == 0 else (peer, okrsnap):
                runs[side.name].append(_sustained(side, duration))
                print(f"  {key_results} KRs, round {n + 1}, {side.name}: {runs[side.name][-1]}", flush=True)
        out = {"key_results": key_results, "rounds": rounds, "duration": duration}
        for name, samples in runs.items():
            out[name] = {"rate": median([s["rate"] for s in samples]), "cpu_ms": median([s["cpu_ms"] for s in samples]),
                         "rates": [round(s["rate"], 1) for s in samples]}
        for side in (okrsnap, peer):
            rate = out[side.name]["rate"] / 2
            accepted, seconds, latencies = _load(side, VISIBILITY_SECONDS, rate=rate, probe=True)
            out[side.name].update(half_rate=rate, offered=accepted / seconds, visible=latencies, errors=side.errors)
        return out
    finally:
        peer_stack.close()


def report(results: list[dict]) -> str:
    lines = ["## Ingest: Check-ins through the gateway vs a minimal peer pipeline", "",
             f"`python -m bench.ingest --kr 500,10000`. {CONNECTIONS} concurrent keep-alive connections post "
             "Check-ins to Key Results drawn at random from the whole Session; okrsnap through its gateway "
             "(gunicorn, 2 workers x 4 threads per HTTP service, `okrsnap up` on PostgreSQL and RabbitMQ), the "
             "peer (`bench/peer.py`: Flask under gunicorn with the same workers and threads -> INSERT+COMMIT -> "
             "publish with confirm -> a consumer process on a quorum queue -> INSERT+COMMIT -> ack) on the same "
             "servers. A run lasts its duration and ends when the read side has every accepted Check-in, so the "
             "rate is sustained end to end. Median of the interleaved rounds. CPU per Check-in: every process of "
             "the stack plus its database's PostgreSQL backends, from /proc (RabbitMQ not counted, for either). "
             "Visibility: at half the side's sustained rate, a probe posts and polls the week view (okrsnap: the "
             "live week filtered by the Key Result's owner, through the gateway; peer: GET of the row) until the "
             "Check-in is there; each poll is a whole owner-filtered view, so at 10,000 KRs one poll is itself a "
             "large read and the figure's resolution is one such read.", "",
             "| KRs | okrsnap rate | peer rate | ratio | target | CPU / Check-in okrsnap | peer | ratio | target "
             "| visible p50 / p99 okrsnap | peer | target |",
             "| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    for r in results:
        o, p = r["okrsnap"], r["peer"]
        rate_ratio, cpu_ratio = o["rate"] / p["rate"], o["cpu_ms"] / p["cpu_ms"]
        p99 = percentile(o["visible"], 0.99) if o["visible"] else float("nan")

        def vis(samples):
            if not samples:
                return "none"
            return f"{percentile(samples, 0.5):.0f} / {percentile(samples, 0.99):.0f} ms (n={len(samples)})"

        lines.append(
            f"| {r['key_results']:,} | {o['rate']:.0f}/s {o['rates']} | {p['rate']:.0f}/s {p['rates']} | "
            f"{rate_ratio:.2f}x | >= {TARGETS['rate']}x: {'met' if rate_ratio >= TARGETS['rate'] else 'NOT met'} | "
            f"{o['cpu_ms']:.1f} ms | {p['cpu_ms']:.1f} ms | {cpu_ratio:.1f}x | <= {TARGETS['cpu']}x: "
            f"{'met' if cpu_ratio <= TARGETS['cpu'] else 'NOT met'} | {vis(o['visible'])} at {o['offered']:.0f}/s | "
            f"{vis(p['visible'])} at {p['offered']:.0f}/s | p99 <= {TARGETS['visible_p99_ms']} ms: "
            f"{'met' if p99 <= TARGETS['visible_p99_ms'] else 'NOT met'} |")
    failed = [f"{r[name]['errors']} failed posts for {name} at {r['key_results']:,} KRs" for r in results
              for name in ("okrsnap", "peer") if r[name].get("errors")]
    if failed:
        lines += ["", "Failed posts (counted in neither rate): " + "; ".join(failed) + ". Other work on this machine "
                  "force-closes broker connections and fills PostgreSQL's connection slots now and then."]
    if len(results) > 1:
        small, large = results[0]["okrsnap"]["cpu_ms"], results[-1]["okrsnap"]["cpu_ms"]
        lines += ["", f"Cost of a Check-in against Session size: {large / small:.2f}x the CPU per Check-in at "
                  f"{results[-1]['key_results']:,} KRs as at {results[0]['key_results']:,} (target: independent, "
                  "about 1x)."]
    return "\n".join(lines + [""])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kr", default="500,10000", help="Session sizes in Key Results, comma-separated")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--duration", type=float, default=DURATION)
    args = parser.parse_args(argv)
    results = []
    for n in sizes(args.kr):
        with seeded_stack(n, weeks=2) as (stack, session_id, *_):
            results.append(measure(stack, session_id, n, rounds=args.rounds, duration=args.duration))
    print(report(results))


if __name__ == "__main__":
    main()
