"""Engines made lazily per process id, so nothing is shared across gunicorn's fork."""
from __future__ import annotations

import os
import select
import stat
import threading
from datetime import timezone

from sqlalchemy import DateTime, Engine, TypeDecorator, create_engine, event, exc, text
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import DatabaseTarget

IDLE_IN_TRANSACTION_MS = 60_000


def make_engine(target: DatabaseTarget, **kwargs) -> Engine:
    if target.is_sqlite:
        path = target.url.split("///", 1)[-1]
        if path and path != ":memory:":
            private_sqlite_file(path)
        engine = create_engine(target.url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # WAL lets the API read while a worker writes; foreign keys are off by default.
            dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" hook below owns BEGIN
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # pysqlite's deferred BEGIN lets two writers deadlock on upgrade; take the lock first.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        engine.dialect._okrsnap_sqlite = True  # marker for tests
        return engine
    kwargs.setdefault("pool_size", 5)
    # A client that vanished mid-transaction (a half-open connection after a network fault) would
    # keep its row locks until TCP keepalive notices, hours later: every Check-in of that Key
    # Result would wait behind it. The server ends such a transaction after a minute.
    options = f"-cidle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
    if target.schema:
        options = f"-csearch_path={target.schema} {options}"
    engine = create_engine(target.url, connect_args={"options": options}, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        event.listen(engine, "checkout", _ping_if_server_spoke)
    return engine


def _ping_if_server_spoke(dbapi_connection, _record, _proxy) -> None:
    """A cheap pre-ping (instead of pool_pre_ping's round trip on every checkout, which cost a
    batch or request one SELECT 1 per transaction): an idle pooled connection has nothing to
    read unless the server closed or reset it (a restart sends its FATAL notice, a cut resets
    the socket), so a zero-timeout poll of the socket finds those without a round trip; only then
    is the connection really pinged, and a dead one replaced by the pool (DisconnectionError).
    A socket error on a connection in use is caught by SQLAlchemy's disconnect detection, which
    invalidates the whole pool."""
    try:
        if getattr(dbapi_connection, "closed", False) or getattr(dbapi_connection, "broken", False):
            raise exc.DisconnectionError("the connection was closed")
        readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    except (OSError, ValueError) as error:  # fileno() of a closed connection
        raise exc.DisconnectionError(str(error)) from error
    if not readable:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi_connection.rollback()  # hand the connection back as idle as it was
    except Exception as error:  # noqa: BLE001 - any failure here means the connection is gone
        raise exc.DisconnectionError(str(error)) from error


def private_directory(directory: str) -> None:
    """Creates the directory 0700, and makes an existing one of ours 0700 (never a shared one with
    the sticky bit, like /tmp): the embedded data (private titles, password hashes, exports, the
    development secrets) is for okrsnap's own user only."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    info = os.stat(directory)
    if info.st_uid == os.getuid() and not info.st_mode & stat.S_ISVTX and stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(directory, 0o700)


def private_sqlite_file(path: str) -> None:
    """The SQLite file exists 0600 before SQLite opens it (its -wal and -shm files take the same
    mode), in a 0700 directory."""
    private_directory(os.path.dirname(os.path.abspath(path)))
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for name in (path, path + "-wal", path + "-shm"):
        try:
            if os.stat(name).st_uid == os.getuid():
                os.chmod(name, 0o600)
        except FileNotFoundError:
            pass


def ensure_schema(target: DatabaseTarget) -> None:
    if target.schema is None:
        return
    engine = create_engine(target.url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{target.schema}"'))
    finally:
        engine.dispose()


class ProcessLocalDatabase:
    """Hands out the engine and session factory of the current process, creating them on
    first use after a fork (never at import time)."""

    def __init__(self, target: DatabaseTarget):
        self.target = target
        self._pid: int | None = None
        self._engine: Engine | None = None
        self._sessions: sessionmaker | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    if self._engine is not None:
                        self._engine.dispose(close=False)  # the parent's connections stay its own
                    self._engine = make_engine(self.target)
                    self._sessions = sessionmaker(bind=self._engine, expire_on_commit=False)
                    self._pid = os.getpid()
        return self._engine

    def session(self) -> Session:
        self.engine  # noqa: B018 - makes sure the factory belongs to this process
        return self._sessions()

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        self._pid = None
        self._engine = None


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC in and out, also on SQLite (which stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
