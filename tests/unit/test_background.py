"""The relays and workers sharing one process on the embedded default: one that fails stops the
others and is named, so the supervisor restarts them together."""
import threading

from services import background


def test_every_loop_runs_until_stop():
    stop = threading.Event()
    started = []

    def loop(name):
        def run(event):
            started.append(name)
            if len(started) == 2:
                stop.set()  # as SIGTERM would
            event.wait()
        return run

    assert background.run_together(stop, {"a": loop("a"), "b": loop("b")}) == []
    assert sorted(started) == ["a", "b"]


def _healthy(stopped: threading.Event):
    def run(event):
        event.wait()
        stopped.set()
    return run


def test_a_failing_loop_stops_the_others_and_is_named():
    stopped = threading.Event()

    def broken(event):
        raise RuntimeError("database is gone")

    assert background.run_together(threading.Event(), {"healthy": _healthy(stopped), "broken": broken}) == ["broken"]
    assert stopped.is_set()


def test_a_loop_returning_unasked_counts_as_failed_and_stops_the_others():
    stopped = threading.Event()

    def quitter(event):
        return None  # returned without being asked to stop: as bad as raising

    assert background.run_together(threading.Event(), {"healthy": _healthy(stopped), "quitter": quitter}) == [
        "quitter"]
    assert stopped.is_set()


def test_the_embedded_default_runs_the_four_loops():
    assert sorted(background.loops()) == ["checkin-relay", "export-relay", "export-worker", "snapshot-worker"]
