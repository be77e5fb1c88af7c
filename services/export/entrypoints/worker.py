"""`python -m services.export.entrypoints.worker`: claims requested exports and builds them."""
import threading

from services.export.adapters import orm
from services.export.adapters.repository import CONSUMER
from services.export.bootstrap import bootstrap
from shared import observability
from shared.messaging import recover_embedded_deliveries
from shared.process import run_until_signalled


def run(stop: threading.Event) -> None:
    container = bootstrap()
    recover_embedded_deliveries(container.settings, "export", "jobs", container.database.session,
                                orm.processed_events, processed_as=CONSUMER)
    observability.watch_export_jobs(container.database.session, orm.export_jobs)
    container.worker().run(stop)


def main() -> None:
    run_until_signalled(run, name="export-worker")


if __name__ == "__main__":
    main()
