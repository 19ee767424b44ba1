"""Octavia v2: load balancers, listeners, pools, health monitors and members, under /v2 and /v2.0.

Faithful in what a blue-green tool depends on: every write flips the load balancer to
PENDING_UPDATE for ``lb_delay`` seconds and writes in that window get 409 in WSME format; a
duplicate member gets 409; the batch member PUT matches on (address, protocol_port), deletes what
is missing unless ``additive_only``, and resets omitted fields (weight -> 1) to create defaults.
Member ``operating_status`` comes from health checks (see ``health.py``).

Validation follows the real API (Octavia 19): a monitor's ``url_path`` must be a URL path (no spaces),
``expected_codes`` must look like ``200``, ``200,202`` or ``200-204``, a TCP/PING monitor takes no HTTP
fields, names stop at 255 characters, a member may not sit on a reserved address (169.254.169.254),
``delay``/``timeout`` are integers (0.5 is stored as 0), duplicate entries in one batch are a 409, addresses
are stored as sent (IPv6 is not normalised), a member created without ``subnet_id`` keeps it null, a
single-member PUT answers 200, and an unknown path is pecan's 404 ``{code, title, description}``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .server import ApiError, Request, Response, Service, empty_response, json_response
from .state import iso, new_id

VERSIONS = ("v2", "v2.0")
MONITOR_TYPES = ("HTTP", "HTTPS", "PING", "TCP", "TLS-HELLO", "UDP-CONNECT", "SCTP")
CREATE_FIELDS = {"address", "protocol_port", "weight", "subnet_id", "name", "tags", "admin_state_up", "backup",
                 "monitor_address", "monitor_port", "project_id", "tenant_id", "request_sriov"}
UPDATE_FIELDS = {"weight", "admin_state_up", "name", "tags", "backup", "monitor_address", "monitor_port"}
# Fields the batch PUT resets when an entry omits them (they have WSME defaults on the create type).
BATCH_DEFAULTS = {"weight": 1, "admin_state_up": True, "backup": False, "monitor_address": None,
                  "monitor_port": None}
RESERVED_IPS = {"169.254.169.254"}  # Octavia's [networking] reserved_ips default
HTTP_MONITORS = ("HTTP", "HTTPS")
EXPECTED_CODES = re.compile(r"^(\d{3}(\s*,\s*\d{3})*)$|^(\d{3}-\d{3})$")  # octavia/api/v2/types/health_monitor.py
# RFC 3986 path (and query) characters: unreserved, pct-encoded, sub-delims, ":", "@", "/", "?"
URL_PATH = re.compile(r"^/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*$")
MAX_NAME = 255
LIST_KEYS = {"limit", "marker", "page_reverse", "fields", "sort", "sort_key", "sort_dir",
             "tags", "tags-any", "not-tags", "not-tags-any"}


@dataclass
class LoadBalancer:
    id: str
    name: str
    vip_address: str
    vip_port_id: str
    vip_subnet_id: str
    vip_network_id: str
    created: float
    updated: float
    seq: int
    description: str = ""
    provisioning_status: str = "ACTIVE"
    admin_state_up: bool = True
    listener_ids: list[str] = field(default_factory=list)
    pool_ids: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


@dataclass
class Listener:
    id: str
    name: str
    loadbalancer_id: str
    protocol: str
    protocol_port: int
    default_pool_id: str | None
    created: float
    updated: float
    seq: int
    provisioning_status: str = "ACTIVE"
    admin_state_up: bool = True
    tags: list[str] = field(default_factory=list)


@dataclass
class Pool:
    id: str
    name: str
    loadbalancer_id: str
    listener_ids: list[str]
    protocol: str
    lb_algorithm: str
    created: float
    updated: float
    seq: int
    provisioning_status: str = "ACTIVE"
    admin_state_up: bool = True
    healthmonitor_id: str | None = None
    member_ids: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


@dataclass
class HealthMonitor:
    id: str
    name: str
    pool_id: str
    type: str
    delay: float
    timeout: float
    max_retries: int
    max_retries_down: int
    url_path: str
    http_method: str
    expected_codes: str
    http_version: float | None
    domain_name: str | None
    created: float
    updated: float
    seq: int
    admin_state_up: bool = True
    provisioning_status: str = "ACTIVE"
    tags: list[str] = field(default_factory=list)


@dataclass
class Member:
    id: str
    pool_id: str
    name: str
    address: str
    protocol_port: int
    weight: int
    admin_state_up: bool
    backup: bool
    monitor_address: str | None
    monitor_port: int | None
    subnet_id: str | None
    tags: list[str]
    created: float
    updated: float
    seq: int
    provisioning_status: str = "PENDING_CREATE"
    # health-check state (see health.py); None = not checked yet
    health: str | None = None
    ok_streak: int = 0
    fail_streak: int = 0
    next_check: float = 0.0
    last_check: dict | None = None

    def reset_health(self) -> None:
        self.health, self.ok_streak, self.fail_streak, self.next_check, self.last_check = None, 0, 0, 0.0, None


def expected_codes_match(expected: str, code: int | None) -> bool:
    """Octavia's ``expected_codes``: ``200``, ``200,202`` or ``200-204``."""
    if code is None:
        return False
    for part in expected.split(","):
        part = part.strip()
        if "-" in part:
            low, _, high = part.partition("-")
            if int(low) <= code <= int(high):
                return True
        elif part and int(part) == code:
            return True
    return False


def _wsme_invalid(field_name: str, value: Any, why: str) -> ApiError:
    return ApiError(400, f"Invalid input for field/attribute {field_name}. Value: '{value}'. {why}")


def _tags(spec: dict) -> list[str]:
    tags = spec.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and len(t) <= 255 for t in tags):
        raise _wsme_invalid("tags", tags, "Value should be a list of strings")
    return list(dict.fromkeys(tags))


def _name(spec: dict) -> str:
    name = spec.get("name") or ""
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise _wsme_invalid("name", name, f"Value should have a maximum character requirement of {MAX_NAME}")
    return name


class LoadBalancing(Service):
    name = "load-balancer"
    prefix = "/load-balancer"

    def register(self) -> None:
        self.add("GET", "/", self.versions, auth=False)
        for v in VERSIONS:
            base = f"/{v}/lbaas"
            self.add("GET", f"{base}/loadbalancers", self.list_loadbalancers)
            self.add("POST", f"{base}/loadbalancers", self.create_loadbalancer)
            self.add("GET", f"{base}/loadbalancers/{{id}}", self.show_loadbalancer)
            self.add("DELETE", f"{base}/loadbalancers/{{id}}", self.delete_loadbalancer)
            self.add("GET", f"{base}/loadbalancers/{{id}}/status", self.status_tree)
            self.add("GET", f"{base}/loadbalancers/{{id}}/stats", self.lb_stats)
            self.add("GET", f"{base}/listeners", self.list_listeners)
            self.add("POST", f"{base}/listeners", self.create_listener)
            self.add("GET", f"{base}/listeners/{{id}}", self.show_listener)
            self.add("DELETE", f"{base}/listeners/{{id}}", self.delete_listener)
            self.add("GET", f"{base}/pools", self.list_pools)
            self.add("GET", f"{base}/pools/{{id}}", self.show_pool)
            self.add("POST", f"{base}/pools", self.create_pool)
            self.add("DELETE", f"{base}/pools/{{id}}", self.delete_pool)
            self.add("GET", f"{base}/healthmonitors", self.list_healthmonitors)
            self.add("POST", f"{base}/healthmonitors", self.create_healthmonitor)
            self.add("GET", f"{base}/healthmonitors/{{id}}", self.show_healthmonitor)
            self.add("DELETE", f"{base}/healthmonitors/{{id}}", self.delete_healthmonitor)
            self.add("GET", f"{base}/pools/{{id}}/members", self.list_members)
            self.add("POST", f"{base}/pools/{{id}}/members", self.create_member)
            self.add("PUT", f"{base}/pools/{{id}}/members", self.batch_members)
            self.add("GET", f"{base}/pools/{{id}}/members/{{id}}", self.show_member)
            self.add("PUT", f"{base}/pools/{{id}}/members/{{id}}", self.update_member)
            self.add("DELETE", f"{base}/pools/{{id}}/members/{{id}}", self.delete_member)

    def resolve(self, req: Request) -> Any:
        try:
            return super().resolve(req)
        except ApiError as err:
            if err.status == 404:  # no such route: pecan answers, not WSME
                raise ApiError(404, "The resource could not be found.", pecan=True) from None
            raise

    def render_error(self, req: Request, err: ApiError) -> Response:
        if err.extra.get("pecan"):
            return json_response(err.status, {"code": err.status, "title": "Not Found", "description": err.message})
        return json_response(err.status, {"faultcode": "Client" if err.status < 500 else "Server",
                                          "faultstring": err.message, "debuginfo": None})

    def versions(self, req: Request) -> Response:
        return json_response(200, {"versions": [
            {"id": "v2.0", "status": "SUPPORTED", "updated": "2016-12-11T00:00:00Z",
             "links": [{"href": f"{self.ctx.url}/load-balancer/v2.0", "rel": "self"}]},
            {"id": "v2", "status": "CURRENT", "updated": "2024-10-01T00:00:00Z",
             "links": [{"href": f"{self.ctx.url}/load-balancer/v2", "rel": "self"}]},
        ]})

    # ----- seed -----
    def seed(self) -> None:
        """Create ``demo-lb`` with a listener and ``demo-pool`` (HTTP, ROUND_ROBIN, HTTP monitor)."""
        store, now, opts = self.ctx.store, self.ctx.now(), self.ctx.options
        lb_id = new_id()
        vip, port_id, subnet_id, network_id = self.ctx.neutron.allocate_vip(lb_id, self.ctx.neutron.subnet_id, None)
        lb = LoadBalancer(id=lb_id, name="demo-lb", vip_address=vip, vip_port_id=port_id,
                          vip_subnet_id=subnet_id, vip_network_id=network_id,
                          created=now, updated=now, seq=store.next_seq())
        listener = Listener(id=new_id(), name="demo-listener", loadbalancer_id=lb.id, protocol="HTTP",
                            protocol_port=80, default_pool_id=None, created=now, updated=now, seq=store.next_seq())
        pool = Pool(id=new_id(), name="demo-pool", loadbalancer_id=lb.id, listener_ids=[listener.id],
                    protocol="HTTP", lb_algorithm="ROUND_ROBIN", created=now, updated=now, seq=store.next_seq())
        monitor = HealthMonitor(id=new_id(), name="demo-healthmonitor", pool_id=pool.id, type="HTTP",
                                delay=opts.monitor_delay, timeout=min(1, opts.monitor_delay), max_retries=1,
                                max_retries_down=2, url_path="/healthz", http_method="GET", expected_codes="200",
                                http_version=1.1, domain_name=None, created=now, updated=now, seq=store.next_seq())
        listener.default_pool_id = pool.id
        pool.healthmonitor_id = monitor.id
        lb.listener_ids.append(listener.id)
        lb.pool_ids.append(pool.id)
        store.loadbalancers[lb.id] = lb
        store.listeners[listener.id] = listener
        store.pools[pool.id] = pool
        store.healthmonitors[monitor.id] = monitor

    # ----- lookups (caller holds the lock) -----
    def _get(self, table: dict, kind: str, ident: str) -> Any:
        obj = table.get(ident)
        if obj is None:
            raise ApiError(404, f"{kind} {ident} not found.")
        return obj

    def _pool(self, pool_id: str) -> Pool:
        return self._get(self.ctx.store.pools, "Pool", pool_id)

    def _member(self, pool: Pool, member_id: str) -> Member:
        member = self.ctx.store.members.get(member_id)
        if member is None or member.pool_id != pool.id:
            raise ApiError(404, f"Member {member_id} not found.")
        return member

    def monitor_of(self, pool: Pool) -> HealthMonitor | None:
        return self.ctx.store.healthmonitors.get(pool.healthmonitor_id) if pool.healthmonitor_id else None

    # ----- immutability: one write at a time per load balancer -----
    def _check_writable(self, lb_id: str) -> None:
        lb = self.ctx.store.loadbalancers[lb_id]
        if lb.provisioning_status != "ACTIVE" or self.ctx.faults.take_octavia_conflict():
            raise ApiError(409, f"Load Balancer {lb_id} is immutable and cannot be updated.")

    def _mark_pending(self, lb_id: str) -> None:
        store = self.ctx.store
        lb = store.loadbalancers[lb_id]
        if lb.provisioning_status == "ACTIVE":
            lb.provisioning_status = "PENDING_UPDATE"
        lb.updated = self.ctx.now()
        for child in [store.listeners[i] for i in lb.listener_ids] + [store.pools[i] for i in lb.pool_ids]:
            if child.provisioning_status == "ACTIVE":
                child.provisioning_status = "PENDING_UPDATE"
        self.ctx.scheduler.call_later(self.ctx.options.lb_delay, self._finish_write, lb_id)

    def _finish_write(self, lb_id: str) -> None:
        store = self.ctx.store
        with store.lock:
            lb = store.loadbalancers.get(lb_id)
            if lb is None:
                return
            now = self.ctx.now()
            if lb.provisioning_status == "PENDING_DELETE":
                self._remove_lb(lb)
                return
            lb.provisioning_status, lb.updated = "ACTIVE", now
            for lid in list(lb.listener_ids):
                if store.listeners[lid].provisioning_status == "PENDING_DELETE":
                    self._remove_listener(store.listeners[lid])
                    continue
                store.listeners[lid].provisioning_status = "ACTIVE"
            for pid in list(lb.pool_ids):
                pool = store.pools[pid]
                if pool.provisioning_status == "PENDING_DELETE":
                    self._remove_pool(pool)
                    continue
                pool.provisioning_status = "ACTIVE"
                for mid in list(pool.member_ids):
                    member = store.members[mid]
                    if member.provisioning_status == "PENDING_DELETE":
                        pool.member_ids.remove(mid)
                        del store.members[mid]
                    elif member.provisioning_status.startswith("PENDING_"):
                        member.provisioning_status, member.updated = "ACTIVE", now
                monitor = self.monitor_of(pool)
                if monitor is not None and monitor.provisioning_status == "PENDING_DELETE":
                    del store.healthmonitors[monitor.id]
                    pool.healthmonitor_id = None
                    for mid in pool.member_ids:
                        store.members[mid].reset_health()
                elif monitor is not None:
                    monitor.provisioning_status = "ACTIVE"
            self.ctx.wake_health()  # new members are checked now, not at the checker's next round

    # ----- health and operating status -----
    def member_health(self, member: Member, monitor: HealthMonitor) -> str | None:
        """``up``, ``down`` or None (not checked yet)."""
        if self.ctx.options.serve_apps:
            return member.health  # kept up to date by real HTTP checks in health.py
        if member.provisioning_status == "PENDING_CREATE":
            return None
        address = member.monitor_address or member.address
        port = member.monitor_port or member.protocol_port
        path = monitor.url_path if monitor.type in ("HTTP", "HTTPS") else "/"
        code = self.ctx.nova.app_status(address, port, path)
        if monitor.type in ("HTTP", "HTTPS"):
            return "up" if expected_codes_match(monitor.expected_codes, code) else "down"
        return "up" if code is not None else "down"

    def member_operating_status(self, member: Member) -> str:
        pool = self.ctx.store.pools[member.pool_id]
        monitor = self.monitor_of(pool)
        if monitor is None or not monitor.admin_state_up:
            return "NO_MONITOR"
        if not member.admin_state_up:
            return "OFFLINE"
        health = self.member_health(member, monitor)
        if health == "down":
            return "ERROR"
        if health is None:
            return "OFFLINE"  # the amphora has not reported on it yet, whatever its weight
        return "DRAINING" if member.weight == 0 else "ONLINE"  # DRAINING: checks pass, weight 0 (HAProxy DRAIN)

    def pool_operating_status(self, pool: Pool) -> str:
        if not pool.admin_state_up:
            return "OFFLINE"
        statuses = [self.member_operating_status(self.ctx.store.members[m]) for m in pool.member_ids]
        errors = statuses.count("ERROR")
        if errors and errors == len(statuses):
            return "ERROR"
        return "DEGRADED" if errors else "ONLINE"

    def lb_operating_status(self, lb: LoadBalancer) -> str:
        if not lb.admin_state_up:
            return "OFFLINE"
        pools = [self.pool_operating_status(self.ctx.store.pools[p]) for p in lb.pool_ids]
        return "DEGRADED" if any(s in ("ERROR", "DEGRADED") for s in pools) else "ONLINE"

    # ----- rendering -----
    def _project(self) -> str:
        return self.ctx.keystone.project["id"]

    def render_lb(self, lb: LoadBalancer) -> dict:
        return {
            "id": lb.id, "name": lb.name, "description": lb.description,
            "provisioning_status": lb.provisioning_status, "operating_status": self.lb_operating_status(lb),
            "admin_state_up": lb.admin_state_up, "project_id": self._project(), "tenant_id": self._project(),
            "created_at": iso(lb.created), "updated_at": iso(lb.updated), "vip_address": lb.vip_address,
            "vip_port_id": lb.vip_port_id, "vip_subnet_id": lb.vip_subnet_id, "vip_network_id": lb.vip_network_id,
            "vip_qos_policy_id": None, "vip_vnic_type": "normal", "additional_vips": [],
            "listeners": [{"id": i} for i in lb.listener_ids], "pools": [{"id": i} for i in lb.pool_ids],
            "provider": "amphora", "flavor_id": None, "availability_zone": None, "tags": list(lb.tags),
        }

    def render_listener(self, listener: Listener) -> dict:
        lb = self.ctx.store.loadbalancers[listener.loadbalancer_id]
        return {
            "id": listener.id, "name": listener.name, "description": "",
            "provisioning_status": listener.provisioning_status, "operating_status": self.lb_operating_status(lb),
            "admin_state_up": listener.admin_state_up, "protocol": listener.protocol,
            "protocol_port": listener.protocol_port, "connection_limit": -1, "default_tls_container_ref": None,
            "sni_container_refs": [], "project_id": self._project(), "default_pool_id": listener.default_pool_id,
            "l7policies": [], "insert_headers": {}, "created_at": iso(listener.created),
            "updated_at": iso(listener.updated), "loadbalancers": [{"id": listener.loadbalancer_id}],
            "timeout_client_data": 50000, "timeout_member_connect": 5000, "timeout_member_data": 50000,
            "timeout_tcp_inspect": 0, "tags": list(listener.tags), "client_ca_tls_container_ref": None,
            "client_authentication": "NONE", "client_crl_container_ref": None, "allowed_cidrs": None,
            "tls_ciphers": None, "tls_versions": None, "alpn_protocols": None, "hsts_max_age": None,
            "hsts_include_subdomains": False, "hsts_preload": False,
        }

    def render_pool(self, pool: Pool) -> dict:
        return {
            "id": pool.id, "name": pool.name, "description": "",
            "provisioning_status": pool.provisioning_status, "operating_status": self.pool_operating_status(pool),
            "admin_state_up": pool.admin_state_up, "protocol": pool.protocol, "lb_algorithm": pool.lb_algorithm,
            "session_persistence": None, "project_id": self._project(),
            "loadbalancers": [{"id": pool.loadbalancer_id}], "listeners": [{"id": i} for i in pool.listener_ids],
            "members": [{"id": i} for i in pool.member_ids], "healthmonitor_id": pool.healthmonitor_id,
            "created_at": iso(pool.created), "updated_at": iso(pool.updated), "tags": list(pool.tags),
            "tls_container_ref": None, "ca_tls_container_ref": None, "crl_container_ref": None,
            "tls_enabled": False, "tls_ciphers": None, "tls_versions": None, "alpn_protocols": None,
        }

    def render_monitor(self, hm: HealthMonitor) -> dict:
        return {
            "id": hm.id, "name": hm.name, "type": hm.type, "delay": hm.delay, "timeout": hm.timeout,
            "max_retries": hm.max_retries, "max_retries_down": hm.max_retries_down,
            "http_method": hm.http_method if hm.type in ("HTTP", "HTTPS") else None,
            "url_path": hm.url_path if hm.type in ("HTTP", "HTTPS") else None,
            "expected_codes": hm.expected_codes if hm.type in ("HTTP", "HTTPS") else None,
            "http_version": hm.http_version, "domain_name": hm.domain_name, "admin_state_up": hm.admin_state_up,
            "project_id": self._project(), "pools": [{"id": hm.pool_id}],
            "provisioning_status": hm.provisioning_status, "operating_status": "ONLINE",
            "created_at": iso(hm.created), "updated_at": iso(hm.updated), "tags": list(hm.tags),
        }

    def render_member(self, m: Member) -> dict:
        return {
            "id": m.id, "name": m.name, "operating_status": self.member_operating_status(m),
            "provisioning_status": m.provisioning_status, "admin_state_up": m.admin_state_up,
            "address": m.address, "protocol_port": m.protocol_port, "weight": m.weight, "backup": m.backup,
            "subnet_id": m.subnet_id, "project_id": self._project(), "tenant_id": self._project(),
            "created_at": iso(m.created), "updated_at": iso(m.updated), "monitor_address": m.monitor_address,
            "monitor_port": m.monitor_port, "tags": list(m.tags), "vnic_type": "normal",
        }

    # ----- generic list: filters, fields, paging -----
    def _list(self, req: Request, key: str, items: list[dict], path: str) -> Response:
        for name, values in req.query.items():
            if name in LIST_KEYS:
                continue
            items = [i for i in items if name not in i or any(self._field_match(i[name], v) for v in values)]
        for name, test in (("tags", all), ("tags-any", any)):
            if req.arg(name) is not None:
                wanted = [t for t in req.arg(name).split(",") if t]
                items = [i for i in items if test(t in i.get("tags", []) for t in wanted)]
        for name, test in (("not-tags", all), ("not-tags-any", any)):
            if req.arg(name) is not None:
                wanted = [t for t in req.arg(name).split(",") if t]
                items = [i for i in items if not test(t in i.get("tags", []) for t in wanted)]
        limit_arg, marker = req.arg("limit"), req.arg("marker")
        try:
            limit = self.ctx.options.max_limit if limit_arg is None else int(limit_arg)
        except ValueError:
            raise _wsme_invalid("limit", limit_arg, "Value should be an integer") from None
        if limit < 0:
            raise _wsme_invalid("limit", limit_arg, "Value should be greater or equal to 0")
        limit = min(limit, self.ctx.options.max_limit)
        if marker is not None:
            ids = [i["id"] for i in items]
            if marker not in ids:
                raise ApiError(400, f"Invalid marker {marker}: it is not in this collection.")
            items = items[ids.index(marker) + 1:]
        page = items[:limit]
        links = []
        version = req.sub_path.split("/")[1]
        base = f"{self.ctx.url}/load-balancer/{version}/lbaas/{path}"
        others = [(k, v) for k, v in req.query_items if k not in ("limit", "marker")]
        if len(items) > limit and page:
            query = urlencode(others + [("limit", limit), ("marker", page[-1]["id"])])
            links.append({"href": f"{base}?{query}", "rel": "next"})
        if marker is not None:
            query = urlencode(others + [("limit", limit), ("marker", page[0]["id"] if page else marker),
                                        ("page_reverse", "True")])
            links.append({"href": f"{base}?{query}", "rel": "previous"})
        fields = [f for f in ",".join(req.args("fields")).split(",") if f]
        if fields:
            page = [{k: v for k, v in i.items() if k in fields} for i in page]
        return json_response(200, {key: page, f"{key}_links": links})

    @staticmethod
    def _field_match(actual: Any, wanted: str) -> bool:
        if isinstance(actual, bool):
            return str(actual).lower() == wanted.lower()
        if isinstance(actual, list):
            return wanted in actual
        return str(actual) == wanted

    # ----- load balancers, listeners, pools -----
    def list_loadbalancers(self, req: Request) -> Response:
        with self.ctx.store.lock:
            items = [self.render_lb(lb) for lb in sorted(self.ctx.store.loadbalancers.values(), key=lambda x: x.seq)]
        return self._list(req, "loadbalancers", items, "loadbalancers")

    def show_loadbalancer(self, req: Request, lb_id: str) -> Response:
        with self.ctx.store.lock:
            lb = self._get(self.ctx.store.loadbalancers, "Load Balancer", lb_id)
            return json_response(200, {"loadbalancer": self.render_lb(lb)})

    def lb_stats(self, req: Request, lb_id: str) -> Response:
        with self.ctx.store.lock:
            self._get(self.ctx.store.loadbalancers, "Load Balancer", lb_id)
        return json_response(200, {"stats": {"active_connections": 0, "bytes_in": 0, "bytes_out": 0,
                                             "request_errors": 0, "total_connections": 0}})

    def _pool_tree(self, pool: Pool) -> dict:
        monitor = self.monitor_of(pool)
        members = [self.ctx.store.members[m] for m in pool.member_ids]
        return {
            "id": pool.id, "name": pool.name, "provisioning_status": pool.provisioning_status,
            "operating_status": self.pool_operating_status(pool),
            "healthmonitor": {"id": monitor.id, "name": monitor.name, "type": monitor.type,
                              "provisioning_status": monitor.provisioning_status,
                              "operating_status": "ONLINE"} if monitor else {},
            "members": [{"id": m.id, "name": m.name, "address": m.address, "protocol_port": m.protocol_port,
                         "provisioning_status": m.provisioning_status,
                         "operating_status": self.member_operating_status(m)} for m in members],
        }

    def status_tree(self, req: Request, lb_id: str) -> Response:
        store = self.ctx.store
        with store.lock:
            lb = self._get(store.loadbalancers, "Load Balancer", lb_id)
            pools = {pid: self._pool_tree(store.pools[pid]) for pid in lb.pool_ids}
            listeners = []
            for lid in lb.listener_ids:
                listener = store.listeners[lid]
                listeners.append({
                    "id": listener.id, "name": listener.name, "provisioning_status": listener.provisioning_status,
                    "operating_status": self.lb_operating_status(lb),
                    "pools": [pools[p] for p in lb.pool_ids if lid in store.pools[p].listener_ids],
                })
            tree = {"id": lb.id, "name": lb.name, "provisioning_status": lb.provisioning_status,
                    "operating_status": self.lb_operating_status(lb), "listeners": listeners,
                    "pools": list(pools.values())}
        return json_response(200, {"statuses": {"loadbalancer": tree}})

    def list_listeners(self, req: Request) -> Response:
        with self.ctx.store.lock:
            items = [self.render_listener(x) for x in sorted(self.ctx.store.listeners.values(), key=lambda x: x.seq)]
        return self._list(req, "listeners", items, "listeners")

    def show_listener(self, req: Request, listener_id: str) -> Response:
        with self.ctx.store.lock:
            listener = self._get(self.ctx.store.listeners, "Listener", listener_id)
            return json_response(200, {"listener": self.render_listener(listener)})

    def list_pools(self, req: Request) -> Response:
        with self.ctx.store.lock:
            items = [self.render_pool(p) for p in sorted(self.ctx.store.pools.values(), key=lambda x: x.seq)]
        return self._list(req, "pools", items, "pools")

    def show_pool(self, req: Request, pool_id: str) -> Response:
        with self.ctx.store.lock:
            return json_response(200, {"pool": self.render_pool(self._pool(pool_id))})

    def create_pool(self, req: Request) -> Response:
        """A pool on a load balancer (``loadbalancer_id``) or behind a listener (``listener_id``)."""
        body = req.json()
        spec = body.get("pool") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise _wsme_invalid("pool", spec, "Mandatory field missing.")
        for required in ("protocol", "lb_algorithm"):
            if required not in spec:
                raise _wsme_invalid(required, "Unset", "Mandatory field missing.")
        name = spec.get("name") or ""
        if not isinstance(name, str) or len(name) > MAX_NAME:
            raise _wsme_invalid("name", name, f"Value should have a maximum character requirement of {MAX_NAME}")
        store = self.ctx.store
        with store.lock:
            listener = self._get(store.listeners, "Listener", spec["listener_id"]) if spec.get("listener_id") else None
            lb_id = listener.loadbalancer_id if listener else spec.get("loadbalancer_id")
            if not lb_id:
                raise ApiError(400, "Validation failure: Must provide at least one of: listener_id, loadbalancer_id.")
            lb = self._get(store.loadbalancers, "Load Balancer", lb_id)
            self._check_writable(lb.id)
            now = self.ctx.now()
            pool = Pool(id=new_id(), name=name, loadbalancer_id=lb.id, listener_ids=[listener.id] if listener else [],
                        protocol=str(spec["protocol"]), lb_algorithm=str(spec["lb_algorithm"]), created=now, updated=now,
                        seq=store.next_seq(), provisioning_status="PENDING_CREATE", tags=_tags(spec))
            store.pools[pool.id] = pool
            lb.pool_ids.append(pool.id)
            if listener is not None and listener.default_pool_id is None:
                listener.default_pool_id = pool.id
            self._mark_pending(lb.id)
            return json_response(201, {"pool": self.render_pool(pool)})

    def delete_pool(self, req: Request, pool_id: str) -> Response:
        """Deletes the pool with its members and monitor (Octavia cascades them)."""
        store = self.ctx.store
        with store.lock:
            pool = self._pool(pool_id)
            self._check_writable(pool.loadbalancer_id)
            pool.provisioning_status = "PENDING_DELETE"
            self._mark_pending(pool.loadbalancer_id)
        return empty_response(204)

    def _remove_pool(self, pool: Pool) -> None:
        """PENDING_DELETE is over: the pool goes with its members and monitor (caller holds the lock)."""
        store = self.ctx.store
        for mid in pool.member_ids:
            store.members.pop(mid, None)
        if pool.healthmonitor_id:
            store.healthmonitors.pop(pool.healthmonitor_id, None)
        for lid in pool.listener_ids:
            if lid in store.listeners and store.listeners[lid].default_pool_id == pool.id:
                store.listeners[lid].default_pool_id = None
        lb = store.loadbalancers.get(pool.loadbalancer_id)
        if lb is not None and pool.id in lb.pool_ids:
            lb.pool_ids.remove(pool.id)
        store.pools.pop(pool.id, None)

    def _remove_listener(self, listener: Listener) -> None:
        store = self.ctx.store
        for pool in store.pools.values():
            if listener.id in pool.listener_ids:
                pool.listener_ids.remove(listener.id)
        lb = store.loadbalancers.get(listener.loadbalancer_id)
        if lb is not None and listener.id in lb.listener_ids:
            lb.listener_ids.remove(listener.id)
        store.listeners.pop(listener.id, None)

    def _remove_lb(self, lb: LoadBalancer) -> None:
        store = self.ctx.store
        for pid in list(lb.pool_ids):
            self._remove_pool(store.pools[pid])
        for lid in list(lb.listener_ids):
            self._remove_listener(store.listeners[lid])
        self.ctx.neutron.release_vip(lb.vip_address, lb.vip_port_id)
        store.loadbalancers.pop(lb.id, None)

    # ----- health monitors -----
    def list_healthmonitors(self, req: Request) -> Response:
        with self.ctx.store.lock:
            items = [self.render_monitor(h)
                     for h in sorted(self.ctx.store.healthmonitors.values(), key=lambda x: x.seq)]
        return self._list(req, "healthmonitors", items, "healthmonitors")

    def show_healthmonitor(self, req: Request, hm_id: str) -> Response:
        with self.ctx.store.lock:
            hm = self._get(self.ctx.store.healthmonitors, "Health Monitor", hm_id)
            return json_response(200, {"healthmonitor": self.render_monitor(hm)})

    def create_healthmonitor(self, req: Request) -> Response:
        body = req.json()
        spec = body.get("healthmonitor") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise _wsme_invalid("healthmonitor", spec, "Mandatory field missing.")
        for required in ("pool_id", "type", "delay", "timeout", "max_retries"):
            if required not in spec:
                raise _wsme_invalid(required, "Unset", "Mandatory field missing.")
        if spec["type"] not in MONITOR_TYPES:
            raise _wsme_invalid("type", spec["type"], f"Value should be one of: {', '.join(MONITOR_TYPES)}")
        spec = dict(spec)
        for key in ("delay", "timeout"):
            if not isinstance(spec[key], (int, float)) or isinstance(spec[key], bool) or spec[key] < 0:
                raise _wsme_invalid(key, spec[key], "Value should be a non-negative number")
            spec[key] = int(spec[key])  # WSME IntegerType: 0.5 is stored as 0
        name = spec.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
            raise _wsme_invalid("name", name, f"Value should have a maximum character requirement of {MAX_NAME}")
        if "url_path" in spec and spec["url_path"] is not None and (
                not isinstance(spec["url_path"], str) or not URL_PATH.fullmatch(spec["url_path"])):
            raise _wsme_invalid("url_path", spec["url_path"], "Value should be a valid URL path")
        if spec.get("expected_codes") is not None and not EXPECTED_CODES.fullmatch(str(spec["expected_codes"])):
            raise _wsme_invalid("expected_codes", spec["expected_codes"],
                                f"Value should match the pattern {EXPECTED_CODES.pattern}")
        if spec["type"] not in HTTP_MONITORS:
            given = [k for k in ("http_method", "url_path", "expected_codes", "http_version", "domain_name")
                     if spec.get(k) is not None]
            if given:
                raise ApiError(400, f"{', '.join(given)} is not a valid option for health monitors of type "
                                    f"{spec['type']}")
        for key, default in (("max_retries", None), ("max_retries_down", 3)):
            value = spec.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10:
                raise _wsme_invalid(key, value, "Value should be between 1 and 10")
        expected = spec.get("expected_codes") or "200"
        store = self.ctx.store
        with store.lock:
            pool = self._pool(spec["pool_id"])
            self._check_writable(pool.loadbalancer_id)
            if pool.healthmonitor_id:
                raise ApiError(409, "This pool already has a health monitor")
            now = self.ctx.now()
            hm = HealthMonitor(
                id=new_id(), name=spec.get("name") or "", pool_id=pool.id, type=spec["type"], delay=spec["delay"],
                timeout=spec["timeout"], max_retries=spec["max_retries"], max_retries_down=spec.get("max_retries_down", 3),
                url_path=spec.get("url_path", "/"), http_method=spec.get("http_method", "GET"),
                expected_codes=str(expected), http_version=spec.get("http_version"),
                domain_name=spec.get("domain_name"), created=now, updated=now, seq=store.next_seq(),
                admin_state_up=bool(spec.get("admin_state_up", True)), provisioning_status="PENDING_CREATE",
                tags=_tags(spec))
            store.healthmonitors[hm.id] = hm
            pool.healthmonitor_id = hm.id
            for mid in pool.member_ids:
                store.members[mid].reset_health()
            self._mark_pending(pool.loadbalancer_id)
            return json_response(201, {"healthmonitor": self.render_monitor(hm)})

    def delete_healthmonitor(self, req: Request, hm_id: str) -> Response:
        store = self.ctx.store
        with store.lock:
            hm = self._get(store.healthmonitors, "Health Monitor", hm_id)
            pool = store.pools[hm.pool_id]
            self._check_writable(pool.loadbalancer_id)
            hm.provisioning_status = "PENDING_DELETE"
            self._mark_pending(pool.loadbalancer_id)
        return empty_response(204)

    # ----- members -----
    def _parse_member(self, spec: Any, allowed: set[str], create: bool) -> dict:
        if not isinstance(spec, dict):
            raise _wsme_invalid("member", spec, "Value should be an object")
        unknown = set(spec) - allowed
        if unknown:
            raise ApiError(400, f"Invalid input for field/attribute member. Value: '{spec}'. "
                                f"Unknown attribute for argument member: {', '.join(sorted(unknown))}")
        out = dict(spec)
        if create:
            for required in ("address", "protocol_port"):
                if required not in spec:
                    raise _wsme_invalid(required, "Unset", "Mandatory field missing.")
        for key in ("address", "monitor_address"):
            if spec.get(key) is not None:
                try:
                    ipaddress.ip_address(spec[key])  # validated, stored as sent (real Octavia does not normalise)
                except ValueError:
                    raise _wsme_invalid(key, spec[key], "Value should be IPv4 or IPv6 format") from None
                if spec[key] in RESERVED_IPS:
                    raise ApiError(400, f"{spec[key]} is not a valid option for member address")
        for key, low, high in (("protocol_port", 1, 65535), ("monitor_port", 1, 65535), ("weight", 0, 256)):
            if spec.get(key) is None:
                continue
            value = spec[key]
            if not isinstance(value, int) or isinstance(value, bool):
                raise _wsme_invalid(key, value, "Value should be an integer")
            if value < low:
                raise _wsme_invalid(key, value, f"Value should be greater or equal to {low}")
            if value > high:
                raise _wsme_invalid(key, value, f"Value should be lower or equal to {high}")
        for key in ("admin_state_up", "backup"):
            if key in spec and not isinstance(spec[key], bool):
                raise _wsme_invalid(key, spec[key], "Value should be a boolean")
        if "name" in spec and spec["name"] is not None and (not isinstance(spec["name"], str) or len(spec["name"]) > 255):
            raise _wsme_invalid("name", spec["name"], "Value should have a maximum character requirement of 255")
        if "tags" in spec and (not isinstance(spec["tags"], list) or not all(isinstance(t, str) for t in spec["tags"])):
            raise _wsme_invalid("tags", spec["tags"], "Value should be a list of strings")
        if spec.get("subnet_id") is not None and spec["subnet_id"] not in self.ctx.store.subnets:
            raise ApiError(404, f"Subnet {spec['subnet_id']} not found.")
        return out

    def _new_member(self, pool: Pool, spec: dict) -> Member:
        store, now = self.ctx.store, self.ctx.now()
        member = Member(
            id=new_id(), pool_id=pool.id, name=spec.get("name") or "", address=spec["address"],
            protocol_port=spec["protocol_port"], weight=spec.get("weight", 1) if spec.get("weight") is not None else 1,
            admin_state_up=spec.get("admin_state_up", True), backup=spec.get("backup", False),
            monitor_address=spec.get("monitor_address"), monitor_port=spec.get("monitor_port"),
            subnet_id=spec.get("subnet_id"), tags=list(spec.get("tags") or []),
            created=now, updated=now, seq=store.next_seq())
        store.members[member.id] = member
        pool.member_ids.append(member.id)
        return member

    def _live_members(self, pool: Pool) -> list[Member]:
        members = [self.ctx.store.members[m] for m in pool.member_ids]
        return [m for m in members if m.provisioning_status != "PENDING_DELETE"]

    def list_members(self, req: Request, pool_id: str) -> Response:
        with self.ctx.store.lock:
            pool = self._pool(pool_id)
            items = [self.render_member(self.ctx.store.members[m]) for m in pool.member_ids]
        return self._list(req, "members", items, f"pools/{pool_id}/members")

    def show_member(self, req: Request, pool_id: str, member_id: str) -> Response:
        with self.ctx.store.lock:
            return json_response(200, {"member": self.render_member(self._member(self._pool(pool_id), member_id))})

    def create_member(self, req: Request, pool_id: str) -> Response:
        body = req.json()
        spec = body.get("member") if isinstance(body, dict) else None
        with self.ctx.store.lock:
            spec = self._parse_member(spec, CREATE_FIELDS, create=True)
            pool = self._pool(pool_id)
            self._check_writable(pool.loadbalancer_id)
            for other in self._live_members(pool):
                if (other.address, other.protocol_port) == (spec["address"], spec["protocol_port"]):
                    raise ApiError(409, f"Another member on this pool is already using ip {spec['address']} on "
                                        f"protocol_port {spec['protocol_port']}")
            member = self._new_member(pool, spec)
            self._mark_pending(pool.loadbalancer_id)
            return json_response(201, {"member": self.render_member(member)})

    def update_member(self, req: Request, pool_id: str, member_id: str) -> Response:
        body = req.json()
        spec = body.get("member") if isinstance(body, dict) else None
        with self.ctx.store.lock:
            spec = self._parse_member(spec, UPDATE_FIELDS, create=False)
            pool = self._pool(pool_id)
            member = self._member(pool, member_id)
            self._check_writable(pool.loadbalancer_id)
            self._apply(member, spec)
            member.provisioning_status = "PENDING_UPDATE"
            self._mark_pending(pool.loadbalancer_id)
            return json_response(200, {"member": self.render_member(member)})

    def _apply(self, member: Member, spec: dict) -> None:
        for key, value in spec.items():
            if key == "weight" and value is None:
                value = 1
            if key in ("name",):
                value = value or ""
            if key in ("address", "protocol_port", "subnet_id", "project_id", "tenant_id", "request_sriov"):
                continue
            if key in ("monitor_address", "monitor_port") and getattr(member, key) != value:
                member.reset_health()
            setattr(member, key, list(value) if key == "tags" else value)
        member.updated = self.ctx.now()

    def delete_member(self, req: Request, pool_id: str, member_id: str) -> Response:
        with self.ctx.store.lock:
            pool = self._pool(pool_id)
            member = self._member(pool, member_id)
            self._check_writable(pool.loadbalancer_id)
            member.provisioning_status = "PENDING_DELETE"
            self._mark_pending(pool.loadbalancer_id)
        return empty_response(204)

    def batch_members(self, req: Request, pool_id: str) -> Response:
        """PUT /pools/{id}/members: make the pool's members exactly the list (see module docstring)."""
        additive = (req.arg("additive_only") or "false").lower() in ("true", "1", "yes", "on", "t", "y")
        body = req.json()
        entries = body.get("members") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise _wsme_invalid("members", entries, "Mandatory field missing.")
        with self.ctx.store.lock:
            specs = [self._parse_member(e, CREATE_FIELDS, create=True) for e in entries]
            seen: set[tuple[str, int]] = set()
            for spec in specs:
                key = (spec["address"], spec["protocol_port"])
                if key in seen:
                    raise ApiError(409, f"Another member on this pool is already using ip {key[0]} on "
                                        f"protocol_port {key[1]}")
                seen.add(key)
            pool = self._pool(pool_id)
            old = {(m.address, m.protocol_port): m for m in self._live_members(pool)}
            new = [s for s in specs if (s["address"], s["protocol_port"]) not in old]
            updated = [s for s in specs if (s["address"], s["protocol_port"]) in old]
            deleted = [] if additive else [m for k, m in old.items() if k not in seen]
            if not (new or updated or deleted):
                return empty_response(202)
            self._check_writable(pool.loadbalancer_id)
            for spec in new:
                self._new_member(pool, spec)
            for spec in updated:
                member = old[(spec["address"], spec["protocol_port"])]
                self._apply(member, {**BATCH_DEFAULTS, **spec})  # omitted fields reset to create defaults
                member.provisioning_status = "PENDING_UPDATE"
            for member in deleted:
                member.provisioning_status = "PENDING_DELETE"
            self._mark_pending(pool.loadbalancer_id)
        return empty_response(202)

    # ----- load balancer and listener create / delete (issue 11: environments from an empty project) -----
    def create_loadbalancer(self, req: Request) -> Response:
        """PENDING_CREATE for ``lb_delay``, then ACTIVE; the VIP port is made in Neutron at once."""
        body = req.json()
        spec = body.get("loadbalancer") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise _wsme_invalid("loadbalancer", spec, "Mandatory field missing.")
        name, tags = _name(spec), _tags(spec)
        if not (spec.get("vip_subnet_id") or spec.get("vip_network_id") or spec.get("vip_port_id")):
            raise ApiError(400, "Validation failure: VIP must contain one of: vip_port_id, vip_network_id, "
                                "vip_subnet_id.")
        if spec.get("vip_port_id"):
            raise ApiError(400, "openstack_sim: vip_port_id is not supported; give vip_subnet_id or vip_network_id.")
        store = self.ctx.store
        with store.lock:
            now, lb_id = self.ctx.now(), new_id()
            vip, port_id, subnet_id, network_id = self.ctx.neutron.allocate_vip(
                lb_id, spec.get("vip_subnet_id"), spec.get("vip_network_id"))
            lb = LoadBalancer(id=lb_id, name=name, vip_address=vip, vip_port_id=port_id, vip_subnet_id=subnet_id,
                              vip_network_id=network_id, created=now, updated=now, seq=store.next_seq(),
                              description=str(spec.get("description") or ""), provisioning_status="PENDING_CREATE",
                              admin_state_up=bool(spec.get("admin_state_up", True)), tags=tags)
            store.loadbalancers[lb.id] = lb
            self.ctx.scheduler.call_later(self.ctx.options.lb_delay, self._finish_write, lb.id)
            return json_response(201, {"loadbalancer": self.render_lb(lb)})

    def delete_loadbalancer(self, req: Request, lb_id: str) -> Response:
        """409 while it has listeners or pools, unless ``?cascade=true``; PENDING_DELETE, then 404."""
        cascade = (req.arg("cascade") or "false").lower() in ("true", "1", "yes", "on", "t", "y")
        store = self.ctx.store
        with store.lock:
            lb = self._get(store.loadbalancers, "Load Balancer", lb_id)
            self._check_writable(lb.id)
            if (lb.listener_ids or lb.pool_ids) and not cascade:
                raise ApiError(400, f"Cannot delete Load Balancer {lb_id} - it has children")
            lb.provisioning_status = "PENDING_DELETE"
            for child in [store.listeners[i] for i in lb.listener_ids] + [store.pools[i] for i in lb.pool_ids]:
                child.provisioning_status = "PENDING_DELETE"
            lb.updated = self.ctx.now()
            self.ctx.scheduler.call_later(self.ctx.options.lb_delay, self._finish_write, lb.id)
        return empty_response(204)

    def create_listener(self, req: Request) -> Response:
        body = req.json()
        spec = body.get("listener") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise _wsme_invalid("listener", spec, "Mandatory field missing.")
        for required in ("loadbalancer_id", "protocol", "protocol_port"):
            if required not in spec:
                raise _wsme_invalid(required, "Unset", "Mandatory field missing.")
        protocols = ("HTTP", "HTTPS", "TCP", "TERMINATED_HTTPS", "UDP", "SCTP", "PROMETHEUS")
        if spec["protocol"] not in protocols:
            raise _wsme_invalid("protocol", spec["protocol"], f"Value should be one of: {', '.join(protocols)}")
        port = spec["protocol_port"]
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise _wsme_invalid("protocol_port", port, "Value should be between 1 and 65535")
        name, tags = _name(spec), _tags(spec)
        store = self.ctx.store
        with store.lock:
            lb = self._get(store.loadbalancers, "Load Balancer", spec["loadbalancer_id"])
            self._check_writable(lb.id)
            for lid in lb.listener_ids:
                other = store.listeners[lid]
                if other.protocol_port == port and other.provisioning_status != "PENDING_DELETE":
                    raise ApiError(409, f"Another Listener on this Load Balancer is already using protocol_port "
                                        f"{port}")
            pool_id = spec.get("default_pool_id")
            if pool_id is not None:
                self._pool(pool_id)
            now = self.ctx.now()
            listener = Listener(id=new_id(), name=name, loadbalancer_id=lb.id, protocol=spec["protocol"],
                                protocol_port=port, default_pool_id=pool_id, created=now, updated=now,
                                seq=store.next_seq(), provisioning_status="PENDING_CREATE",
                                admin_state_up=bool(spec.get("admin_state_up", True)), tags=tags)
            store.listeners[listener.id] = listener
            lb.listener_ids.append(listener.id)
            if pool_id is not None:
                store.pools[pool_id].listener_ids.append(listener.id)
            self._mark_pending(lb.id)
            return json_response(201, {"listener": self.render_listener(listener)})

    def delete_listener(self, req: Request, listener_id: str) -> Response:
        store = self.ctx.store
        with store.lock:
            listener = self._get(store.listeners, "Listener", listener_id)
            self._check_writable(listener.loadbalancer_id)
            listener.provisioning_status = "PENDING_DELETE"
            self._mark_pending(listener.loadbalancer_id)
        return empty_response(204)
