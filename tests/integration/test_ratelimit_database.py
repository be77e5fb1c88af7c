"""The database rate limiter on real PostgreSQL (no Redis): limiters of different gateway processes
count one window together, exactly, under concurrent hits."""
import threading

import pytest

from services.gateway.adapters.ratelimit import DatabaseLimiter
from services.gateway.bootstrap import bootstrap
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


def test_limiters_share_one_exact_count_on_postgresql(tmp_path, database_url):
    container = bootstrap(make_settings(tmp_path, OKRSNAP_DATABASE_URL=database_url))
    container.migrate()
    try:
        limiters = [DatabaseLimiter(container.database.session) for _ in range(3)]
        results = []

        def hammer(limiter):
            for _ in range(10):
                results.append(limiter.hit("login-email:x", (20, 3600)))

        threads = [threading.Thread(target=hammer, args=(limiter,)) for limiter in limiters]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(1 for r in results if r == 0) == 20 and all(r > 0 for r in results if r)
    finally:
        container.database.dispose()
