"""`python -m services.checkin.entrypoints.relay`: publishes the check-in outbox to the broker, and
closes ended Session weeks (their week_closed markers go through the same outbox)."""
import logging
import threading

from services.checkin.bootstrap import Checkin, bootstrap
from services.checkin.service_layer import handlers
from shared.process import run_until_signalled

log = logging.getLogger("checkin-relay")


def close_weeks_until(stop: threading.Event, container: Checkin) -> None:
    while not stop.is_set():
        try:
            closed = handlers.close_ended_weeks(uow=container.uow(), clock=container.clock,
                                                grace_seconds=container.settings.seal_grace_seconds)
            if closed:
                log.info("closed %d Session weeks", closed)
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("closing weeks failed")
        stop.wait(container.settings.week_close_interval)


def run(stop: threading.Event) -> None:
    container = bootstrap()
    threading.Thread(target=close_weeks_until, args=(stop, container), daemon=True).start()
    container.relay().run_forever(stop)


def main() -> None:
    run_until_signalled(run, name="checkin-relay")


if __name__ == "__main__":
    main()
