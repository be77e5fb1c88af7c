"""Gunicorn settings shared by every okrsnap HTTP service (gateway, checkin, snapshot, export).

The app is given on the command line, e.g.
    gunicorn -c /app/gunicorn.conf.py "services.checkin.entrypoints.app:create_app()"
and the rest comes from the environment:
    OKRSNAP_BIND                 host:port to listen on (default 0.0.0.0:8000)
    OKRSNAP_WEB_CONCURRENCY      worker processes (default 2)
    OKRSNAP_WEB_THREADS          threads per worker (default 4)
    OKRSNAP_WEB_TIMEOUT          seconds a request may take before its worker is restarted (default 30)
    OKRSNAP_FORWARDED_ALLOW_IPS  proxies trusted for X-Forwarded-* headers (default: none)
    OKRSNAP_LOG_LEVEL            gunicorn's log level (default info)
    OKRSNAP_METRICS_PORT         where the master serves the workers' summed /metrics (docs/operations.md)
"""
import os

# prometheus-client's multiprocess mode: the hooks set PROMETHEUS_MULTIPROC_DIR in the master.
from shared import gunicorn_hooks
from shared.gunicorn_hooks import child_exit, on_starting, when_ready  # noqa: F401 - gunicorn's hooks

if hasattr(gunicorn_hooks, "logconfig_dict"):  # JSON lines in production (shared/observability.py)
    logconfig_dict = gunicorn_hooks.logconfig_dict


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


bind = [os.environ.get("OKRSNAP_BIND") or "0.0.0.0:8000"]
workers = _int("OKRSNAP_WEB_CONCURRENCY", 2)
# Threads let a worker wait on PostgreSQL or an internal service while serving other requests.
worker_class = "gthread"
threads = _int("OKRSNAP_WEB_THREADS", 4)
timeout = _int("OKRSNAP_WEB_TIMEOUT", 30)
# On SIGTERM (docker stop) in-flight requests get this long; compose's stop_grace_period is longer.
graceful_timeout = 30
keepalive = 5

# Never preload: okrsnap creates SQLAlchemy engines and kombu broker connections lazily, in the
# process that uses them, keyed by os.getpid() (shared/db.py ProcessLocalDatabase). Preloading
# would import and build the app in the master before the fork; anything it connected there
# would be shared by every worker's copy of the socket. Each worker builds its own app instead.
preload_app = False

# Logs go to stdout/stderr, where `docker compose logs` collects them.
accesslog = "-"
errorlog = "-"
loglevel = (os.environ.get("OKRSNAP_LOG_LEVEL") or "info").lower()
# %(U)s is the path without its query string: download tokens travel in the query.
# The response's X-Request-ID is the correlation id, on the service's log lines too.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(D)sus "%(a)s" %({x-request-id}o)s'

# Workers' liveness files: /dev/shm is memory-backed, so the heartbeat never blocks on the
# container's overlay filesystem.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# X-Forwarded-* is trusted from nobody unless an operator puts a proxy in front and names it:
# in the compose file the gateway is reached directly, and internal services are reached only
# by the gateway, which sends no forwarding headers. ("" is read by gunicorn as an empty list.)
forwarded_allow_ips = os.environ.get("OKRSNAP_FORWARDED_ALLOW_IPS", "")

# Gunicorn >= 25.1 opens a control socket under $HOME by default; containers have no use for it
# (and the app user's home is read-only). Older gunicorn ignores this unknown name.
control_socket_disable = True
