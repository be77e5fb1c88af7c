"""Issue 14's signals: metrics (prometheus-client), logs with a correlation id, readiness.

Metrics are served on a port of their own per process (never through the gateway): the address
comes from shared.settings.metrics_host() and metrics_port(). Under gunicorn the workers write their samples into
PROMETHEUS_MULTIPROC_DIR and the master serves the sum (shared/gunicorn_hooks.py); relays and
workers serve their own registry. Gauges that read a database are computed when scraped.

The correlation id starts at the gateway (or is taken from a trusted X-Request-ID), travels to
the services in the X-Request-ID header, through the outbox (a key of the row's JSON body the
relay moves into the AMQP headers before signing) and is set while a consumer applies the event:
every log line written meanwhile carries it.

Nothing here connects or starts anything at import time."""
from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import threading
import time
from datetime import datetime, timezone
from typing import Callable, Iterable

log = logging.getLogger(__name__)

# -- correlation id ------------------------------------------------------------------------------

REQUEST_ID_HEADER = "X-Request-ID"
AMQP_HEADER = "x-correlation-id"
OUTBOX_KEY = "_correlation_id"  # in the outbox row's JSON body; the relay moves it to AMQP headers
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_correlation: contextvars.ContextVar[str | None] = contextvars.ContextVar("okrsnap_correlation_id", default=None)


def correlation_id() -> str | None:
    return _correlation.get()


def new_correlation_id() -> str:
    return os.urandom(16).hex()  # as unique as uuid4().hex, a few times cheaper


def usable_correlation_id(value) -> str | None:
    """`value` if it may go into logs and headers as it is (no spaces, quotes or newlines that
    would let a client forge log lines), else None."""
    return value if isinstance(value, str) and _VALID.fullmatch(value) else None


def set_correlation_id(value: str | None) -> contextvars.Token:
    return _correlation.set(value)


def reset_correlation_id(token: contextvars.Token) -> None:
    _correlation.reset(token)


def outgoing_headers() -> dict[str, str]:
    """Headers that carry the current correlation id to another service."""
    cid = _correlation.get()
    return {REQUEST_ID_HEADER: cid} if cid else {}


def with_correlation(body: dict) -> dict:
    """An outbox row's body with the current correlation id beside the event (not inside it:
    the signed envelope stays exactly the event)."""
    cid = _correlation.get()
    return {**body, OUTBOX_KEY: cid} if cid else body


def split_correlation(body: dict) -> tuple[dict, str | None]:
    """(the event as stored, its correlation id) of an outbox row's body."""
    if OUTBOX_KEY not in body:
        return body, None
    body = dict(body)
    return body, usable_correlation_id(body.pop(OUTBOX_KEY))


# -- logs ------------------------------------------------------------------------------------------

_record_factory_installed = False


def install_record_factory() -> None:
    """Every log record, whoever's handler formats it, gets the correlation id current where
    it was made (as `record.correlation_id`). Once per process."""
    global _record_factory_installed
    with _install_lock:
        if _record_factory_installed:
            return
        _record_factory_installed = True
        make = logging.getLogRecordFactory()

        def factory(*args, **kwargs):
            record = make(*args, **kwargs)
            record.correlation_id = _correlation.get()
            return record

        logging.setLogRecordFactory(factory)


_install_lock = threading.Lock()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, process name, logger, message, correlation id,
    and the exception when there is one. Gunicorn's access lines become fields of their own."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname, "process": self.name, "pid": record.process, "logger": record.name,
        }
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            atoms = record.args
            entry.update(message="request", method=atoms.get("m"), path=atoms.get("U"), status=atoms.get("s"),
                         bytes=atoms.get("B"), duration_us=atoms.get("D"), remote=atoms.get("h"))
            cid = usable_correlation_id(atoms.get("{x-request-id}o"))
        else:
            entry["message"] = record.getMessage()
            cid = getattr(record, "correlation_id", None)
        if cid:
            entry["correlation_id"] = cid
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The development format, with the correlation id in brackets when there is one."""

    def __init__(self, name: str):
        super().__init__(f"%(asctime)s {name}[%(process)d] %(levelname)s %(name)s:%(cid)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        cid = getattr(record, "correlation_id", None)
        record.cid = f" [{cid}]" if cid else ""
        return super().format(record)


def json_logs(environ=None) -> bool:
    env = os.environ if environ is None else environ
    chosen = (env.get("OKRSNAP_LOG_FORMAT") or "").lower()
    if chosen in ("json", "text"):
        return chosen == "json"
    return env.get("OKRSNAP_ENV") == "production"


def log_formatter(name: str) -> logging.Formatter:
    return JsonFormatter(name) if json_logs() else TextFormatter(name)


_configured = False


def configure_logging(name: str, level: str | None = None) -> None:
    """The process's root logger: JSON lines in production (OKRSNAP_LOG_FORMAT=json|text
    chooses), with the correlation id. Once per process; a root logger someone else set up
    (pytest, gunicorn's logconfig_dict) keeps its handlers."""
    global _configured
    install_record_factory()
    if _configured:
        return
    _configured = True
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(log_formatter(name))
        root.addHandler(handler)
        root.setLevel(level or os.environ.get("OKRSNAP_LOG_LEVEL", "INFO"))


# -- metrics ---------------------------------------------------------------------------------------

# Latency buckets (seconds): most answers take a few milliseconds; a Snapshot of 1,000 Key Results
# a few hundred.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BUILD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_BASE = ("service", "process")


class _Metrics:
    """Made on first use: prometheus-client picks its multiprocess mode from the environment
    when the first metric is made (gunicorn's master sets PROMETHEUS_MULTIPROC_DIR first)."""

    def __init__(self):
        from prometheus_client import Counter, Gauge, Histogram

        self.http_requests = Counter("okrsnap_http_requests_total", "HTTP requests answered, by route template",
                                     _BASE + ("route", "method", "status"))
        self.http_duration = Histogram("okrsnap_http_request_duration_seconds", "Time to answer an HTTP request",
                                       _BASE + ("route", "method"), buckets=HTTP_BUCKETS)
        self.published = Counter("okrsnap_events_published_total", "Events the relay published (confirmed)", _BASE)
        self.applied = Counter("okrsnap_events_applied_total", "Events applied by a consumer", _BASE)
        self.duplicate = Counter("okrsnap_events_duplicate_total", "Redelivered events skipped by event id", _BASE)
        self.parked = Counter("okrsnap_events_parked_total", "Events parked until their Session arrives", _BASE)
        self.dead_lettered = Counter("okrsnap_events_dead_lettered_total", "Messages sent to a dead-letter queue",
                                     _BASE + ("reason",))
        self.lag = Gauge("okrsnap_consumer_lag_seconds", "Now minus occurred_at of the last applied event",
                         _BASE, multiprocess_mode="max")
        self.refusals = Counter("okrsnap_rate_limit_refusals_total", "Requests refused by a rate limit",
                                _BASE + ("limit",))
        self.build = Histogram("okrsnap_export_build_seconds", "Time to build an export file",
                               _BASE + ("format",), buckets=BUILD_BUCKETS)


_metrics: _Metrics | None = None
_metrics_lock = threading.Lock()


def metrics() -> _Metrics:
    global _metrics
    if _metrics is None:
        with _metrics_lock:
            if _metrics is None:
                _metrics = _Metrics()
    return _metrics


_http_children: dict[tuple, tuple] = {}


def observe_http(service: str, route: str, method: str, status: int, seconds: float) -> None:
    """One answered request. The labelled children are looked up once per (route, method,
    status): what remains per request is two increments (microseconds, issue 13)."""
    key = (service, route, method, status)
    children = _http_children.get(key)
    if children is None:
        m = metrics()
        children = _http_children[key] = (
            m.http_requests.labels(service, "web", route, method, str(status)),
            m.http_duration.labels(service, "web", route, method))
    children[0].inc()
    children[1].observe(seconds)


def events_published(service: str, count: int) -> None:
    if count:
        metrics().published.labels(service, "relay").inc(count)


def events_applied(service: str, *, applied: int = 0, duplicate: int = 0, parked: int = 0,
                   last_occurred_at: datetime | None = None, now: datetime | None = None) -> None:
    """What a consumer's commit did; `last_occurred_at`: the latest occurred_at among the
    events it applied (the consumer lag is now minus that)."""
    m = metrics()
    if applied:
        m.applied.labels(service, "worker").inc(applied)
    if duplicate:
        m.duplicate.labels(service, "worker").inc(duplicate)
    if parked:
        m.parked.labels(service, "worker").inc(parked)
    if last_occurred_at is not None:
        now = now or datetime.now(timezone.utc)
        m.lag.labels(service, "worker").set(max(0.0, (now - last_occurred_at).total_seconds()))


DEAD_LETTER_REASONS = ("too_large", "unsigned", "invalid", "undecodable", "unprocessable", "repeated_failure",
                       "expired")


def dead_letter_reason(reason: str) -> str:
    """A bounded label for a dead-letter reason text (the text itself goes to the header)."""
    text = reason.lower()
    for prefix, label in (("body of", "too_large"), ("refused", "unsigned"), ("invalid event", "invalid"),
                          ("undecodable", "undecodable"), ("unprocessable", "unprocessable"),
                          ("failed", "repeated_failure"), ("unknown session", "expired")):
        if text.startswith(prefix):
            return label
    return "other"


def event_dead_lettered(service: str, reason: str, process: str = "worker") -> None:
    metrics().dead_lettered.labels(service, process, dead_letter_reason(reason)).inc()


def rate_limit_kind(route: str) -> str:
    """The limit a 429 on `route` comes from: invite, login (sign-in, session, password), export
    (per user and IP, or concurrent exports), else other. Counted where every 429 passes (the
    response), so no limiter call site needs to know about metrics."""
    for part, kind in (("invite", "invite"), ("login", "login"), ("session", "login"), ("password", "login"),
                       ("export", "export")):
        if part in route:
            return kind
    return "other"


def rate_limit_refused(service: str, route: str) -> None:
    metrics().refusals.labels(service, "web", rate_limit_kind(route)).inc()


def export_built(file_format: str, seconds: float) -> None:
    metrics().build.labels("export", "worker", file_format).observe(seconds)


# -- gauges read from a database when scraped ------------------------------------------------------

class ScrapeCollector:
    """Calls `read()` at each scrape; it returns (name, help, {label: value}, value) samples.
    A failing read is logged and yields nothing: a scrape never fails for a database hiccup."""

    def __init__(self, read: Callable[[], Iterable[tuple[str, str, dict, float]]], what: str):
        self.read, self.what = read, what

    def describe(self):
        return []  # unknown until read; registering must not touch the database

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        try:
            samples = list(self.read())
        except Exception:  # noqa: BLE001 - see the class's docstring
            log.warning("reading %s for /metrics failed", self.what, exc_info=True)
            return
        families: dict[str, GaugeMetricFamily] = {}
        for name, help_text, labels, value in samples:
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(name, help_text, labels=list(labels))
            family.add_metric(list(labels.values()), value)
        yield from families.values()


_watched: set[tuple] = set()


def watch(key: tuple, read: Callable[[], Iterable[tuple[str, str, dict, float]]]) -> None:
    """Register a ScrapeCollector once per process (a relay restarted in a thread does not add
    a second one)."""
    from prometheus_client import REGISTRY

    with _metrics_lock:
        if key in _watched:
            return
        _watched.add(key)
    REGISTRY.register(ScrapeCollector(read, "/".join(map(str, key))))


def _age(now: datetime, then: datetime | None) -> float:
    if then is None:
        return 0.0
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    return max(0.0, (now - then).total_seconds())


def outbox_backlog(session, outbox) -> tuple[int, float]:
    """(unsent outbox rows, the oldest one's age in seconds): one query on the sent_at index."""
    from sqlalchemy import func, select

    count, oldest = session.execute(select(func.count(), func.min(outbox.c.created_at))
                                    .where(outbox.c.sent_at.is_(None))).one()
    return count, _age(datetime.now(timezone.utc), oldest)


def watch_outbox(service: str, session_factory: Callable, outbox) -> None:
    """okrsnap_outbox_backlog and okrsnap_outbox_oldest_age_seconds, read when scraped."""
    def read():
        with session_factory() as session:
            count, age = outbox_backlog(session, outbox)
        labels = {"service": service, "process": "relay"}
        return [("okrsnap_outbox_backlog", "Outbox rows not yet published", labels, count),
                ("okrsnap_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row", labels, age)]

    watch(("outbox", service), read)
    metrics().published.labels(service, "relay")  # a series at 0 from the start: rates and alerts see it


def weeks_waiting(session, week_closes, sealed_weeks) -> tuple[int, datetime | None]:
    """(closed weeks not sealed yet, the earliest end among them)."""
    from sqlalchemy import func, select

    w, s = week_closes, sealed_weeks
    unsealed = ~select(s.c.week).where(s.c.session_id == w.c.session_id, s.c.week == w.c.week).exists()
    return tuple(session.execute(select(func.count(), func.min(w.c.ends_at)).where(unsealed)).one())


def watch_weeks_waiting(session_factory: Callable, week_closes, sealed_weeks) -> None:
    """okrsnap_weeks_waiting_to_seal and okrsnap_week_waiting_to_seal_oldest_seconds (since the
    week's end) of the snapshot service."""
    def read():
        with session_factory() as session:
            count, oldest = weeks_waiting(session, week_closes, sealed_weeks)
        labels = {"service": "snapshot", "process": "worker"}
        return [("okrsnap_weeks_waiting_to_seal", "Closed weeks not sealed yet", labels, count),
                ("okrsnap_week_waiting_to_seal_oldest_seconds", "Time since the end of the oldest unsealed "
                 "closed week", labels, _age(datetime.now(timezone.utc), oldest))]

    watch(("weeks",), read)
    _consumer_series("snapshot")


EXPORT_STATES = ("queued", "running", "done", "failed", "cancelled", "expired")  # export.domain.model.STATUSES


def watch_export_jobs(session_factory: Callable, jobs) -> None:
    """okrsnap_export_jobs{state}: jobs per status (every known state, 0 included)."""
    from sqlalchemy import func, select

    def read():
        with session_factory() as session:
            counts = dict(session.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status)).all())
        return [("okrsnap_export_jobs", "Export jobs by state",
                 {"service": "export", "process": "worker", "state": state}, counts.get(state, 0))
                for state in sorted(set(EXPORT_STATES) | set(counts))]

    watch(("export_jobs",), read)
    _consumer_series("export")


def _consumer_series(service: str) -> None:
    """A consumer's counters at 0 from its start, before its first event."""
    m = metrics()
    for counter in (m.applied, m.duplicate, m.parked):
        counter.labels(service, "worker")


def queue_depths(settings) -> dict[str, tuple[int | None, int | None]]:
    """{queue name: (messages waiting, dead letters)} of every consuming queue, by passive
    declarations (nothing is created or moved); None where a queue does not exist (yet)."""
    from shared.messaging import broker_connection, topology_for
    from shared.topology import QUEUES

    topology = topology_for(settings)
    depths = {}
    with broker_connection(settings) as connection:
        connection.ensure_connection(max_retries=1, timeout=5)
        for spec in QUEUES:
            names = (topology.queue_name(spec.consumer, spec.purpose),
                     topology.dead_letter_queue(spec.consumer, spec.purpose).name)
            counts = []
            for name in names:
                channel = connection.channel()  # a failed passive declare closes its channel
                try:
                    counts.append(channel.queue_declare(queue=name, passive=True).message_count)
                except Exception:  # noqa: BLE001 - not declared yet
                    counts.append(None)
                finally:
                    try:
                        channel.close()
                    except Exception:  # noqa: BLE001
                        pass
            depths[f"{spec.consumer}.{spec.purpose}"] = tuple(counts)
    return depths


# -- serving /metrics ------------------------------------------------------------------------------

def serve_metrics(host: str, port: int | None, *, multiprocess_dir: str | None = None):
    """Serve /metrics on host:port in a daemon thread (None: not at all). Under gunicorn's
    master, `multiprocess_dir` sums the workers' files. Returns "host:port" or None; a port in
    use is logged, not fatal: metrics never stop okrsnap."""
    if not port:
        return None
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

    registry = REGISTRY
    if multiprocess_dir:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.warning("metrics not served: %s:%s cannot be bound (%s)", host, port, exc.strerror or exc)
        return None
    log.info("metrics at http://%s:%s/metrics", host, port)
    return f"{host}:{port}"


# -- readiness ------------------------------------------------------------------------------------

_heads: dict[str, tuple[str, ...]] = {}


def migration_heads(script_location) -> tuple[str, ...]:
    """The head revisions of a service's migration scripts (read once per process)."""
    key = str(script_location)
    if key not in _heads:
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", key)
        _heads[key] = tuple(sorted(ScriptDirectory.from_config(config).get_heads()))
    return _heads[key]


def check_database(engine, schema: str | None, script_location) -> tuple[str, str]:
    """(database check, migrations check): "ok" or a short reason (no URL, no secret). On a raw
    DBAPI connection: no SQLAlchemy transaction, so SQLite's BEGIN IMMEDIATE hook (shared.db)
    never makes a probe wait for a writer."""
    try:
        connection = engine.raw_connection()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return f"unreachable: {exc.__class__.__name__}", "unknown"
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT 1")
        cursor.fetchall()
        try:
            cursor.execute(f"SELECT version_num FROM {schema + '.' if schema else ''}alembic_version")
            current = tuple(sorted(row[0] for row in cursor.fetchall()))
        except Exception:  # noqa: BLE001 - no version table: never migrated
            current = ()
    except Exception as exc:  # noqa: BLE001
        return f"unreachable: {exc.__class__.__name__}", "unknown"
    finally:
        try:
            connection.close()  # back to the pool, rolled back
        except Exception:  # noqa: BLE001
            pass
    heads = migration_heads(script_location)
    if current == heads:
        return "ok", "ok"
    return "ok", f"at {','.join(current) or 'none'}, head {','.join(heads)}"


def check_broker(settings, timeout: float = 2.0) -> str:
    from shared.messaging import broker_connection

    try:
        with broker_connection(settings) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
            connection.default_channel  # noqa: B018 - the embedded transport connects here
    except Exception as exc:  # noqa: BLE001
        return f"unreachable: {exc.__class__.__name__}"
    return "ok"


def readiness(container, *, broker: bool = True) -> tuple[bool, dict[str, str]]:
    """A service's readiness: its database reachable, its migrations at head, and (`broker`)
    its broker reachable."""
    target = container.settings.database_for(container.SERVICE)
    database, migrations = check_database(container.database.engine, target.schema, container.MIGRATIONS)
    checks = {"database": database, "migrations": migrations}
    replica = getattr(container, "replica", None)  # the snapshot service's read replica, when set
    if replica is not None:
        reached, replayed = check_database(replica.engine, target.schema, container.MIGRATIONS)
        checks["replica"] = reached if reached != "ok" else "ok" if replayed == "ok" else f"migrations {replayed}"
    if broker:
        checks["broker"] = check_broker(container.settings)
    return all(v == "ok" for v in checks.values()), checks


# -- relays' and workers' heartbeat file ------------------------------------------------------------

READY_INTERVAL = 10.0
_process = {"name": None, "metrics": None, "ready": None, "checks": {}}


def process_status() -> dict:
    """What the heartbeat file says beside its time: process, pid, readiness, metrics address."""
    return {"process": _process["name"], "pid": os.getpid(), "ready": _process["ready"],
            "checks": _process["checks"], "metrics": _process["metrics"],
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def start_process(name: str, *, metrics_address: tuple[str, int | None] | None = None,
                  ready: Callable[[], tuple[bool, dict]] | None = None,
                  stop: threading.Event | None = None) -> None:
    """A relay or worker process: serve its metrics, and (`ready`) check its readiness every
    READY_INTERVAL seconds in a daemon thread, for its heartbeat file."""
    _process["name"] = name
    if metrics_address is not None:
        _process["metrics"] = serve_metrics(*metrics_address)
    if ready is None:
        return

    def loop():
        while True:
            try:
                _process["ready"], _process["checks"] = ready()
            except Exception as exc:  # noqa: BLE001
                _process["ready"], _process["checks"] = False, {"error": exc.__class__.__name__}
            if stop is not None and stop.wait(READY_INTERVAL):
                return
            if stop is None:
                time.sleep(READY_INTERVAL)

    threading.Thread(target=loop, name=f"{name}-readiness", daemon=True).start()
