"""Neutron, read-only: a network by name or id (Nova wants its uuid, addresses are keyed by its name) and
the subnet an address belongs to (for the Octavia member)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from releasectl.errors import NotFound, ProviderError

from .http import ServiceClient

UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def looks_like_id(ref: str) -> bool:
    return bool(UUID.match(ref))


class Neutron(ServiceClient):
    service_type = "network"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._networks: dict[str, dict[str, Any]] = {}
        self._subnets: dict[str, list[dict[str, Any]]] = {}

    def root(self, endpoint: str) -> str:
        url = endpoint.rstrip("/")
        return url if url.endswith("/v2.0") else url + "/v2.0"

    def network(self, ref: str) -> dict[str, Any]:
        """The network named or identified by `ref` (cached for the run)."""
        if ref in self._networks:
            return self._networks[ref]
        found: dict[str, Any] | None = None
        if looks_like_id(ref):
            data = self.get_json(f"/networks/{ref}")
            found = None if data is None else data.get("network")
        if found is None:
            nets = self.call("GET", "/networks", params={"name": ref}).json().get("networks", [])
            nets = [n for n in nets if n.get("name") == ref]
            if len(nets) > 1:
                raise ProviderError(f"several networks are named {ref!r}: use its id in openstack.network")
            found = nets[0] if nets else None
        if found is None:
            raise NotFound(f"no network {ref!r}", hint="fix openstack.network (a network name or id)")
        self._networks[ref] = found
        return found

    def subnet_for(self, network_ref: str, address: str) -> str | None:
        """The id of the network's subnet that contains `address`, when it can be told."""
        net = self.network(network_ref)
        net_id = net["id"]
        if net_id not in self._subnets:
            self._subnets[net_id] = self.call("GET", "/subnets", params={"network_id": net_id}).json().get("subnets", [])
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        for subnet in self._subnets[net_id]:
            try:
                if ip in ipaddress.ip_network(subnet.get("cidr", ""), strict=False):
                    return subnet.get("id")
            except ValueError:
                continue
        return None
