"""The real processes, started by `okrsnap up`, driven through the gateway only:
login, Session, Objective, Key Result, Check-in, the week's Snapshot, export, download."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import uuid
import zipfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from shared import tokens
from shared.weeks import Week
from tests.conftest import wait_until
from tests.export_files import expected_items, project, read_csv_zip
from tests.helpers import free_port

pytestmark = pytest.mark.e2e
OKRSNAP = [sys.executable, "-m", "services.cli"]
PASSWORD = "correct horse battery staple"



class Okrsnap:
    def __init__(self, tmp_path: Path, extra_env: dict[str, str]):
        self.env = dict(os.environ, OKRSNAP_ENV="test", OKRSNAP_DATA_DIR=str(tmp_path / "var"),
                        OKRSNAP_LOG_LEVEL="WARNING", **extra_env)
        self.ports = {name: free_port() for name in ("gateway", "checkin", "snapshot", "export")}
        for name, port in self.ports.items():
            self.env[f"OKRSNAP_{name.upper()}_PORT"] = str(port)
        self.url = f"http://127.0.0.1:{self.ports['gateway']}/api/v1"
        self.log = tmp_path / "okrsnap-up.log"
        self.process: subprocess.Popen | None = None

    def cli(self, *args: str, input: str | None = None) -> str:
        done = subprocess.run([*OKRSNAP, *args], env=self.env, input=input, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def up(self, *args: str) -> None:
        self.process = subprocess.Popen([*OKRSNAP, "up", "--web-workers", "1", *args], env=self.env,
                                        stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        wait_until(lambda: "okrsnap is up" in self.log.read_text() or self.process.poll() is not None,
                   timeout=90, message="okrsnap up")
        assert self.process.poll() is None, self.log.read_text()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def pg_okrsnap(tmp_path, database_url, broker_url, namespace):
    app = Okrsnap(tmp_path, {"OKRSNAP_DATABASE_URL": database_url, "OKRSNAP_BROKER_URL": broker_url,
                             "OKRSNAP_BROKER_NAMESPACE": namespace})
    yield app
    app.stop()


@pytest.fixture
def embedded_okrsnap(tmp_path):
    app = Okrsnap(tmp_path, {})
    yield app
    app.stop()


def _login(app: Okrsnap, email: str, password: str) -> dict:
    response = requests.post(f"{app.url}/auth/login", json={"email": email, "password": password}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _walk_the_pipeline(app: Okrsnap) -> None:
    app.cli("user", "add", "lead@example.com", "--workspace", "Acme", "--role", "owner",
            "--password", PASSWORD)
    app.up("--no-demo")
    login = _login(app, "lead@example.com", PASSWORD)
    auth = {"Authorization": f"Bearer {login['access_token']}"}
    workspace_id = login["user"]["workspaces"][0]["id"]
    api = requests.Session()
    api.headers.update(auth)

    today = datetime.now(timezone.utc).date()
    session = api.post(f"{app.url}/workspaces/{workspace_id}/sessions", json={
        "name": "Q4 – growth", "start_date": str(today - timedelta(days=21)),
        "end_date": str(today + timedelta(days=60)), "timezone": "UTC"})
    assert session.status_code == 201, session.text
    session_id = session.json()["id"]
    objective = api.post(f"{app.url}/sessions/{session_id}/objectives", json={"title": "Win the market 🚀"})
    assert objective.status_code == 201, objective.text
    kr = api.post(f"{app.url}/objectives/{objective.json()['id']}/key-results", json={
        "title": "=HYPERLINK(\"evil\")", "start_value": 100, "target_value": 200, "unit": "users"})
    assert kr.status_code == 201, kr.text
    kr_id = kr.json()["id"]
    checked = api.post(f"{app.url}/key-results/{kr_id}/check-ins",
                       json={"value": 150, "status": "on_track", "comment": "launch went well"})
    assert checked.status_code == 201, checked.text
    bad = api.post(f"{app.url}/key-results/{kr_id}/check-ins", json={"value": "lots", "status": "on_track"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "value"

    week = Week.of_instant(datetime.now(timezone.utc), "UTC", "monday").label

    def snapshot_shows_check_in():
        view = api.get(f"{app.url}/sessions/{session_id}/snapshots/{week}").json()
        krs = [k for o in view.get("objectives", []) for k in o["key_results"]]
        return view if krs and krs[0]["current_value"] == 150.0 else None

    view = wait_until(snapshot_shows_check_in, timeout=30, message="the check-in in the week's Snapshot")
    assert view["status"] == "current" and view["week"] == week
    assert view["objectives"][0]["title"] == "Win the market 🚀"
    assert view["objectives"][0]["key_results"][0]["progress"] == 0.5

    job = api.post(f"{app.url}/exports", json={"session_id": session_id, "week": week})
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    done = wait_until(lambda: (lambda j: j if j["status"] in ("done", "failed") else None)(
        api.get(f"{app.url}/exports/{job_id}").json()), timeout=30, message="export finished")
    assert done["status"] == "done", done
    download = requests.get(done["download_url"], timeout=10)  # no bearer: the link is the credential
    assert download.status_code == 200, download.text
    assert "attachment" in download.headers["Content-Disposition"]
    exported = read_csv_zip(download.content)
    rows = [r for r in exported["items"] if r["kind"] == "Key Result"]
    assert len(rows) == 1
    assert rows[0]["title"] == "=HYPERLINK(\"evil\")"
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:  # neutralised, not a formula
        assert "'=HYPERLINK(\"\"evil\"\")" in archive.read("items.csv").decode("utf-8-sig")
    assert float(rows[0]["current_value"]) == 150.0
    assert exported["metadata"]["Week"] == week and exported["metadata"]["okrsnap version"]
    tampered = requests.get(done["download_url"][:-2] + "xx", timeout=10)
    assert tampered.status_code == 401
    assert tokens.FILE_WORKSPACE_HEADER not in download.headers  # kept inside the gateway
    assert tokens.FILE_REQUESTER_HEADER not in download.headers
    audit = api.get(f"{app.url}/workspaces/{workspace_id}/audit").json()["events"]
    actions = {(e["action"], e["target"]) for e in audit}
    assert {("export.requested", job_id), ("export.downloaded", job_id)} <= actions
    assert not any("token=" in str(e) for e in audit)  # the link's credential is never logged

    # Internal services refuse anything that did not come through the gateway.
    direct = f"http://127.0.0.1:{app.ports['checkin']}/sessions/{session_id}"
    assert requests.get(direct, timeout=10).status_code == 401
    forged = tokens.internal_token("not-the-secret-but-long-enough-for-hs256", "checkin", tokens.Principal(str(uuid.uuid4()), {workspace_id: "owner"}))
    assert requests.get(direct, headers={tokens.INTERNAL_HEADER: forged}, timeout=10).status_code == 401
    # A spoofed internal header sent to the gateway is never forwarded.
    spoof = requests.get(f"{app.url}/sessions/{session_id}", headers={tokens.INTERNAL_HEADER: forged}, timeout=10)
    assert spoof.status_code == 401
    assert requests.get(f"{app.url}/sessions/{session_id}", timeout=10).status_code == 401


def test_end_to_end_on_postgresql_and_rabbitmq(pg_okrsnap):
    _walk_the_pipeline(pg_okrsnap)


def test_end_to_end_embedded(embedded_okrsnap):
    _walk_the_pipeline(embedded_okrsnap)


def test_demo_has_weeks_of_history(embedded_okrsnap):
    from services.demo import DEMO_EMAIL, DEMO_PASSWORD, WEEKS_OF_HISTORY

    app = embedded_okrsnap
    app.up()
    login = _login(app, DEMO_EMAIL, DEMO_PASSWORD)
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {login['access_token']}"
    workspace_id = login["user"]["workspaces"][0]["id"]
    [session] = api.get(f"{app.url}/workspaces/{workspace_id}/sessions").json()
    start = date.fromisoformat(session["start_date"])
    past = Week.containing(start + timedelta(weeks=WEEKS_OF_HISTORY // 2), "monday").label

    def past_week_has_key_results():
        view = api.get(f"{app.url}/sessions/{session['id']}/snapshots/{past}").json()
        return view if view["status"] in ("past", "sealed") and view["objectives"] else None

    view = wait_until(past_week_has_key_results, timeout=60, message="demo history in a past week")
    assert sum(len(o["key_results"]) for o in view["objectives"]) == 20  # the demo owner sees the private ones too
    assert view["check_ins"], "the demo's past week carries Check-ins"

    # The relay closes the ended weeks; the worker seals them in a verified chain.
    def sealed():
        view = api.get(f"{app.url}/sessions/{session['id']}/snapshots/{past}").json()
        return view if view["status"] == "sealed" else None

    view = wait_until(sealed, timeout=60, message="the demo's past week sealed")
    assert len(view["seal"]["content_hash"]) == 64
    # Every ended week is sealed once it is closed (an hour after its end, the seal grace) and the
    # worker has applied it, one after the other; the quiet week too (it has no Snapshot, but its
    # seal keeps the chain unbroken).
    now = datetime.now(timezone.utc)
    this_week_began = Week.of_instant(now, session["timezone"], "monday").bounds(session["timezone"])[0]
    last_week_closed = (now - this_week_began).total_seconds() > 3600 + 60
    expected = WEEKS_OF_HISTORY - (0 if last_week_closed else 1)

    def chain_complete():
        chain = api.get(f"{app.url}/sessions/{session['id']}/snapshots/verify").json()
        return chain if chain["valid"] and len(chain["weeks"]) >= expected else None

    wait_until(chain_complete, timeout=60, message=f"{expected} sealed weeks in a valid chain")
    assert "sealed weeks, ok" in app.cli("verify")

    # A sealed week exports like any other: the file holds the week's Key Results.
    job = api.post(f"{app.url}/exports", json={"session_id": session["id"], "week": past})
    assert job.status_code == 202, job.text
    done = wait_until(lambda: (lambda j: j if j["status"] in ("done", "failed") else None)(
        api.get(f"{app.url}/exports/{job.json()['id']}").json()), timeout=30, message="sealed week exported")
    assert done["status"] == "done", done
    exported = read_csv_zip(requests.get(done["download_url"], timeout=10).content)
    assert exported["metadata"]["Week"] == past and exported["metadata"]["State"].startswith("sealed")
    view = api.get(f"{app.url}/sessions/{session['id']}/snapshots/{past}").json()
    expected = [{k: v for k, v in row.items() if k not in ("owner_name", "owner_email")}
                for row in expected_items(view, {})]
    assert project(exported["items"], expected) == expected  # the rows of the week view, no more, no fewer
    if view["deltas"]["against"]:
        assert exported["metadata"]["Baseline week (deltas compare against)"] == view["deltas"]["against"]


def _owner_with_a_key_result(app: Okrsnap, email: str) -> tuple[requests.Session, str, str]:
    """Signs in the owner `email`, makes a Session around today with one Objective and one Key
    Result; returns the signed-in client, the Session id and the Key Result id."""
    login = _login(app, email, PASSWORD)
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {login['access_token']}"
    workspace_id = login["user"]["workspaces"][0]["id"]
    today = datetime.now(timezone.utc).date()
    session_id = api.post(f"{app.url}/workspaces/{workspace_id}/sessions", json={
        "name": "Q", "start_date": str(today - timedelta(days=7)), "end_date": str(today + timedelta(days=30)),
        "timezone": "UTC"}).json()["id"]
    objective = api.post(f"{app.url}/sessions/{session_id}/objectives", json={"title": "O"}).json()
    kr = api.post(f"{app.url}/objectives/{objective['id']}/key-results",
                  json={"title": "KR", "start_value": 0, "target_value": 10}).json()
    return api, session_id, kr["id"]


def _shows_only(api: requests.Session, app: Okrsnap, session_id: str, value: float) -> bool:
    """The current week's Snapshot holds one Key Result, at `value`."""
    week = Week.of_instant(datetime.now(timezone.utc), "UTC", "monday").label
    view = api.get(f"{app.url}/sessions/{session_id}/snapshots/{week}").json()
    return [k["current_value"] for o in view.get("objectives", []) for k in o["key_results"]] == [value]


def test_a_crashed_worker_is_restarted_and_no_check_in_is_lost(embedded_okrsnap):
    app = embedded_okrsnap
    app.cli("user", "add", "lead@example.com", "--workspace", "Acme", "--role", "owner", "--password", PASSWORD)
    app.up("--no-demo", "--separate-workers")  # a worker of its own, to kill it alone
    api, session_id, kr_id = _owner_with_a_key_result(app, "lead@example.com")
    kr = {"id": kr_id}

    worker_pid = int(subprocess.run(["pgrep", "-P", str(app.process.pid), "-f", "snapshot.entrypoints.worker"],
                                    capture_output=True, text=True, check=True).stdout.split()[0])
    os.kill(worker_pid, signal.SIGKILL)
    # Acknowledged while the worker is dead: it must still reach the Snapshot.
    assert api.post(f"{app.url}/key-results/{kr['id']}/check-ins",
                    json={"value": 7, "status": "on_track"}).status_code == 201
    week = Week.of_instant(datetime.now(timezone.utc), "UTC", "monday").label
    wait_until(lambda: _shows_only(api, app, session_id, 7.0), timeout=60,
               message="the check-in after the worker restarted")
    assert "snapshot-worker exited" in app.log.read_text()

    # The relay dies between the check-in's commit and its publish: frozen first, so it cannot
    # publish, then killed. Its replacement publishes the event, and it shows exactly once.
    relay_pid = int(subprocess.run(["pgrep", "-P", str(app.process.pid), "-f", "checkin.entrypoints.relay"],
                                   capture_output=True, text=True, check=True).stdout.split()[0])
    os.kill(relay_pid, signal.SIGSTOP)
    assert api.post(f"{app.url}/key-results/{kr['id']}/check-ins",
                    json={"value": 9, "status": "on_track", "comment": "after the relay died"}).status_code == 201
    os.kill(relay_pid, signal.SIGKILL)

    def shows_it_once():
        view = api.get(f"{app.url}/sessions/{session_id}/snapshots/{week}").json()
        comments = [c["comment"] for c in view.get("check_ins", [])]
        return view if "after the relay died" in comments else None

    view = wait_until(shows_it_once, timeout=60, message="the check-in committed before the relay died")
    assert [c["comment"] for c in view["check_ins"]].count("after the relay died") == 1
    assert view["objectives"][0]["key_results"][0]["current_value"] == 9.0
    assert "checkin-relay exited" in app.log.read_text()


def test_on_the_embedded_default_the_workers_share_a_process_that_is_restarted_whole(embedded_okrsnap):
    """Relays and workers in one process (the embedded default): killed, it comes back, and a
    Check-in acknowledged meanwhile still reaches the Snapshot."""
    app = embedded_okrsnap
    app.cli("user", "add", "solo@example.com", "--workspace", "Solo", "--role", "owner", "--password", PASSWORD)
    app.up("--no-demo")
    children = subprocess.run(["pgrep", "-P", str(app.process.pid), "-f", "services."], capture_output=True,
                              text=True, check=True).stdout.split()
    assert len(children) == 5  # four gunicorn masters and the workers' process
    workers = int(subprocess.run(["pgrep", "-P", str(app.process.pid), "-f", "services.background"],
                                 capture_output=True, text=True, check=True).stdout.split()[0])
    api, session_id, kr_id = _owner_with_a_key_result(app, "solo@example.com")

    os.kill(workers, signal.SIGKILL)
    assert api.post(f"{app.url}/key-results/{kr_id}/check-ins",
                    json={"value": 4, "status": "on_track"}).status_code == 201
    wait_until(lambda: _shows_only(api, app, session_id, 4.0), timeout=60,
               message="the check-in after the workers' process restarted")
    assert "workers exited" in app.log.read_text()
