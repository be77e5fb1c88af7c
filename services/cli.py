"""`okrsnap`: one command line for every service.

    okrsnap up          migrate, seed a demo on first run, start every service and worker
    okrsnap migrate     bring every service's database schema up to date
    okrsnap user add    create a user in a Workspace
    okrsnap demo        seed the demo Workspace with weeks of history
    okrsnap verify      recompute the sealed weeks' hash chains
    okrsnap dlq         list, show, replay or purge dead letters
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import click

from shared.settings import SERVICES, ConfigurationError, Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


def _containers(settings: Settings):
    from services.checkin.bootstrap import bootstrap as checkin
    from services.export.bootstrap import bootstrap as export
    from services.gateway.bootstrap import bootstrap as gateway
    from services.snapshot.bootstrap import bootstrap as snapshot

    return {"gateway": gateway(settings), "checkin": checkin(settings),
            "snapshot": snapshot(settings), "export": export(settings)}


@click.group()
def main() -> None:
    """okrsnap: sealed weekly Snapshots of your Goals/OKRs."""


@main.command()
def migrate() -> None:
    """Bring every service's database schema up to date."""
    from shared.messaging import declare_topology

    settings = _settings()
    for name, container in _containers(settings).items():
        container.migrate()
        click.echo(f"{name}: schema up to date")
    declare_topology(settings)
    click.echo(f"broker: exchanges and queues declared (namespace {settings.broker_namespace})")


@main.group()
def user() -> None:
    """Manage users."""


@user.command("add")
@click.argument("email")
@click.option("--workspace", required=True, help="Workspace name; created if it does not exist.")
@click.option("--role", type=click.Choice(["owner", "admin", "member", "viewer"]), default="member")
@click.option("--name", "display_name", default=None,
              help='Display name, e.g. "Ada Lovelace" (1-80 characters); without it: the email before "@".')
@click.password_option(help="At least 10 characters (prompted when omitted).")
def user_add(email: str, workspace: str, role: str, password: str, display_name: str | None) -> None:
    """Create a user (or add an existing one) in a Workspace."""
    from services.gateway.domain.model import IdentityError
    from services.gateway.service_layer import handlers

    gateway = _containers(_settings())["gateway"]
    gateway.migrate()  # idempotent: a fresh installation needs no separate step
    try:
        account, space = handlers.add_user(handlers.AddUser(email, password, workspace, role, display_name),
                                           uow=gateway.uow(), clock=gateway.clock)
    except IdentityError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{account.email} ({handlers.display_name_of(account)}) is {role} of {space.name} ({space.id})")


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

    settings = _settings()
    if settings.production:
        raise click.ClickException("The demo (with its published password) is refused in production.")
    containers = _containers(settings)
    for container in containers.values():
        container.migrate()
    result = seed(containers["gateway"], containers["checkin"])
    note = "seeded" if result["session"] else "already seeded"
    click.echo(f"Demo Workspace {note}. Log in as {DEMO_EMAIL} / {DEMO_PASSWORD}")


MAX_RESTARTS_PER_MINUTE = 5


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    health_url: str | None = None


def _no_control_socket() -> list[str]:
    """gunicorn >= 25.1 opens a control socket at one path under $HOME: the four services' masters
    would fight over it (an ERROR line at every start). Older releases know no such flag."""
    from gunicorn.config import KNOWN_SETTINGS

    return ["--no-control-socket"] if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else []


def process_specs(settings: Settings, web_workers: int = 2) -> list[ProcessSpec]:
    specs = []
    for service in SERVICES:
        url = settings.service_urls[service]
        bind = url.split("://", 1)[1]
        specs.append(ProcessSpec(service, [
            sys.executable, "-m", "gunicorn", "--bind", bind, "--workers", str(web_workers),
            "--threads", "4", "--timeout", "60", "--graceful-timeout", "10",
            "--access-logfile", "-", "--log-level", "warning",
            # the path without its query string: download tokens travel in the query
            "--access-logformat", '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(D)sus',
            *_no_control_socket(),
            f"services.{service}.entrypoints.app:create_app()",
        ], health_url=f"{url}/healthz"))
    for name, module in (("checkin-relay", "services.checkin.entrypoints.relay"),
                         ("snapshot-worker", "services.snapshot.entrypoints.worker"),
                         ("export-relay", "services.export.entrypoints.relay"),
                         ("export-worker", "services.export.entrypoints.worker")):
        specs.append(ProcessSpec(name, [sys.executable, "-m", module]))
    return specs


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@main.command()
@click.option("--web-workers", default=2, show_default=True, help="gunicorn workers per HTTP service")
@click.option("--no-demo", is_flag=True, help="Do not seed the demo Workspace on first run.")
def up(web_workers: int, no_demo: bool) -> None:
    """Start every service and worker as separate processes (Ctrl-C stops them all)."""
    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    containers = _containers(settings)
    for container in containers.values():
        container.migrate()
    from shared.messaging import declare_topology

    declare_topology(settings)
    mode = "embedded (SQLite + kombu SQLAlchemy transport)" if settings.database_url is None \
        and settings.embedded_broker else f"database {settings.database_for('gateway').url.split('@')[-1]}, broker {settings.broker_url.split('@')[-1]}"
    no_demo = no_demo or settings.production  # a published password never reaches production
    if not no_demo:
        from services.demo import DEMO_EMAIL, DEMO_PASSWORD, seed

        seed(containers["gateway"], containers["checkin"])
    for container in containers.values():
        container.database.dispose()  # children open their own connections

    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    env = dict(os.environ, OKRSNAP_DATA_DIR=str(settings.data_dir))
    specs = {spec.name: spec for spec in process_specs(settings, web_workers)}
    for spec in specs.values():
        children[spec.name] = subprocess.Popen(spec.argv, env=env)
    try:
        deadline = time.monotonic() + 60
        pending = [s for s in specs.values() if s.health_url]
        while pending and not stopping:
            pending = [s for s in pending if not _healthy(s.health_url)]
            dead = [n for n, p in children.items() if p.poll() is not None]
            if dead:
                raise click.ClickException(f"{', '.join(dead)} exited during start-up")
            if time.monotonic() > deadline:
                raise click.ClickException(f"not healthy after 60 s: {', '.join(s.name for s in pending)}")
            time.sleep(0.2)
        if not stopping:
            click.echo(f"okrsnap is up: open {settings.public_url}/ in your browser")
            click.echo(f"  API: {settings.public_url}/api/v1 (reference: {settings.public_url}/api/v1/docs)")
            click.echo(f"  running on {mode}")
            if not no_demo:
                click.echo(f"  Demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}")
            click.echo("Ctrl-C stops every process.")
        crashes: dict[str, list[float]] = {}
        while not stopping:
            for name, process in list(children.items()):
                if process.poll() is None:
                    continue
                # Restart a crashed process, but give up on one that keeps crashing.
                recent = [t for t in crashes.get(name, []) if time.monotonic() - t < 60] + [time.monotonic()]
                crashes[name] = recent
                if len(recent) > MAX_RESTARTS_PER_MINUTE:
                    raise click.ClickException(f"{name} keeps exiting (code {process.returncode}); stopping okrsnap")
                click.echo(f"{name} exited with code {process.returncode}; restarting it", err=True)
                children[name] = subprocess.Popen(specs[name].argv, env=env)
            time.sleep(0.5)
    finally:
        for process in children.values():
            if process.poll() is None:
                process.terminate()
        for process in children.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
