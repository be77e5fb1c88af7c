"""Container health probes, stdlib only (they run inside the image, every few seconds).

    python -m shared.healthcheck http URL
        exit 0 iff GET URL answers a 2xx status within 3 seconds (redirects are not followed,
        proxies from the environment are ignored).
    python -m shared.healthcheck file PATH MAX_AGE_SECONDS
        exit 0 iff PATH exists and was modified at most MAX_AGE_SECONDS ago: relays and workers
        rewrite the file named by OKRSNAP_HEARTBEAT_FILE while their loop is alive.
    python -m shared.healthcheck ready PATH MAX_AGE_SECONDS
        the same, and the file says the process is ready: its databases reachable with their
        migrations at head and its broker reachable (a JSON object, shared/process.py).

Any failure exits 1 with a one-line reason (Docker keeps it in `docker inspect`); usage errors
exit 1 too, since Docker reserves exit code 2.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

HTTP_TIMEOUT = 3.0
HEALTHY, UNHEALTHY = 0, 1

USAGE = ("usage: python -m shared.healthcheck http URL\n"
         "       python -m shared.healthcheck file PATH MAX_AGE_SECONDS\n"
         "       python -m shared.healthcheck ready PATH MAX_AGE_SECONDS")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None  # a 3xx is an answer, and not a 2xx one


def check_http(url: str, timeout: float = HTTP_TIMEOUT) -> tuple[bool, str]:
    if not url.startswith(("http://", "https://")):
        return False, f"not an http(s) URL: {url!r}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
    outcome: list[tuple[bool, str]] = []

    def probe() -> None:
        try:
            with opener.open(urllib.request.Request(url, method="GET"), timeout=timeout) as response:
                response.read(65536)
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except Exception as exc:  # noqa: BLE001 - any failure to get an answer is unhealthy
            outcome.append((False, f"GET {url}: {exc.__class__.__name__}: {exc}"))
            return
        outcome.append((200 <= status < 300, f"GET {url}: HTTP {status}"))

    # The socket timeout bounds each read, not the whole exchange: a thread bounds the total.
    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive() or not outcome:
        return False, f"GET {url}: no answer within {timeout:g}s"
    return outcome[0]


def check_file(path: str, max_age: float, now: float | None = None) -> tuple[bool, str]:
    try:
        mtime = os.stat(path).st_mtime
    except OSError as exc:
        return False, f"{path}: {exc.strerror or exc}"
    age = (time.time() if now is None else now) - mtime
    if age > max_age:
        return False, f"{path}: last touched {age:.1f}s ago (more than {max_age:g}s)"
    return True, f"{path}: touched {max(age, 0.0):.1f}s ago"


def check_ready(path: str, max_age: float, now: float | None = None) -> tuple[bool, str]:
    alive, reason = check_file(path, max_age, now)
    if not alive:
        return alive, reason
    try:
        with open(path, encoding="utf-8") as handle:
            status = json.load(handle)
    except (OSError, ValueError) as exc:
        return False, f"{path}: no readiness in it ({exc.__class__.__name__})"
    if not isinstance(status, dict) or status.get("ready") is not True:
        checks = status.get("checks") if isinstance(status, dict) else None
        failing = ", ".join(f"{k}: {v}" for k, v in (checks or {}).items() if v != "ok")
        return False, f"{path}: not ready ({failing or 'not checked yet'})"
    return True, reason + ", ready"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) == 2 and args[0] == "http":
        healthy, reason = check_http(args[1])
    elif len(args) == 3 and args[0] in ("file", "ready"):
        try:
            max_age = float(args[2])
        except ValueError:
            print(f"MAX_AGE_SECONDS must be a number, not {args[2]!r}\n{USAGE}", file=sys.stderr)
            return UNHEALTHY
        healthy, reason = (check_file if args[0] == "file" else check_ready)(args[1], max_age)
    else:
        print(USAGE, file=sys.stderr)
        return UNHEALTHY
    print(("healthy: " if healthy else "unhealthy: ") + reason)
    return HEALTHY if healthy else UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())
