"""Octavia writes for `env up/down`: the load balancer (VIP on the environment's network), its listener, the
ROUND_ROBIN pool and the health monitor built from `health:`.

Each object carries the owner tags and is found by them. Every write waits for the load balancer to be
ACTIVE first and after (Octavia answers 409 while anything under it is PENDING_*), through the provider's one
status waiter; an LB in ERROR fails at once. Deletes go child first and wait until the object is gone.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from releasectl.errors import ResourceFailure
from releasectl.providers.base import EnvKind, EnvResource

from .http import create_then_find
from .octavia import Octavia
from .pool import owner_tags
from .status import Poll, wait_for_status

PATHS = {EnvKind.LOADBALANCER: ("loadbalancers", "loadbalancer"), EnvKind.LISTENER: ("listeners", "listener"),
         EnvKind.POOL: ("pools", "pool"), EnvKind.HEALTH_MONITOR: ("healthmonitors", "healthmonitor")}
MONITOR_SPEC = {"type": "type", "path": "url_path", "expected": "expected_codes", "delay": "delay", "timeout": "timeout",
                "rise": "max_retries", "fall": "max_retries_down"}


def _failed(obj: Mapping[str, Any]) -> ResourceFailure | None:
    if obj.get("provisioning_status") == "ERROR":
        return ResourceFailure(f"load balancer object {obj.get('name') or obj.get('id')} is in ERROR",
                               hint="it needs an operator (a failover or a delete); `env down` removes releasectl's")
    return None


class LoadBalancerBuilder:
    def __init__(self, octavia: Octavia, app: str, env: str, *, timeout: float, poll: Poll) -> None:
        self.api = octavia
        self.tags = owner_tags(app, env)
        self.timeout, self.poll = timeout, poll

    def _owned(self, kind: EnvKind) -> list[dict[str, Any]]:
        path, key = PATHS[kind]
        return list(self.api.pages(f"/{path}", key=path, params={"tags": ",".join(self.tags)}))

    def _get(self, kind: EnvKind, ident: str) -> dict[str, Any] | None:
        path, key = PATHS[kind]
        data = self.api.get_json(f"/{path}/{ident}")
        return None if data is None else data.get(key)

    def settle(self, kind: EnvKind, ident: str) -> dict[str, Any] | None:
        """Wait until the object is out of PENDING_* (ACTIVE), or gone (None) if it was being deleted."""
        return wait_for_status(
            lambda: self._get(kind, ident), what=f"{kind.value} {ident} to settle", timeout=self.timeout, poll=self.poll,
            done=lambda o: not str(o.get("provisioning_status", "")).startswith("PENDING_"), failed=_failed, missing=None)

    # ---- observe ---------------------------------------------------------------------------------------

    def observe(self) -> list[EnvResource]:
        out: list[EnvResource] = []
        for kind in PATHS:
            for obj in self._owned(kind):
                if str(obj.get("provisioning_status", "")).startswith("PENDING_"):
                    obj = self.settle(kind, obj["id"])  # a killed run's work in flight: let it land first
                    if obj is None:
                        continue
                out.append(self._resource(kind, obj))
        return out

    @staticmethod
    def _resource(kind: EnvKind, obj: Mapping[str, Any]) -> EnvResource:
        if kind is EnvKind.LOADBALANCER:
            return EnvResource(kind, obj["name"], id=obj["id"],
                               attrs={"address": obj.get("vip_address") or "", "port_id": obj.get("vip_port_id") or "",
                                      "subnet_id": obj.get("vip_subnet_id") or ""})
        if kind is EnvKind.LISTENER:
            return EnvResource(kind, obj["name"], {"protocol": str(obj.get("protocol")), "port": str(obj.get("protocol_port"))},
                               id=obj["id"])
        if kind is EnvKind.POOL:
            return EnvResource(kind, obj["name"], {"protocol": str(obj.get("protocol")), "algorithm": str(obj.get("lb_algorithm"))},
                               id=obj["id"])
        return EnvResource(kind, obj["name"], {k: str(obj.get(v)) for k, v in MONITOR_SPEC.items()}, id=obj["id"])

    # ---- create / delete -------------------------------------------------------------------------------

    @staticmethod
    def _lb_id(r: EnvResource, known: Mapping[str, EnvResource]) -> str:
        """The environment's one load balancer, which every listener, pool and monitor sits under."""
        lb = next((k for k in known.values() if k.kind is EnvKind.LOADBALANCER and k.owned), None)
        if lb is None or not lb.id:
            raise ResourceFailure(f"{r.kind.value} {r.name}: the environment's load balancer is not there")
        return lb.id

    def _write(self, lb_id: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        self.settle(EnvKind.LOADBALANCER, lb_id)
        return call()

    def create(self, r: EnvResource, known: Mapping[str, EnvResource]) -> EnvResource:
        path, key = PATHS[r.kind]
        body: dict[str, Any] = {"name": r.name, "tags": self.tags}
        if r.kind is EnvKind.LOADBALANCER:
            network = known[r.spec["network"]]
            subnet = next((k for k in known.values() if k.kind is EnvKind.SUBNET and k.attrs.get("network_id") == network.id), None)
            subnet_id = subnet.id if subnet else network.attrs.get("subnet_id")
            body.update({"vip_subnet_id": subnet_id} if subnet_id else {"vip_network_id": network.id})
            body["description"] = "releasectl"
        elif r.kind is EnvKind.LISTENER:
            body.update(loadbalancer_id=known[r.spec["loadbalancer"]].id, protocol=r.spec["protocol"],
                        protocol_port=int(r.spec["port"]))
        elif r.kind is EnvKind.POOL:
            body.update(listener_id=known[r.spec["listener"]].id, protocol=r.spec["protocol"], lb_algorithm=r.spec["algorithm"])
        else:
            body.update(pool_id=known[r.spec["pool"]].id, type=r.spec["type"], url_path=r.spec["path"],
                        expected_codes=r.spec["expected"], delay=int(r.spec["delay"]), timeout=int(r.spec["timeout"]),
                        max_retries=int(r.spec["rise"]), max_retries_down=int(r.spec["fall"]), http_method="GET")
        lb_id = None if r.kind is EnvKind.LOADBALANCER else self._lb_id(r, known)

        def create() -> dict[str, Any]:
            call = lambda: self.api.call("POST", f"/{path}", json={key: body}).json()[key]  # noqa: E731
            return call() if lb_id is None else self._write(lb_id, call)

        def find() -> dict[str, Any] | None:
            return next((o for o in self._owned(r.kind) if o.get("name") == r.name), None)

        obj = create_then_find(create, find, what=f"{r.kind.value} {r.name}", on_conflict="retry",
                               settle=(lambda: self.settle(EnvKind.LOADBALANCER, lb_id)) if lb_id else None)
        obj = self.settle(r.kind, obj["id"]) or obj
        if lb_id is not None:
            self.settle(EnvKind.LOADBALANCER, lb_id)
        return self._resource(r.kind, obj)

    def delete(self, r: EnvResource, known: Mapping[str, EnvResource]) -> None:
        """Delete and wait until it is gone. The LB goes last (its children were deleted before it)."""
        path, _ = PATHS[r.kind]
        lb = next((k for k in known.values() if k.kind is EnvKind.LOADBALANCER), None)
        if r.kind is not EnvKind.LOADBALANCER and lb is not None and lb.id:
            self.settle(EnvKind.LOADBALANCER, lb.id)
        if self._get(r.kind, r.id) is None:
            return
        self.api.call("DELETE", f"/{path}/{r.id}", allow=(404,))
        wait_for_status(lambda: self._get(r.kind, r.id), what=f"{r.kind.value} {r.name} to be deleted",
                        timeout=self.timeout, poll=self.poll, done=lambda o: False, failed=_failed, missing=None)


__all__ = ["LoadBalancerBuilder"]
