"""`python -m services.snapshot.entrypoints.worker`: applies the check-in events to Snapshots and
seals closed weeks. Several may run at once: each event is applied once, in any order."""
import logging
import threading

from services.snapshot.adapters import orm
from services.snapshot.bootstrap import bootstrap
from services.snapshot.service_layer import handlers
from shared.messaging import recover_embedded_deliveries
from shared.process import run_until_signalled

log = logging.getLogger("snapshot-worker")
SWEEP_SECONDS = 30


def main() -> None:
    container = bootstrap()

    def sweep(stop: threading.Event) -> None:
        """Parked events whose Session arrived meanwhile (a race between two workers)."""
        while not stop.wait(SWEEP_SECONDS):
            try:
                handlers.apply_parked(uow=container.uow(), clock=container.clock)
            except Exception:  # noqa: BLE001 - the next sweep tries again
                log.exception("applying parked events failed")

    def run(stop: threading.Event) -> None:
        recover_embedded_deliveries(container.settings, "snapshot", "events", container.database.session,
                                    orm.processed_events)
        consumer = container.consumer()
        threading.Thread(target=lambda: (stop.wait(), setattr(consumer, "should_stop", True)),
                         daemon=True).start()
        threading.Thread(target=sweep, args=(stop,), daemon=True).start()
        consumer.run()

    run_until_signalled(run, name="snapshot-worker")


if __name__ == "__main__":
    main()
