"""A fleet's server writes run in parallel (bounded): proven with a barrier that only opens when several
writes are in flight at once, never with timings."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from releasectl.providers.base import Label, Role
from releasectl.providers.openstack import servers as servers_module
from releasectl.providers.openstack.servers import Servers


class BarrierNova:
    """set_metadata waits until `width` calls are in flight together."""

    def __init__(self, width: int) -> None:
        self.barrier = threading.Barrier(width, timeout=5)
        self.in_flight = self.most = 0
        self.lock = threading.Lock()
        self.metadata: dict[str, dict[str, str]] = {}

    def _enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            self.barrier.wait()  # BrokenBarrierError if the calls came one after another
        finally:
            with self.lock:
                self.in_flight -= 1

    def set_metadata(self, server_id: str, metadata: dict[str, str]) -> dict[str, str]:
        self._enter()
        self.metadata[server_id] = dict(metadata)
        return dict(metadata)


def fleet(nova: BarrierNova, n: int) -> tuple[Servers, list[str]]:
    ctx = SimpleNamespace(app="demo", env="production", app_port=8000)
    servers = Servers(nova, None, None, ctx, {"boot_timeout": 10, "network": None}, poll=None, pause=lambda _: None)  # type: ignore[arg-type]
    ids = [f"s{i}" for i in range(n)]
    servers._listed = {sid: {"id": sid, "name": f"demo-{sid}", "status": "ACTIVE", "metadata": {}} for sid in ids}
    return servers, ids


def test_relabelling_a_fleet_writes_in_parallel_within_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers_module, "FLEET_CONCURRENCY", 4)
    nova = BarrierNova(width=4)
    servers, ids = fleet(nova, 8)
    made = servers.update_labels_many(ids, {Label.ROLE: Role.STABLE.value})
    assert [s.id for s in made] == ids and {s.role for s in made} == {Role.STABLE}
    assert sorted(nova.metadata) == sorted(ids) and nova.most == 4  # 4 at once, never more
