"""Neutron, just enough: the ``private`` network and its subnet, and loopback IPAM.

Every server gets its own loopback address ``<address_prefix>.N`` (N counting up, never reused in
one simulator run), so app processes of different servers can all listen on the same port and a
load-balancer member's address really identifies one server.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from .server import ApiError, Request, Response, Service, json_response
from .state import iso, new_id

FIRST_HOST = 1
LAST_HOST = 249  # .250 is the load balancer VIP
VIP_HOST = 250


def _reserve(address: str, port: int) -> socket.socket | None:
    """Bind (without listening) to hold address:port until the app process takes the socket over.

    Without SO_REUSEADDR this bind fails while anything else holds the pair, and it makes other
    binds fail; the app inherits the bound socket, so there is no window in which two simulators
    running at once could both hand out the same address and port.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((address, port))
    except OSError:
        sock.close()
        return None
    return sock


class AddressPool:
    """Hands out ``prefix.N`` addresses in order; with a port, skips and reserves busy pairs."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._next = FIRST_HOST
        self._lock = threading.Lock()
        self._reserved: dict[tuple[str, int], socket.socket] = {}

    @property
    def vip(self) -> str:
        return f"{self.prefix}.{VIP_HOST}"

    @property
    def cidr(self) -> str:
        return f"{self.prefix}.0/24"

    def allocate(self, port: int | None = None) -> str | None:
        """Next address, or None when the subnet is exhausted. With ``port``, also reserve address:port."""
        with self._lock:
            while self._next <= LAST_HOST:  # bounded by the subnet size
                address = f"{self.prefix}.{self._next}"
                self._next += 1
                if port is None:
                    return address
                sock = _reserve(address, port)
                if sock is not None:
                    self._reserved[(address, port)] = sock
                    return address
            return None

    def take(self, address: str | None, port: int) -> socket.socket | None:
        """Hand the reserved, bound socket over (to the app process, which listens on it)."""
        with self._lock:
            return self._reserved.pop((address, port), None) if address else None

    def release(self, address: str | None, port: int) -> None:
        """Drop the reservation (the server failed or went away)."""
        sock = self.take(address, port)
        if sock is not None:
            sock.close()

    def release_all(self) -> None:
        with self._lock:
            socks = list(self._reserved.values())
            self._reserved.clear()
        for sock in socks:
            sock.close()


class Networking(Service):
    name = "network"
    prefix = "/networking"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.pool = AddressPool(ctx.options.address_prefix)

    def seed(self) -> None:
        """Create the ``private`` network and subnet."""
        store, now = self.ctx.store, self.ctx.now()
        project_id = self.ctx.keystone.project["id"]
        net_id, subnet_id = new_id(), new_id()
        store.networks[net_id] = {
            "id": net_id, "name": "private", "status": "ACTIVE", "admin_state_up": True, "shared": False,
            "subnets": [subnet_id], "project_id": project_id, "tenant_id": project_id, "mtu": 1500,
            "router:external": False, "availability_zones": ["nova"], "description": "", "tags": [],
            "port_security_enabled": True, "ipv4_address_scope": None, "ipv6_address_scope": None,
            "created_at": iso(now), "updated_at": iso(now), "revision_number": 1,
        }
        store.subnets[subnet_id] = {
            "id": subnet_id, "name": "private-subnet", "network_id": net_id, "ip_version": 4,
            "cidr": self.pool.cidr, "gateway_ip": None, "enable_dhcp": True,
            "allocation_pools": [{"start": f"{self.pool.prefix}.{FIRST_HOST}", "end": f"{self.pool.prefix}.{LAST_HOST}"}],
            "dns_nameservers": [], "host_routes": [], "project_id": project_id, "tenant_id": project_id,
            "description": "", "tags": [], "created_at": iso(now), "updated_at": iso(now), "revision_number": 1,
        }
        self.network_id, self.subnet_id = net_id, subnet_id

    def register(self) -> None:
        self.add("GET", "/", self.versions, auth=False)
        self.add("GET", "/v2.0/networks", self.list_networks)
        self.add("GET", "/v2.0/networks/{id}", self.show_network)
        self.add("GET", "/v2.0/subnets", self.list_subnets)
        self.add("GET", "/v2.0/subnets/{id}", self.show_subnet)

    def render_error(self, req: Request, err: ApiError) -> Response:
        kind = err.extra.get("type") or {404: "HTTPNotFound", 401: "HTTPUnauthorized"}.get(err.status, "HTTPError")
        return json_response(err.status, {"NeutronError": {"type": kind, "message": err.message, "detail": ""}})

    def versions(self, req: Request) -> Response:
        return json_response(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
            {"rel": "self", "href": f"{self.ctx.url}/networking/v2.0/"}]}]})

    @staticmethod
    def _filter(items: list[dict], req: Request) -> list[dict]:
        out = []
        for item in items:
            ok = True
            for key, values in req.query.items():
                if key in ("fields", "limit", "marker", "sort_key", "sort_dir") or key not in item:
                    continue
                if str(item[key]).lower() not in [v.lower() for v in values] and item[key] not in values:
                    ok = False
            if ok:
                out.append(item)
        return out

    def list_networks(self, req: Request) -> Response:
        with self.ctx.store.lock:
            nets = [dict(n) for n in self.ctx.store.networks.values()]
        return json_response(200, {"networks": self._filter(nets, req)})

    def show_network(self, req: Request, net_id: str) -> Response:
        with self.ctx.store.lock:
            net = self.ctx.store.networks.get(net_id)
            if net is None:
                raise ApiError(404, f"Network {net_id} could not be found.", type="NetworkNotFound")
            return json_response(200, {"network": dict(net)})

    def list_subnets(self, req: Request) -> Response:
        with self.ctx.store.lock:
            subnets = [dict(s) for s in self.ctx.store.subnets.values()]
        return json_response(200, {"subnets": self._filter(subnets, req)})

    def show_subnet(self, req: Request, subnet_id: str) -> Response:
        with self.ctx.store.lock:
            subnet = self.ctx.store.subnets.get(subnet_id)
            if subnet is None:
                raise ApiError(404, f"Subnet {subnet_id} could not be found.", type="SubnetNotFound")
            return json_response(200, {"subnet": dict(subnet)})

    def network_by_name_or_id(self, ref: str) -> dict | None:
        for net in self.ctx.store.networks.values():
            if ref in (net["id"], net["name"]):
                return net
        return None
