"""`okrsnap`: one command line for every service.

    okrsnap up          migrate, seed a demo on first run, start every service and worker
    okrsnap migrate     bring every service's database schema up to date
    okrsnap user        add, list, set-password, remove
    okrsnap demo        seed the demo Workspace with weeks of history
    okrsnap verify      recompute the sealed weeks' hash chains
    okrsnap dlq         list, show, replay or purge dead letters
    okrsnap status      every process (state, readiness, metrics address) and the pipeline's backlog

An expected failure (no data yet, a server out of reach, a wrong argument) is one line saying
what is wrong and what to do; `okrsnap --debug ...` (or OKRSNAP_DEBUG=1) shows the traceback.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import click

from shared.settings import ConfigurationError, Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir_candidates() -> list[Path]:
    """Where embedded data is looked for when OKRSNAP_DATA_DIR is not set: ./var, then the
    checkout's var/ (where `make run` keeps it), so that every command finds what `up` made."""
    here = Path.cwd() / "var"
    return [here] if here.resolve() == (PROJECT_ROOT / "var").resolve() else [here, PROJECT_ROOT / "var"]


def _settings(*, create: bool = False) -> Settings:
    """The settings of the environment; without OKRSNAP_DATA_DIR, the data directory found as
    data_dir_candidates() says (`create`: the first candidate when none exists yet)."""
    env = dict(os.environ)
    if not env.get("OKRSNAP_DATA_DIR"):
        found = [d for d in data_dir_candidates() if d.is_dir()]
        embedded = not env.get("OKRSNAP_DATABASE_URL")
        if not found and embedded and not create:
            looked = " and ".join(str(d) for d in data_dir_candidates())
            raise click.ClickException(f"No okrsnap data found (looked in {looked}). Start okrsnap first "
                                       "(`make run` or `okrsnap up`), or set OKRSNAP_DATA_DIR to its data directory.")
        env["OKRSNAP_DATA_DIR"] = str((found or data_dir_candidates())[0])
    try:
        return Settings.from_env(env)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


def _containers(settings: Settings):
    from services.checkin.bootstrap import bootstrap as checkin
    from services.export.bootstrap import bootstrap as export
    from services.gateway.bootstrap import bootstrap as gateway
    from services.snapshot.bootstrap import bootstrap as snapshot

    return {"gateway": gateway(settings), "checkin": checkin(settings),
            "snapshot": snapshot(settings), "export": export(settings)}


def explain(exc: BaseException) -> str:
    """One line for a failure a user can do something about."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = str(exc).lower()
    name = type(exc).__module__ + "." + type(exc).__name__
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return "The database has no okrsnap tables yet: run `okrsnap migrate` (or start okrsnap with `okrsnap up`)."
    if name.startswith("sqlalchemy") or name.startswith("psycopg"):
        if "unable to open database file" in lowered:
            return "The embedded database cannot be opened: check OKRSNAP_DATA_DIR and its permissions."
        if "does not exist" in lowered and "database" in lowered:
            return f"{text}. Create it (e.g. `createdb okrsnap`) or point OKRSNAP_DATABASE_URL at one that exists."
        if any(word in lowered for word in ("connection refused", "could not connect", "connection failed",
                                            "timeout", "name or service not known")):
            return f"Cannot reach the database ({text}). Is PostgreSQL running? Check OKRSNAP_DATABASE_URL."
        return f"The database refused: {text}"
    if name.startswith(("kombu", "amqp")) or isinstance(exc, ConnectionRefusedError):
        return f"Cannot reach the message broker ({text}). Is RabbitMQ running? Check OKRSNAP_BROKER_URL."
    if isinstance(exc, OSError):
        return text
    return f"{type(exc).__name__}: {text} (run `okrsnap --debug ...` for the traceback)"


class OkrsnapGroup(click.Group):
    """Turns an unexpected exception into one line (the traceback with --debug)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit):
            raise
        except Exception as exc:  # noqa: BLE001 - the one place every command's failures reach
            if (ctx.obj or {}).get("debug"):
                raise
            raise click.ClickException(explain(exc)) from None


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("okrsnap")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


@click.group(cls=OkrsnapGroup)
@click.version_option(_version(), "--version", prog_name="okrsnap", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, envvar="OKRSNAP_DEBUG", help="Show the traceback of a failure.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """okrsnap: sealed weekly Snapshots of your Goals/OKRs."""
    ctx.obj = {"debug": debug}


@main.command()
def migrate() -> None:
    """Bring every service's database schema up to date."""
    from shared.messaging import declare_topology

    settings = _settings(create=True)
    _create_postgres_database(settings)
    for name, container in _containers(settings).items():
        container.migrate()
        click.echo(f"{name}: schema up to date")
    declare_topology(settings)
    click.echo(f"broker: exchanges and queues declared (namespace {settings.broker_namespace})")


@main.group()
def user() -> None:
    """Manage users."""


def _gateway(create: bool = False):
    gateway = _containers(_settings(create=create))["gateway"]
    gateway.migrate()  # idempotent: a fresh installation needs no separate step
    return gateway


def _identity_errors(action):
    from services.gateway.domain.model import IdentityError

    try:
        return action()
    except IdentityError as exc:
        raise click.ClickException(exc.message) from None


@user.command("add")
@click.argument("email")
@click.option("--workspace", required=True, help="Workspace name; created if it does not exist.")
@click.option("--role", type=click.Choice(["owner", "admin", "member", "viewer"]), default="member")
@click.option("--name", "display_name", default=None,
              help='Display name, e.g. "Ada Lovelace" (1-80 characters); without it: the email before "@".')
@click.password_option(help="At least 10 characters (prompted when omitted).")
def user_add(email: str, workspace: str, role: str, password: str, display_name: str | None) -> None:
    """Create an account in a Workspace (an existing account is refused, never reset)."""
    from services.gateway.service_layer import handlers, operators

    gateway = _gateway(create=True)
    account, space = _identity_errors(lambda: operators.create_user(
        handlers.AddUser(email, password, workspace, role, display_name), uow=gateway.uow(), clock=gateway.clock))
    click.echo(f"{account.email} ({handlers.display_name_of(account)}) is {role} of {space.name} ({space.id})")


@user.command("list")
def user_list() -> None:
    """Every account with its Workspaces and roles."""
    from services.gateway.service_layer import handlers, operators

    gateway = _gateway()
    found = operators.list_users(uow=gateway.uow())
    for account, spaces in found:
        where = ", ".join(f"{name} ({role})" for name, role in spaces) or "no Workspace"
        click.echo(f"{account.email:40} {handlers.display_name_of(account):24} {where}")
    click.echo(f"{len(found)} account(s)")


@user.command("set-password")
@click.argument("email")
@click.password_option(help="At least 10 characters (prompted when omitted).")
def user_set_password(email: str, password: str) -> None:
    """Reset an account's password; every session and token of it ends."""
    from services.gateway.service_layer import operators

    gateway = _gateway()
    account = _identity_errors(lambda: operators.set_password(email, password, uow=gateway.uow(),
                                                              clock=gateway.clock))
    click.echo(f"{account.email}: password reset; its sessions and tokens ended")


@user.command("remove")
@click.argument("email")
@click.option("--yes", is_flag=True, help="do not ask")
def user_remove(email: str, yes: bool) -> None:
    """Remove an account (refused while it is the only owner of a Workspace)."""
    from services.gateway.service_layer import operators

    if not yes:
        click.confirm(f"Remove the account {email} and its memberships?", abort=True)
    gateway = _gateway()
    account = _identity_errors(lambda: operators.remove_user(email, uow=gateway.uow(), clock=gateway.clock))
    click.echo(f"{account.email}: removed")


@main.command()
def verify() -> None:
    """Recompute every sealed week's hash chain; exit 1 if any week was changed."""
    from services.snapshot.service_layer import handlers

    snapshot = _containers(_settings())["snapshot"]
    broken = 0
    with snapshot.uow() as uow:
        session_ids = uow.repo.session_ids()
    for session_id in session_ids:
        chain = handlers.verify_chain(session_id, uow=snapshot.uow())
        bad = [w["week"] for w in chain["weeks"] if not w["ok"]]
        broken += bool(bad)
        state = "ok" if not bad else f"CHANGED from {bad[0]} on"
        click.echo(f"session {session_id}: {len(chain['weeks'])} sealed weeks, {state}")
    if broken:
        raise click.ClickException(f"{broken} Session(s) have sealed weeks that no longer match their seal")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of the table.")
def status(as_json: bool) -> None:
    """Every process of this installation (state, readiness, metrics address) and the pipeline's
    backlog: outbox, queue depth, dead letters, parked events, weeks waiting to seal. Exits 1
    when a process is down or not ready."""
    import json as _json

    settings = _settings()
    report = {"data_dir": str(settings.data_dir), "processes": _process_states(settings),
              "pipeline": _pipeline(settings)}
    if as_json:
        click.echo(_json.dumps(report, indent=2))
    else:
        _print_status(report)
    if any(p["state"] != "running" or p["ready"] is not True for p in report["processes"]):
        sys.exit(1)


def _process_states(settings: Settings) -> list[dict]:
    """The HTTP services by their /healthz and /readyz, the relays and workers by the heartbeat
    files they keep under <data dir>/run (a file older than HEARTBEAT_STALE counts as stopped)."""
    import requests

    from shared.process import read_heartbeats
    from shared.settings import SERVICES

    processes = []
    for service in SERVICES:
        url = settings.service_urls[service]
        port = settings.metrics_ports.get(service)
        entry = {"name": service, "state": "down", "ready": None, "reason": "",
                 "metrics": f"{settings.metrics_host}:{port}" if port else None}
        try:
            if requests.get(f"{url}/healthz", timeout=3).status_code == 200:
                entry["state"] = "running"
            ready = requests.get(f"{url}/readyz", timeout=5)
            entry["ready"] = ready.status_code == 200
            if not entry["ready"]:
                entry["reason"] = ready.json().get("message", f"HTTP {ready.status_code}")
        except (requests.RequestException, ValueError) as exc:
            entry["reason"] = f"{url} does not answer ({exc.__class__.__name__})"
        processes.append(entry)
    for beat in read_heartbeats(settings.data_dir):
        running = beat["alive"] and beat["age"] < HEARTBEAT_STALE
        failing = ", ".join(f"{k}: {v}" for k, v in (beat.get("checks") or {}).items() if v != "ok")
        processes.append({"name": beat.get("process"), "state": "running" if running else "stopped",
                          "ready": beat.get("ready") if running else None, "metrics": beat.get("metrics"),
                          "reason": failing or ("" if running else f"last heartbeat {beat['age']:.0f} s ago")})
    return processes


HEARTBEAT_STALE = 30.0  # seconds; relays and workers rewrite their file every 2 s while their loop runs


def _pipeline(settings: Settings) -> dict:
    """What waits between the services; a part that cannot be read says why instead."""
    from services.checkin.adapters import orm as checkin_orm
    from services.export.adapters import orm as export_orm
    from services.snapshot.adapters import orm as snapshot_orm
    from services.snapshot.service_layer import handlers as snapshot_handlers
    from shared import observability

    containers = _containers(settings)
    pipeline: dict = {}
    for service, table in (("checkin", checkin_orm.outbox), ("export", export_orm.outbox)):
        try:
            with containers[service].database.session() as session:
                count, age = observability.outbox_backlog(session, table)
            pipeline[f"outbox.{service}"] = {"unsent": count, "oldest_seconds": round(age, 1)}
        except Exception as exc:  # noqa: BLE001 - reported, the rest still shown
            pipeline[f"outbox.{service}"] = {"error": explain(exc)}
    try:
        for queue, (waiting, dead) in observability.queue_depths(settings).items():
            pipeline[f"queue.{queue}"] = {"waiting": waiting, "dead_letters": dead}
    except Exception as exc:  # noqa: BLE001
        pipeline["queues"] = {"error": explain(exc)}
    snapshot = containers["snapshot"]
    try:
        pipeline["parked_events"] = snapshot_handlers.pipeline_health(uow=snapshot.uow())["parked_events"]
        with snapshot.database.session() as session:
            count, oldest = observability.weeks_waiting(session, snapshot_orm.week_closes, snapshot_orm.sealed_weeks)
        pipeline["weeks_waiting_to_seal"] = {"count": count, "oldest_ended_at": oldest.isoformat() if oldest else None}
    except Exception as exc:  # noqa: BLE001
        pipeline["snapshot"] = {"error": explain(exc)}
    return pipeline


def _print_status(report: dict) -> None:
    click.echo(f"okrsnap at {report['data_dir']}")
    click.echo(f"{'PROCESS':18}{'STATE':10}{'READY':8}{'METRICS':24}REASON")
    for p in report["processes"]:
        ready = {True: "yes", False: "no", None: "-"}[p["ready"]]
        click.echo(f"{p['name'] or '?':18}{p['state']:10}{ready:8}{p['metrics'] or '-':24}{p['reason']}")
    click.echo("pipeline:")
    for name, value in report["pipeline"].items():
        text = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in value.items()) if isinstance(value, dict) else value
        click.echo(f"  {name.replace('_', ' ')}: {text}")


@main.group()
def dlq() -> None:
    """Dead letters: messages a consumer could never apply, each with its reason."""


_QUEUE = click.option("--queue", default="snapshot.events", show_default=True,
                      type=click.Choice(["snapshot.events", "export.jobs"]), help="whose dead letters")


@dlq.command("list")
@_QUEUE
@click.option("--limit", default=100, show_default=True)
def dlq_list(queue: str, limit: int) -> None:
    """List dead letters, oldest first (they stay where they are)."""
    from shared.deadletters import peek

    letters = peek(_settings(), queue, limit)
    for letter in letters:
        s = letter.summary()
        click.echo(f"{s['position']:>4}  {s['dead_lettered_at'][:19]}  {s['event_id'] or '-':36}  "
                   f"{s['event_type'] or '-':32}  {s['reason']}")
    click.echo(f"{len(letters)} dead letter(s) shown")


@dlq.command("show")
@_QUEUE
@click.argument("which")
def dlq_show(queue: str, which: str) -> None:
    """Show one dead letter in full: WHICH is its position in `list` or its event id."""
    import json as _json

    from shared.deadletters import peek

    for letter in peek(_settings(), queue):
        if which in (str(letter.position), letter.event_id):
            click.echo(_json.dumps({**letter.summary(), "headers": {k: str(v) for k, v in letter.headers.items()},
                                    "body": letter.body.decode("utf-8", "replace")}, indent=2))
            return
    raise click.ClickException(f"no dead letter {which}")


@dlq.command("replay")
@_QUEUE
@click.argument("event_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="replay every dead letter")
def dlq_replay(queue: str, event_ids: tuple[str, ...], everything: bool) -> None:
    """Put dead letters back through their queue (idempotent consumers make it safe)."""
    from shared.deadletters import replay

    if not event_ids and not everything:
        raise click.ClickException("name the event ids to replay, or pass --all")
    count = replay(_settings(), queue, None if everything else set(event_ids))
    click.echo(f"{count} dead letter(s) replayed into {queue}")


@dlq.command("purge")
@_QUEUE
@click.option("--yes", is_flag=True, help="do not ask")
def dlq_purge(queue: str, yes: bool) -> None:
    """Delete every dead letter of the queue."""
    from shared.deadletters import purge

    if not yes:
        click.confirm(f"Delete every dead letter of {queue}?", abort=True)
    click.echo(f"{purge(_settings(), queue)} dead letter(s) purged")


@main.command()
def demo() -> None:
    """Seed the demo Workspace with several weeks of history."""
    from services.demo import DEMO_EMAIL, DEMO_PASSWORD, seed

    settings = _settings(create=True)
    if settings.production:
        raise click.ClickException("The demo (with its published password) is refused in production.")
    containers = _containers(settings)
    for container in containers.values():
        container.migrate()
    result = seed(containers["gateway"], containers["checkin"])
    note = "seeded" if result["session"] else "already seeded"
    click.echo(f"Demo Workspace {note}. Log in as {DEMO_EMAIL} / {DEMO_PASSWORD}")


class Steps:
    """`[n/total] what ... done (1.2 s)` lines, so a first start never looks stuck."""

    def __init__(self, total: int):
        self.total, self.number = total, 0
        self._open = self._interrupted = False

    def run(self, text: str, action, done=lambda result: "done"):
        self.number += 1
        line = f"[{self.number}/{self.total}] {text} ... "
        click.echo(line, nl=False)
        self._open, self._interrupted = True, False
        started = time.monotonic()
        try:
            result = action()
        finally:
            self._open = False
        # A note in between took the step's line: its end goes on a line of its own, named again.
        click.echo(f"{line if self._interrupted else ''}{done(result)} ({time.monotonic() - started:.1f} s)")
        return result

    def note(self, text: str) -> None:
        """A line said while a step runs (below it, never glued to its `...`)."""
        if self._open and not self._interrupted:
            click.echo("")
        self._interrupted = self._interrupted or self._open
        click.echo(text)


@main.command()
@click.option("--web-workers", default=None, type=click.IntRange(1, 32),
              help="gunicorn workers per HTTP service [default: 1 on the embedded default, 2 otherwise]")
@click.option("--no-demo", is_flag=True, help="Do not seed the demo Workspace on first run.")
@click.option("--verbose", is_flag=True, help="Show every process's output (request logs) here, not in log files.")
@click.option("--separate-workers", is_flag=True,
              help="Run each relay and worker in a process of its own [default on PostgreSQL and RabbitMQ; "
                   "on the embedded default they share one process]")
def up(web_workers: int | None, no_demo: bool, verbose: bool, separate_workers: bool) -> None:
    """Start every service and worker as separate processes (Ctrl-C stops them all)."""
    from services import launcher

    settings = _settings(create=True)
    embedded = settings.database_url is None and settings.embedded_broker
    web_workers = web_workers or (1 if embedded else 2)
    no_demo = no_demo or settings.production  # a published password never reaches production
    lock = launcher.InstanceLock(settings.data_dir)
    try:
        lock.acquire({"url": settings.public_url, "data_dir": str(settings.data_dir)})
    except launcher.CannotStart as exc:
        raise click.ClickException(str(exc)) from None
    try:
        problems = launcher.port_problems(settings)
        if problems:
            raise click.ClickException("cannot start:\n  " + "\n  ".join(problems))
        where = ("embedded SQLite and broker in " + str(settings.data_dir) if embedded else
                 f"database {settings.database_for('gateway').url.split('@')[-1]}, "
                 f"broker {settings.broker_url.split('@')[-1]}")
        click.echo(f"okrsnap {_version()}: starting on {where}")
        steps = Steps(4 if no_demo else 5)
        containers = _containers(settings)
        steps.run("Preparing the databases", lambda: _prepare(settings, containers))
        steps.run("Declaring the broker's exchanges and queues", lambda: _declare(settings))
        if not no_demo:
            from services.demo import seed

            steps.run("Seeding the demo Workspace", lambda: seed(containers["gateway"], containers["checkin"]),
                      done=lambda result: "done" if result.get("session") else "already there")
        for container in containers.values():
            container.database.dispose()  # children open their own connections
        code = 0
        try:
            _run(settings, steps, web_workers, verbose, no_demo, separate_workers or not embedded)
        except click.ClickException as exc:
            exc.show()
            code = exc.exit_code
    finally:
        lock.release()
    # Everything is stopped: leave now. Tearing down the interpreter (every module imported to
    # migrate and seed) would add seconds to Ctrl-C on a busy machine for nothing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _prepare(settings: Settings, containers: dict) -> None:
    _create_postgres_database(settings)
    for container in containers.values():
        container.migrate()


def _declare(settings: Settings) -> None:
    from shared.messaging import declare_topology

    declare_topology(settings)


def _create_postgres_database(settings: Settings) -> None:
    """A PostgreSQL database named in OKRSNAP_DATABASE_URL that does not exist yet is created when
    the server allows it; otherwise the message says what to run."""
    url = settings.database_for("gateway").url
    if not url.startswith("postgresql"):
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError, ProgrammingError

    target = make_url(url)
    engine = create_engine(target)
    try:
        with engine.connect():
            return
    except OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    finally:
        engine.dispose()
    server = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    except (OperationalError, ProgrammingError) as exc:
        raise click.ClickException(
            f"The database {target.database!r} does not exist and could not be created ({str(exc).splitlines()[0]}). "
            f"Create it as a PostgreSQL superuser: createdb -O {target.username or '<owner>'} {target.database}") from None
    finally:
        server.dispose()


def _run(settings: Settings, steps: Steps, web_workers: int, verbose: bool, no_demo: bool,
         separate_workers: bool) -> None:
    from services import launcher

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log_dir = None if verbose else settings.data_dir / "logs"
    specs = launcher.process_specs(settings, web_workers, separate_workers=separate_workers)
    supervisor = launcher.Supervisor(specs, env=dict(os.environ, OKRSNAP_DATA_DIR=str(settings.data_dir)),
                                     log_dir=log_dir, say=lambda line: click.echo(line, err=True))
    where = f" (logs in {log_dir})" if log_dir else ""
    steps.run(f"Starting {len(specs)} processes{where}", supervisor.start_all)
    try:
        def still_waiting(names, seconds):
            steps.note(f"      still starting after {seconds:.0f} s: {', '.join(names)} "
                       "(a first start on a busy machine takes a while)")

        steps.run("Waiting for the services to answer",
                  lambda: supervisor.wait_until_healthy(lambda: stopping, still_waiting))
        if stopping:
            return
        _say_ready(settings, no_demo, log_dir)
        while not stopping:
            supervisor.restart_crashed()
            time.sleep(0.5)
    except launcher.CannotStart as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        click.echo("\nStopping okrsnap ... ", nl=False)
        supervisor.stop_all()
        click.echo("stopped.")


def _say_ready(settings: Settings, no_demo: bool, log_dir) -> None:
    click.echo("")
    click.secho(f"okrsnap is up: open {settings.public_url}/ in your browser", bold=True)
    if not no_demo:
        from services import demo

        people = getattr(demo, "PEOPLE", ()) or ()
        logins = ", ".join(f"{p.email} ({p.role})" for p in people) or demo.DEMO_EMAIL
        click.echo(f"  Demo logins, each with the password {demo.DEMO_PASSWORD}: {logins}")
    click.echo(f"  API: {settings.public_url}/api/v1 (reference: {settings.public_url}/api/v1/docs)")
    if log_dir:
        click.echo(f"  Logs: {log_dir} (okrsnap up --verbose shows them here)")
    command = Path(sys.executable).parent / "okrsnap"
    if command.exists():
        click.echo(f"  Command line: {command} --help")
    click.echo("Ctrl-C stops everything.")


if __name__ == "__main__":
    main()
