"""Configuration read once from the environment; every process builds its own Settings.

Embedded default: SQLite files and kombu's SQLAlchemy transport under OKRSNAP_DATA_DIR, so
nothing beside Python is needed. OKRSNAP_DATABASE_URL (PostgreSQL) and OKRSNAP_BROKER_URL
(amqp://) switch to real servers. On PostgreSQL each service owns a schema named after it.
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = ("gateway", "checkin", "snapshot", "export")
DEFAULT_PORTS = {"gateway": 8080, "checkin": 8081, "snapshot": 8082, "export": 8083}
DEV_SECRET_FILE = "secrets.env"
# /metrics of each process `okrsnap up` starts (OKRSNAP_<NAME>_METRICS_PORT moves one; in a
# container of its own a process takes OKRSNAP_METRICS_PORT). "workers" is the relays and workers
# sharing one process (services/background.py).
METRICS_PROCESSES = ("gateway", "checkin", "snapshot", "export", "checkin-relay", "snapshot-worker",
                     "export-relay", "export-worker", "workers")
DEFAULT_METRICS_PORTS = {name: 9180 + n for n, name in enumerate(METRICS_PROCESSES)}


class ConfigurationError(RuntimeError):
    pass


@dataclass(frozen=True)
class DatabaseTarget:
    url: str
    schema: str | None  # PostgreSQL schema the service owns; None on SQLite

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


@dataclass(frozen=True)
class Settings:
    env: str
    data_dir: Path
    database_url: str | None
    broker_url: str
    broker_namespace: str
    internal_secret: str
    access_token_secret: str
    download_secret: str
    event_signing_key: str  # HMAC key of every event on the broker (shared.events; docs/security.md)
    clock_file: Path | None
    service_urls: dict[str, str]
    public_url: str
    export_dir: Path
    access_token_ttl: int = 3600
    download_ttl: int = 900
    export_retention: int = 7 * 24 * 3600  # seconds a finished export file is kept, then deleted
    seal_grace_seconds: int = 3600
    week_close_interval: float = 15.0
    service_database_urls: dict[str, str] = field(default_factory=dict)
    # A streaming replica a service may read from (OKRSNAP_<SERVICE>_READ_DATABASE_URL): today the
    # snapshot service's week views, calendar, comparisons and trend (docs/scaling.md).
    service_read_database_urls: dict[str, str] = field(default_factory=dict)
    # Identity and access (the gateway): rate limits are (requests, window seconds).
    redis_url: str | None = None           # shared rate limits across processes; in process without
    login_rate: tuple[int, int] = (10, 60)      # per email, on login, session and accept-invite
    login_ip_rate: tuple[int, int] = (30, 60)   # per client IP, on the same routes
    export_rate: tuple[int, int] = (20, 3600)   # per user, on expensive forwarded routes (POST /exports)
    export_ip_rate: tuple[int, int] = (60, 3600)  # per client IP, on the same routes
    trusted_proxies: int = 0               # proxies in front of the gateway whose X-Forwarded-For counts
    session_ttl: int = 8 * 3600            # browser session cookie lifetime in seconds
    invite_rate: tuple[int, int] = (20, 3600)  # invitations per member and Workspace
    # Where each process serves /metrics: never through the gateway (an operator's address).
    metrics_host: str = "127.0.0.1"
    # The gateway keeps a client's X-Request-ID as the correlation id (else it makes one).
    trust_request_id: bool = False
    metrics_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_METRICS_PORTS))

    # Keys being rotated out, still accepted when verifying (OKRSNAP_<NAME>_PREVIOUS, comma-separated).
    previous_secrets: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def verification_keys(self, name: str) -> tuple[str, ...]:
        """The current key and those being rotated out: "internal", "access_token", "download"
        or "event" (OKRSNAP_EVENT_SIGNING_KEY)."""
        current = self.event_signing_key if name == "event" else getattr(self, f"{name}_secret")
        return (current, *self.previous_secrets.get(name, ()))

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def embedded_broker(self) -> bool:
        return not self.broker_url.startswith(("amqp://", "amqps://", "pyamqp://"))

    def database_for(self, service: str) -> DatabaseTarget:
        return self._target(service, self.service_database_urls.get(service) or self.database_url)

    def read_database_for(self, service: str) -> DatabaseTarget | None:
        """The replica a service reads from, when one is set: same schema as its primary."""
        url = self.service_read_database_urls.get(service)
        return self._target(service, url) if url else None

    def _target(self, service: str, url: str | None) -> DatabaseTarget:
        if service not in SERVICES:
            raise ConfigurationError(f"unknown service {service!r}")
        if url is None:
            return DatabaseTarget(f"sqlite:///{self.data_dir / (service + '.db')}", None)
        if url.startswith("sqlite"):
            return DatabaseTarget(url, None)
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return DatabaseTarget(url, service)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = read_file_variables(dict(os.environ if environ is None else environ))
        mode = env.get("OKRSNAP_ENV", "development")
        if mode not in ("development", "production", "test"):
            raise ConfigurationError("OKRSNAP_ENV must be development, production or test")
        if mode == "production":
            _refuse_embedded_in_production(env)
        data_dir = Path(env.get("OKRSNAP_DATA_DIR", Path.cwd() / "var")).absolute()
        broker_url = env.get("OKRSNAP_BROKER_URL") or f"sqla+sqlite:///{data_dir / 'broker.db'}"
        secrets_ = _secrets(env, data_dir, production=mode == "production")
        clock_file = env.get("OKRSNAP_CLOCK_FILE")
        if clock_file and mode == "production":
            raise ConfigurationError("OKRSNAP_CLOCK_FILE (a settable clock) is refused in production")
        host = env.get("OKRSNAP_HOST", "127.0.0.1")
        urls = {}
        for name in SERVICES:
            port = int(env.get(f"OKRSNAP_{name.upper()}_PORT", DEFAULT_PORTS[name]))
            urls[name] = env.get(f"OKRSNAP_{name.upper()}_URL", f"http://{host}:{port}")
        return cls(
            env=mode,
            data_dir=data_dir,
            database_url=env.get("OKRSNAP_DATABASE_URL") or None,
            broker_url=broker_url,
            broker_namespace=env.get("OKRSNAP_BROKER_NAMESPACE", "okrsnap"),
            internal_secret=secrets_["OKRSNAP_INTERNAL_SECRET"],
            access_token_secret=secrets_["OKRSNAP_ACCESS_TOKEN_SECRET"],
            download_secret=secrets_["OKRSNAP_DOWNLOAD_SECRET"],
            event_signing_key=secrets_["OKRSNAP_EVENT_SIGNING_KEY"],
            clock_file=Path(clock_file) if clock_file else None,
            service_urls=urls,
            public_url=env.get("OKRSNAP_PUBLIC_URL", urls["gateway"]).rstrip("/"),
            export_dir=Path(env.get("OKRSNAP_EXPORT_DIR", data_dir / "exports")).absolute(),
            access_token_ttl=int(env.get("OKRSNAP_ACCESS_TOKEN_TTL", 3600)),
            download_ttl=int(env.get("OKRSNAP_DOWNLOAD_TTL", 900)),
            export_retention=int(float(env.get("OKRSNAP_EXPORT_RETENTION_DAYS", 7)) * 24 * 3600),
            seal_grace_seconds=int(env.get("OKRSNAP_SEAL_GRACE_SECONDS", 3600)),
            week_close_interval=float(env.get("OKRSNAP_WEEK_CLOSE_INTERVAL", 15)),
            service_database_urls={
                name: env[f"OKRSNAP_{name.upper()}_DATABASE_URL"]
                for name in SERVICES
                if env.get(f"OKRSNAP_{name.upper()}_DATABASE_URL")
            },
            service_read_database_urls={
                name: env[f"OKRSNAP_{name.upper()}_READ_DATABASE_URL"]
                for name in SERVICES
                if env.get(f"OKRSNAP_{name.upper()}_READ_DATABASE_URL")
            },
            redis_url=env.get("OKRSNAP_REDIS_URL") or None,
            login_rate=parse_rate(env, "OKRSNAP_LOGIN_RATE", "10/60"),
            login_ip_rate=parse_rate(env, "OKRSNAP_LOGIN_IP_RATE", "30/60"),
            export_rate=parse_rate(env, "OKRSNAP_EXPORT_RATE", "20/3600"),
            export_ip_rate=parse_rate(env, "OKRSNAP_EXPORT_IP_RATE", "60/3600"),
            trusted_proxies=_non_negative_int(env, "OKRSNAP_TRUSTED_PROXIES", 0),
            session_ttl=_non_negative_int(env, "OKRSNAP_SESSION_TTL", 8 * 3600) or 8 * 3600,
            invite_rate=parse_rate(env, "OKRSNAP_INVITE_RATE", "20/3600"),
            previous_secrets=_previous_secrets(env, production=mode == "production"),
            metrics_host=metrics_host(env),
            trust_request_id=_flag(env, "OKRSNAP_TRUST_REQUEST_ID",
                                   _non_negative_int(env, "OKRSNAP_TRUSTED_PROXIES", 0) > 0),
            metrics_ports={name: metrics_port(name, env, own=False) for name in METRICS_PROCESSES},
        )


# Secrets and URLs that may carry credentials: each may come from a file named by <NAME>_FILE
# instead (Docker secrets mount them under /run/secrets), so they need not sit in an environment
# that `docker inspect` and /proc/<pid>/environ show.
FILE_VARIABLES = (
    "OKRSNAP_INTERNAL_SECRET", "OKRSNAP_ACCESS_TOKEN_SECRET", "OKRSNAP_DOWNLOAD_SECRET",
    "OKRSNAP_INTERNAL_SECRET_PREVIOUS", "OKRSNAP_ACCESS_TOKEN_SECRET_PREVIOUS",
    "OKRSNAP_DOWNLOAD_SECRET_PREVIOUS",
    "OKRSNAP_EVENT_SIGNING_KEY", "OKRSNAP_EVENT_SIGNING_KEY_PREVIOUS",
    "OKRSNAP_DATABASE_URL", "OKRSNAP_BROKER_URL", "OKRSNAP_REDIS_URL",
    *(f"OKRSNAP_{service.upper()}_DATABASE_URL" for service in SERVICES),
    *(f"OKRSNAP_{service.upper()}_READ_DATABASE_URL" for service in SERVICES),
)


def read_file_variables(env: dict[str, str]) -> dict[str, str]:
    """<NAME>_FILE: the value of <NAME> is the file's content (one trailing newline dropped, as
    `echo secret > file` writes one). Both set at once is refused: which would win is a guess."""
    for name in FILE_VARIABLES:
        path = env.get(f"{name}_FILE")
        if not path:
            continue
        if env.get(name):
            raise ConfigurationError(f"{name} and {name}_FILE are both set: keep one")
        try:
            value = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"{name}_FILE: cannot read {path} ({exc.strerror or exc})") from None
        value = value[:-1] if value.endswith("\n") else value
        value = value[:-1] if value.endswith("\r") else value
        if not value.strip():
            raise ConfigurationError(f"{name}_FILE: {path} is empty")
        env[name] = value
    return env


def metrics_host(env) -> str:
    """OKRSNAP_METRICS_HOST; else every interface of a process given its own OKRSNAP_METRICS_PORT
    (one process per container or pod: Prometheus scrapes the pod's address, and nothing routes
    there through the gateway), else only this machine."""
    if env.get("OKRSNAP_METRICS_HOST"):
        return env["OKRSNAP_METRICS_HOST"]
    return "0.0.0.0" if env.get("OKRSNAP_METRICS_PORT") else "127.0.0.1"


def metrics_port(process: str, env, *, own: bool = True) -> int | None:
    """The port `process` serves /metrics on; None when 0 or "off" (not served). `own`: this
    process's OKRSNAP_METRICS_PORT wins (one process per container). Read without building
    Settings: gunicorn's master needs it before anything else."""
    name = f"OKRSNAP_{process.upper().replace('-', '_')}_METRICS_PORT"
    text = ((env.get("OKRSNAP_METRICS_PORT") if own else None) or env.get(name) or "").strip().lower()
    if not text:
        return DEFAULT_METRICS_PORTS.get(process)
    if text in ("0", "off"):
        return None
    try:
        port = int(text)
    except ValueError:
        raise ConfigurationError(f"{name} (or OKRSNAP_METRICS_PORT) must be a port number or off") from None
    if not 0 < port < 65536:
        raise ConfigurationError(f"{name} (or OKRSNAP_METRICS_PORT) must lie between 1 and 65535")
    return port


def parse_rate(env: dict[str, str], name: str, default: str) -> tuple[int, int]:
    """A rate limit written "<requests>/<seconds>", e.g. "10/60"."""
    text = (env.get(name) or default).strip()
    count, _, window = text.partition("/")
    try:
        parsed = int(count), int(window)
    except ValueError:
        raise ConfigurationError(f"{name} must look like 10/60 (requests per seconds), not {text!r}") from None
    if parsed[0] < 1 or parsed[1] < 1:
        raise ConfigurationError(f"{name}: requests and seconds must both be at least 1")
    return parsed


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    text = (env.get(name) or "").strip().lower()
    if not text:
        return default
    if text not in ("1", "true", "yes", "0", "false", "no"):
        raise ConfigurationError(f"{name} must be true or false")
    return text in ("1", "true", "yes")


def _non_negative_int(env: dict[str, str], name: str, default: int) -> int:
    try:
        value = int(env.get(name) or default)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number") from None
    if value < 0:
        raise ConfigurationError(f"{name} must not be negative")
    return value


def _refuse_embedded_in_production(env: dict[str, str]) -> None:
    """In production every process must share one database server and one broker: a silent
    fall-back to per-container SQLite files would split the data."""
    database = env.get("OKRSNAP_DATABASE_URL", "")
    if not database.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        raise ConfigurationError("production needs OKRSNAP_DATABASE_URL pointing at PostgreSQL")
    if not env.get("OKRSNAP_BROKER_URL", "").startswith(("amqp://", "amqps://")):
        raise ConfigurationError("production needs OKRSNAP_BROKER_URL pointing at RabbitMQ (amqp://)")


def _previous_secrets(env: dict[str, str], *, production: bool) -> dict[str, tuple[str, ...]]:
    """OKRSNAP_INTERNAL_SECRET_PREVIOUS and the like: keys still accepted while every process
    moves to a new one (docs/security.md)."""
    found = {}
    for name in _SECRET_NAMES:
        keys = tuple(k.strip() for k in (env.get(f"{name}_PREVIOUS") or "").split(",") if k.strip())
        if production and any(len(k) < MIN_SECRET_LENGTH for k in keys):
            raise ConfigurationError(f"{name}_PREVIOUS: at least {MIN_SECRET_LENGTH} characters a key")
        if keys:
            found[_SHORT_NAMES[name]] = keys
    return found


MIN_SECRET_LENGTH = 32  # HS256 keys of at least 256 bits (RFC 7518, 3.2)
_SECRET_NAMES = ("OKRSNAP_INTERNAL_SECRET", "OKRSNAP_ACCESS_TOKEN_SECRET", "OKRSNAP_DOWNLOAD_SECRET",
                 "OKRSNAP_EVENT_SIGNING_KEY")
# The names verification_keys() takes.
_SHORT_NAMES = {"OKRSNAP_INTERNAL_SECRET": "internal", "OKRSNAP_ACCESS_TOKEN_SECRET": "access_token",
                "OKRSNAP_DOWNLOAD_SECRET": "download", "OKRSNAP_EVENT_SIGNING_KEY": "event"}


def _secrets(env: dict[str, str], data_dir: Path, *, production: bool) -> dict[str, str]:
    """Secrets come from the environment; outside production, missing ones are generated once
    into the data directory so every local process of one installation agrees on them."""
    found = {name: env[name] for name in _SECRET_NAMES if env.get(name)}
    if production:
        short = [n for n, v in found.items() if len(v) < MIN_SECRET_LENGTH]
        if short:
            raise ConfigurationError(f"{', '.join(short)}: at least {MIN_SECRET_LENGTH} characters")
    if len(found) == len(_SECRET_NAMES):
        return found
    if production:
        missing = ", ".join(n for n in _SECRET_NAMES if n not in found)
        raise ConfigurationError(f"production needs {missing}")
    path = data_dir / DEV_SECRET_FILE
    stored = _read_secret_file(path)
    missing = [n for n in _SECRET_NAMES if n not in found and n not in stored]
    if missing:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text("".join(f"{k}={v}\n" for k, v in
                               (stored | {n: secrets.token_urlsafe(32) for n in missing}).items()))
        os.chmod(tmp, 0o600)
        try:
            if not stored:
                os.link(tmp, path)  # atomic and exclusive: of racing processes, one file wins
            else:
                # A file from an older okrsnap, without a key added since (the event-signing key):
                # the key is added under an exclusive lock, so racing processes agree on it.
                with _locked(path.with_suffix(".lock")):
                    stored = _read_secret_file(path)
                    if any(n not in found and n not in stored for n in _SECRET_NAMES):
                        added = {n: secrets.token_urlsafe(32) for n in _SECRET_NAMES if n not in stored}
                        tmp.write_text("".join(f"{k}={v}\n" for k, v in (stored | added).items()))
                        os.replace(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        stored = _read_secret_file(path)
    return {name: found.get(name) or stored[name] for name in _SECRET_NAMES}


def _read_secret_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().split() if "=" in line)


@contextmanager
def _locked(path: Path):
    """An exclusive lock on `path` (created 0600) for the block; without fcntl (Windows), none."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - no other OS runs several okrsnap processes here
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
