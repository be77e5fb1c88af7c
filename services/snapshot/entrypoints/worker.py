"""`python -m services.snapshot.entrypoints.worker`: applies the check-in events to Snapshots and
seals closed weeks. Several may run at once: each event is applied once, in any order."""
import logging
import os
import threading

from services.snapshot.adapters import orm
from services.snapshot.bootstrap import Snapshot, bootstrap
from services.snapshot.service_layer import handlers
from shared.messaging import DeadLetterPublisher, broker_connection, recover_embedded_deliveries, topology_for
from shared import observability
from shared.process import run_until_signalled

log = logging.getLogger("snapshot-worker")
SWEEP_SECONDS = float(os.environ.get("OKRSNAP_PARKED_SWEEP_SECONDS", 30))
# How long an event may wait for its Session's own event before it is dead-lettered as an event
# of an unknown Session (the Session's event is normally a few milliseconds behind at most).
PARKED_MAX_SECONDS = float(os.environ.get("OKRSNAP_PARKED_MAX_SECONDS", 3600))
# How long after its end an unsealed week may wait on a gap in its Session's sequence before the
# worker says so in its log (an event lost upstream, or stuck in a dead-letter queue).
SEAL_GAP_WARN_SECONDS = float(os.environ.get("OKRSNAP_SEAL_GAP_WARN_SECONDS", 900))
# Unacked deliveries a worker holds; batches are half of it (shared.messaging.EventConsumer). A
# batch's transaction costs about the same whatever its size, so draining a backlog in batches
# of 200 instead of 50 roughly halves the cost per event; a quiet queue still closes a batch
# within 20 ms of its last message.
PREFETCH = int(os.environ.get("OKRSNAP_SNAPSHOT_PREFETCH", 400))


def dead_letter_publisher(container: Snapshot) -> DeadLetterPublisher:
    return DeadLetterPublisher(lambda: broker_connection(container.settings), topology_for(container.settings),
                               "snapshot", "events")


def sweep_once(container: Snapshot, dead_letter, max_age: float = PARKED_MAX_SECONDS) -> int:
    """Parked events whose Session arrived meanwhile (a race between two workers) are applied;
    those whose Session never came are dead-lettered with the reason. Returns how many were."""
    handlers.apply_parked(uow=container.uow(), clock=container.clock)
    expired = handlers.expire_parked(max_age, dead_letter, uow=container.uow(), clock=container.clock)
    for week in handlers.stalled_weeks(SEAL_GAP_WARN_SECONDS + container.settings.seal_grace_seconds,
                                       uow=container.uow(), clock=container.clock):
        log.warning("week %s of Session %s waits on a sequence gap: %d event(s) before its close marker "
                    "(sequence %d) not applied, %d s after the week ended", week["week"], week["session_id"],
                    week["missing"], week["close_sequence"], week["waited_seconds"])
    return expired


def run(stop: threading.Event) -> None:
    container = bootstrap()

    def sweep() -> None:
        dead_letter = dead_letter_publisher(container)
        while not stop.wait(SWEEP_SECONDS):
            try:
                sweep_once(container, dead_letter)
            except Exception:  # noqa: BLE001 - the next sweep tries again
                log.exception("sweeping parked events failed")
        dead_letter.close()

    recover_embedded_deliveries(container.settings, "snapshot", "events", container.database.session,
                                orm.processed_events)
    observability.watch_weeks_waiting(container.database.session, orm.week_closes, orm.sealed_weeks)
    consumer = container.consumer(prefetch_count=PREFETCH)
    threading.Thread(target=lambda: (stop.wait(), setattr(consumer, "should_stop", True)), daemon=True).start()
    threading.Thread(target=sweep, daemon=True).start()
    consumer.run()


def main() -> None:
    run_until_signalled(run, name="snapshot-worker")


if __name__ == "__main__":
    main()
