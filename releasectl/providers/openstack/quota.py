"""The project's quota, read-only: Nova absolute limits, Neutron quota details, Octavia quotas.

    GET {compute}/limits                               maxTotalInstances/totalInstancesUsed, cores, RAM (MB)
    GET {network}/v2.0/quotas/{project}/details.json   {"quota": {"port": {"limit", "used", "reserved"}, ...}}
                                                       (without the quota-details extension: the limits of
                                                       /v2.0/quotas/{project}, used counted from the listings)
    GET {load-balancer}/v2/lbaas/quotas/{project}      limits only; used counted (LBs; members only when limited)

A service missing from the catalog, or a quota it does not publish, is left out: that resource is not checked.
One server of this environment takes one instance, its flavor's vCPUs and RAM, one port and one pool member.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

from releasectl.errors import NotFound, ProviderError
from releasectl.providers.base import UNLIMITED, Quota

from .neutron import Neutron
from .nova import Nova
from .octavia import Octavia

log = logging.getLogger("releasectl.providers.openstack.quota")

NOVA_LIMITS = {  # resource: (limit key, used key) of GET /limits' "absolute"
    "instances": ("maxTotalInstances", "totalInstancesUsed"),
    "cores": ("maxTotalCores", "totalCoresUsed"),
    "ram_mb": ("maxTotalRAMSize", "totalRAMUsed"),
}
NEUTRON_QUOTAS = {"ports": ("port", "ports"), "floatingips": ("floatingip", "floatingips"),
                  "security_groups": ("security_group", "security-groups")}  # resource: (quota key, listing)
OCTAVIA_QUOTAS = {"load_balancers": ("load_balancer", "loadbalancer"), "members": ("member", "member")}  # new, old key


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def nova_quota(nova: Nova, limits: dict[str, int], used: dict[str, int]) -> None:
    absolute = (nova.call("GET", "/limits").json().get("limits") or {}).get("absolute") or {}
    for resource, (limit_key, used_key) in NOVA_LIMITS.items():
        limit = _int(absolute.get(limit_key))
        if limit is not None:
            limits[resource] = limit
            used[resource] = _int(absolute.get(used_key)) or 0


def neutron_quota(neutron: Neutron, project: str, limits: dict[str, int], used: dict[str, int]) -> None:
    data = neutron.get_json(f"/quotas/{project}/details.json")
    if data is not None:
        for resource, (key, _) in NEUTRON_QUOTAS.items():
            entry = (data.get("quota") or {}).get(key)
            if isinstance(entry, Mapping) and _int(entry.get("limit")) is not None:
                limits[resource] = int(entry["limit"])
                used[resource] = (_int(entry.get("used")) or 0) + (_int(entry.get("reserved")) or 0)
        return
    plain = (neutron.get_json(f"/quotas/{project}") or {}).get("quota") or {}
    for resource, (key, listing) in NEUTRON_QUOTAS.items():
        limit = _int(plain.get(key))
        if limit is None:
            continue
        limits[resource] = limit
        if limit != UNLIMITED:
            used[resource] = sum(1 for _ in neutron.pages(f"/{listing}", key=listing.replace("-", "_"),
                                                         params={"project_id": project}))


def octavia_quota(octavia: Octavia, project: str, limits: dict[str, int], used: dict[str, int]) -> None:
    quota = (octavia.get_json(f"/quotas/{project}") or {}).get("quota") or {}
    counted: list[dict[str, Any]] | None = None
    for resource, keys in OCTAVIA_QUOTAS.items():
        limit = next((_int(quota[k]) for k in keys if k in quota), None)
        if limit is None:
            continue
        limits[resource] = limit
        if limit == UNLIMITED:
            continue
        if counted is None:
            counted = list(octavia.pages("/loadbalancers", key="loadbalancers", params={"project_id": project}))
        if resource == "load_balancers":
            used[resource] = len(counted)
        else:
            pools = octavia.pages("/pools", key="pools", params={"project_id": project})
            used[resource] = sum(sum(1 for _ in octavia.iter_members(str(p["id"]))) for p in pools)


def read_quota(
    nova: Nova, neutron: Neutron, octavia: Octavia, project: str, flavor: Callable[[], Mapping[str, Any] | None],
    has_service: Callable[[str], bool],
) -> Quota:
    """Every quota the cloud publishes; a service missing from the catalog, a quota API it lacks (404) or one
    this account may not read (403) is skipped (logged: that resource is not checked). Any other failure is
    the provider's error: a quota that cannot be read for another reason is not assumed."""
    limits: dict[str, int] = {}
    used: dict[str, int] = {}
    for service, read in (("compute", lambda: nova_quota(nova, limits, used)),
                          ("network", lambda: neutron_quota(neutron, project, limits, used)),
                          ("load-balancer", lambda: octavia_quota(octavia, project, limits, used))):
        if not has_service(service):
            log.info("no %s service in the catalog: its quota is not checked", service)
            continue
        try:
            read()
        except NotFound as exc:
            log.info("no %s quota to check: %s", service, exc)
        except ProviderError as exc:
            if getattr(exc, "status", None) != 403:
                raise
            # many clouds let only some roles read quotas: that account's release is not blocked, just unchecked
            log.warning("the %s quota is not checked: this account may not read it (%s)", service, exc)
    per_server = {"instances": 1, "ports": 1, "members": 1}
    size = flavor()
    if size:
        per_server.update({"cores": _int(size.get("vcpus")) or 0, "ram_mb": _int(size.get("ram")) or 0})
    return Quota(limits=limits, used=used, per_server=per_server)
