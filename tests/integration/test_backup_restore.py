"""deploy/README.md's backup and restore, done for real on PostgreSQL: the demo seeded and its weeks
sealed, `pg_dump -Fc` of the database, `pg_restore --no-owner --exit-on-error` into an empty one
(what the guide runs inside the postgres container). The restored copy holds the same sealed
weeks with a valid hash chain, still refuses changes to them, needs no migration, and signs the
demo user in with the same password."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from services import demo
from services.checkin.bootstrap import bootstrap as checkin_bootstrap
from services.export.bootstrap import bootstrap as export_bootstrap
from services.gateway.bootstrap import bootstrap as gateway_bootstrap
from services.gateway.service_layer import handlers as identity
from services.snapshot.bootstrap import bootstrap as snapshot_bootstrap
from services.snapshot.service_layer import handlers as snapshot
from shared.events import decode
from tests.conftest import fresh_database, make_settings
from tests.integration.test_demo import NOW

pytestmark = pytest.mark.integration


def _libpq(url: str) -> str:
    """The SQLAlchemy URL as pg_dump and pg_restore take it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _containers(tmp_path, url):
    from shared.clock import FixedClock

    settings = make_settings(tmp_path, OKRSNAP_DATABASE_URL=url)
    return (gateway_bootstrap(settings), checkin_bootstrap(settings, clock=FixedClock(NOW)),
            snapshot_bootstrap(settings, clock=FixedClock(NOW)), export_bootstrap(settings), settings)


def _dispose(*containers):
    for container in containers:
        container.database.dispose()


def test_a_dump_restores_into_an_empty_database_with_its_sealed_weeks_intact(tmp_path, postgres_server_url):
    tools = [shutil.which(name) for name in ("pg_dump", "pg_restore")]
    if not all(tools):
        pytest.fail("pg_dump and pg_restore are needed (Debian: postgresql-client)")
    dump = tmp_path / "okrsnap.dump"
    with fresh_database(postgres_server_url, "okrsnap_backup") as original_url:
        gateway, live, store, export, _ = _containers(tmp_path / "a", original_url)
        for container in (gateway, live, store, export):
            container.migrate()
        seeded = demo.seed(gateway, live)
        with live.database.session() as db:
            bodies = db.execute(text("SELECT body FROM checkin.outbox ORDER BY id")).scalars().all()
        store.apply_batch([decode(json.loads(b) if isinstance(b, str) else b) for b in bodies])
        session_id = seeded["session"].id
        before = snapshot.verify_chain(session_id, uow=store.uow())
        assert before["valid"] and len(before["weeks"]) == demo.WEEKS_OF_HISTORY  # every ended week
        _dispose(gateway, live, store, export)
        subprocess.run(["pg_dump", "-Fc", "-f", str(dump), _libpq(original_url)], check=True, timeout=120)

    with fresh_database(postgres_server_url, "okrsnap_restore") as restored_url:
        done = subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", "-d", _libpq(restored_url), str(dump)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        gateway, live, store, export, settings = _containers(tmp_path / "b", restored_url)
        try:
            for container in (gateway, live, store, export):
                container.migrate()  # already up to date: a no-op
            after = snapshot.verify_chain(session_id, uow=store.uow())
            assert after["valid"]
            assert [(w["week"], w["content_hash"]) for w in after["weeks"]] == \
                [(w["week"], w["content_hash"]) for w in before["weeks"]]
            token, user = identity.login(demo.DEMO_EMAIL, demo.DEMO_PASSWORD, uow=gateway.uow(), settings=settings)
            assert token and user.id == seeded["user"].id
            # the triggers that keep sealed weeks unchanged came back with the schema
            engine = create_engine(restored_url)
            try:
                with engine.connect() as conn, pytest.raises(DBAPIError, match="sealed week|read-only"):
                    conn.execute(text("UPDATE snapshot.check_ins SET value = value + 1 WHERE session_id = :sid"),
                                 {"sid": session_id})
            finally:
                engine.dispose()
        finally:
            _dispose(gateway, live, store, export)
