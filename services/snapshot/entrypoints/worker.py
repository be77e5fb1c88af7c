"""`python -m services.snapshot.entrypoints.worker`: applies the check-in events to Snapshots.
Several may run at once: each event is applied once (processed-event records)."""
import threading

from services.snapshot.bootstrap import bootstrap
from shared.process import run_until_signalled


def main() -> None:
    container = bootstrap()

    def run(stop: threading.Event) -> None:
        consumer = container.consumer()
        threading.Thread(target=lambda: (stop.wait(), setattr(consumer, "should_stop", True)),
                         daemon=True).start()
        consumer.run()

    run_until_signalled(run, name="snapshot-worker")


if __name__ == "__main__":
    main()
