"""Without Redis, every gateway process counts login attempts together, through the gateway's
database (issue 11: with per-process counts, four workers let four times the limit through).
Two containers built from the same settings stand for two gunicorn workers."""
import threading

from services.gateway.adapters.ratelimit import DatabaseLimiter, InProcessLimiter, limiter_for
from services.gateway.bootstrap import bootstrap
from services.gateway.entrypoints.app import create_app
from tests.conftest import make_settings

API = "/api/v1"


def test_two_gateway_processes_share_one_login_count_without_redis(tmp_path):
    settings = make_settings(tmp_path, OKRSNAP_LOGIN_RATE="3/60", OKRSNAP_LOGIN_IP_RATE="100/60")
    workers = [bootstrap(settings) for _ in range(2)]
    workers[0].migrate()
    assert all(isinstance(w.limiter, DatabaseLimiter) for w in workers)  # what a gateway gets without Redis
    for w in workers:  # one moment for both: the six hits cannot straddle a window's end
        w.limiter._now = lambda: 1_000_000.0
    try:
        clients = [create_app(w).test_client() for w in workers]
        answers = [clients[n % 2].post(f"{API}/auth/login", json={"email": "a@example.com", "password": "wrong"}
                                       ).status_code for n in range(6)]
        assert [w.limiter._down_until for w in workers] == [0.0, 0.0]  # never fell back to counting alone
        assert answers == [401, 401, 401, 429, 429, 429]
    finally:
        for w in workers:
            w.database.dispose()


def test_concurrent_hits_are_counted_exactly_and_expired_windows_pruned(tmp_path):
    container = bootstrap(make_settings(tmp_path))
    container.migrate()
    now = [1_000_000.0]
    try:
        limiters = [DatabaseLimiter(container.database.session, now=lambda: now[0]) for _ in range(2)]
        results = []

        def hammer(limiter):
            for _ in range(10):
                results.append(limiter.hit("burst", (15, 60)))

        threads = [threading.Thread(target=hammer, args=(limiter,)) for limiter in limiters]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r == 0 for r in results) == [False] * 5 + [True] * 15
        now[0] += 61
        limiters[0].PRUNE_EVERY = 1
        assert limiters[0].hit("burst", (15, 60)) == 0  # a new window
        from sqlalchemy import func, select

        from services.gateway.adapters import orm
        with container.database.session() as db:
            assert db.execute(select(func.count()).select_from(orm.rate_limit_counts)).scalar_one() == 1
    finally:
        container.database.dispose()


def test_the_limiter_falls_back_to_counting_in_process_when_the_database_fails():
    def broken():
        raise RuntimeError("database down")

    limiter = DatabaseLimiter(broken, fallback=InProcessLimiter())
    assert [limiter.hit("k", (2, 60)) for _ in range(2)] == [0, 0] and limiter.hit("k", (2, 60)) > 0


def test_without_redis_or_a_database_the_limiter_says_so(caplog):
    assert isinstance(limiter_for(None), InProcessLimiter)
    assert "counts login attempts alone" in caplog.text
