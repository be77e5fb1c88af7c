"""`python -m services.export.entrypoints.relay`: publishes the export outbox to the broker."""
import threading

from services.export.bootstrap import bootstrap
from shared.process import run_until_signalled


def run(stop: threading.Event) -> None:
    bootstrap().relay().run_forever(stop)


def main() -> None:
    run_until_signalled(run, name="export-relay")


if __name__ == "__main__":
    main()
