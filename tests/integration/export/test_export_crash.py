"""A worker process killed (SIGKILL) in the middle of writing an export leaves no half file where a
download could find it; the job is picked up again, finishes once, and the partial file is swept."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest

from tests.conftest import wait_until
from tests.integration.export.test_export_flow import WEEK, download, headers, job_when, request_export

pytestmark = pytest.mark.integration

KEY_RESULTS = 20_000  # enough rows that the killed worker is caught writing


@pytest.fixture
def big_session(snapshot_stub, alice, workspace):
    session_id = snapshot_stub.add_session(workspace)
    key_results = [{"id": str(uuid.uuid4()), "title": f"KR {n}", "owner_id": None, "start_value": 0.0,
                    "target_value": 100.0, "current_value": float(n % 100), "unit": "%", "status": "on_track",
                    "progress": (n % 100) / 100, "context": False} for n in range(KEY_RESULTS)]
    snapshot_stub.views[(session_id, WEEK)] = {
        "session": snapshot_stub.sessions[session_id], "week": WEEK,
        "starts_at": "2026-11-22T23:00:00+00:00", "ends_at": "2026-11-29T23:00:00+00:00",
        "status": "past", "nearest_saved": {"before": None, "after": None}, "owner": "all",
        "objectives": [{"id": str(uuid.uuid4()), "title": "Scale", "owner_id": None, "parent_id": None,
                        "progress": 0.5, "context": False, "key_results": key_results}]}
    return session_id


def worker_process(settings, tmp_path) -> subprocess.Popen:
    """The export worker as production runs it, in a process of its own, on the test's settings."""
    env = {**os.environ,
           "OKRSNAP_ENV": "test", "OKRSNAP_DATA_DIR": str(settings.data_dir),
           "OKRSNAP_INTERNAL_SECRET": settings.internal_secret,
           "OKRSNAP_ACCESS_TOKEN_SECRET": settings.access_token_secret,
           "OKRSNAP_DOWNLOAD_SECRET": settings.download_secret,
           "OKRSNAP_DATABASE_URL": settings.database_url, "OKRSNAP_BROKER_URL": settings.broker_url,
           "OKRSNAP_BROKER_NAMESPACE": settings.broker_namespace,
           "OKRSNAP_SNAPSHOT_URL": settings.service_urls["snapshot"],
           "OKRSNAP_GATEWAY_URL": settings.service_urls["gateway"],
           "OKRSNAP_CLOCK_FILE": str(settings.clock_file), "OKRSNAP_EXPORT_DIR": str(settings.export_dir)}
    log = open(tmp_path / "killed-worker.log", "wb")  # noqa: SIM115 - closed with the test's tmp_path
    return subprocess.Popen([sys.executable, "-m", "services.export.entrypoints.worker"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def test_a_worker_killed_mid_write_leaves_no_half_file_and_the_job_finishes_once(
        container, client, relay, start_worker, alice, big_session, tmp_path):
    settings = container.settings
    job = request_export(client, settings, alice, big_session, "xlsx")
    process = worker_process(settings, tmp_path)
    try:
        assert relay.run_once() == 1
        exports = settings.export_dir
        partial = wait_until(lambda: list(exports.glob(".*.tmp")) if exports.is_dir() else [],
                             timeout=60, interval=0.01, message="the worker to start writing the file")
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert [p.name for p in exports.iterdir() if not p.name.startswith(".")] == []  # nothing to serve
    running = client.get(f"/exports/{job['id']}", headers=headers(settings, alice)).json
    assert (running["status"], running["download_url"]) == ("running", None)

    # A second worker takes the job over once the dead one's lease runs out on okrsnap's clock.
    start_worker(lease=timedelta(seconds=30))
    settings.clock_file.write_text(json.dumps({"offset_seconds": 60}))
    done = job_when(client, settings, alice, job["id"], "done")

    assert done["row_count"] == KEY_RESULTS + 1
    with container.uow() as uow:
        stored = uow.repo.get(uuid.UUID(job["id"]))
    assert (stored.attempts, stored.file_name) == (2, f"{job['id']}-2.xlsx")
    assert len(download(client, settings, done)["items"]) == KEY_RESULTS + 1
    # The dead attempt's partial file goes once nobody has written to it for a lease (on a loaded
    # machine a real lease may already have passed since it was written, and it is gone already).
    with contextlib.suppress(FileNotFoundError):
        os.utime(partial[0], (0, 0))
    wait_until(lambda: not partial[0].exists(), message="the partial file to be swept")
    assert sorted(p.name for p in exports.iterdir()) == [f"{job['id']}-2.xlsx"]
