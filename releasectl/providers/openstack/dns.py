"""Designate v2 (catalog type `dns`) for `env up/down`: the zone (or an existing one) and the environment's
A/AAAA record for the VIP or its floating IP, with the configured TTL.

Designate has no tags: a zone or record releasectl made says so in its `description`
(`releasectl <app>/<env>`), and only those are changed or deleted; a zone without that mark is used as it
is. Writes answer 202 with `status: PENDING`; each is waited for until ACTIVE (or gone, for a delete).
"""

from __future__ import annotations

from typing import Any, Mapping

from releasectl.errors import NotFound, ProviderError, ResourceFailure
from releasectl.providers.base import EnvKind, EnvResource

from .http import ServiceClient, create_then_find
from .status import Poll, wait_for_status

PAGE = 1000


class Designate(ServiceClient):
    service_type = "dns"

    def root(self, endpoint: str) -> str:
        url = endpoint.rstrip("/")
        return url if url.endswith("/v2") else url + "/v2"


def _failed(obj: Mapping[str, Any]) -> ResourceFailure | None:
    if obj.get("status") == "ERROR":
        return ResourceFailure(f"DNS {obj.get('name')} is in ERROR ({obj.get('action')})",
                               hint="Designate could not apply it on its name servers: ask the operator")
    return None


class DnsResources:
    def __init__(self, api: Designate, app: str, env: str, *, timeout: float, poll: Poll) -> None:
        self.api = api
        self.mark = f"releasectl {app}/{env}"
        self.timeout, self.poll = timeout, poll

    def _zone(self, name: str) -> dict[str, Any] | None:
        zones = [z for z in self.api.pages("/zones", key="zones", params={"name": name, "limit": PAGE}) if z.get("name") == name]
        return zones[0] if zones else None

    def _settle(self, path: str) -> dict[str, Any] | None:
        return wait_for_status(lambda: self.api.get_json(path), what=f"DNS {path} to be applied", timeout=self.timeout,
                               poll=self.poll, done=lambda o: o.get("status") != "PENDING", failed=_failed, missing=None)

    def observe(self, zone_name: str, record_name: str | None) -> list[EnvResource]:
        zone = self._zone(zone_name)
        if zone is None:
            return []
        if zone.get("status") == "PENDING":
            zone = self._settle(f"/zones/{zone['id']}")
            if zone is None:
                return []
        out = [EnvResource(EnvKind.DNS_ZONE, zone_name, {"email": str(zone.get("email"))} if zone.get("description") == self.mark else {},
                           id=zone["id"], owned=zone.get("description") == self.mark)]
        if record_name is None:
            return out
        for rs in self.api.pages(f"/zones/{zone['id']}/recordsets", key="recordsets", params={"name": record_name, "limit": PAGE}):
            if rs.get("name") != record_name or rs.get("type") not in ("A", "AAAA") or rs.get("description") != self.mark:
                continue
            if rs.get("status") == "PENDING":
                rs = self._settle(f"/zones/{zone['id']}/recordsets/{rs['id']}")
                if rs is None:
                    continue
            out.append(EnvResource(EnvKind.DNS_RECORD, record_name, {
                "type": rs["type"], "ttl": str(rs.get("ttl")), "address": ",".join(rs.get("records") or [])},
                id=rs["id"], attrs={"zone_id": zone["id"]}))
        return out

    def create(self, r: EnvResource, known: Mapping[str, EnvResource]) -> EnvResource:
        if r.kind is EnvKind.DNS_ZONE:
            body = {"name": r.name, "email": r.spec["email"], "description": self.mark}
            zone = create_then_find(lambda: self.api.call("POST", "/zones", json=body).json(),
                                    lambda: self._zone(r.name), what=f"zone {r.name}", on_conflict="find")
            zone = self._settle(f"/zones/{zone['id']}") or zone
            return EnvResource(r.kind, r.name, {"email": str(zone.get("email"))}, id=zone["id"])
        zone_id = known[r.spec["zone"]].id
        address = self._address(r, known)
        body = {"name": r.name, "type": r.spec["type"], "records": [address], "ttl": int(r.spec["ttl"]), "description": self.mark}

        def find() -> dict[str, Any] | None:
            found = self.api.pages(f"/zones/{zone_id}/recordsets", key="recordsets", params={"name": r.name, "type": r.spec["type"]})
            return next((x for x in found if x.get("name") == r.name and x.get("description") == self.mark), None)

        rs = create_then_find(lambda: self.api.call("POST", f"/zones/{zone_id}/recordsets", json=body).json(), find,
                              what=f"DNS record {r.name}", on_conflict="find")
        rs = self._settle(f"/zones/{zone_id}/recordsets/{rs['id']}") or rs
        return self._record(r, rs, zone_id)

    def update(self, r: EnvResource, old: EnvResource, known: Mapping[str, EnvResource]) -> EnvResource:
        zone_id = old.attrs["zone_id"]
        if old.spec.get("type") != r.spec["type"]:  # A <-> AAAA: a new recordset
            self.delete(old)
            return self.create(r, known)
        body = {"records": [self._address(r, known)], "ttl": int(r.spec["ttl"])}
        path = f"/zones/{zone_id}/recordsets/{old.id}"
        self.api.call("PUT", path, json=body)
        return self._record(r, self._settle(path) or {}, zone_id)

    @staticmethod
    def _address(r: EnvResource, known: Mapping[str, EnvResource]) -> str:
        target = known.get(r.spec["target"])
        address = target.attrs.get("address") if target else None
        if not address:
            raise ProviderError(f"DNS record {r.name}: the address of {r.spec['target']} is not known yet")
        return address

    @staticmethod
    def _record(r: EnvResource, rs: Mapping[str, Any], zone_id: str) -> EnvResource:
        return EnvResource(EnvKind.DNS_RECORD, r.name, {"type": str(rs.get("type")), "ttl": str(rs.get("ttl")),
                                                       "address": ",".join(rs.get("records") or [])},
                           id=str(rs.get("id")), attrs={"zone_id": zone_id})

    def delete(self, r: EnvResource) -> None:
        path = f"/zones/{r.id}" if r.kind is EnvKind.DNS_ZONE else f"/zones/{r.attrs['zone_id']}/recordsets/{r.id}"
        try:
            self.api.call("DELETE", path, allow=(404,))
        except NotFound:
            return
        wait_for_status(lambda: self.api.get_json(path), what=f"DNS {r.name} to be deleted", timeout=self.timeout,
                        poll=self.poll, done=lambda o: False, failed=_failed, missing=None)


__all__ = ["Designate", "DnsResources"]
