"""A blue-green shift under load through the real frontend: no request may fail."""

from __future__ import annotations

from releasectl.loadgen import LoadGenerator
from releasectl.providers.base import HealthCheck, Health
from releasectl.wait import wait_for

from .conftest import start_server, wait_health

MAX_SECONDS = 15.0
MAX_REQUESTS = 20_000


def test_blue_green_shift_under_load_loses_no_request(factory):
    provider = factory(health=HealthCheck(interval=0.1, timeout=1.0, rise=2, fall=3))
    provider.ensure_pool()
    v1 = start_server(provider, "1.0.0")
    m1 = provider.add_member(v1)
    wait_health(provider, m1.id, Health.HEALTHY)
    provider.set_weights({m1.id: 100})

    load = LoadGenerator(provider.pool_endpoint(), duration=MAX_SECONDS, max_requests=MAX_REQUESTS,
                         keepalive_clients=1, new_connection_clients=0, timeout=5).start()
    try:
        wait_for(lambda: load.stats().by_body.get("1.0.0", 0) >= 200, timeout=5, interval=0.05,
                 what="load to flow through v1")
        v2 = start_server(provider, "2.0.0")
        m2 = provider.add_member(v2)
        wait_health(provider, m2.id, Health.HEALTHY)
        for weight in (10, 50, 100):
            provider.set_weights({m2.id: weight})
            mark = load.stats().requests
            wait_for(lambda: load.stats().requests >= mark + 300 or not load.running, timeout=5, interval=0.05,
                     what=f"traffic at v2 weight {weight}")
        provider.set_weights({m1.id: 0})
        provider.remove_member(m1.id)
        provider.delete_server(v1.id)  # only once it is out of the pool
        mark = load.stats().requests
        wait_for(lambda: load.stats().requests >= mark + 300 or not load.running, timeout=5, interval=0.05,
                 what="traffic after v1 is gone")
        still_running = load.running
    finally:
        load.stop()
        load.join(timeout=10)

    stats = load.stats()
    assert still_running, f"the load ended before the rollout did ({stats.requests} requests)"
    assert stats.failed == 0, f"{stats.failed} of {stats.requests} requests failed: {stats.to_dict()}"
    assert stats.by_body.get("2.0.0", 0) > 0 and stats.by_body.get("1.0.0", 0) > 0
    assert [m.id for m in provider.list_members()] == [m2.id]
    member = provider.member_stats()[m2.id]
    assert member.http_5xx == 0 and member.errors == 0
    print(f"zero-downtime: {stats.requests} requests, {stats.by_body}")
