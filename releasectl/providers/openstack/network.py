"""Neutron writes for `env up/down`: the network and subnet, the security group and its rules, the floating IP.

Everything made here carries the owner tags (`releasectl`, `releasectl_app=`, `releasectl_env=`, sent with
the create) and is found again by them, never by name alone; rules have no tags of their own, so a rule is
ours when its group is and its description is `releasectl:<name>`. Neutron's creates and deletes are
synchronous: no waits. A lost create answer is reconciled by `create_then_find` (looked up by tags/name).
"""

from __future__ import annotations

from typing import Any, Mapping

from releasectl.errors import Conflict, NotFound, ProviderError
from releasectl.providers.base import EnvKind, EnvResource

from .http import create_then_find
from .neutron import Neutron
from .pool import owner_tags

MARK = "releasectl:"


class NetworkResources:
    def __init__(self, neutron: Neutron, app: str, env: str) -> None:
        self.api = neutron
        self.app, self.env = app, env
        self.tags = owner_tags(app, env)

    def _owned(self, collection: str, key: str) -> list[dict[str, Any]]:
        return list(self.api.pages(f"/{collection}", key=key, params={"tags": ",".join(self.tags)}))

    # ---- observe ---------------------------------------------------------------------------------------

    def observe(self, network_ref: str | None) -> list[EnvResource]:
        """Owned networks, subnets, groups, rules and floating IPs; plus the existing network `network_ref`."""
        out: list[EnvResource] = []
        for net in self._owned("networks", "networks"):
            out.append(EnvResource(EnvKind.NETWORK, net["name"], id=net["id"]))
        for sub in self._owned("subnets", "subnets"):
            out.append(EnvResource(EnvKind.SUBNET, sub["name"], {"cidr": sub["cidr"], "ip_version": str(sub["ip_version"])},
                                   id=sub["id"], attrs={"network_id": sub["network_id"], "cidr": sub["cidr"]}))
        for group in self._owned("security-groups", "security_groups"):
            out.append(EnvResource(EnvKind.SECURITY_GROUP, group["name"], id=group["id"]))
            rules = group.get("security_group_rules")
            if rules is None:
                rules = list(self.api.pages("/security-group-rules", key="security_group_rules",
                                            params={"security_group_id": group["id"]}))
            for rule in rules:
                description = rule.get("description") or ""
                if not description.startswith(MARK):
                    continue
                out.append(EnvResource(EnvKind.SECURITY_RULE, description[len(MARK):], {
                    "protocol": str(rule.get("protocol")), "port": str(rule.get("port_range_min")),
                    "remote": str(rule.get("remote_ip_prefix")), "ethertype": str(rule.get("ethertype"))},
                    id=rule["id"], attrs={"group_id": group["id"]}))
        for fip in self._owned("floatingips", "floatingips"):
            name = (fip.get("description") or "")[len(MARK):] if (fip.get("description") or "").startswith(MARK) else fip["id"]
            out.append(EnvResource(EnvKind.FLOATING_IP, name, {}, id=fip["id"],
                                   attrs={"address": fip.get("floating_ip_address") or "", "port_id": fip.get("port_id") or ""}))
        if network_ref is not None and not any(r.kind is EnvKind.NETWORK and r.name == network_ref for r in out):
            try:
                net = self.api.network(network_ref)
            except NotFound:
                net = None
            if net is not None:
                subnets = list(self.api.pages("/subnets", key="subnets", params={"network_id": net["id"]}))
                first = subnets[0] if subnets else {}
                out.append(EnvResource(EnvKind.NETWORK, network_ref, id=net["id"], owned=False, attrs={
                    "cidr": first.get("cidr", ""), "ip_version": str(first.get("ip_version", 4)), "subnet_id": first.get("id", "")}))
        return out

    # ---- create ----------------------------------------------------------------------------------------

    def _create(self, collection: str, key: str, body: dict[str, Any], find: Any, what: str) -> dict[str, Any]:
        def create() -> dict[str, Any]:
            return self.api.call("POST", f"/{collection}", json={key: {**body, "tags": self.tags}}).json()[key]

        return create_then_find(create, find, what=what)

    def _find_tagged(self, collection: str, key: str, **match: str) -> Any:
        def find() -> dict[str, Any] | None:
            items = self._owned(collection, key)
            return next((i for i in items if all(i.get(k) == v for k, v in match.items())), None)

        return find

    def create(self, r: EnvResource, known: Mapping[str, EnvResource]) -> EnvResource:
        if r.kind is EnvKind.NETWORK:
            net = self._create("networks", "network", {"name": r.name, "admin_state_up": True},
                               self._find_tagged("networks", "networks", name=r.name), f"network {r.name}")
            return EnvResource(r.kind, r.name, id=net["id"])
        if r.kind is EnvKind.SUBNET:
            network_id = known[r.spec["network"]].id
            sub = self._create("subnets", "subnet", {"name": r.name, "network_id": network_id, "cidr": r.spec["cidr"],
                                                      "ip_version": int(r.spec["ip_version"])},
                               self._find_tagged("subnets", "subnets", name=r.name), f"subnet {r.name}")
            return EnvResource(r.kind, r.name, dict(r.spec), id=sub["id"], attrs={"network_id": network_id, "cidr": sub["cidr"]})
        if r.kind is EnvKind.SECURITY_GROUP:
            group = self._create("security-groups", "security_group",
                                 {"name": r.name, "description": f"releasectl {self.app}/{self.env}"},
                                 self._find_tagged("security-groups", "security_groups", name=r.name), f"security group {r.name}")
            return EnvResource(r.kind, r.name, id=group["id"])
        if r.kind is EnvKind.SECURITY_RULE:
            return self._create_rule(r, known)
        if r.kind is EnvKind.FLOATING_IP:
            lb = known[r.spec["loadbalancer"]]
            external = self._external_network()
            body = {"floating_network_id": external, "port_id": lb.attrs.get("port_id") or None,
                    "description": MARK + r.name}
            fip = self._create("floatingips", "floatingip", body,
                               self._find_tagged("floatingips", "floatingips", description=MARK + r.name), f"floating IP {r.name}")
            if lb.attrs.get("port_id") and fip.get("port_id") != lb.attrs["port_id"]:
                fip = self.api.call("PUT", f"/floatingips/{fip['id']}", json={"floatingip": {"port_id": lb.attrs["port_id"]}}).json()["floatingip"]
            return EnvResource(r.kind, r.name, {}, id=fip["id"],
                               attrs={"address": fip.get("floating_ip_address") or "", "port_id": fip.get("port_id") or ""})
        raise ProviderError(f"network resources cannot create a {r.kind.value}")

    def _create_rule(self, r: EnvResource, known: Mapping[str, EnvResource]) -> EnvResource:
        group_id = known[r.spec["group"]].id
        remote = r.spec["remote"]
        if remote.startswith("(") :  # the LB subnet's CIDR was not known when planned: take it now
            net = next((k for k in known.values() if k.kind is EnvKind.NETWORK), None)
            remote = (net.attrs.get("cidr") if net else "") or ""
        body = {"security_group_id": group_id, "direction": "ingress", "ethertype": r.spec["ethertype"],
                "protocol": r.spec["protocol"], "port_range_min": int(r.spec["port"]), "port_range_max": int(r.spec["port"]),
                "remote_ip_prefix": remote, "description": MARK + r.name}

        def create() -> dict[str, Any]:
            return self.api.call("POST", "/security-group-rules", json={"security_group_rule": body}).json()["security_group_rule"]

        def find() -> dict[str, Any] | None:
            rules = self.api.pages("/security-group-rules", key="security_group_rules", params={"security_group_id": group_id})
            return next((x for x in rules if x.get("description") == MARK + r.name), None)

        rule = create_then_find(create, find, what=f"security rule {r.name}", on_conflict="find")
        return EnvResource(r.kind, r.name, dict(r.spec, remote=remote), id=rule["id"], attrs={"group_id": group_id})

    def _external_network(self) -> str:
        nets = [n for n in self.api.pages("/networks", key="networks", params={"router:external": "true"})
                if n.get("router:external")]
        if not nets:
            raise NotFound("the cloud has no external network for a floating IP",
                           hint="set env.floating_ip: false, or ask the operator for an external network")
        return nets[0]["id"]

    # ---- delete ----------------------------------------------------------------------------------------

    PATHS = {EnvKind.NETWORK: "networks", EnvKind.SUBNET: "subnets", EnvKind.SECURITY_GROUP: "security-groups",
             EnvKind.SECURITY_RULE: "security-group-rules", EnvKind.FLOATING_IP: "floatingips"}

    def delete(self, r: EnvResource) -> None:
        """Synchronous in Neutron; a 404 is success (already gone). A 409 on a network or subnet means something
        that is not this environment's (a server, a port) still sits on it: say so, and what to do."""
        try:
            self.api.call("DELETE", f"/{self.PATHS[r.kind]}/{r.id}", allow=(404,))
        except Conflict as exc:
            if r.kind not in (EnvKind.NETWORK, EnvKind.SUBNET):
                raise
            raise Conflict(f"{r.kind.value} {r.name} is still in use by something that is not {self.app}/{self.env}'s "
                           f"(a server or port made outside releasectl): {exc.message}",
                           hint="remove it (`openstack port list --network NAME` shows it), then run `env down` again: "
                                "what is deleted stays deleted") from None


__all__ = ["NetworkResources", "MARK"]
