"""Quotas and limits: Nova's ``GET /limits``, Neutron's ``/v2.0/quotas/{project}[/details.json]`` and
Octavia's ``/v2/lbaas/quotas/{project}``, with usage counted from the store and limits set through
``Simulator.set_quota`` or ``POST /_sim/quota``. Nova refuses a boot over its quota with 403, as Nova does.

Resource names are releasectl's (instances, cores, ram_mb, ports, floatingips, security_groups,
load_balancers, members); -1 is unlimited, the default of every one.
"""

from __future__ import annotations

from typing import Any

from .server import ApiError, Request, Response, json_response

RESOURCES = ("instances", "cores", "ram_mb", "ports", "floatingips", "security_groups", "load_balancers", "members")
NEUTRON_KEYS = {"ports": "port", "floatingips": "floatingip", "security_groups": "security_group"}
NEUTRON_UNCHECKED = {"network": 100, "subnet": 100, "router": 10, "security_group_rule": 100, "rbac_policy": 10}
OCTAVIA_KEYS = {"load_balancers": "load_balancer", "members": "member"}


class Quotas:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.limits: dict[str, int] = {r: -1 for r in RESOURCES}

    def set(self, **limits: Any) -> dict[str, int]:
        unknown = set(limits) - set(RESOURCES)
        if unknown:
            raise ValueError(f"unknown quota resources {sorted(unknown)}; known: {list(RESOURCES)}")
        for name, value in limits.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < -1:
                raise ValueError(f"the {name} quota must be an integer >= -1, got {value!r}")
        self.limits.update(limits)
        return dict(self.limits)

    def usage(self) -> dict[str, int]:
        """What the project uses now (caller need not hold the lock)."""
        store = self.ctx.store
        with store.lock:
            servers = [s for s in store.servers.values() if s.status != "DELETED"]
            flavors = [store.flavors.get(s.flavor_id, {}) for s in servers]
            return {
                "instances": len(servers),
                "cores": sum(int(f.get("vcpus", 0)) for f in flavors),
                "ram_mb": sum(int(f.get("ram", 0)) for f in flavors),
                "ports": sum(1 for s in servers if s.address) + len(store.loadbalancers),
                "floatingips": len(getattr(store, "floatingips", {}) or {}),
                "security_groups": len(getattr(store, "security_groups", {}) or {}),
                "load_balancers": len(store.loadbalancers),
                "members": len(store.members),
            }

    def check_boot(self, flavor: dict) -> None:
        """Nova's quota check on a boot (caller holds the lock): 403 naming the first resource over."""
        used = self.usage()
        wanted = {"instances": 1, "cores": int(flavor.get("vcpus", 0)), "ram_mb": int(flavor.get("ram", 0))}
        for name, amount in wanted.items():
            limit = self.limits[name]
            if limit != -1 and used[name] + amount > limit:
                label = {"instances": "instances", "cores": "cores", "ram_mb": "ram"}[name]
                raise ApiError(403, f"Quota exceeded for {label}: Requested {amount}, but already used "
                                    f"{used[name]} of {limit} {label}")

    # ----- the services' views -----
    def nova_limits(self, req: Request) -> Response:
        used = self.usage()
        absolute = {
            "maxTotalInstances": self.limits["instances"], "totalInstancesUsed": used["instances"],
            "maxTotalCores": self.limits["cores"], "totalCoresUsed": used["cores"],
            "maxTotalRAMSize": self.limits["ram_mb"], "totalRAMUsed": used["ram_mb"],
            "maxServerMeta": 128, "maxImageMeta": 128, "maxPersonality": 5, "maxPersonalitySize": 10240,
            "maxTotalKeypairs": 100, "maxServerGroups": 10, "maxServerGroupMembers": 10,
            "totalServerGroupsUsed": 0,
        }
        return json_response(200, {"limits": {"rate": [], "absolute": absolute}})

    def _project(self, project: str) -> None:
        if project != self.ctx.keystone.project["id"]:
            raise ApiError(403, f"Not authorized to read the quota of project {project}")

    def neutron_quota(self, req: Request, project: str) -> Response:
        self._project(project)
        quota = {key: self.limits[name] for name, key in NEUTRON_KEYS.items()}
        return json_response(200, {"quota": {**NEUTRON_UNCHECKED, **quota}})

    def neutron_details(self, req: Request, project: str) -> Response:
        self._project(project)
        used = self.usage()
        quota = {key: {"limit": self.limits[name], "used": used[name], "reserved": 0} for name, key in NEUTRON_KEYS.items()}
        quota.update({key: {"limit": limit, "used": 0, "reserved": 0} for key, limit in NEUTRON_UNCHECKED.items()})
        return json_response(200, {"quota": quota})

    def octavia_quota(self, req: Request, project: str) -> Response:
        self._project(project)
        quota = {key: self.limits[name] for name, key in OCTAVIA_KEYS.items()}
        quota.update({"listener": -1, "pool": -1, "health_monitor": -1, "l7policy": -1, "l7rule": -1})
        return json_response(200, {"quota": quota})


def install(ctx: Any, quotas: Quotas) -> None:
    """Add the quota routes to the Neutron and Octavia services (Nova registers /limits itself)."""
    ctx.neutron.add("GET", "/v2.0/quotas/{id}/details.json", quotas.neutron_details)
    ctx.neutron.add("GET", "/v2.0/quotas/{id}", quotas.neutron_quota)
    for base in ("/v2/lbaas", "/v2.0/lbaas"):
        ctx.octavia.add("GET", f"{base}/quotas/{{id}}", quotas.octavia_quota)
