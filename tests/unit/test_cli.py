"""The command line: one line (no traceback) for an expected failure, --debug for the traceback,
--version, the user commands that never overwrite an account, and data found from anywhere."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from services import cli
from services.cli import main as okrsnap

PASSWORD, OTHER = "correct horse battery", "another long password"


@pytest.fixture
def runner(tmp_path, monkeypatch):
    """A CLI run in an empty directory, with the checkout's own var/ out of sight."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "PROJECT_ROOT", tmp_path / "checkout")
    for name in ("OKRSNAP_DATA_DIR", "OKRSNAP_DATABASE_URL", "OKRSNAP_BROKER_URL", "OKRSNAP_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def run(runner, *args, env=None):
    return runner.invoke(okrsnap, list(args), env={"OKRSNAP_ENV": "test", **(env or {})})


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no exception escaped
    [line] = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith("Error: ")
    return line


def test_version(runner):
    result = run(runner, "--version")
    assert result.exit_code == 0 and result.output.startswith("okrsnap ")


def test_no_data_directory_is_one_line_saying_what_to_do(runner, tmp_path):
    line = one_line_error(run(runner, "verify"))
    assert "No okrsnap data found" in line and str(tmp_path / "var") in line and "okrsnap up" in line
    assert not (tmp_path / "var").exists()  # looking created nothing


def test_no_tables_yet_is_one_line_and_debug_shows_the_traceback(runner, tmp_path):
    (tmp_path / "var").mkdir()
    line = one_line_error(run(runner, "verify"))
    assert "no okrsnap tables yet" in line and "okrsnap migrate" in line

    debug = run(runner, "--debug", "verify")
    assert debug.exit_code == 1 and debug.exception is not None and "no such table" in str(debug.exception)


def test_an_unreachable_database_is_one_line(runner, tmp_path):
    line = one_line_error(run(runner, "verify", env={"OKRSNAP_DATA_DIR": str(tmp_path / "var"),
                                                     "OKRSNAP_DATABASE_URL": "postgresql://x@127.0.0.1:9/okrsnap"}))
    assert "Cannot reach the database" in line and "OKRSNAP_DATABASE_URL" in line


def test_a_wrong_argument_is_clicks_usage_line(runner):
    result = run(runner, "user", "add", "someone@example.com", "--role", "king")
    assert result.exit_code == 2 and "Invalid value for '--role'" in result.output and "Traceback" not in result.output


def test_commands_run_elsewhere_find_the_checkouts_data(runner, tmp_path, monkeypatch):
    assert run(runner, "user", "add", "ada@example.com", "--workspace", "Acme", "--role", "owner",
               "--password", PASSWORD).exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setattr(cli, "PROJECT_ROOT", tmp_path)  # the checkout whose var/ `up` made
    monkeypatch.chdir(elsewhere)

    listed = run(runner, "user", "list")
    assert listed.exit_code == 0 and "ada@example.com" in listed.output and "Acme (owner)" in listed.output


def test_user_add_refuses_an_existing_account_and_changes_nothing(runner, tmp_path):
    from services.gateway.bootstrap import bootstrap
    from services.gateway.service_layer import handlers
    from shared.settings import Settings

    assert run(runner, "user", "add", "ada@example.com", "--workspace", "Acme", "--role", "owner",
               "--password", PASSWORD).exit_code == 0
    line = one_line_error(run(runner, "user", "add", "ADA@example.com", "--workspace", "Acme", "--role", "viewer",
                              "--password", OTHER))
    assert "already has an account" in line and "nothing was changed" in line

    gateway = bootstrap(Settings.from_env({"OKRSNAP_ENV": "test", "OKRSNAP_DATA_DIR": str(tmp_path / "var")}))
    handlers.login("ada@example.com", PASSWORD, uow=gateway.uow(), settings=gateway.settings)  # password kept
    listed = run(runner, "user", "list")
    assert "Acme (owner)" in listed.output  # role kept: the Workspace still has its owner


def test_set_password_list_and_remove(runner, tmp_path):
    from services.gateway.bootstrap import bootstrap
    from services.gateway.service_layer import handlers
    from shared.settings import Settings

    for email, role in (("ada@example.com", "owner"), ("bob@example.com", "member")):
        assert run(runner, "user", "add", email, "--workspace", "Acme", "--role", role, "--name", email[:3].title(),
                   "--password", PASSWORD).exit_code == 0
    assert "password reset" in run(runner, "user", "set-password", "bob@example.com", "--password", OTHER).output
    gateway = bootstrap(Settings.from_env({"OKRSNAP_ENV": "test", "OKRSNAP_DATA_DIR": str(tmp_path / "var")}))
    with pytest.raises(handlers.LoginFailed):
        handlers.login("bob@example.com", PASSWORD, uow=gateway.uow(), settings=gateway.settings)
    handlers.login("bob@example.com", OTHER, uow=gateway.uow(), settings=gateway.settings)

    line = one_line_error(run(runner, "user", "remove", "ada@example.com", "--yes"))
    assert "only owner of Acme" in line
    assert run(runner, "user", "remove", "bob@example.com", "--yes").exit_code == 0
    listed = run(runner, "user", "list").output
    assert "bob@example.com" not in listed and "ada@example.com" in listed and "1 account(s)" in listed
    assert "No account for nobody@example.com" in one_line_error(
        run(runner, "user", "set-password", "nobody@example.com", "--password", OTHER))


def test_a_note_during_a_step_goes_below_it_and_the_step_ends_named_again(capsys):
    steps = cli.Steps(2)
    steps.run("Preparing", lambda: None)
    steps.run("Waiting for the services to answer", lambda: (steps.note("  still starting: gateway"),
                                                              steps.note("  still starting: export")))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[1/2] Preparing ... done (")
    assert lines[1:3] == ["[2/2] Waiting for the services to answer ... ", "  still starting: gateway"]
    assert lines[3] == "  still starting: export"
    assert lines[4].startswith("[2/2] Waiting for the services to answer ... done (")
