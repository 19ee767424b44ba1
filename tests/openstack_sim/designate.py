"""Designate v2 (catalog type ``dns``): zones and recordsets with their asynchronous states.

Faithful where clients look: creates, updates and deletes answer 202 with ``status: PENDING`` and an
``action`` (CREATE, UPDATE, DELETE) and become ``ACTIVE``/``NONE`` (or gone: 404) after ``dns_delay``;
a zone name is a fully qualified name ending in a dot, a recordset name must sit inside its zone, a
new zone gets its managed SOA and NS recordsets, a duplicate zone or (name, type) is 409, A takes IPv4
and AAAA IPv6 records, lists carry ``links`` and ``metadata.total_count`` and page with
``limit``/``marker``. Errors are ``{"code", "type", "message", "request_id"}``. Zones and recordsets
have no tags in Designate: owners mark them in ``description``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .server import ApiError, Request, Response, Service, json_response
from .state import iso, new_id

FQDN = re.compile(r"^(?=.{1,254}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)+$")
TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SPF", "SRV", "SSHFP", "TXT", "CAA", "NAPTR")
MANAGED = ("SOA", "NS")
POOL_ID = "794ccc2c-d751-44fe-b57f-8894c9f5c842"  # Designate's default pool id
NAMESERVER = "ns1.openstack-sim.test."
LIST_KEYS = {"limit", "marker", "sort_key", "sort_dir"}


@dataclass
class Zone:
    id: str
    name: str
    email: str
    ttl: int
    description: str
    created: float
    seq: int
    serial: int
    status: str = "PENDING"
    action: str = "CREATE"
    updated: float | None = None
    version: int = 1


@dataclass
class RecordSet:
    id: str
    zone_id: str
    name: str
    type: str
    records: list[str]
    ttl: int | None
    description: str
    created: float
    seq: int
    status: str = "PENDING"
    action: str = "CREATE"
    updated: float | None = None
    version: int = 1
    managed: bool = False
    extra: dict = field(default_factory=dict)


class Dns(Service):
    name = "dns"
    prefix = "/dns"

    def register(self) -> None:
        self.add("GET", "/", self.versions, auth=False)
        self.add("GET", "/v2", self.version, auth=False)
        self.add("GET", "/v2/zones", self.list_zones)
        self.add("POST", "/v2/zones", self.create_zone)
        self.add("GET", "/v2/zones/{id}", self.show_zone)
        self.add("DELETE", "/v2/zones/{id}", self.delete_zone)
        self.add("GET", "/v2/recordsets", self.list_all_recordsets)
        self.add("GET", "/v2/zones/{id}/recordsets", self.list_recordsets)
        self.add("POST", "/v2/zones/{id}/recordsets", self.create_recordset)
        self.add("GET", "/v2/zones/{id}/recordsets/{id}", self.show_recordset)
        self.add("PUT", "/v2/zones/{id}/recordsets/{id}", self.update_recordset)
        self.add("DELETE", "/v2/zones/{id}/recordsets/{id}", self.delete_recordset)

    def render_error(self, req: Request, err: ApiError) -> Response:
        kind = err.extra.get("type") or {400: "invalid_object", 401: "unauthorized", 404: "not_found",
                                         405: "method_not_allowed", 409: "duplicate"}.get(err.status, "service_error")
        return json_response(err.status, {"code": err.status, "type": kind, "message": err.message,
                                          "request_id": req.request_id})

    def _version_doc(self) -> dict:
        return {"id": "v2.1", "status": "CURRENT", "links": [{"href": f"{self.ctx.url}/dns/v2", "rel": "self"}]}

    def versions(self, req: Request) -> Response:
        return json_response(200, {"versions": {"values": [self._version_doc()]}})

    def version(self, req: Request) -> Response:
        return json_response(200, {"version": self._version_doc()})

    # ----- rendering -----
    def _project(self) -> str:
        return self.ctx.keystone.project["id"]

    def render_zone(self, z: Zone) -> dict:
        return {"id": z.id, "name": z.name, "email": z.email, "ttl": z.ttl, "serial": z.serial, "status": z.status,
                "action": z.action, "version": z.version, "description": z.description or None, "type": "PRIMARY",
                "pool_id": POOL_ID, "project_id": self._project(), "masters": [], "attributes": {},
                "transferred_at": None, "shared": False, "created_at": iso(z.created), "updated_at": iso(z.updated),
                "links": {"self": f"{self.ctx.url}/dns/v2/zones/{z.id}"}}

    def render_recordset(self, r: RecordSet) -> dict:
        zone = self.ctx.store.zones.get(r.zone_id)
        return {"id": r.id, "zone_id": r.zone_id, "zone_name": zone.name if zone else None, "name": r.name,
                "type": r.type, "records": list(r.records), "ttl": r.ttl, "status": r.status, "action": r.action,
                "version": r.version, "description": r.description or None, "project_id": self._project(),
                "created_at": iso(r.created), "updated_at": iso(r.updated),
                "links": {"self": f"{self.ctx.url}/dns/v2/zones/{r.zone_id}/recordsets/{r.id}"}}

    def _list(self, req: Request, key: str, items: list[dict], path: str) -> Response:
        for name, values in req.query.items():
            if name in LIST_KEYS:
                continue
            items = [i for i in items if name in i and str(i[name]) in values]
        total = len(items)
        try:
            limit = min(int(req.arg("limit") or self.ctx.options.max_limit), self.ctx.options.max_limit)
        except ValueError:
            raise ApiError(400, f"limit must be an integer, not {req.arg('limit')!r}", type="invalid_limit") from None
        marker = req.arg("marker")
        if marker is not None:
            ids = [i["id"] for i in items]
            if marker not in ids:
                raise ApiError(400, f"Marker {marker} could not be found", type="invalid_marker")
            items = items[ids.index(marker) + 1:]
        page = items[:max(limit, 0)]
        links = {"self": f"{self.ctx.url}/dns/v2/{path}" + (f"?{req.query_string}" if req.query_string else "")}
        if len(items) > len(page) and page:
            others = [(k, v) for k, v in req.query_items if k not in ("limit", "marker")]
            links["next"] = f"{self.ctx.url}/dns/v2/{path}?" + urlencode(others + [("limit", limit),
                                                                                   ("marker", page[-1]["id"])])
        return json_response(200, {key: page, "links": links, "metadata": {"total_count": total}})

    # ----- transitions -----
    def _settle_later(self, kind: str, ident: str) -> None:
        self.ctx.scheduler.call_later(self.ctx.options.dns_delay, self._settle, kind, ident)

    def _settle(self, kind: str, ident: str) -> None:
        store = self.ctx.store
        with store.lock:
            table = store.zones if kind == "zone" else store.recordsets
            obj = table.get(ident)
            if obj is None or obj.status != "PENDING":
                return
            if obj.action == "DELETE":
                del table[ident]
                if kind == "zone":
                    for rid in [r.id for r in store.recordsets.values() if r.zone_id == ident]:
                        del store.recordsets[rid]
                else:
                    self._settle_zone(obj.zone_id)
                return
            obj.status, obj.action = "ACTIVE", "NONE"
            if kind == "recordset":
                self._settle_zone(obj.zone_id)

    def _settle_zone(self, zone_id: str) -> None:
        zone = self.ctx.store.zones.get(zone_id)
        if zone is not None and zone.action == "UPDATE":
            pending = [r for r in self.ctx.store.recordsets.values() if r.zone_id == zone_id and r.status == "PENDING"]
            if not pending:
                zone.status, zone.action = "ACTIVE", "NONE"

    def _touch_zone(self, zone: Zone) -> None:
        """A recordset changed: the zone's serial moves and it is PENDING/UPDATE until the change lands."""
        zone.serial += 1
        zone.version += 1
        zone.updated = self.ctx.now()
        if zone.action != "CREATE":
            zone.status, zone.action = "PENDING", "UPDATE"

    # ----- zones -----
    def _zone(self, zone_id: str) -> Zone:
        zone = self.ctx.store.zones.get(zone_id)
        if zone is None:
            raise ApiError(404, "Could not find Zone", type="zone_not_found")
        return zone

    def list_zones(self, req: Request) -> Response:
        with self.ctx.store.lock:
            items = [self.render_zone(z) for z in sorted(self.ctx.store.zones.values(), key=lambda z: z.seq)]
        return self._list(req, "zones", items, "zones")

    def show_zone(self, req: Request, zone_id: str) -> Response:
        with self.ctx.store.lock:
            return json_response(200, self.render_zone(self._zone(zone_id)))

    def create_zone(self, req: Request) -> Response:
        spec = req.json()
        if not isinstance(spec, dict):
            raise ApiError(400, "Provided object does not match schema 'zone'", type="invalid_object")
        name, email, ttl = spec.get("name"), spec.get("email"), spec.get("ttl", 3600)
        if not isinstance(name, str) or not FQDN.fullmatch(name) or name.count(".") < 2:
            raise ApiError(400, f"Provided object does not match schema 'zone': {name!r} is not a 'domainname'",
                           type="invalid_object")
        if not isinstance(email, str) or "@" not in email:
            raise ApiError(400, "Provided object does not match schema 'zone': 'email' is a required property",
                           type="invalid_object")
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not 1 <= ttl <= 2147483647:
            raise ApiError(400, f"Provided object does not match schema 'zone': ttl {ttl!r} is out of range",
                           type="invalid_object")
        store = self.ctx.store
        with store.lock:
            if any(z.name == name for z in store.zones.values()):
                raise ApiError(409, "Duplicate Zone", type="duplicate_zone")
            now = self.ctx.now()
            zone = Zone(id=new_id(), name=name, email=email, ttl=ttl, description=str(spec.get("description") or ""),
                        created=now, seq=store.next_seq(), serial=int(now))
            store.zones[zone.id] = zone
            for rtype, records in (("SOA", [f"{NAMESERVER} {email.replace('@', '.')}. {zone.serial} 3599 600 "
                                            "86400 3600"]), ("NS", [NAMESERVER])):
                rs = RecordSet(id=new_id(), zone_id=zone.id, name=name, type=rtype, records=records, ttl=None,
                               description="", created=now, seq=store.next_seq(), managed=True)
                store.recordsets[rs.id] = rs
                self._settle_later("recordset", rs.id)
            self._settle_later("zone", zone.id)
            return json_response(202, self.render_zone(zone))

    def delete_zone(self, req: Request, zone_id: str) -> Response:
        with self.ctx.store.lock:
            zone = self._zone(zone_id)
            zone.status, zone.action, zone.updated = "PENDING", "DELETE", self.ctx.now()
            self._settle_later("zone", zone.id)
            return json_response(202, self.render_zone(zone))

    # ----- recordsets -----
    def _recordset(self, zone: Zone, rs_id: str) -> RecordSet:
        rs = self.ctx.store.recordsets.get(rs_id)
        if rs is None or rs.zone_id != zone.id:
            raise ApiError(404, "Could not find RecordSet", type="recordset_not_found")
        return rs

    def list_all_recordsets(self, req: Request) -> Response:
        with self.ctx.store.lock:
            items = [self.render_recordset(r) for r in sorted(self.ctx.store.recordsets.values(), key=lambda r: r.seq)]
        return self._list(req, "recordsets", items, "recordsets")

    def list_recordsets(self, req: Request, zone_id: str) -> Response:
        with self.ctx.store.lock:
            zone = self._zone(zone_id)
            items = [self.render_recordset(r) for r in sorted(self.ctx.store.recordsets.values(), key=lambda r: r.seq)
                     if r.zone_id == zone.id]
        return self._list(req, "recordsets", items, f"zones/{zone_id}/recordsets")

    def show_recordset(self, req: Request, zone_id: str, rs_id: str) -> Response:
        with self.ctx.store.lock:
            return json_response(200, self.render_recordset(self._recordset(self._zone(zone_id), rs_id)))

    @staticmethod
    def _check_records(rtype: str, records: Any, ttl: Any) -> None:
        if not isinstance(records, list) or not records or not all(isinstance(r, str) for r in records):
            raise ApiError(400, "Provided object does not match schema 'recordset': 'records' must be a non-empty "
                                "list of strings", type="invalid_object")
        for record in records:
            if rtype in ("A", "AAAA"):
                try:
                    address = ipaddress.ip_address(record)
                except ValueError:
                    address = None
                if address is None or address.version != (4 if rtype == "A" else 6):
                    raise ApiError(400, f"Provided object does not match schema 'recordset': {record!r} is not an "
                                        f"'{'ipv4' if rtype == 'A' else 'ipv6'}'", type="invalid_object")
        if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or not 1 <= ttl <= 2147483647):
            raise ApiError(400, f"Provided object does not match schema 'recordset': ttl {ttl!r} is out of range",
                           type="invalid_object")

    def create_recordset(self, req: Request, zone_id: str) -> Response:
        spec = req.json()
        if not isinstance(spec, dict):
            raise ApiError(400, "Provided object does not match schema 'recordset'", type="invalid_object")
        name, rtype = spec.get("name"), spec.get("type")
        if rtype not in TYPES:
            raise ApiError(400, f"Provided object does not match schema 'recordset': {rtype!r} is not one of "
                                f"{list(TYPES)}", type="invalid_object")
        if rtype in MANAGED:
            raise ApiError(400, f"{rtype} records are managed by Designate", type="bad_request")
        self._check_records(rtype, spec.get("records"), spec.get("ttl"))
        store = self.ctx.store
        with store.lock:
            zone = self._zone(zone_id)
            if not isinstance(name, str) or not FQDN.fullmatch(name) or not (name == zone.name or
                                                                            name.endswith("." + zone.name)):
                raise ApiError(400, f"RecordSet {name!r} does not belong to Zone {zone.name}",
                               type="invalid_recordset_location")
            if zone.action == "DELETE":
                raise ApiError(400, "Zone is being deleted", type="bad_request")
            if any(r.zone_id == zone.id and r.name == name and r.type == rtype for r in store.recordsets.values()):
                raise ApiError(409, "Duplicate RecordSet", type="duplicate_recordset")
            rs = RecordSet(id=new_id(), zone_id=zone.id, name=name, type=rtype, records=list(spec["records"]),
                           ttl=spec.get("ttl"), description=str(spec.get("description") or ""),
                           created=self.ctx.now(), seq=store.next_seq())
            store.recordsets[rs.id] = rs
            self._touch_zone(zone)
            self._settle_later("recordset", rs.id)
            return json_response(202, self.render_recordset(rs))

    def update_recordset(self, req: Request, zone_id: str, rs_id: str) -> Response:
        spec = req.json()
        if not isinstance(spec, dict) or set(spec) - {"records", "ttl", "description"}:
            raise ApiError(400, "Provided object does not match schema 'recordset': only records, ttl and "
                                "description can change", type="invalid_object")
        with self.ctx.store.lock:
            zone = self._zone(zone_id)
            rs = self._recordset(zone, rs_id)
            if rs.managed:
                raise ApiError(400, f"{rs.type} records are managed by Designate", type="bad_request")
            self._check_records(rs.type, spec.get("records", rs.records), spec.get("ttl", rs.ttl))
            rs.records = list(spec.get("records", rs.records))
            rs.ttl = spec.get("ttl", rs.ttl)
            if "description" in spec:
                rs.description = str(spec["description"] or "")
            rs.status, rs.action, rs.updated, rs.version = "PENDING", "UPDATE", self.ctx.now(), rs.version + 1
            self._touch_zone(zone)
            self._settle_later("recordset", rs.id)
            return json_response(202, self.render_recordset(rs))

    def delete_recordset(self, req: Request, zone_id: str, rs_id: str) -> Response:
        with self.ctx.store.lock:
            zone = self._zone(zone_id)
            rs = self._recordset(zone, rs_id)
            if rs.managed:
                raise ApiError(400, f"{rs.type} records are managed by Designate", type="bad_request")
            rs.status, rs.action, rs.updated = "PENDING", "DELETE", self.ctx.now()
            self._touch_zone(zone)
            self._settle_later("recordset", rs.id)
            return json_response(202, self.render_recordset(rs))

    def describe(self) -> tuple[list[dict], list[dict]]:
        """Zones and recordsets for ``/_sim/state`` (caller holds the lock)."""
        store = self.ctx.store
        return ([self.render_zone(z) for z in sorted(store.zones.values(), key=lambda z: z.seq)],
                [self.render_recordset(r) for r in sorted(store.recordsets.values(), key=lambda r: r.seq)])
