"""`python -m services.background`: the check-in relay, the snapshot worker, the export relay and
the export worker in one process, a thread each: what `okrsnap up` runs on the embedded default,
where four Python processes would only cost memory (each loads the same libraries) and the work
is small. Production runs them apart (docker-compose), and `okrsnap up --separate-workers` too.

When one of them fails, the process stops the others and exits with an error, so the supervisor
restarts all four together: a half-running process never hides a dead worker."""
from __future__ import annotations

import logging
import sys
import threading
from typing import Callable

from shared.process import run_until_signalled

log = logging.getLogger("okrsnap-workers")


def loops() -> dict[str, Callable[[threading.Event], None]]:
    from services.checkin.entrypoints import relay as checkin_relay
    from services.export.entrypoints import relay as export_relay
    from services.export.entrypoints import worker as export_worker
    from services.snapshot.entrypoints import worker as snapshot_worker

    return {"checkin-relay": checkin_relay.run, "snapshot-worker": snapshot_worker.run,
            "export-relay": export_relay.run, "export-worker": export_worker.run}


def run_together(stop: threading.Event, runs: dict[str, Callable[[threading.Event], None]]) -> list[str]:
    """Runs each loop in a thread until `stop`; a loop that raises, or returns before `stop`,
    sets it for the others. Returns the names of the loops that failed."""
    failed: list[str] = []

    def guarded(name: str, loop: Callable[[threading.Event], None]) -> None:
        try:
            loop(stop)
            if not stop.is_set():
                raise RuntimeError("returned without being asked to stop")
        except Exception:  # noqa: BLE001 - reported, then every loop stops
            log.exception("%s failed; stopping the other workers", name)
            failed.append(name)
        finally:
            stop.set()

    threads = [threading.Thread(target=guarded, args=(name, loop), name=name) for name, loop in runs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failed


def main() -> None:
    failed: list[str] = []
    run_until_signalled(lambda stop: failed.extend(run_together(stop, loops())), name="okrsnap-workers")
    if failed:
        sys.exit(f"okrsnap workers stopped: {', '.join(failed)} failed")


if __name__ == "__main__":
    main()
