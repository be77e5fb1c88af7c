"""The embedded data directory is 0700 and its SQLite files 0600 (issue 11: another local user
read private titles and password hashes from a 0755 directory of 0644 files)."""
import os
import stat

from services.gateway.bootstrap import bootstrap
from services.gateway.service_layer import handlers
from tests.conftest import make_settings


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_embedded_data_directory_and_its_sqlite_files_are_private(tmp_path):
    old = os.umask(0o022)  # the usual umask, whatever the test runner's
    try:
        settings = make_settings(tmp_path)
        container = bootstrap(settings)
        container.migrate()
        handlers.add_user(handlers.AddUser("a@example.com", "a long enough password", "Acme", "owner"),
                          uow=container.uow(), clock=container.clock)
        data_dir = settings.data_dir
        assert _mode(data_dir) == 0o700
        files = [p for p in data_dir.iterdir() if p.name.startswith("gateway.db")]
        assert {p.name for p in files} >= {"gateway.db", "gateway.db-wal"}
        assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
        container.database.dispose()
    finally:
        os.umask(old)


def test_an_existing_open_data_directory_is_closed_at_start(tmp_path):
    data_dir = tmp_path / "var"
    data_dir.mkdir(mode=0o755)
    (data_dir / "gateway.db").touch(mode=0o644)
    os.chmod(data_dir / "gateway.db", 0o644)
    container = bootstrap(make_settings(tmp_path))
    container.migrate()
    try:
        assert _mode(data_dir) == 0o700 and _mode(data_dir / "gateway.db") == 0o600
    finally:
        container.database.dispose()
