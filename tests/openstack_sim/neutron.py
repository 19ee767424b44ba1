"""Neutron: networks, subnets, security groups and rules, ports, floating IPs, and loopback IPAM.

Seeded with the ``private`` network and subnet (not with ``bare``), an ``external`` network whose
subnet hands out floating IPs, and the project's ``default`` security group. Creates and deletes are
synchronous, as in Neutron; every resource has the standard attributes (``tags``, ``revision_number``,
timestamps). Tags may be sent on create (the ``tag-creation`` extension) or replaced with ``PUT
/v2.0/{collection}/{id}/tags``; lists filter on fields and on ``tags``, ``tags-any``, ``not-tags``,
``not-tags-any``. A network or subnet with ports (a server's, a load balancer VIP's) is 409 ``...InUse``.
Ports are listed and deleted, not created: servers' ports follow Nova, VIP ports follow Octavia.

Every server gets its own loopback address ``<address_prefix>.N`` (N counting up, never reused in
one simulator run), so app processes of different servers can all listen on the same port and a
load-balancer member's address really identifies one server.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import uuid
from typing import Any, Callable

from .server import ApiError, Request, Response, Service, empty_response, json_response
from .state import iso, new_id

FIRST_HOST = 1
LAST_HOST = 249  # .250 is the load balancer VIP
VIP_HOST = 250
LAST_VIP_HOST = 254
EXTERNAL_CIDR = "127.255.0.0/24"  # floating IPs: recorded, never served (no process listens on them)

# collection -> (singular, store table, error type of its 404)
RESOURCES = {
    "networks": ("network", "networks", "NetworkNotFound"),
    "subnets": ("subnet", "subnets", "SubnetNotFound"),
    "security-groups": ("security_group", "security_groups", "SecurityGroupNotFound"),
    "security-group-rules": ("security_group_rule", "security_group_rules", "SecurityGroupRuleNotFound"),
    "ports": ("port", "ports", "PortNotFound"),
    "floatingips": ("floatingip", "floatingips", "FloatingIPNotFound"),
}
LIST_KEYS = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse",
             "tags", "tags-any", "not-tags", "not-tags-any"}
RULE_PROTOCOLS = {None, "tcp", "udp", "icmp", "icmpv6"}


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
        self.floating = AddressPool(EXTERNAL_CIDR.rsplit(".", 1)[0])
        self.network_id = self.subnet_id = self.external_network_id = ""
        self._vips: dict[str, str] = {}  # VIP address -> load balancer id

    # ----- seed -----
    def _std(self, **fields: Any) -> dict:
        """Neutron's standard attributes around ``fields``."""
        now = iso(self.ctx.now())
        project_id = self.ctx.keystone.project["id"]
        return {"id": new_id(), "project_id": project_id, "tenant_id": project_id, "description": "", "tags": [],
                "created_at": now, "updated_at": now, "revision_number": 1, **fields}

    def _network(self, name: str, external: bool = False) -> dict:
        net = self._std(name=name, status="ACTIVE", admin_state_up=True, shared=False, subnets=[], mtu=1500,
                        **{"router:external": external}, availability_zones=["nova"], port_security_enabled=True,
                        ipv4_address_scope=None, ipv6_address_scope=None)
        self.ctx.store.networks[net["id"]] = net
        return net

    def _subnet(self, net: dict, name: str, cidr: str, ip_version: int, gateway_ip: str | None,
                pools: list[dict], enable_dhcp: bool = True) -> dict:
        subnet = self._std(name=name, network_id=net["id"], ip_version=ip_version, cidr=cidr,
                           gateway_ip=gateway_ip, enable_dhcp=enable_dhcp, allocation_pools=pools,
                           dns_nameservers=[], host_routes=[], ipv6_ra_mode=None, ipv6_address_mode=None,
                           subnetpool_id=None)
        self.ctx.store.subnets[subnet["id"]] = subnet
        net["subnets"].append(subnet["id"])
        return subnet

    def _security_group(self, name: str, description: str = "", tags: list[str] | None = None) -> dict:
        group = self._std(name=name, description=description, tags=list(tags or []), stateful=True,
                          security_group_rules=[])
        self.ctx.store.security_groups[group["id"]] = group
        for ethertype in ("IPv4", "IPv6"):  # Neutron adds an allow-all egress rule per ethertype
            self._rule(group, {"direction": "egress", "ethertype": ethertype})
        return group

    def _rule(self, group: dict, spec: dict) -> dict:
        rule = self._std(security_group_id=group["id"], direction=spec["direction"],
                         ethertype=spec.get("ethertype", "IPv4"), protocol=spec.get("protocol"),
                         port_range_min=spec.get("port_range_min"), port_range_max=spec.get("port_range_max"),
                         remote_ip_prefix=spec.get("remote_ip_prefix"), remote_group_id=spec.get("remote_group_id"),
                         remote_address_group_id=None, normalized_cidr=spec.get("remote_ip_prefix"),
                         description=spec.get("description") or "")
        self.ctx.store.security_group_rules[rule["id"]] = rule
        return rule

    def seed(self, bare: bool = False) -> None:
        """The ``external`` network (floating IPs) and ``default`` security group; unless ``bare``, ``private``."""
        if not bare:
            net = self._network("private")
            subnet = self._subnet(net, "private-subnet", self.pool.cidr, 4, None, [
                {"start": f"{self.pool.prefix}.{FIRST_HOST}", "end": f"{self.pool.prefix}.{LAST_HOST}"}])
            self.network_id, self.subnet_id = net["id"], subnet["id"]
        ext = self._network("external", external=True)
        self._subnet(ext, "external-subnet", EXTERNAL_CIDR, 4, None, [
            {"start": f"{self.floating.prefix}.{FIRST_HOST}", "end": f"{self.floating.prefix}.{LAST_HOST}"}],
            enable_dhcp=False)
        self.external_network_id = ext["id"]
        self._security_group("default", "Default security group")

    def register(self) -> None:
        self.add("GET", "/", self.versions, auth=False)
        for collection in RESOURCES:
            base = f"/v2.0/{collection}"
            self.add("GET", base, self._bind(self.list_items, collection))
            if collection != "ports":
                self.add("POST", base, self._bind(self.create_item, collection))
            self.add("GET", f"{base}/{{id}}", self._bind(self.show_item, collection))
            self.add("PUT", f"{base}/{{id}}/tags", self._bind(self.replace_tags, collection))
            self.add("PUT", f"{base}/{{id}}/tags/{{tag}}", self._bind(self.add_tag, collection))
            self.add("DELETE", f"{base}/{{id}}/tags/{{tag}}", self._bind(self.delete_tag, collection))
            if collection in ("networks", "subnets", "security-groups", "floatingips", "ports"):
                self.add("PUT", f"{base}/{{id}}", self._bind(self.update_item, collection))
            self.add("DELETE", f"{base}/{{id}}", self._bind(self.delete_item, collection))

    @staticmethod
    def _bind(fn: Callable[..., Response], collection: str) -> Callable[..., Response]:
        return lambda req, *args: fn(req, collection, *args)

    def render_error(self, req: Request, err: ApiError) -> Response:
        kind = err.extra.get("type") or {404: "HTTPNotFound", 401: "HTTPUnauthorized", 409: "Conflict"}.get(
            err.status, "HTTPBadRequest" if err.status == 400 else "HTTPError")
        return json_response(err.status, {"NeutronError": {"type": kind, "message": err.message, "detail": ""}})

    def versions(self, req: Request) -> Response:
        return json_response(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
            {"rel": "self", "href": f"{self.ctx.url}/networking/v2.0/"}]}]})

    # ----- generic list / show / tags / delete -----
    def _table(self, collection: str) -> dict[str, dict]:
        return getattr(self.ctx.store, RESOURCES[collection][1])

    def _get(self, collection: str, ident: str) -> dict:
        item = self._table(collection).get(ident)
        if item is None:
            singular, _, kind = RESOURCES[collection]
            raise ApiError(404, f"{singular.replace('_', ' ').title()} {ident} could not be found.", type=kind)
        return item

    def _render(self, collection: str, item: dict) -> dict:
        out = dict(item, tags=list(item.get("tags", [])))
        if collection == "security-groups":
            out["security_group_rules"] = [dict(r) for r in self.ctx.store.security_group_rules.values()
                                           if r["security_group_id"] == item["id"]]
        return out

    @staticmethod
    def _filter(items: list[dict], req: Request) -> list[dict]:
        out = []
        for item in items:
            ok = True
            for key, values in req.query.items():
                if key in LIST_KEYS or key not in item:
                    continue
                if str(item[key]).lower() not in [v.lower() for v in values] and item[key] not in values:
                    ok = False
            for key, test, negate in (("tags", all, False), ("tags-any", any, False),
                                      ("not-tags", all, True), ("not-tags-any", any, True)):
                wanted = [t for v in req.args(key) for t in v.split(",") if t]
                if wanted and test(t in item.get("tags", []) for t in wanted) == negate:
                    ok = False
            if ok:
                out.append(item)
        return out

    def list_items(self, req: Request, collection: str) -> Response:
        with self.ctx.store.lock:
            if collection == "ports":
                self.sync_server_ports()
            items = [self._render(collection, i) for i in self._table(collection).values()]
        items = self._filter(items, req)
        fields = [f for v in req.args("fields") for f in v.split(",") if f]
        if fields:
            items = [{k: v for k, v in i.items() if k in fields} for i in items]
        return json_response(200, {collection.replace("-", "_"): items})

    def show_item(self, req: Request, collection: str, ident: str) -> Response:
        with self.ctx.store.lock:
            if collection == "ports":
                self.sync_server_ports()
            return json_response(200, {RESOURCES[collection][0]: self._render(collection, self._get(collection, ident))})

    def _touch(self, item: dict) -> None:
        item["revision_number"] += 1
        item["updated_at"] = iso(self.ctx.now())

    def replace_tags(self, req: Request, collection: str, ident: str) -> Response:
        body = req.json()
        tags = body.get("tags") if isinstance(body, dict) else None
        if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t) <= 255 for t in tags):
            raise ApiError(400, "Invalid input for tags.")
        with self.ctx.store.lock:
            item = self._get(collection, ident)
            item["tags"] = list(dict.fromkeys(tags))
            self._touch(item)
            return json_response(200, {"tags": list(item["tags"])})

    def add_tag(self, req: Request, collection: str, ident: str, tag: str) -> Response:
        with self.ctx.store.lock:
            item = self._get(collection, ident)
            if tag not in item["tags"]:
                item["tags"].append(tag)
                self._touch(item)
        return empty_response(201)

    def delete_tag(self, req: Request, collection: str, ident: str, tag: str) -> Response:
        with self.ctx.store.lock:
            item = self._get(collection, ident)
            if tag not in item["tags"]:
                raise ApiError(404, f"Tag {tag} could not be found.", type="TagNotFound")
            item["tags"].remove(tag)
            self._touch(item)
        return empty_response(204)

    # ----- create -----
    def _spec(self, req: Request, collection: str) -> dict:
        singular = RESOURCES[collection][0]
        body = req.json()
        spec = body.get(singular) if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise ApiError(400, f"Invalid input: the body must be an object with '{singular}'.")
        tags = spec.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) and 0 < len(t) <= 255 for t in tags):
            raise ApiError(400, "Invalid input for tags.")
        name = spec.get("name", "")
        if not isinstance(name, str) or len(name) > 255:
            raise ApiError(400, f"Invalid input for name. Reason: '{name}' is not a valid string.")
        return spec

    def create_item(self, req: Request, collection: str) -> Response:
        spec = self._spec(req, collection)
        with self.ctx.store.lock:
            item = getattr(self, "_create_" + collection.replace("-", "_"))(spec)
            for key in ("tags",):
                if spec.get(key):
                    item[key] = list(dict.fromkeys(spec[key]))
            if isinstance(spec.get("description"), str):
                item["description"] = spec["description"]
            return json_response(201, {RESOURCES[collection][0]: self._render(collection, item)})

    def _create_networks(self, spec: dict) -> dict:
        net = self._network(spec.get("name", ""), external=bool(spec.get("router:external", False)))
        net["admin_state_up"] = bool(spec.get("admin_state_up", True))
        return net

    def _create_subnets(self, spec: dict) -> dict:
        net = self.ctx.store.networks.get(spec.get("network_id") or "")
        if net is None:
            raise ApiError(404, f"Network {spec.get('network_id')} could not be found.", type="NetworkNotFound")
        try:
            version = int(spec.get("ip_version", 4))
            cidr = ipaddress.ip_network(str(spec.get("cidr")), strict=True)
        except (TypeError, ValueError):
            raise ApiError(400, f"Invalid input for cidr. Reason: '{spec.get('cidr')}' is not a valid IP subnet.") from None
        if cidr.version != version:
            raise ApiError(400, f"Invalid input for operation: Cidr {cidr} does not match ip_version {version}.")
        if cidr.num_addresses < 4:
            raise ApiError(400, f"Invalid input for operation: Cidr {cidr} has too few addresses.")
        for other in self.ctx.store.subnets.values():
            if other["network_id"] == net["id"] and ipaddress.ip_network(other["cidr"]).overlaps(cidr):
                raise ApiError(400, f"Invalid input for operation: Requested subnet with cidr: {cidr} for network: "
                                    f"{net['id']} overlaps with another subnet.")
        hosts = cidr.hosts()
        first = next(hosts)
        gateway = spec.get("gateway_ip", str(first))
        start = str(first + 1) if gateway == str(first) else str(first)
        end = str(cidr.broadcast_address - 1) if version == 4 else str(cidr[-1])
        return self._subnet(net, spec.get("name", ""), str(cidr), version, gateway, [{"start": start, "end": end}],
                            bool(spec.get("enable_dhcp", True)))

    def _create_security_groups(self, spec: dict) -> dict:
        return self._security_group(spec.get("name", ""), spec.get("description") or "")

    def _create_security_group_rules(self, spec: dict) -> dict:
        group = self.ctx.store.security_groups.get(spec.get("security_group_id") or "")
        if group is None:
            raise ApiError(404, f"Security group {spec.get('security_group_id')} does not exist",
                           type="SecurityGroupNotFound")
        if spec.get("direction") not in ("ingress", "egress"):
            raise ApiError(400, f"Invalid input for direction. Reason: '{spec.get('direction')}' is not in "
                                "['ingress', 'egress'].")
        if spec.get("ethertype", "IPv4") not in ("IPv4", "IPv6"):
            raise ApiError(400, f"Invalid input for ethertype. Reason: '{spec.get('ethertype')}' is not in "
                                "['IPv4', 'IPv6'].")
        protocol = spec.get("protocol")
        if protocol not in RULE_PROTOCOLS:
            raise ApiError(400, f"Security group rule protocol {protocol} not supported.",
                           type="SecurityGroupRuleInvalidProtocol")
        low, high = spec.get("port_range_min"), spec.get("port_range_max")
        if low is not None or high is not None:
            if protocol not in ("tcp", "udp"):
                raise ApiError(400, "Must also specify protocol if port range is given.",
                               type="SecurityGroupProtocolRequiredWithPorts")
            if not all(isinstance(p, int) and 1 <= p <= 65535 for p in (low, high)) or low > high:
                raise ApiError(400, "For TCP/UDP protocols, port_range_min must be <= port_range_max",
                               type="SecurityGroupInvalidPortRange")
        prefix = spec.get("remote_ip_prefix")
        if prefix is not None:
            try:
                net = ipaddress.ip_network(prefix, strict=False)
            except ValueError:
                raise ApiError(400, f"Invalid input for remote_ip_prefix. Reason: '{prefix}' is not a valid "
                                    "IP prefix.") from None
            if f"IPv{net.version}" != spec.get("ethertype", "IPv4"):
                raise ApiError(400, f"Conflicting value ethertype {spec.get('ethertype', 'IPv4')} for CIDR {prefix}",
                               type="SecurityGroupRuleParameterConflict")
            spec = dict(spec, remote_ip_prefix=str(net))
        keys = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix",
                "remote_group_id")
        wanted = {k: spec.get(k, "IPv4" if k == "ethertype" else None) for k in keys}
        for rule in self.ctx.store.security_group_rules.values():
            if rule["security_group_id"] == group["id"] and all(rule[k] == wanted[k] for k in keys):
                raise ApiError(409, f"Security group rule already exists. Rule id is {rule['id']}.",
                               type="SecurityGroupRuleExists")
        return self._rule(group, spec)

    def _create_floatingips(self, spec: dict) -> dict:
        net = self.ctx.store.networks.get(spec.get("floating_network_id") or "")
        if net is None:
            raise ApiError(404, f"Network {spec.get('floating_network_id')} could not be found.",
                           type="NetworkNotFound")
        if not net["router:external"]:
            raise ApiError(400, f"Bad floatingip request: Network {net['id']} is not a valid external network.",
                           type="BadRequest")
        address = self.floating.allocate()
        if address is None:
            raise ApiError(409, f"No more IP addresses available on network {net['id']}.",
                           type="IpAddressGenerationFailure")
        fip = self._std(floating_network_id=net["id"], floating_ip_address=address, router_id=None,
                        port_id=None, fixed_ip_address=None, status="DOWN", port_details=None, dns_domain="",
                        dns_name="", qos_policy_id=None, port_forwardings=[])
        self.ctx.store.floatingips[fip["id"]] = fip
        if spec.get("port_id"):
            self._associate(fip, spec["port_id"], spec.get("fixed_ip_address"))
        return fip

    def _associate(self, fip: dict, port_id: str | None, fixed_ip: str | None = None) -> None:
        if port_id is None:
            fip.update(port_id=None, fixed_ip_address=None, status="DOWN", port_details=None)
            return
        self.sync_server_ports()
        port = self._get("ports", port_id)
        fixed = fixed_ip or (port["fixed_ips"][0]["ip_address"] if port["fixed_ips"] else None)
        fip.update(port_id=port_id, fixed_ip_address=fixed, status="ACTIVE",
                   port_details={"name": port["name"], "network_id": port["network_id"],
                                 "device_owner": port["device_owner"], "device_id": port["device_id"]})

    # ----- update -----
    UPDATABLE = {"networks": {"name", "description", "admin_state_up"},
                 "subnets": {"name", "description", "gateway_ip", "enable_dhcp"},
                 "security-groups": {"name", "description"},
                 "floatingips": {"port_id", "fixed_ip_address", "description"},
                 "ports": {"name", "description"}}

    def update_item(self, req: Request, collection: str, ident: str) -> Response:
        singular = RESOURCES[collection][0]
        body = req.json()
        spec = body.get(singular) if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise ApiError(400, f"Invalid input: the body must be an object with '{singular}'.")
        unknown = set(spec) - self.UPDATABLE[collection]
        if unknown:
            raise ApiError(400, f"Cannot update read-only attribute {sorted(unknown)[0]}")
        with self.ctx.store.lock:
            item = self._get(collection, ident)
            if collection == "floatingips" and "port_id" in spec:
                self._associate(item, spec["port_id"], spec.get("fixed_ip_address"))
            item.update({k: v for k, v in spec.items() if k not in ("port_id", "fixed_ip_address")})
            self._touch(item)
            return json_response(200, {singular: self._render(collection, item)})

    # ----- delete -----
    def delete_item(self, req: Request, collection: str, ident: str) -> Response:
        store = self.ctx.store
        with store.lock:
            self.sync_server_ports()
            item = self._get(collection, ident)
            if collection == "networks":
                ports = [p for p in store.ports.values() if p["network_id"] == ident]
                if ports:
                    raise ApiError(409, f"Unable to complete operation on network {ident}. There are one or more "
                                        "ports still in use on the network.", type="NetworkInUse")
                for sid in list(item["subnets"]):
                    store.subnets.pop(sid, None)
            elif collection == "subnets":
                used = [p for p in store.ports.values() if any(ip["subnet_id"] == ident for ip in p["fixed_ips"])]
                if used:
                    raise ApiError(409, f"Unable to complete operation on subnet {ident}: One or more ports have "
                                        "an IP allocation from this subnet.", type="SubnetInUse")
                net = store.networks.get(item["network_id"])
                if net is not None and ident in net["subnets"]:
                    net["subnets"].remove(ident)
            elif collection == "security-groups":
                if item["name"] == "default":
                    raise ApiError(409, "Removing default security group not allowed.",
                                   type="SecurityGroupCannotRemoveDefault")
                if any(ident in p.get("security_groups", []) for p in store.ports.values()):
                    raise ApiError(409, f"Security Group {ident} in use.", type="SecurityGroupInUse")
                for rid in [r["id"] for r in store.security_group_rules.values() if r["security_group_id"] == ident]:
                    del store.security_group_rules[rid]
            elif collection == "ports":
                if item["device_owner"].startswith("compute:"):
                    raise ApiError(409, f"Port {ident} is attached to server {item['device_id']}: delete the "
                                        "server (openstack_sim does not detach interfaces).", type="PortInUse")
                if item["device_owner"] == "Octavia" and item["device_id"] in store.loadbalancers:
                    raise ApiError(409, f"Port {ident} is the VIP of load balancer {item['device_id']}.",
                                   type="PortInUse")
                self._disassociate_port(ident)
            elif collection == "floatingips":
                pass
            del self._table(collection)[ident]
        return empty_response(204)

    def _disassociate_port(self, port_id: str) -> None:
        for fip in self.ctx.store.floatingips.values():
            if fip["port_id"] == port_id:
                self._associate(fip, None)

    # ----- ports: servers' (derived from Nova) and load balancer VIPs' (made by Octavia) -----
    def _subnet_for(self, network_id: str, address: str | None) -> dict | None:
        """The subnet of ``network_id`` holding ``address``, else its first subnet (IPAM is loopback)."""
        subnets = [self.ctx.store.subnets[s] for s in self.ctx.store.networks[network_id]["subnets"]
                   if s in self.ctx.store.subnets]
        for subnet in subnets:
            if address and ipaddress.ip_address(address) in ipaddress.ip_network(subnet["cidr"]):
                return subnet
        return subnets[0] if subnets else None

    def _port(self, port_id: str, network_id: str, address: str | None, owner: str, device_id: str,
              name: str = "") -> dict:
        subnet = self._subnet_for(network_id, address)
        port = self._std(id=port_id, name=name, network_id=network_id, admin_state_up=True, status="ACTIVE",
                         mac_address="fa:16:3e:" + ":".join(port_id.replace("-", "")[i:i + 2] for i in (0, 2, 4)),
                         fixed_ips=[{"subnet_id": subnet["id"], "ip_address": address}] if subnet and address else [],
                         device_id=device_id, device_owner=owner, security_groups=[], allowed_address_pairs=[],
                         binding_vnic_type="normal", port_security_enabled=True)
        self.ctx.store.ports[port_id] = port
        return port

    def sync_server_ports(self) -> None:
        """One port per live server with an address (caller holds the lock); ids are stable per server."""
        store = self.ctx.store
        live = {}
        for server in store.servers.values():
            net = self.network_by_name_or_id(server.network) if server.network else None
            if net is None or server.address is None:
                continue
            port_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"openstack-sim-port/{server.id}"))
            live[port_id] = (net["id"], server)
        for port_id in [p for p, port in store.ports.items() if port["device_owner"].startswith("compute:")]:
            if port_id not in live:
                self._disassociate_port(port_id)
                del store.ports[port_id]
        for port_id, (network_id, server) in live.items():
            if port_id not in store.ports:
                self._port(port_id, network_id, server.address, "compute:nova", server.id)

    def allocate_vip(self, lb_id: str, subnet_id: str | None, network_id: str | None) -> tuple[str, str, str, str]:
        """A VIP port for a new load balancer: (address, port id, subnet id, network id); caller holds the lock."""
        store = self.ctx.store
        subnet = store.subnets.get(subnet_id or "")
        if subnet_id and subnet is None:
            raise ApiError(400, f"Validation failure: Subnet {subnet_id} not found.")
        if subnet is None:
            net = store.networks.get(network_id or "")
            if net is None:
                raise ApiError(400, f"Validation failure: Network {network_id} not found.")
            if not net["subnets"]:
                raise ApiError(400, f"Validation failure: Supplied network does not contain a subnet.")
            subnet = store.subnets[net["subnets"][0]]
        for host in range(VIP_HOST, LAST_VIP_HOST + 1):
            address = f"{self.pool.prefix}.{host}"
            if address not in self._vips:
                break
        else:
            raise ApiError(409, "No VIP address left (openstack_sim has 5 per run).")
        self._vips[address] = lb_id
        port = self._port(new_id(), subnet["network_id"], address, "Octavia", lb_id, name=f"octavia-lb-{lb_id}")
        port["fixed_ips"] = [{"subnet_id": subnet["id"], "ip_address": address}]
        return address, port["id"], subnet["id"], subnet["network_id"]

    def release_vip(self, address: str, port_id: str) -> None:
        """The load balancer is gone: free its VIP and delete its port (caller holds the lock)."""
        self._vips.pop(address, None)
        if port_id in self.ctx.store.ports:
            self._disassociate_port(port_id)
            del self.ctx.store.ports[port_id]

    def network_by_name_or_id(self, ref: str) -> dict | None:
        for net in self.ctx.store.networks.values():
            if ref in (net["id"], net["name"]):
                return net
        return None
