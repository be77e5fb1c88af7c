"""An export built through the real snapshot service (its store, handlers and HTTP app, fed by the
check-in service's own events) and the real export service (its store, handlers and files), read
back in each format and compared with the week view the same requester gets for the same week and
owner filter: a multi-week Session with an Initiative under two Key Results, a late amendment, a
week without a Snapshot before the baseline, and an owner filter."""
from __future__ import annotations

from datetime import timedelta

import pytest

from services.export.adapters.snapshot_client import SnapshotClient
from services.export.bootstrap import bootstrap as export_bootstrap
from services.export.domain import commands
from services.export.service_layer import handlers
from services.snapshot.entrypoints.app import create_app as snapshot_app
from shared import tokens
from shared.clock import FixedClock
from tests.conftest import make_settings
from tests.export_files import READERS, expected_items, project
from tests.integration.test_weekly_review import ANN, BOB, EVENTS, IDS, NOW, OWNER, _store
from tests.unit.export.fakes import FakeIdentities

NAMES = {str(ANN): ("Ann Lead", "ann@example.com"), str(BOB): ("Bob Stone", "bob@example.com")}


class InProcessSnapshots(SnapshotClient):
    """The export's snapshot client, answered by the snapshot service's own app in this process
    (same contract, same internal token)."""

    def __init__(self, app, secret):
        super().__init__("http://snapshot.invalid", secret)
        self.client = app.test_client()

    def _get(self, path, principal, params=None):
        response = self.client.get(path, query_string=params, headers={
            tokens.INTERNAL_HEADER: tokens.internal_token(self.internal_secret, "snapshot", principal)})
        assert response.status_code == 200, response.json
        return response.json  # the client checks it against the contract as it would over HTTP


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    store = _store(tmp_path_factory.mktemp("snapshot"), EVENTS)
    app = snapshot_app(store)
    export = export_bootstrap(make_settings(tmp_path_factory.mktemp("export")), clock=FixedClock(NOW))
    export.migrate()
    identities = FakeIdentities(workspace_name="Acme")
    identities.principals[str(ANN)] = OWNER
    for user_id, (name, email) in NAMES.items():
        identities.add(name, email, user_id)
    yield app, export, InProcessSnapshots(app, store.settings.internal_secret), identities
    export.database.dispose()
    store.database.dispose()


def _export(services, week, owner, fmt):
    app, export, snapshots, identities = services
    job = handlers.request_export(commands.RequestExport(OWNER, IDS["session"], week, owner, fmt),
                                  uow=export.uow(), clock=export.clock, snapshots=snapshots)
    later = FixedClock(NOW + timedelta(minutes=10))
    for claim in handlers.reclaim_stranded(uow=export.uow(), clock=later, lease=timedelta(minutes=5),
                                           queued_grace=timedelta(minutes=2)):
        handlers.build_export(claim, uow=export.uow(), clock=later, snapshots=snapshots, files=export.files,
                              identities=identities)
    job = handlers.get_export(OWNER, job.id, uow=export.uow())
    assert job.status == "done", job.error
    return job, READERS[fmt](export.files.path(job.file_name).read_bytes())


def _page_view(services, week, owner):
    """The week view exactly as the Snapshot page asks for it, for the same requester."""
    app = services[0]
    response = app.test_client().get(f"/sessions/{IDS['session']}/snapshots/{week}", query_string={"owner": owner},
                                     headers={tokens.INTERNAL_HEADER: tokens.internal_token(
                                         "test-internal-secret-0123456789abcdef", "snapshot", OWNER)})
    assert response.status_code == 200
    return response.json


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "json"])
@pytest.mark.parametrize("owner", ["all", str(ANN)])
def test_the_export_of_a_sealed_week_holds_the_week_view_of_its_requester(services, fmt, owner):
    week = "2026-W43"
    job, read = _export(services, week, owner, fmt)
    view = _page_view(services, week, owner)

    expected = expected_items(view, NAMES)
    assert project(read["items"], expected) == expected  # no more rows, no fewer, same order
    by_title = {(r["kind"], r["title"]): r for r in read["items"]}
    campaign = [r for r in read["items"] if r["title"] == "Campaign"]
    assert len(campaign) == 2 and {r["parent_path"] for r in campaign} == {"Grow › Revenue", "Grow › Pilots"}
    assert all(r["repeated"] == "true" and r["key_results_served"] == "2" for r in campaign)
    revenue = by_title[("Key Result", "Revenue")]
    assert (revenue["delta_progress_points"], revenue["delta_value"], revenue["status_from"], revenue["status_to"]) \
        == ("30", "30", "on_track", "at_risk")
    assert revenue["owner_name"] == "Ann Lead" and revenue["owner_email"] == "ann@example.com"
    pilots = by_title[("Key Result", "Pilots")]
    assert pilots["owner_name"] == "" and pilots["context"] == ("true" if owner != "all" else "false")

    comments = {c["comment"]: c for c in read["check_ins"]}
    assert len(read["check_ins"]) == len(view["check_ins"]) + len(view["late_amendments"])
    late = comments["late: signed on the 21st"]
    assert late["late_amendment"] == "true" and late["author_name"] == "Ann Lead"
    assert late["checked_in_at"].startswith("2026-10-21 10:00:00")

    meta = read["metadata"]
    assert meta["Baseline week (deltas compare against)"] == view["deltas"]["against"] == "2026-W41"
    assert (meta["Week"], meta["Week starts"], meta["Week ends"]) == ("2026-W43", "2026-10-19", "2026-10-25")
    assert meta["State"].startswith("sealed") and meta["Seal hash"] == view["seal"]["content_hash"]
    assert meta["Previous seal hash"] == view["seal"]["previous_hash"]
    assert meta["Owner filter"] == ("all owners" if owner == "all" else "Ann Lead <ann@example.com>")
    assert meta["Generated by"] == "Ann Lead <ann@example.com>" and meta["Workspace"] == "Acme"
    suffix = {"csv": "csv.zip"}.get(fmt, fmt)
    assert job.download_name == f"Q4-2026-W43-{'all' if owner == 'all' else 'Ann Lead'}.{suffix}"


def test_a_filtered_week_with_a_new_key_result_names_it_new_against_its_baseline(services):
    job, read = _export(services, "2026-W44", str(BOB), "json")
    view = _page_view(services, "2026-W44", str(BOB))
    expected = expected_items(view, NAMES)
    assert project(read["items"], expected) == expected
    assert [(r["kind"], r["title"], r["context"]) for r in read["items"]] == [
        ("Objective", "Grow", "true"), ("Key Result", "Churn", "false")]
    assert read["items"][1]["new"] == "true" and read["metadata"]["Baseline week (deltas compare against)"] == "2026-W43"
    assert read["metadata"]["Owner filter"] == "Bob Stone <bob@example.com>"
