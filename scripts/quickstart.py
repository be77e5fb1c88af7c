#!/usr/bin/env python3
"""The README's quick start, timed as a newcomer lives it: a fresh clone, a fresh virtual
environment, `make run`, and the seconds until the demo login first succeeds.

    python scripts/quickstart.py            # prints the figure
    python scripts/quickstart.py --write    # and writes it to BENCHMARKS.md

It clones the current checkout's HEAD (committed work only) into a temporary directory, runs
`make run` there on free ports, signs in through the API as the demo user, then stops okrsnap with
Ctrl-C (SIGINT) and reports how long that took. pip's cache is whatever this machine has: the
figure is for a warm cache, as the README says."""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ("demo@okrsnap.local", "okrsnap-demo-2026")
SECTION = "## Quick start (fresh clone to first sign-in)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def signs_in(url: str) -> bool:
    body = json.dumps({"email": DEMO[0], "password": DEMO[1]}).encode()
    request = urllib.request.Request(f"{url}/api/v1/auth/login", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200 and "access_token" in json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False


def run(timeout: float = 900.0) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="okrsnap-quickstart-"))
    clone = workdir / "okrsnap"
    try:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        ports = {f"OKRSNAP_{name}_PORT": str(free_port()) for name in ("GATEWAY", "CHECKIN", "SNAPSHOT", "EXPORT")}
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("OKRSNAP_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env.update(ports, PYTHON=sys.executable)  # the same interpreter, as `python3` would be
        url = f"http://127.0.0.1:{ports['OKRSNAP_GATEWAY_PORT']}"
        log = workdir / "make-run.log"
        started = time.monotonic()
        process = subprocess.Popen(["make", "run"], cwd=clone, env=env, stdout=log.open("w"),
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while not signs_in(url):
                if process.poll() is not None:
                    raise SystemExit(f"make run exited ({process.returncode}):\n{log.read_text()}")
                if time.monotonic() - started > timeout:
                    raise SystemExit(f"no sign-in after {timeout:.0f} s:\n{log.read_text()}")
                time.sleep(0.25)
            first_login = time.monotonic() - started
            # The sign-in can succeed a moment before `okrsnap up` prints its banner: let it
            # finish saying it is up, as the person at the terminal would see it, then Ctrl-C.
            banner_by = time.monotonic() + 30
            while "okrsnap is up" not in log.read_text() and process.poll() is None and time.monotonic() < banner_by:
                time.sleep(0.1)
        finally:
            stopping = time.monotonic()
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in the terminal reaches make and okrsnap up
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            stopped = time.monotonic() - stopping
        output = log.read_text()
        installed = re.search(r"\[setup\] installed in (\d+) s", output)
        return {"first_login_seconds": first_login, "stop_seconds": stopped,
                "install_seconds": int(installed[1]) if installed else None, "output": output}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def report(r: dict) -> str:
    install = f" (of which installing: {r['install_seconds']} s)" if r["install_seconds"] is not None else ""
    return "\n".join([
        SECTION, "",
        f"`python scripts/quickstart.py --write`: a fresh clone of this checkout, a fresh virtual environment, "
        f"`make run` (the README's first command) until the demo user's first successful sign-in: "
        f"**{r['first_login_seconds']:.0f} s**{install}, with pip's cache warm, on this 2-core machine "
        f"shared with other work ({time.strftime('%Y-%m-%d')}). Ctrl-C then stopped everything in "
        f"{r['stop_seconds']:.1f} s.", ""])


def write(section: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text()
    if SECTION in text:
        start = text.index(SECTION)
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("\n" + text[end + 1:] if end != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write the figure to BENCHMARKS.md")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    result = run(args.timeout)
    section = report(result)
    print(section)
    if args.write:
        write(section)
