"""`env plan/up/down` on OpenStack: the provider's typed environment API over one module per service
(network.py, keypairs.py, lb_build.py, dns.py). This module only routes each kind to its module."""

from __future__ import annotations

from typing import Mapping

from releasectl.errors import ProviderError
from releasectl.providers.base import EnvAction, EnvChange, EnvKind, EnvResource, EnvSpec

from .dns import DnsResources
from .keypairs import Keypairs
from .lb_build import LoadBalancerBuilder
from .network import NetworkResources

KINDS = frozenset(EnvKind) - {EnvKind.FOLDER}
NEUTRON = {EnvKind.NETWORK, EnvKind.SUBNET, EnvKind.SECURITY_GROUP, EnvKind.SECURITY_RULE, EnvKind.FLOATING_IP}
OCTAVIA = {EnvKind.LOADBALANCER, EnvKind.LISTENER, EnvKind.POOL, EnvKind.HEALTH_MONITOR}
DESIGNATE = {EnvKind.DNS_ZONE, EnvKind.DNS_RECORD}


class Environment:
    def __init__(self, network: NetworkResources, keypairs: Keypairs, lbs: LoadBalancerBuilder,
                 dns: DnsResources | None, prefix: str) -> None:
        self.network, self.keypairs, self.lbs, self.dns = network, keypairs, lbs, dns
        self.prefix = prefix

    def observe(self, spec: EnvSpec) -> list[EnvResource]:
        out = self.network.observe(spec.network if spec.cidr is None else None)
        out += self.keypairs.observe(self.prefix)
        out += self.lbs.observe()
        if spec.dns_zone:
            out += self._dns().observe(spec.dns_zone, spec.dns_name)
        return out

    def _dns(self) -> DnsResources:
        if self.dns is None:
            raise ProviderError("the cloud has no DNS (Designate) endpoint in its catalog",
                                hint="remove env.dns from releasectl.yaml, or ask the operator for Designate")
        return self.dns

    def apply(self, change: EnvChange, known: Mapping[str, EnvResource]) -> EnvResource | None:
        r = change.resource
        if change.action is EnvAction.DELETE:
            if r.kind in NEUTRON:
                self.network.delete(r)
            elif r.kind is EnvKind.KEYPAIR:
                self.keypairs.delete(r)
            elif r.kind in OCTAVIA:
                self.lbs.delete(r, known)
            else:
                self._dns().delete(r)
            return None
        if change.action is EnvAction.UPDATE and r.kind is EnvKind.DNS_RECORD and change.old is not None:
            return self._dns().update(r, change.old, known)
        if change.action is not EnvAction.CREATE:
            raise ProviderError(f"cannot {change.action.value} a {r.kind.value} in place")
        if r.kind in NEUTRON:
            return self.network.create(r, known)
        if r.kind is EnvKind.KEYPAIR:
            return self.keypairs.create(r)
        if r.kind in OCTAVIA:
            return self.lbs.create(r, known)
        return self._dns().create(r, known)


__all__ = ["Environment", "KINDS"]
