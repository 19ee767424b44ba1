"""A blue-green shift under load through the real frontend: no request may fail."""

from __future__ import annotations

import threading
import time
from collections import Counter

import requests

from releasectl.providers.base import HealthCheck, Health
from releasectl.wait import wait_for

from .conftest import start_server, wait_health

MAX_SECONDS = 15.0
MAX_REQUESTS = 20_000


class Load(threading.Thread):
    """A bounded keep-alive client: stops at MAX_SECONDS, MAX_REQUESTS, or when told."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.ok: Counter[str] = Counter()
        self.failures: list[str] = []
        self.total = 0

    def run(self) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        with requests.Session() as session:
            while not self.stop.is_set() and self.total < MAX_REQUESTS and time.monotonic() < deadline:
                self.total += 1
                try:
                    r = session.get(self.url, timeout=5)
                    if r.status_code == 200:
                        self.ok[r.text.strip()] += 1
                    else:
                        self.failures.append(f"HTTP {r.status_code}")
                except requests.RequestException as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")


def test_blue_green_shift_under_load_loses_no_request(factory):
    provider = factory(health=HealthCheck(interval=0.1, timeout=1.0, rise=2, fall=3))
    provider.ensure_pool()
    v1 = start_server(provider, "1.0.0")
    m1 = provider.add_member(v1)
    wait_health(provider, m1.id, Health.HEALTHY)
    provider.set_weights({m1.id: 100})

    load = Load(provider.pool_endpoint())
    load.start()
    try:
        wait_for(lambda: load.ok["1.0.0"] >= 200, timeout=5, interval=0.05, what="load to flow through v1")
        v2 = start_server(provider, "2.0.0")
        m2 = provider.add_member(v2)
        wait_health(provider, m2.id, Health.HEALTHY)
        for weight in (10, 50, 100):
            provider.set_weights({m2.id: weight})
            mark = load.total
            wait_for(lambda: load.total >= mark + 300 or not load.is_alive(), timeout=5, interval=0.05,
                     what=f"traffic at v2 weight {weight}")
        provider.set_weights({m1.id: 0})
        provider.remove_member(m1.id)
        provider.delete_server(v1.id)  # only once it is out of the pool
        mark = load.total
        wait_for(lambda: load.total >= mark + 300 or not load.is_alive(), timeout=5, interval=0.05,
                 what="traffic after v1 is gone")
        still_running = load.is_alive()
    finally:
        load.stop.set()
        load.join(timeout=10)

    assert still_running, f"the load loop ended before the rollout did ({load.total} requests)"
    assert load.failures == [], f"{len(load.failures)} of {load.total} requests failed: {load.failures[:5]}"
    assert load.ok["2.0.0"] > 0 and load.ok["1.0.0"] > 0
    assert [m.id for m in provider.list_members()] == [m2.id]
    stats = provider.member_stats()[m2.id]
    assert stats.http_5xx == 0 and stats.errors == 0
    print(f"zero-downtime: {load.total} requests, {dict(load.ok)}")
