"""Fixed-window rate limits, shared across processes: through Redis when OKRSNAP_REDIS_URL is set,
else through the gateway's database (a short upsert per hit: every gunicorn worker and container of
one installation counts together, also on the embedded SQLite). In process (thread-safe) only where
neither is given, with a warning. An outage of Redis or the database never locks everyone out: the
limiter falls back to counting in process, logs it, and tries again after a pause.

A hit returns 0 when allowed, or the seconds until the window ends (for Retry-After)."""
from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

Rate = tuple[int, int]  # (requests, window seconds)


def _window(now: float, window: int) -> tuple[int, int]:
    """(index of the window holding now, whole seconds until it ends, at least 1)."""
    index = int(now // window)
    return index, max(1, math.ceil((index + 1) * window - now))


def key_for(*parts: str) -> str:
    """A compact key: emails and addresses are hashed, never stored as such."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


class InProcessLimiter:
    def __init__(self, now: Callable[[], float] = time.time):
        self._now = now
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int, int], int] = {}
        self._pid = os.getpid()

    def hit(self, key: str, rate: Rate) -> int:
        limit, window = rate
        index, retry_after = _window(self._now(), window)
        with self._lock:
            if self._pid != os.getpid():  # a forked child starts with its own counts
                self._counts, self._pid = {}, os.getpid()
            slot = (key, window, index)
            count = self._counts.get(slot, 0) + 1
            self._counts[slot] = count
            if len(self._counts) > 10_000:
                self._prune()
        return retry_after if count > limit else 0

    def _prune(self) -> None:
        now = self._now()
        self._counts = {slot: count for slot, count in self._counts.items()
                        if (slot[2] + 1) * slot[1] > now}


class RedisLimiter:
    """INCR on a key per window, expiring with it: every process of every container agrees."""

    RETRY_AFTER_OUTAGE = 30.0  # seconds between attempts to reach Redis again after a failure

    def __init__(self, url: str, *, prefix: str = "okrsnap:ratelimit", fallback: InProcessLimiter | None = None,
                 now: Callable[[], float] = time.time, client_factory: Callable | None = None):
        self.url = url
        self.prefix = prefix
        self.fallback = fallback or InProcessLimiter(now)
        self._now = now
        self._client_factory = client_factory or self._make_client
        self._local_pid: int | None = None
        self._client = None
        self._lock = threading.Lock()
        self._down_until = 0.0

    def _make_client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)

    def client(self):
        # Made on first use in each process: a connection pool never crosses gunicorn's fork.
        if self._local_pid != os.getpid():
            with self._lock:
                if self._local_pid != os.getpid():
                    self._client = self._client_factory()
                    self._local_pid = os.getpid()
        return self._client

    def hit(self, key: str, rate: Rate) -> int:
        now = self._now()
        if now < self._down_until:
            return self.fallback.hit(key, rate)
        limit, window = rate
        index, retry_after = _window(now, window)
        name = f"{self.prefix}:{key}:{window}:{index}"
        try:
            pipe = self.client().pipeline(transaction=True)
            pipe.incr(name)
            pipe.expire(name, window + 1)
            count = int(pipe.execute()[0])
        except Exception as exc:  # noqa: BLE001 - any Redis failure: count in process instead
            self._down_until = now + self.RETRY_AFTER_OUTAGE
            log.warning("rate limiter: Redis unreachable (%s); counting in process for %ss",
                        exc.__class__.__name__, int(self.RETRY_AFTER_OUTAGE))
            return self.fallback.hit(key, rate)
        return retry_after if count > limit else 0


class DatabaseLimiter:
    """One row per key and window in rate_limit_counts, counted up with an atomic upsert (SQLite
    and PostgreSQL both do INSERT ... ON CONFLICT DO UPDATE ... RETURNING). Expired rows are
    pruned now and then."""

    RETRY_AFTER_OUTAGE = 30.0
    PRUNE_EVERY = 500  # hits per process between prunes

    def __init__(self, session_factory: Callable, *, fallback: InProcessLimiter | None = None,
                 now: Callable[[], float] = time.time):
        self.session_factory = session_factory
        self.fallback = fallback or InProcessLimiter(now)
        self._now = now
        self._down_until = 0.0
        self._hits = 0

    def hit(self, key: str, rate: Rate) -> int:
        now = self._now()
        if now < self._down_until:
            return self.fallback.hit(key, rate)
        limit, window = rate
        index, retry_after = _window(now, window)
        try:
            count = self._count(f"{key}:{window}:{index}", (index + 1) * window, now)
        except Exception as exc:  # noqa: BLE001 - any database failure: count in process instead
            self._down_until = now + self.RETRY_AFTER_OUTAGE
            log.warning("rate limiter: database unreachable (%s: %s); counting in process for %ss",
                        exc.__class__.__name__, str(exc)[:200], int(self.RETRY_AFTER_OUTAGE))
            return self.fallback.hit(key, rate)
        return retry_after if count > limit else 0

    def _count(self, bucket: str, expires_at: float, now: float) -> int:
        from sqlalchemy import delete

        from services.gateway.adapters.orm import rate_limit_counts as table

        db = self.session_factory()
        try:
            dialect = db.get_bind().dialect.name
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            statement = insert(table).values(bucket=bucket, count=1, expires_at=expires_at)
            statement = statement.on_conflict_do_update(index_elements=[table.c.bucket],
                                                        set_={"count": table.c.count + 1}).returning(table.c.count)
            count = db.execute(statement).scalar_one()
            self._hits += 1
            if self._hits % self.PRUNE_EVERY == 0:
                db.execute(delete(table).where(table.c.expires_at < now))
            db.commit()
            return count
        finally:
            db.close()


def limiter_for(redis_url: str | None, session_factory: Callable | None = None):
    """Redis if given; else the database if given; else in process, which each process counts
    alone (said loudly: N workers let N times the limit through)."""
    if redis_url:
        return RedisLimiter(redis_url, fallback=DatabaseLimiter(session_factory) if session_factory else None)
    if session_factory is not None:
        return DatabaseLimiter(session_factory)
    log.warning("rate limiter: neither OKRSNAP_REDIS_URL nor a database to share counts: each process "
                "counts login attempts alone")
    return InProcessLimiter()
