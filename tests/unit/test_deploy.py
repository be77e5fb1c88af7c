"""The deployment files hold together: docker-compose.yml, deploy/Dockerfile,
deploy/gunicorn.conf.py, .env.example, .gitignore, .dockerignore, and shared/healthcheck.py.

No Docker engine is needed: the compose file is parsed and interpolated here the way
`docker compose` does it, every command is traced to the code it runs, and the environment it
sets is fed to the real settings parser.
"""
from __future__ import annotations

import glob
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from shared import healthcheck
from shared.settings import DEFAULT_PORTS, SERVICES, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
ENV_EXAMPLE = ROOT / ".env.example"
GITIGNORE = ROOT / ".gitignore"
DOCKERIGNORE = ROOT / ".dockerignore"
SETTINGS_SOURCE = ROOT / "shared" / "settings.py"

OKRSNAP_SECRETS = {
    "OKRSNAP_INTERNAL_SECRET": "dummy-internal-secret-0123456789abcdef",
    "OKRSNAP_ACCESS_TOKEN_SECRET": "dummy-access-token-secret-0123456789abcdef",
    "OKRSNAP_DOWNLOAD_SECRET": "dummy-download-secret-0123456789abcdef",
    "OKRSNAP_EVENT_SIGNING_KEY": "dummy-event-signing-key-0123456789abcdef",
}
# The servers' passwords, from .env as well: never written into the compose file.
SERVER_PASSWORDS = {
    "POSTGRES_PASSWORD": "dummy-postgres-password-0123",
    "RABBITMQ_PASSWORD": "dummy-rabbitmq-password-0123",
    "REDIS_PASSWORD": "dummy-redis-password-0123",
}
DUMMY_SECRETS = OKRSNAP_SECRETS | SERVER_PASSWORDS
# .env names for the servers' credentials: interpolated wherever a server or a URL needs them.
SERVER_CREDENTIALS = {"POSTGRES_USER", "POSTGRES_DB", "RABBITMQ_USER", *SERVER_PASSWORDS}

HTTP_SERVICES = {"gateway", "checkin", "snapshot", "export"}
BACKGROUND_SERVICES = {"checkin-relay", "snapshot-worker", "export-relay", "export-worker"}
SCALABLE_WORKERS = {"snapshot-worker", "export-worker"}
OKRSNAP_SERVICES = HTTP_SERVICES | BACKGROUND_SERVICES | {"migrate"}
INFRA_SERVICES = {"postgres", "rabbitmq", "redis"}
PUBLISHING = {"gateway": {8080}, "rabbitmq": {15672}}

# Variables that belong to the third-party images, allowed on their service only.
IMAGE_VARIABLES = {
    "postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_INITDB_ARGS",
                 "POSTGRES_HOST_AUTH_METHOD", "PGDATA"},
    "rabbitmq": {"RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS", "RABBITMQ_DEFAULT_VHOST"},
    "redis": {"REDIS_PASSWORD"},  # read by its command and healthcheck (--requirepass, REDISCLI_AUTH)
}
# okrsnap variables that are not configuration of shared/settings.py, and where they are read.
OTHER_READERS = {
    "OKRSNAP_BIND": "deploy/gunicorn.conf.py",
    "OKRSNAP_WEB_CONCURRENCY": "deploy/gunicorn.conf.py",
    "OKRSNAP_WEB_THREADS": "deploy/gunicorn.conf.py",
    "OKRSNAP_WEB_TIMEOUT": "deploy/gunicorn.conf.py",
    "OKRSNAP_FORWARDED_ALLOW_IPS": "deploy/gunicorn.conf.py",
    "OKRSNAP_LOG_LEVEL": "shared/process.py",
    "OKRSNAP_HEARTBEAT_FILE": "shared/process.py",  # touched by the relays' and workers' loops
}


# ---------------------------------------------------------------------------------------------
# Compose file: loading and interpolation (the subset of the compose spec this file may use)
# ---------------------------------------------------------------------------------------------

class MissingVariable(Exception):
    pass


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


def _interpolate_string(value: str, env: dict[str, str]) -> str:
    def substitute(match: re.Match) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg, current = match.group("op"), match.group("arg"), env.get(name)
        if op == ":-":
            return current if current else arg
        if op == "-":
            return current if current is not None else arg
        if op == ":?" and not current or op == "?" and current is None:
            raise MissingVariable(f"{name}: {arg}")
        return current or ""

    return _INTERPOLATION.sub(substitute, value)


def interpolate(node, env: dict[str, str]):
    if isinstance(node, str):
        return _interpolate_string(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node


def variables_in(node) -> list[tuple[str, str | None]]:
    """Every ${VAR} / $VAR in the file, with its operator (None, ':-', '-', ':?', '?')."""
    found = []
    if isinstance(node, str):
        for match in _INTERPOLATION.finditer(node):
            if not match.group("escaped"):
                found.append((match.group("name") or match.group("bare"), match.group("op")))
    elif isinstance(node, list):
        for item in node:
            found += variables_in(item)
    elif isinstance(node, dict):
        for value in node.values():
            found += variables_in(value)
    return found


@pytest.fixture(scope="module")
def raw_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose(raw_compose) -> dict:
    return interpolate(raw_compose, DUMMY_SECRETS)


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


def environment_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command_of(service: dict) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def healthcheck_of(service: dict) -> list[str]:
    check = service.get("healthcheck") or {}
    if check.get("disable"):
        return []
    test = check.get("test") or []
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    return [str(part) for part in test]


def published_targets(service: dict) -> set[int]:
    targets = set()
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            targets.add(int(str(port["target"])))
        else:
            targets.add(int(str(port).split("/")[0].rsplit(":", 1)[-1]))
    return targets


def test_compose_file_is_compose_spec_with_every_process(raw_compose, services):
    assert "version" not in raw_compose, "the compose spec has no version: key"
    assert set(services) == OKRSNAP_SERVICES | INFRA_SERVICES


# ---------------------------------------------------------------------------------------------
# Images and builds
# ---------------------------------------------------------------------------------------------

def test_every_service_has_an_image_or_an_existing_build(services):
    for name, service in services.items():
        build = service.get("build")
        assert build or service.get("image"), f"{name}: neither image nor build"
        if build:
            if isinstance(build, str):
                build = {"context": build}
            context = (ROOT / build.get("context", ".")).resolve()
            assert context.is_dir(), f"{name}: build context {context} does not exist"
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
    assert services["postgres"]["image"] == "postgres:16"
    assert services["rabbitmq"]["image"] == "rabbitmq:3.13-management"
    assert services["redis"]["image"].startswith("redis:7")
    for name in OKRSNAP_SERVICES:
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name


# ---------------------------------------------------------------------------------------------
# Commands -> code in the repository (files others write may not exist yet: named per service)
# ---------------------------------------------------------------------------------------------

APP_SPEC = re.compile(r"^(?P<module>[A-Za-z_][\w.]*):(?P<attr>[A-Za-z_]\w*)(?P<call>\(\))?$")


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__main__.py"):
        if candidate.is_file():
            return candidate
    return None


def _problems_with_argv(argv: list[str], copies: dict[str, str]) -> list[str]:
    """What in this argv does not exist in the repository (empty list: all of it exists)."""
    if not argv:
        return ["no command"]
    if argv[0] in ("python", "python3") and len(argv) >= 3 and argv[1] == "-m":
        module = argv[2]
        return [] if _module_file(module) else [f"`python -m {module}`: no {module.replace('.', '/')}.py"]
    if argv[0] == "gunicorn":
        problems = []
        specs = [arg for arg in argv[1:] if APP_SPEC.match(arg)]
        if len(specs) != 1:
            return [f"gunicorn needs exactly one app spec, found {specs}"]
        match = APP_SPEC.match(specs[0])
        path = ROOT.joinpath(*match["module"].split(".")).with_suffix(".py")
        if not path.is_file():
            problems.append(f"gunicorn app {specs[0]}: {path.relative_to(ROOT)} does not exist")
        elif not re.search(rf"^def {match['attr']}\(", path.read_text(), re.MULTILINE):
            problems.append(f"gunicorn app {specs[0]}: {path.relative_to(ROOT)} has no `def {match['attr']}`")
        for flag in ("-c", "--config"):
            if flag in argv:
                config = argv[argv.index(flag) + 1]
                if copies.get(config) != "deploy/gunicorn.conf.py":
                    problems.append(f"gunicorn config {config} is not where deploy/Dockerfile copies "
                                    "deploy/gunicorn.conf.py")
        if "-c" not in argv and "--config" not in argv:
            problems.append("gunicorn runs without -c (deploy/gunicorn.conf.py)")
        return problems
    if argv[0] == "okrsnap":
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("scripts", {})
        if "okrsnap" not in scripts:
            return ["pyproject.toml declares no `okrsnap` console script"]
        module, _, function = scripts["okrsnap"].partition(":")
        path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
        if not path.is_file():
            return [f"console script okrsnap = {scripts['okrsnap']}: {path.relative_to(ROOT)} does not exist"]
        source = path.read_text()
        problems = []
        if not re.search(rf"^def {function}\(", source, re.MULTILINE):
            problems.append(f"{path.relative_to(ROOT)} has no `def {function}`")
        if len(argv) > 1 and not re.search(
                rf"^def {re.escape(argv[1])}\(|command\(\s*['\"]{re.escape(argv[1])}['\"]", source, re.MULTILINE):
            problems.append(f"{path.relative_to(ROOT)} declares no `{argv[1]}` subcommand")
        return problems
    return [f"unknown command {argv[0]!r}"]


@pytest.mark.parametrize("name", sorted(OKRSNAP_SERVICES))
def test_command_runs_code_that_exists(services, dockerfile, name):
    problems = _problems_with_argv(command_of(services[name]), dockerfile.copy_destinations)
    assert not problems, f"{name}: " + "; ".join(problems)


def test_expected_processes(services):
    expected = {
        "gateway": "services.gateway.entrypoints.app:create_app()",
        "checkin": "services.checkin.entrypoints.app:create_app()",
        "snapshot": "services.snapshot.entrypoints.app:create_app()",
        "export": "services.export.entrypoints.app:create_app()",
        "checkin-relay": "python -m services.checkin.entrypoints.relay",
        "snapshot-worker": "python -m services.snapshot.entrypoints.worker",
        "export-relay": "python -m services.export.entrypoints.relay",
        "export-worker": "python -m services.export.entrypoints.worker",
        "migrate": "okrsnap migrate",
    }
    for name, text in expected.items():
        argv = command_of(services[name])
        if name in HTTP_SERVICES:
            assert argv[0] == "gunicorn" and argv[-1] == text, name
        else:
            assert argv == text.split(), name


@pytest.mark.parametrize("name", sorted(HTTP_SERVICES | BACKGROUND_SERVICES | INFRA_SERVICES))
def test_healthcheck_runs_code_that_exists(services, name):
    test = healthcheck_of(services[name])
    assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"
    if name in INFRA_SERVICES:
        return
    assert test[0] == "CMD" and test[1:4] == ["python", "-m", "shared.healthcheck"], name
    assert not _problems_with_argv(test[1:], {})


# ---------------------------------------------------------------------------------------------
# Environment: every name is read by the code (or belongs to the image it is given to)
# ---------------------------------------------------------------------------------------------

def _settings_reads(name: str) -> bool:
    source = SETTINGS_SOURCE.read_text()
    if re.search(rf"\b{name}\b", source):
        return True
    # Per-service names are built in f-strings: f"OKRSNAP_{name.upper()}_URL" for name in SERVICES.
    suffixes = re.findall(r"OKRSNAP_\{[^}]*\}_([A-Z_]+)", source)
    return name in {f"OKRSNAP_{service.upper()}_{suffix}" for service in SERVICES for suffix in suffixes}


def _read_by(name: str) -> list[str]:
    if _settings_reads(name):
        return ["shared/settings.py"]
    where = OTHER_READERS.get(name)
    path = ROOT / where if where else None
    if path is None or not path.is_file():
        return []
    return [where] if re.search(rf"['\"]{name}['\"]", path.read_text()) else []  # a string literal


def _all_variable_uses(raw_compose) -> list[tuple[str, str, str]]:
    """(service, variable, how) for every environment key and every ${VAR} in the file."""
    uses = []
    for name, service in raw_compose["services"].items():
        for key in environment_of(service):
            uses.append((name, key, "environment key"))
        for variable, _op in variables_in(service):
            uses.append((name, variable, "${} interpolation"))
    for key, value in raw_compose.items():
        if key != "services":
            uses += [("<top level>", variable, "${} interpolation") for variable, _ in variables_in(value)]
    return uses


def test_every_variable_is_read_by_the_code_or_the_image(raw_compose):
    unread = []
    for service, variable, how in _all_variable_uses(raw_compose):
        if how == "${} interpolation" and variable in SERVER_CREDENTIALS:
            continue  # a .env name, listed in .env.example (checked below)
        if service in IMAGE_VARIABLES:
            if variable not in IMAGE_VARIABLES[service]:
                unread.append(f"{service}: {variable} ({how}) is not a {service} image variable")
            continue
        if not variable.startswith("OKRSNAP_"):
            unread.append(f"{service}: {variable} ({how}) is neither okrsnap's nor its image's")
        elif not _read_by(variable):
            reader = OTHER_READERS.get(variable, "shared/settings.py")
            unread.append(f"{service}: {variable} ({how}) is not read by {reader}")
    assert not unread, "\n".join(unread)


def test_secrets_are_required_variables(raw_compose):
    for name in OKRSNAP_SERVICES:
        env = environment_of(raw_compose["services"][name])
        for secret in OKRSNAP_SECRETS:
            assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]+\}}", env.get(secret, "")), \
                f"{name}: {secret} must be ${{{secret}:?message}}"
        assert "OKRSNAP_CLOCK_FILE" not in env, f"{name}: a settable clock has no place in production"
    for missing in DUMMY_SECRETS:
        env = {k: v for k, v in DUMMY_SECRETS.items() if k != missing}
        with pytest.raises(MissingVariable, match=missing):
            interpolate(raw_compose, env)
        with pytest.raises(MissingVariable, match=missing):
            interpolate(raw_compose, dict(env, **{missing: ""}))


@pytest.mark.parametrize("name", sorted(OKRSNAP_SERVICES))
def test_settings_accept_the_compose_environment(services, name):
    env = environment_of(services[name])
    settings = Settings.from_env(env)
    assert settings.production
    assert not settings.embedded_broker
    assert settings.broker_url.startswith("amqp://") and "@rabbitmq:5672/" in settings.broker_url
    checkin = settings.database_for("checkin")
    assert checkin.url.startswith("postgresql+psycopg://") and "@postgres:5432/" in checkin.url
    assert checkin.schema == "checkin" and not checkin.is_sqlite
    for service in SERVICES:
        assert settings.database_for(service).schema == service
    assert settings.service_urls == {s: f"http://{s}:{DEFAULT_PORTS[s]}" for s in SERVICES}
    assert settings.public_url == "http://localhost:8080"
    assert str(settings.export_dir) == "/data/exports"
    assert str(settings.data_dir) == "/data"
    assert settings.clock_file is None
    assert settings.database_for("gateway").url == ("postgresql+psycopg://okrsnap:dummy-postgres-password-0123"
                                                    "@postgres:5432/okrsnap")
    assert settings.broker_url == "amqp://okrsnap:dummy-rabbitmq-password-0123@rabbitmq:5672//"
    assert settings.internal_secret == DUMMY_SECRETS["OKRSNAP_INTERNAL_SECRET"]
    assert settings.access_token_secret == DUMMY_SECRETS["OKRSNAP_ACCESS_TOKEN_SECRET"]
    assert settings.download_secret == DUMMY_SECRETS["OKRSNAP_DOWNLOAD_SECRET"]
    assert settings.event_signing_key == DUMMY_SECRETS["OKRSNAP_EVENT_SIGNING_KEY"]


def test_env_example_lists_every_variable_the_compose_file_uses(raw_compose):
    listed = {line.split("=", 1)[0].strip() for line in ENV_EXAMPLE.read_text().splitlines()
              if "=" in line and not line.lstrip().startswith("#")}
    used = {variable for variable, _ in variables_in(raw_compose)}
    required = {variable for variable, op in variables_in(raw_compose) if op in (":?", "?")}
    assert required == set(DUMMY_SECRETS)
    assert used <= listed, f"missing from .env.example: {sorted(used - listed)}"
    assert listed <= used, f".env.example lists unused {sorted(listed - used)}"
    values = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                  if "=" in line and not line.lstrip().startswith("#"))
    for secret in required:
        assert values[secret].strip() == "", f"{secret} must be left empty in the example"


# ---------------------------------------------------------------------------------------------
# Start order, health, restart, scaling, ports, volumes
# ---------------------------------------------------------------------------------------------

def _depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {dep: "service_started" for dep in deps}
    return {dep: (spec or {}).get("condition", "service_started") for dep, spec in deps.items()}


def test_depends_on_targets_exist_and_can_satisfy_their_condition(services):
    for name, service in services.items():
        for dep, condition in _depends_on(service).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert condition in ("service_healthy", "service_completed_successfully"), \
                f"{name} -> {dep}: {condition} does not wait for readiness"
            if condition == "service_healthy":
                assert healthcheck_of(services[dep]), f"{name} waits for {dep} to be healthy: it has no healthcheck"
            else:
                assert services[dep].get("restart", "no") == "no", f"{dep} must be one-shot for {name} to wait on it"


def _seconds(duration: str) -> float:
    """A compose duration ("90s", "1m30s", "500ms") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(duration))
    assert parts and "".join(n + u for n, u in parts) == str(duration), f"not a duration: {duration}"
    return sum(float(n) * units[u] for n, u in parts)


def test_a_cold_start_waits_for_a_slow_rabbitmq(services):
    """A first `docker compose up` on a clean host: RabbitMQ initialises its node and data for a
    minute or more. Nothing that talks to it may start before it is healthy, and it may not be
    declared unhealthy (which fails `up`) while it is still booting on a slow machine."""
    check = services["rabbitmq"]["healthcheck"]
    budget = _seconds(check["start_period"]) + _seconds(check["interval"]) * int(check["retries"])
    assert budget >= 180, f"RabbitMQ is given {budget:.0f} s to become healthy: a cold start can take longer"
    assert _seconds(check["timeout"]) >= 10, "rabbitmq-diagnostics starts an Erlang VM for every check"
    postgres = services["postgres"]["healthcheck"]
    assert _seconds(postgres["start_period"]) + _seconds(postgres["interval"]) * int(postgres["retries"]) >= 90
    for name in OKRSNAP_SERVICES:  # each waits for the broker, directly or through migrate
        deps = _depends_on(services[name])
        assert deps.get("rabbitmq") == "service_healthy", f"{name} may start before RabbitMQ is ready"
        assert deps.get("postgres") == "service_healthy", name


_URL_USERINFO = re.compile(r"[a-z][a-z0-9+.-]*://(?P<userinfo>[^@/\s\"']*)@")


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)


def test_no_credential_is_written_into_the_compose_file(raw_compose):
    problems = []
    for text in _strings(raw_compose):
        for match in _URL_USERINFO.finditer(text):
            literal = _INTERPOLATION.sub("", match["userinfo"]).replace(":", "")
            if literal:
                problems.append(f"{text}: credentials {literal!r} written into the URL")
    for name, service in raw_compose["services"].items():
        for key, value in environment_of(service).items():
            if re.search(r"PASS|SECRET|TOKEN|KEY", key) and not re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value):
                problems.append(f"{name}: {key} is not a required ${{VAR:?...}} from .env: {value!r}")
    assert not problems, "\n".join(problems)
    text = COMPOSE_FILE.read_text()
    assert "okrsnap:okrsnap" not in text and "guest" not in text
    # and each password reaches every place that needs it
    compose = interpolate(raw_compose, DUMMY_SECRETS)
    assert environment_of(compose["services"]["postgres"])["POSTGRES_PASSWORD"] == SERVER_PASSWORDS["POSTGRES_PASSWORD"]
    assert environment_of(compose["services"]["rabbitmq"])["RABBITMQ_DEFAULT_PASS"] == \
        SERVER_PASSWORDS["RABBITMQ_PASSWORD"]
    assert environment_of(compose["services"]["redis"])["REDIS_PASSWORD"] == SERVER_PASSWORDS["REDIS_PASSWORD"]
    for missing in SERVER_PASSWORDS:
        with pytest.raises(MissingVariable, match=missing):
            interpolate(raw_compose, {k: v for k, v in DUMMY_SECRETS.items() if k != missing})


def test_relays_are_marked_to_run_once_and_workers_scale(services):
    relays = {"checkin-relay", "export-relay"}
    for name in relays:
        assert (services[name].get("deploy") or {}).get("replicas") == 1, f"{name}: deploy.replicas: 1"
        assert (services[name].get("labels") or {}).get("org.okrsnap.run-once") == "true", name
    for name in SCALABLE_WORKERS:
        assert "org.okrsnap.run-once" not in (services[name].get("labels") or {}), name
    # what happens when one is scaled anyway is said where operators read
    guide = (ROOT / "deploy" / "README.md").read_text()
    assert "SKIP LOCKED" in guide and "run-once" in guide


def test_env_file_is_kept_out_of_git_and_images():
    ignored = [line.strip() for line in GITIGNORE.read_text().splitlines()]
    assert ".env" in ignored or "/.env" in ignored, ".env (keys and passwords) must be in .gitignore"
    assert _ignored(".env", _dockerignore_patterns())
    assert ENV_EXAMPLE.is_file() and not _ignored(".env.example", [(False, p) for p in ignored if p])


def test_deploy_guide_covers_backup_restore_and_upgrade():
    guide = (ROOT / "deploy" / "README.md").read_text()
    headings = re.findall(r"^#+ (.+)$", guide, re.MULTILINE)
    for wanted in ("Backup", "Restore", "Upgrade"):
        assert any(h.startswith(wanted) for h in headings), f"deploy/README.md has no {wanted} section"
    for command in ("pg_dump", "pg_restore", "okrsnap_exports", "docker compose run --rm migrate"):
        assert command in guide, f"deploy/README.md does not show {command}"


def test_migrate_runs_first_and_once(services):
    # migrate declares the broker's topology too: it waits for RabbitMQ, not only PostgreSQL
    assert _depends_on(services["migrate"]) == {"postgres": "service_healthy", "rabbitmq": "service_healthy"}
    assert services["migrate"].get("restart") == "no"
    for name in OKRSNAP_SERVICES - {"migrate"}:
        deps = _depends_on(services[name])
        assert deps.get("migrate") == "service_completed_successfully", name
        assert deps.get("postgres") == "service_healthy", name
    for name in BACKGROUND_SERVICES:
        assert _depends_on(services[name]).get("rabbitmq") == "service_healthy", name
    for name in HTTP_SERVICES - {"gateway"}:
        assert _depends_on(services["gateway"]).get(name) == "service_healthy", f"gateway -> {name}"


def test_long_running_services_are_healthchecked_and_restarted(services):
    for name in HTTP_SERVICES | BACKGROUND_SERVICES | INFRA_SERVICES:
        assert healthcheck_of(services[name]), f"{name} has no healthcheck"
        assert services[name].get("restart") == "unless-stopped", name


def test_infrastructure_healthchecks(services):
    assert healthcheck_of(services["rabbitmq"])[1:] == ["rabbitmq-diagnostics", "-q", "check_port_connectivity"]
    assert "pg_isready" in " ".join(healthcheck_of(services["postgres"]))
    assert services["rabbitmq"].get("hostname") == "rabbitmq", "RabbitMQ's data follows its node name"
    redis_check = healthcheck_of(services["redis"])
    assert redis_check[0] == "CMD-SHELL" and "redis-cli ping" in redis_check[1]
    assert 'REDISCLI_AUTH="$REDIS_PASSWORD"' in redis_check[1], "the check authenticates, from the environment"


def test_gateway_shares_rate_limits_through_redis(services):
    gateway = Settings.from_env(environment_of(services["gateway"]))
    assert gateway.redis_url == "redis://:dummy-redis-password-0123@redis:6379/0"
    assert gateway.trusted_proxies == 0, "trust no proxy's X-Forwarded-For unless told"
    assert _depends_on(services["gateway"]).get("redis") == "service_healthy"
    for name in OKRSNAP_SERVICES - {"gateway"}:
        assert "OKRSNAP_REDIS_URL" not in environment_of(services[name]), f"{name} has no use for Redis"
    command = command_of(services["redis"])
    assert command[:2] == ["sh", "-c"] and command[2].startswith("exec redis-server ")
    assert "--save ''" in command[2], "counters only: nothing to persist"
    assert '--requirepass "$REDIS_PASSWORD"' in command[2], "read from the environment at start"
    assert not services["redis"].get("ports") and not services["redis"].get("volumes")


@pytest.mark.parametrize("name", sorted(HTTP_SERVICES))
def test_http_service_port_is_the_same_everywhere(services, name):
    port = DEFAULT_PORTS[name]
    env = environment_of(services[name])
    assert env["OKRSNAP_BIND"] == f"0.0.0.0:{port}"
    assert env[f"OKRSNAP_{name.upper()}_URL"] == f"http://{name}:{port}"
    assert healthcheck_of(services[name]) == [
        "CMD", "python", "-m", "shared.healthcheck", "http", f"http://127.0.0.1:{port}/healthz"]


@pytest.mark.parametrize("name", sorted(BACKGROUND_SERVICES))
def test_background_process_is_watched_through_its_heartbeat(services, name):
    env = environment_of(services[name])
    heartbeat = env.get("OKRSNAP_HEARTBEAT_FILE")
    assert heartbeat and heartbeat.startswith("/"), f"{name}: OKRSNAP_HEARTBEAT_FILE not set"
    test = healthcheck_of(services[name])
    assert test[:6] == ["CMD", "python", "-m", "shared.healthcheck", "file", heartbeat], name
    assert 20 <= float(test[6]) <= 120, "the file is touched every 10 s: allow a missed beat, not more"


def test_no_container_names_and_scalable_workers_publish_nothing(services):
    for name, service in services.items():
        assert "container_name" not in service, f"{name}: container_name prevents --scale and parallel projects"
    for name in SCALABLE_WORKERS:
        assert not services[name].get("ports"), f"{name} must not publish host ports"
        assert not services[name].get("hostname"), name
        assert (services[name].get("deploy") or {}).get("replicas", 1) >= 1


def test_only_gateway_and_rabbitmq_management_publish_ports(services):
    publishing = {name: published_targets(s) for name, s in services.items() if s.get("ports")}
    assert publishing == PUBLISHING
    for port in services["rabbitmq"]["ports"]:
        assert str(port).startswith("127.0.0.1:"), "the management UI listens on this host only"


def test_named_volumes(compose, services):
    declared = set(compose.get("volumes") or {})

    def named_mounts(service):
        mounts = {}
        for volume in service.get("volumes") or []:
            source, target = (volume["source"], volume["target"]) if isinstance(volume, dict) \
                else str(volume).split(":")[:2]
            mounts[target] = source
        return mounts

    export_dir = environment_of(services["export"])["OKRSNAP_EXPORT_DIR"]
    assert export_dir == "/data/exports"
    export_volume = named_mounts(services["export"]).get(export_dir)
    assert export_volume and export_volume in declared, "export needs a named volume on its export dir"
    assert named_mounts(services["export-worker"]).get(export_dir) == export_volume
    assert environment_of(services["export-worker"])["OKRSNAP_EXPORT_DIR"] == export_dir
    assert named_mounts(services["postgres"]).get("/var/lib/postgresql/data") in declared
    assert named_mounts(services["rabbitmq"]).get("/var/lib/rabbitmq") in declared


# ---------------------------------------------------------------------------------------------
# Dockerfile, .dockerignore, gunicorn.conf.py
# ---------------------------------------------------------------------------------------------

class ParsedDockerfile:
    def __init__(self, text: str):
        logical, current = [], ""
        for line in text.splitlines():
            stripped = line.strip()
            if not current and (not stripped or stripped.startswith("#")):
                continue
            if current and stripped.startswith("#"):
                continue
            if stripped.endswith("\\"):
                current += stripped[:-1] + " "
            else:
                logical.append(current + stripped)
                current = ""
        self.instructions = [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
                             for line in logical]
        self.args = {}
        for op, rest in self.instructions:
            if op == "ARG" and "=" in rest:
                key, value = rest.split("=", 1)
                self.args.setdefault(key.strip(), value.strip())
        self.stages = [[]]
        for op, rest in self.instructions:
            if op == "FROM" and self.stages[-1]:
                self.stages.append([])
            self.stages[-1].append((op, rest))

    def expand(self, text: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: self.args.get(m.group(1), m.group(0)), text)

    def copies(self) -> list[tuple[list[str], str, dict]]:
        out = []
        for op, rest in self.instructions:
            if op not in ("COPY", "ADD"):
                continue
            flags = dict(re.findall(r"--(\w+)=(\S+)", rest))
            rest = re.sub(r"--\w+=\S+\s*", "", rest).strip()
            parts = json.loads(rest) if rest.startswith("[") else rest.split()
            out.append((parts[:-1], parts[-1], flags))
        return out

    @property
    def copy_destinations(self) -> dict[str, str]:
        """Where each file from the build context lands in the final image (absolute paths)."""
        workdir, result = "/", {}
        for op, rest in self.stages[-1]:
            if op == "WORKDIR":
                workdir = rest if rest.startswith("/") else os.path.join(workdir, rest)
            if op == "COPY" and "--from" not in rest:
                parts = rest.split()
                sources, dest = parts[:-1], parts[-1]
                dest = dest if dest.startswith("/") else os.path.join(workdir, dest)
                for source in sources:
                    target = os.path.join(dest, os.path.basename(source)) if dest.endswith("/") else dest
                    result[target] = source
        return result


@pytest.fixture(scope="module")
def dockerfile() -> ParsedDockerfile:
    return ParsedDockerfile(DOCKERFILE.read_text())


def test_dockerfile_copy_sources_exist_and_are_in_the_build_context(dockerfile):
    ignored = _dockerignore_patterns()
    copies = [c for c in dockerfile.copies() if "from" not in c[2]]
    assert copies
    for sources, _dest, _flags in copies:
        for source in sources:
            matches = glob.glob(str(ROOT / source))
            assert matches, f"COPY source {source} does not exist"
            assert not _ignored(source, ignored), f"COPY source {source} is excluded by .dockerignore"


def test_dockerfile_builds_one_small_non_root_production_image(dockerfile):
    final = dockerfile.stages[-1]
    base = dockerfile.expand(final[0][1].split()[0])
    assert base == "python:3.11-slim"
    users = [rest for op, rest in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must run as a non-root user"
    env_text = " ".join(rest for op, rest in final if op == "ENV")
    assert "PYTHONUNBUFFERED=1" in env_text
    assert "OKRSNAP_DATA_DIR=/data" in env_text
    assert any(op == "VOLUME" and "/data" in rest for op, rest in final)
    text = DOCKERFILE.read_text()
    assert "pyproject.toml" in text
    assert not re.search(r"\.\[[^\]]*\]|\[test\]|\[dev\]|pytest", text), "no dev/test extras in the image"
    assert not any(source.startswith("tests") for sources, _, _ in dockerfile.copies() for source in sources)
    cmd = json.loads(dict(final).get("CMD", "[]"))
    assert not _problems_with_argv(cmd, dockerfile.copy_destinations), cmd


def _dockerignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            patterns.append((negated, line.lstrip("!").strip("/")))
    return patterns


def _pattern_regex(pattern: str) -> re.Pattern:
    """A .dockerignore pattern (Go's filepath.Match plus `**`) as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i:]:
            end = pattern.index("]", i)
            out, i = out + pattern[i:end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def _ignored(path: str, patterns) -> bool:
    """Docker's rule: the last matching pattern wins; a match on a parent directory excludes."""
    result = False
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for negated, pattern in patterns:
        if any(_pattern_regex(pattern).match(prefix) for prefix in prefixes):
            result = not negated
    return result


def test_dockerignore_keeps_the_context_small():
    patterns = _dockerignore_patterns()
    for path in (".venv", ".git", "var", "tests", ".pytest_cache", ".hypothesis",
                 "shared/__pycache__/settings.cpython-311.pyc", "okrsnap.egg-info", ".env"):
        assert _ignored(path, patterns), f".dockerignore does not exclude {path}"
    for path in ("pyproject.toml", "shared/settings.py", "services/cli.py", "deploy/gunicorn.conf.py"):
        assert not _ignored(path, patterns), f".dockerignore excludes {path}"


def _load_gunicorn_conf(env: dict[str, str]) -> dict:
    source = GUNICORN_CONF.read_text()
    code = compile(source, str(GUNICORN_CONF), "exec")
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("OKRSNAP_")]:
            del os.environ[key]
        os.environ.update(env)
        namespace: dict = {"__file__": str(GUNICORN_CONF), "__name__": "__config__"}
        exec(code, namespace)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return namespace


def test_gunicorn_conf_reads_the_environment_and_never_preloads():
    defaults = _load_gunicorn_conf({})
    assert defaults["preload_app"] is False
    assert defaults["bind"] in ("0.0.0.0:8000", ["0.0.0.0:8000"])
    assert defaults["workers"] == 2
    assert defaults["threads"] >= 1 and defaults["timeout"] > 0 and defaults["graceful_timeout"] > 0
    assert defaults["accesslog"] == "-"
    assert defaults["forwarded_allow_ips"] in ("", [], None), "trust no proxy unless told"
    configured = _load_gunicorn_conf({"OKRSNAP_BIND": "0.0.0.0:8083", "OKRSNAP_WEB_CONCURRENCY": "5"})
    assert configured["bind"] in ("0.0.0.0:8083", ["0.0.0.0:8083"])
    assert configured["workers"] == 5

    from gunicorn.config import Config  # gunicorn's own validators accept every value

    config = Config()
    for key, value in configured.items():
        if key in config.settings:
            config.set(key, value)
    assert config.preload_app is False
    assert config.bind == ["0.0.0.0:8083"]
    assert config.workers == 5
    assert config.forwarded_allow_ips == []


def test_gunicorn_conf_loads_in_gunicorn():
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or shutil.which("gunicorn")
    if gunicorn is None:
        pytest.skip("gunicorn is not installed in this environment")
    result = subprocess.run(
        [gunicorn, "-c", str(GUNICORN_CONF), "--print-config", "shared.healthcheck:main"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env=dict(os.environ, OKRSNAP_BIND="127.0.0.1:0", OKRSNAP_WEB_CONCURRENCY="3"))
    assert result.returncode == 0, result.stderr
    printed = dict(re.findall(r"^(\w+)\s*=\s*(.*)$", result.stdout, re.MULTILINE))
    assert printed["preload_app"] == "False"
    assert printed["workers"] == "3"


# ---------------------------------------------------------------------------------------------
# docker compose's own validation, when the client can run it
# ---------------------------------------------------------------------------------------------

def test_docker_compose_config_validates():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client installed: `docker compose config -q` not run")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("this docker client has no compose plugin (`docker compose version` failed: "
                    f"{' '.join((probe.stderr or probe.stdout).split())[:120]}): `docker compose config -q` not run")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OKRSNAP_", "COMPOSE_"))}
    env.update(DUMMY_SECRETS)
    result = subprocess.run([docker, "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    if result.returncode != 0 and re.search(r"Cannot connect to the Docker daemon|docker daemon", result.stderr):
        pytest.skip(f"`docker compose config` wanted a Docker engine: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------------
# shared/healthcheck.py
# ---------------------------------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    release = threading.Event()

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path == "/slow":
            self.release.wait(5)
        status = {"/healthz": 200, "/slow": 200, "/no-content": 204, "/broken": 503,
                  "/redirect": 302}.get(self.path, 404)
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "/healthz")
        body = b'{"status": "ok"}' if status == 200 else b""
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    _Handler.release.clear()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _Handler.release.set()
        server.shutdown()
        server.server_close()


def test_healthcheck_http_is_healthy_on_2xx(http_url):
    assert healthcheck.main(["http", f"{http_url}/healthz"]) == 0
    assert healthcheck.main(["http", f"{http_url}/no-content"]) == 0


@pytest.mark.parametrize("path", ["/broken", "/missing", "/redirect"])
def test_healthcheck_http_is_unhealthy_on_anything_else(http_url, path):
    assert healthcheck.main(["http", f"{http_url}{path}"]) == 1


def test_healthcheck_http_is_unhealthy_when_nothing_listens():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: the connection is refused
        assert healthcheck.main(["http", f"http://127.0.0.1:{port}/healthz"]) == 1


def test_healthcheck_http_gives_up_at_its_deadline(http_url):
    healthy, reason = healthcheck.check_http(f"{http_url}/slow", timeout=0.5)
    assert not healthy and ("0.5" in reason or "timed out" in reason)  # the deadline decided
    assert healthcheck.HTTP_TIMEOUT == 3.0


def test_healthcheck_http_refuses_other_schemes(tmp_path):
    (tmp_path / "x").write_text("ok")
    assert healthcheck.main(["http", f"file://{tmp_path / 'x'}"]) == 1


def test_healthcheck_file_is_healthy_while_fresh(tmp_path):
    beat = tmp_path / "heartbeat"
    beat.touch()
    assert healthcheck.main(["file", str(beat), "30"]) == 0
    old = time.time() - 45
    os.utime(beat, (old, old))
    assert healthcheck.main(["file", str(beat), "30"]) == 1
    assert healthcheck.main(["file", str(beat), "60"]) == 0


def test_healthcheck_file_is_unhealthy_when_missing(tmp_path):
    assert healthcheck.main(["file", str(tmp_path / "never-written"), "30"]) == 1


@pytest.mark.parametrize("argv", [[], ["http"], ["file", "x"], ["file", "x", "soon"], ["ping", "x"]])
def test_healthcheck_usage_errors_are_unhealthy_not_docker_reserved(argv, capsys):
    assert healthcheck.main(argv) == 1
    assert "usage" in capsys.readouterr().err


def test_healthcheck_runs_as_a_module(http_url, tmp_path):
    beat = tmp_path / "heartbeat"
    beat.touch()
    for argv, code in ((["http", f"{http_url}/healthz"], 0), (["http", f"{http_url}/broken"], 1),
                       (["file", str(beat), "30"], 0)):
        result = subprocess.run([sys.executable, "-m", "shared.healthcheck", *argv], cwd=ROOT,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == code, (argv, result.stdout, result.stderr)
