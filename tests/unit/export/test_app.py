"""The export HTTP API on embedded SQLite, with a fake snapshot service."""
import csv
import io
import uuid
import zipfile
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from services.export.bootstrap import bootstrap
from services.export.domain.model import MAX_ACTIVE_PER_REQUESTER
from services.export.entrypoints.app import attachment, create_app
from services.export.service_layer import handlers
from shared import tokens
from shared.clock import FixedClock
from tests.conftest import make_settings
from tests.unit.export.fakes import FakeSnapshots, key_result, objective, week_view


@pytest.fixture
def container(tmp_path):
    container = bootstrap(make_settings(tmp_path))
    container.migrate()
    container.snapshots = FakeSnapshots()
    yield container
    container.database.dispose()


@pytest.fixture
def client(container):
    return create_app(container).test_client()


@pytest.fixture
def workspace():
    return uuid.uuid4()


@pytest.fixture
def session_id(container, workspace):
    return container.snapshots.add_session(workspace)


def as_user(container, principal):
    token = tokens.internal_token(container.settings.internal_secret, "export", principal)
    return {tokens.INTERNAL_HEADER: token}


@pytest.fixture
def alice(container, workspace):
    return as_user(container, tokens.Principal(str(uuid.uuid4()), {str(workspace): "member"}))


def post_export(client, headers, session_id, **body):
    return client.post("/exports", json={"session_id": str(session_id), "week": "2026-W48", **body},
                       headers=headers)


def build(container, session_id, view):
    """Runs what the worker does, with a clock past the queued grace period."""
    container.snapshots.views[(session_id, "2026-W48")] = view
    later = FixedClock(datetime.now(timezone.utc) + timedelta(hours=1))
    for claim in handlers.reclaim_stranded(uow=container.uow(), clock=later, lease=timedelta(minutes=5),
                                           queued_grace=timedelta(minutes=2)):
        handlers.build_export(claim, uow=container.uow(), clock=later, snapshots=container.snapshots,
                              files=container.files)


def download_token(container, job_id, **overrides):
    options = dict(typ=tokens.DOWNLOAD, audience=tokens.DOWNLOAD_AUDIENCE, subject=str(job_id), ttl=60)
    secret = overrides.pop("secret", container.settings.download_secret)
    options.update(overrides)
    return tokens.issue(secret, **options)


@pytest.fixture
def done_job(container, client, alice, session_id):
    job = post_export(client, alice, session_id).json
    build(container, session_id, week_view(objectives=[
        objective("=cmd|' /C calc'!A0", key_results=[key_result("ARR")])]))
    return job


# --- requesting and reading ---------------------------------------------------------------

def test_request_answers_202_with_the_queued_job(client, alice, session_id):
    response = post_export(client, alice, session_id)

    assert response.status_code == 202
    job = response.json
    assert {k: job[k] for k in ("session_id", "week", "owner", "format", "status", "download_url")} == {
        "session_id": str(session_id), "week": "2026-W48", "owner": "all", "format": "csv",
        "status": "queued", "download_url": None}
    assert client.get(f"/exports/{job['id']}", headers=alice).json == job


@pytest.mark.parametrize("body, field", [
    ({"week": "2026-48"}, "week"), ({"week": "2026-W54"}, "week"), ({"week": "2026-W48\n"}, "week"),
    ({"owner": "bob"}, "owner"),
    ({"format": "pdf"}, "format"), ({"status": "done"}, "status"), ({"requested_by": "x"}, "requested_by"),
])
def test_invalid_or_unknown_fields_are_refused(client, alice, session_id, body, field):
    response = post_export(client, alice, session_id, **body)

    assert response.status_code == 422
    assert field in {e["field"] for e in response.json["errors"]}


def test_unknown_or_foreign_session_is_404(container, client, alice):
    foreign = container.snapshots.add_session(uuid.uuid4())
    for session_id in (uuid.uuid4(), foreign):
        response = post_export(client, alice, session_id)
        assert (response.status_code, response.json["message"]) == (404, "Session not found.")


def test_snapshot_service_down_is_503(container, client, alice, session_id):
    container.snapshots.down = True

    assert post_export(client, alice, session_id).status_code == 503


def test_anonymous_request_is_401_and_no_internal_token_is_401(container, client, session_id):
    assert post_export(client, as_user(container, tokens.Principal(None)), session_id).status_code == 401
    assert post_export(client, {}, session_id).status_code == 401


def test_sixth_active_export_is_429(client, alice, session_id):
    for _ in range(MAX_ACTIVE_PER_REQUESTER):
        assert post_export(client, alice, session_id).status_code == 202

    response = post_export(client, alice, session_id)

    assert response.status_code == 429
    assert "wait for one to finish" in response.json["message"]


def test_another_user_cannot_see_the_job(container, client, alice, session_id, workspace):
    job = post_export(client, alice, session_id).json
    bob = as_user(container, tokens.Principal(str(uuid.uuid4()), {str(workspace): "owner"}))

    assert client.get(f"/exports/{job['id']}", headers=bob).status_code == 404
    assert client.get(f"/exports/{uuid.uuid4()}", headers=alice).status_code == 404


# --- downloading --------------------------------------------------------------------------

def test_a_done_job_links_to_its_file(container, client, alice, done_job):
    job = client.get(f"/exports/{done_job['id']}", headers=alice).json
    assert (job["status"], job["row_count"]) == ("done", 2)  # the Objective and its Key Result
    link = urlsplit(job["download_url"])
    assert f"{link.scheme}://{link.netloc}" == container.settings.public_url
    assert link.path == f"/api/v1/exports/{job['id']}/download"
    claims = tokens.verify(container.settings.download_secret, parse_qs(link.query)["token"][0],
                           typ=tokens.DOWNLOAD, audience=tokens.DOWNLOAD_AUDIENCE)
    assert claims["sub"] == job["id"]
    assert claims["exp"] - claims["iat"] == container.settings.download_ttl
    assert datetime.fromisoformat(job["download_expires_at"]).timestamp() <= claims["exp"]

    anonymous = as_user(container, tokens.Principal(None))  # the gateway forwards downloads so
    response = client.get(link.path.removeprefix("/api/v1") + "?" + link.query, headers=anonymous)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zip"
    assert response.headers["Content-Disposition"] == \
        "attachment; filename=\"Q4-2026-W48-all.csv.zip\"; filename*=UTF-8''Q4-2026-W48-all.csv.zip"
    assert response.headers["Cache-Control"] == "no-store"
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        assert archive.namelist() == ["items.csv", "check_ins.csv", "metadata.csv"]
        rows = list(csv.DictReader(io.StringIO(archive.read("items.csv").decode("utf-8-sig"), newline="")))
    assert [(r["Kind"], r["Title"]) for r in rows] == [("Objective", "'=cmd|' /C calc'!A0"), ("Key Result", "ARR")]


@pytest.mark.parametrize("fmt, media_type, extension", [
    ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    ("json", "application/json", "json"),
])
def test_each_format_downloads_with_its_type_and_a_name_that_says_what_it_is(
        container, client, alice, workspace, fmt, media_type, extension):
    session_id = container.snapshots.add_session(workspace, name="Q4 “Growth”/Ops")
    job = post_export(client, alice, session_id, format=fmt, owner="unassigned").json
    build(container, session_id, week_view(session_name="Q4 “Growth”/Ops",
                                           objectives=[objective(key_results=[key_result("ARR")])]))
    link = urlsplit(client.get(f"/exports/{job['id']}", headers=alice).json["download_url"])

    response = client.get(link.path.removeprefix("/api/v1") + "?" + link.query,
                          headers=as_user(container, tokens.Principal(None)))

    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] == media_type
    name = f"Q4 “Growth”_Ops-2026-W48-unassigned.{extension}"
    assert response.headers["Content-Disposition"] == attachment(name)
    assert "filename*=UTF-8''Q4%20%E2%80%9CGrowth%E2%80%9D_Ops-2026-W48-unassigned." in \
        response.headers["Content-Disposition"]


@pytest.fixture
def anonymous(container):
    return as_user(container, tokens.Principal(None))


@pytest.mark.parametrize("overrides", [
    {"typ": tokens.INTERNAL},
    {"typ": tokens.ACCESS, "audience": tokens.API_AUDIENCE},
    {"audience": tokens.API_AUDIENCE},
    {"audience": tokens.internal_audience("export")},
    {"ttl": -60},
    {"secret": "another-secret-0123456789abcdef-0123"},
], ids=["internal-typ", "access-token", "api-audience", "internal-audience", "expired", "wrong-secret"])
def test_a_wrong_token_gets_no_file(container, client, anonymous, done_job, overrides):
    token = download_token(container, done_job["id"], **overrides)

    response = client.get(f"/exports/{done_job['id']}/download?token={token}", headers=anonymous)

    assert response.status_code == 401
    assert response.is_json and "ARR" not in response.get_data(as_text=True)


def test_a_token_for_another_job_gets_no_file(container, client, anonymous, done_job):
    token = download_token(container, uuid.uuid4())

    assert client.get(f"/exports/{done_job['id']}/download?token={token}", headers=anonymous).status_code == 401
    assert client.get(f"/exports/{done_job['id']}/download?token=garbage", headers=anonymous).status_code == 401
    assert client.get(f"/exports/{done_job['id']}/download", headers=anonymous).status_code == 422


def test_unknown_job_is_404_and_unfinished_job_is_409(container, client, alice, anonymous, session_id):
    unknown = uuid.uuid4()
    response = client.get(f"/exports/{unknown}/download?token={download_token(container, unknown)}",
                          headers=anonymous)
    assert response.status_code == 404

    queued = post_export(client, alice, session_id).json["id"]
    response = client.get(f"/exports/{queued}/download?token={download_token(container, queued)}",
                          headers=anonymous)
    assert response.status_code == 409


@pytest.mark.parametrize("name", ['okrsnap-"x".csv', "okrsnap-\r\nSet-Cookie: a=b.csv", "Größe 2026.csv"])
def test_content_disposition_carries_no_quotes_or_line_breaks(name):
    header = attachment(name)

    assert "\r" not in header and "\n" not in header
    fallback = header.split('filename="', 1)[1].split('"', 1)[0]
    assert set(fallback) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    encoded = header.split("filename*=UTF-8''", 1)[1]
    assert '"' not in encoded and ";" not in encoded and " " not in encoded


# --- the job: links on okrsnap's clock, the list, cancelling, retention --------------------

def test_the_download_link_expires_on_okrsnaps_clock(container, client, alice, anonymous, done_job):
    moment = (datetime.now(timezone.utc) + timedelta(days=2)).replace(microsecond=0)  # not the wall clock
    container.clock = FixedClock(moment)
    job = client.get(f"/exports/{done_job['id']}", headers=alice).json
    link = urlsplit(job["download_url"])
    path = link.path.removeprefix("/api/v1") + "?" + link.query
    assert datetime.fromisoformat(job["download_expires_at"]) == moment + timedelta(
        seconds=container.settings.download_ttl)

    container.clock.advance(seconds=container.settings.download_ttl)
    assert client.get(path, headers=anonymous).status_code == 200
    container.clock.advance(seconds=tokens.LEEWAY + 1)
    response = client.get(path, headers=anonymous)
    assert response.status_code == 401 and "expired" in response.json["message"]


def test_the_job_list_shows_ones_own_exports_newest_first_without_links(
        container, client, alice, workspace, session_id, done_job):
    bob = as_user(container, tokens.Principal(str(uuid.uuid4()), {str(workspace): "member"}))
    post_export(client, bob, session_id)
    newer = post_export(client, alice, session_id, format="json").json

    page = client.get("/exports", headers=alice)

    assert page.status_code == 200
    assert [(j["id"], j["status"]) for j in page.json["items"]] == [(newer["id"], "queued"), (done_job["id"], "done")]
    assert (page.json["total"], page.json["limit"], page.json["offset"]) == (2, 20, 0)
    assert all(j["download_url"] is None for j in page.json["items"])  # a link only on the job itself
    assert page.json["items"][1]["progress"] == 100 and page.json["items"][1]["file_expires_at"]
    assert client.get(f"/exports?session_id={uuid.uuid4()}", headers=alice).json["total"] == 0
    for bad in ("limit=0", "limit=101", "offset=-1", "session_id=nope", "status=done"):
        response = client.get(f"/exports?{bad}", headers=alice)
        assert response.status_code == 422, bad
        assert response.json["errors"][0]["field"] == bad.split("=")[0], bad


def test_cancelling_an_export(container, client, alice, workspace, session_id, done_job):
    queued = post_export(client, alice, session_id).json
    bob = as_user(container, tokens.Principal(str(uuid.uuid4()), {str(workspace): "admin"}))

    assert client.post(f"/exports/{queued['id']}/cancel", headers=bob).status_code == 404
    response = client.post(f"/exports/{queued['id']}/cancel", headers=alice)
    assert response.status_code == 200
    assert (response.json["status"], response.json["error"]) == ("cancelled", "Cancelled by its requester.")
    again = client.post(f"/exports/{queued['id']}/cancel", headers=alice)
    assert again.status_code == 409 and "cancelled" in again.json["message"]
    assert client.post(f"/exports/{done_job['id']}/cancel", headers=alice).status_code == 409


def test_a_file_past_its_retention_is_gone_and_the_job_says_so(container, client, alice, anonymous, done_job):
    link = urlsplit(client.get(f"/exports/{done_job['id']}", headers=alice).json["download_url"])
    later = FixedClock(datetime.now(timezone.utc) + timedelta(days=30))
    assert handlers.delete_past_retention(uow=container.uow(), clock=later, files=container.files) == 1

    response = client.get(link.path.removeprefix("/api/v1") + "?" + link.query, headers=anonymous)
    assert response.status_code == 410 and "retention period of 7 days" in response.json["message"]
    job = client.get(f"/exports/{done_job['id']}", headers=alice).json
    assert (job["status"], job["download_url"]) == ("expired", None)
    assert list(container.files.directory.iterdir()) == []


def test_a_link_signed_with_the_previous_download_key_still_works_while_it_is_rotated_out(
        tmp_path, alice, workspace):
    previous = "the-previous-download-secret-0123456789"
    container = bootstrap(make_settings(tmp_path / "rotated", OKRSNAP_DOWNLOAD_SECRET_PREVIOUS=previous))
    container.migrate()
    container.snapshots = FakeSnapshots()
    session = container.snapshots.add_session(workspace)
    client = create_app(container).test_client()
    job = post_export(client, alice, session).json
    build(container, session, week_view(objectives=[objective(key_results=[key_result("ARR")])]))
    anyone = as_user(container, tokens.Principal(None))
    old = tokens.issue(previous, typ=tokens.DOWNLOAD, audience=tokens.DOWNLOAD_AUDIENCE, subject=job["id"], ttl=60)
    assert client.get(f"/exports/{job['id']}/download?token={old}", headers=anyone).status_code == 200
    container.database.dispose()
