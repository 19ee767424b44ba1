"""Octavia v2: the operator's pool, its health monitor, and its members.

Every write under a load balancer flips it to PENDING_UPDATE, and Octavia answers 409 ("immutable") to
any other write until it is ACTIVE again. So each write here waits for the LB to be ACTIVE before and
after; a 409 "immutable" is waited out and replayed (bounded); an LB in ERROR (or being deleted) raises
ResourceFailure at once, because waiting cannot fix it.

Weights change with one batch call per `set_weights`: `PUT /pools/{id}/members` with the complete desired
state of every member, from a fresh read of the pool. Octavia parses each entry as a create object, so a
field left out falls back to its create default (weight 1!), and a member left out is deleted.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from releasectl.errors import Conflict, NotFound, ProviderError, ResourceFailure, UsageError
from releasectl.providers.base import HealthCheck
from releasectl.wait import REAL_CLOCK, Clock, wait_for

from .http import ServiceClient, UncertainWrite
from .neutron import looks_like_id
from .status import LB_FAILED, LB_READY

log = logging.getLogger("releasectl.providers.openstack.octavia")

MAX_CONFLICTS = 10  # 409s waited out per write
MAX_CREATE_TRIES = 3
MEMBER_FIELDS = ("name", "weight", "admin_state_up", "backup", "monitor_address", "monitor_port", "subnet_id", "tags")


@dataclass
class Poll:
    interval: float = 1.0
    max_interval: float = 5.0


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
        path, params = f"/pools/{pool_id}/members", {"limit": 1000}
        for _ in range(1000):
            data = self.call("GET", path, params=params).json()
            members = data.get("members", [])
            yield from members
            nxt = next((link.get("href") for link in data.get("members_links", []) if link.get("rel") == "next"), None)
            if not nxt or not members:
                return
            marker = nxt.split("marker=", 1)[1].split("&", 1)[0] if "marker=" in nxt else None
            if marker is None:
                return
            params = {"limit": 1000, "marker": marker}
        raise ProviderError("load-balancer: more than 1000 pages of members; stopping")

    def get_member(self, pool_id: str, member_id: str) -> dict[str, Any] | None:
        return self._one(f"/pools/{pool_id}/members/{member_id}", "member")


class Pool:
    """The configured pool of one environment: checks, waits, and member changes."""

    def __init__(
        self,
        api: Octavia,
        ref: str,
        *,
        health: HealthCheck,
        create_monitor: bool,
        monitor_name: str,
        timeout: float,
        poll: Poll,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.api = api
        self.ref = ref
        self.health = health
        self.create_monitor = create_monitor
        self.monitor_name = monitor_name
        self.timeout = timeout
        self.poll = poll
        self.clock = clock
        self._pool: dict[str, Any] | None = None

    # ---- the pool and its load balancer ---------------------------------------------------------------

    def pool(self, refresh: bool = False) -> dict[str, Any]:
        if self._pool is None or refresh:
            self._pool = self._find()
        return self._pool

    @property
    def id(self) -> str:
        return str(self.pool()["id"])

    @property
    def lb_id(self) -> str:
        lbs = self.pool().get("loadbalancers") or []
        if not lbs:
            raise ProviderError(f"pool {self.ref!r} belongs to no load balancer")
        return str(lbs[0]["id"])

    def _find(self) -> dict[str, Any]:
        if looks_like_id(self.ref):
            pool = self.api.get_pool(self.ref)
            if pool is not None:
                return pool
        pools = self.api.find_pools(self.ref)
        if len(pools) > 1:
            raise UsageError(f"several Octavia pools are named {self.ref!r}", hint="set openstack.pool to the pool's id")
        if not pools:
            raise UsageError(
                f"no Octavia pool {self.ref!r} in this project",
                hint="create the load balancer, listener and pool first (releasectl uses an existing pool), "
                "or fix openstack.pool",
            )
        return pools[0]

    def wait_active(self, why: str = "") -> dict[str, Any]:
        """Wait until the LB is ACTIVE; an LB in ERROR or being deleted fails at once."""
        lb_id = self.lb_id

        def check() -> dict[str, Any] | None:
            lb = self.api.get_lb(lb_id)
            if lb is None:
                raise ResourceFailure(f"load balancer {lb_id} of pool {self.ref!r} is gone")
            status = str(lb.get("provisioning_status", "")).upper()
            if status == LB_READY:
                return lb
            if status in LB_FAILED:
                raise ResourceFailure(
                    f"load balancer {lb.get('name') or lb_id} is {status}: releasectl cannot change pool {self.ref!r}",
                    hint=f"an operator must repair it (e.g. `openstack loadbalancer failover {lb_id}`); "
                    "then run `releasectl rollout --resume`",
                )
            return None

        what = f"load balancer {lb_id} to be ACTIVE" + (f" ({why})" if why else "")
        return wait_for(check, timeout=self.timeout, interval=self.poll.interval, max_interval=self.poll.max_interval, what=what, clock=self.clock)

    def write(self, what: str, call: Callable[[], Any]) -> Any:
        """Run one write between two waits for ACTIVE; wait out 409 'immutable' answers (bounded)."""
        for _ in range(MAX_CONFLICTS):
            self.wait_active(f"before {what}")
            try:
                result = call()
            except Conflict as exc:
                if "immutable" not in str(exc).lower() and "pending" not in str(exc).lower():
                    raise
                log.debug("%s: load balancer busy, waiting: %s", what, exc)
                self.clock.sleep(self.poll.interval)
                continue
            self.wait_active(f"after {what}")
            return result
        raise ProviderError(f"{what}: the load balancer stayed busy through {MAX_CONFLICTS} attempts")

    def ensure(self) -> None:
        """The pool exists, its LB is usable, and a health monitor checks its members."""
        pool = self.pool(refresh=True)
        self.wait_active("checking the pool")
        if pool.get("healthmonitor_id"):
            return
        if not self.create_monitor:
            raise UsageError(
                f"Octavia pool {pool.get('name') or self.id} has no health monitor: without one every member is "
                "NO_MONITOR and releasectl cannot tell a healthy new version from a broken one",
                hint="add an HTTP health monitor to the pool, or set `openstack.create_monitor: true` to let "
                "releasectl create one from the `health:` settings",
            )
        self._create_monitor(pool)

    def _create_monitor(self, pool: dict[str, Any]) -> None:
        h = self.health
        protocol = str(pool.get("protocol", "HTTP")).upper()
        delay = max(1, math.ceil(h.interval))
        body: dict[str, Any] = {
            "pool_id": self.id,
            "name": self.monitor_name,
            "delay": delay,
            "timeout": min(delay, max(1, math.ceil(h.timeout))),
            "max_retries": min(10, max(1, h.rise)),
            "max_retries_down": min(10, max(1, h.fall)),
            "admin_state_up": True,
        }
        if protocol in ("HTTP", "HTTPS", "TERMINATED_HTTPS", "PROXY"):
            body.update(type="HTTPS" if protocol == "HTTPS" else "HTTP", http_method="GET", url_path=h.path, expected_codes=str(h.expected_status))
        else:
            body["type"] = "TCP"
        for _ in range(MAX_CREATE_TRIES):
            try:
                self.write("creating the health monitor", lambda: self.api.call("POST", "/healthmonitors", json={"healthmonitor": body}))
                break
            except UncertainWrite:
                self.wait_active("after an unanswered monitor create")
                if self.pool(refresh=True).get("healthmonitor_id"):
                    break
            except Conflict:  # another runner created it meanwhile
                if self.pool(refresh=True).get("healthmonitor_id"):
                    break
                raise
        log.info("created health monitor %s on pool %s", self.monitor_name, self.ref)
        self.pool(refresh=True)

    def endpoint(self) -> str | None:
        pool = self.pool()
        listeners = pool.get("listeners") or []
        lb = self.api.get_lb(self.lb_id)
        if lb is None or not lb.get("vip_address") or not listeners:
            return None
        listener = self.api.get_listener(str(listeners[0]["id"]))
        if listener is None:
            return None
        scheme = "https" if str(listener.get("protocol", "")).upper() in ("HTTPS", "TERMINATED_HTTPS") else "http"
        host = lb["vip_address"]
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{listener.get('protocol_port')}"

    # ---- members -------------------------------------------------------------------------------------

    def members(self) -> list[dict[str, Any]]:
        return list(self.api.iter_members(self.id))

    def find_member(self, address: str, port: int) -> dict[str, Any] | None:
        for m in self.members():
            if m.get("address") == address and int(m.get("protocol_port", 0)) == port:
                return m
        return None

    def add(self, address: str, port: int, name: str, subnet_id: str | None) -> dict[str, Any]:
        """Add at weight 0; adopt an existing member on the same address and port (idempotent)."""
        existing = self.find_member(address, port)
        if existing is not None:
            return existing
        body: dict[str, Any] = {"address": address, "protocol_port": port, "weight": 0, "name": name, "admin_state_up": True}
        if subnet_id:
            body["subnet_id"] = subnet_id
        path = f"/pools/{self.id}/members"
        for _ in range(MAX_CREATE_TRIES):
            try:
                created = self.write(f"adding member {name}", lambda: self.api.call("POST", path, json={"member": body}).json()["member"])
                return self.api.get_member(self.id, created["id"]) or created
            except (UncertainWrite, Conflict) as exc:
                # A duplicate (409 "already using ip") or an unanswered create: adopt what is there.
                self.wait_active("after an ambiguous member create")
                existing = self.find_member(address, port)
                if existing is not None:
                    return existing
                if isinstance(exc, Conflict):
                    raise
        raise ProviderError(f"could not add member {name} ({address}:{port}) after {MAX_CREATE_TRIES} attempts")

    def set_weights(self, weights: Mapping[str, int], max_weight: int) -> None:
        """One batch PUT with the full desired state of every member, then verify by reading back."""
        for member_id, weight in weights.items():
            if not 0 <= int(weight) <= max_weight:
                raise UsageError(f"weight {weight} for member {member_id} is outside 0..{max_weight}")
        attempts = 0
        while True:
            attempts += 1
            self.wait_active("before changing weights")
            current = self.members()
            known = {m["id"] for m in current}
            missing = [mid for mid in weights if mid not in known]
            if missing:
                log.warning("set_weights: members %s are not in pool %s any more; skipped", ", ".join(missing), self.ref)
            desired = []
            changed = False
            for m in current:
                entry = {"address": m["address"], "protocol_port": m["protocol_port"]}
                for key in MEMBER_FIELDS:
                    if key in m and m[key] is not None:
                        entry[key] = m[key]
                if m["id"] in weights:
                    weight = int(weights[m["id"]])
                    if weight != m.get("weight"):
                        changed = True
                    entry["weight"] = weight
                    if weight > 0 and not m.get("admin_state_up", True):
                        entry["admin_state_up"] = True
                        changed = True
                desired.append(entry)
            if not changed:
                return
            try:
                self.api.call("PUT", f"/pools/{self.id}/members", json={"members": desired})
            except Conflict as exc:
                if attempts >= MAX_CONFLICTS or ("immutable" not in str(exc).lower() and "pending" not in str(exc).lower()):
                    raise
                log.debug("set_weights: load balancer busy, waiting: %s", exc)
                self.clock.sleep(self.poll.interval)
                continue
            break
        self.wait_active("after changing weights")
        after = {m["id"]: m for m in self.members()}
        wrong = [
            f"{mid}: {after[mid].get('weight')} instead of {w}"
            for mid, w in weights.items()
            if mid in after and int(after[mid].get("weight", -1)) != int(w)
        ]
        if wrong:
            raise ProviderError(f"pool {self.ref!r} did not take the new weights ({'; '.join(wrong)})")

    def remove(self, member_id: str) -> None:
        """Delete the member; already gone is success."""
        path = f"/pools/{self.id}/members/{member_id}"
        self.write(f"removing member {member_id}", lambda: self.api.call("DELETE", path, allow=(404,)))


__all__ = ["Octavia", "Pool", "Poll", "NotFound"]
