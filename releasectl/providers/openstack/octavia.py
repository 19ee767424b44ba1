"""Octavia v2, the REST calls: pools, load balancers, listeners and members (read side; writes are made by
`pool.py`, which serialises them per load balancer). Paths go below `<endpoint>/v2/lbaas`."""

from __future__ import annotations

from typing import Any, Iterator

from .http import ServiceClient

PAGE = 1000


class Octavia(ServiceClient):
    service_type = "load-balancer"

    def root(self, endpoint: str) -> str:
        url = endpoint.rstrip("/")
        for suffix in ("/v2.0", "/v2"):
            if url.endswith(suffix):
                url = url[: -len(suffix)]
        return url + "/v2/lbaas"

    def _one(self, path: str, key: str) -> dict[str, Any] | None:
        data = self.get_json(path)
        return None if data is None else data[key]

    def get_pool(self, pool_id: str) -> dict[str, Any] | None:
        return self._one(f"/pools/{pool_id}", "pool")

    def find_pools(self, name: str) -> list[dict[str, Any]]:
        pools = self.call("GET", "/pools", params={"name": name}).json().get("pools", [])
        return [p for p in pools if p.get("name") == name]

    def get_lb(self, lb_id: str) -> dict[str, Any] | None:
        return self._one(f"/loadbalancers/{lb_id}", "loadbalancer")

    def get_listener(self, listener_id: str) -> dict[str, Any] | None:
        return self._one(f"/listeners/{listener_id}", "listener")

    def iter_members(self, pool_id: str) -> Iterator[dict[str, Any]]:
        """Every member of the pool, all pages."""
        return self.pages(f"/pools/{pool_id}/members", key="members", params={"limit": PAGE})

    def get_member(self, pool_id: str, member_id: str) -> dict[str, Any] | None:
        return self._one(f"/pools/{pool_id}/members/{member_id}", "member")
