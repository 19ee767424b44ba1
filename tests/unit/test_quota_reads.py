"""The OpenStack quota reads (providers/openstack/quota.py) against stub clients: each service's answer shape,
the Neutron fallback without the quota-details extension, and services that publish nothing."""

from __future__ import annotations

from typing import Any

from releasectl.providers.openstack.quota import read_quota


class Response:
    def __init__(self, data: Any) -> None:
        self.data = data

    def json(self) -> Any:
        return self.data


class Stub:
    """A ServiceClient's get_json/call/pages/iter_members over a table of path -> answer (None: 404)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def get_json(self, path: str, **_: Any) -> Any:
        self.asked.append(path)
        return self.answers.get(path)

    def call(self, method: str, path: str, **_: Any) -> Response:
        self.asked.append(path)
        return Response(self.answers[path])

    def pages(self, path: str, *, key: str, params: Any = None) -> Any:
        self.asked.append(path)
        return iter(self.answers.get(path, []))

    def iter_members(self, pool_id: str) -> Any:
        return iter(self.answers.get(f"/pools/{pool_id}/members", []))


NOVA = {"/limits": {"limits": {"rate": [], "absolute": {
    "maxTotalInstances": 10, "totalInstancesUsed": 4, "maxTotalCores": -1, "totalCoresUsed": 8,
    "maxTotalRAMSize": 51200, "totalRAMUsed": 8192}}}}


def test_details_limits_and_counted_octavia_usage() -> None:
    neutron = Stub({"/quotas/p1/details.json": {"quota": {
        "port": {"limit": 50, "used": 7, "reserved": 1}, "floatingip": {"limit": 2, "used": 0, "reserved": 0},
        "security_group": {"limit": -1, "used": 3, "reserved": 0}}}})
    octavia = Stub({"/quotas/p1": {"quota": {"loadbalancer": 1, "member": 4, "listener": -1}},
                    "/loadbalancers": [{"id": "lb1"}], "/pools": [{"id": "a"}, {"id": "b"}],
                    "/pools/a/members": [{}, {}], "/pools/b/members": [{}]})
    quota = read_quota(Stub(NOVA), neutron, octavia, "p1", flavor=lambda: {"vcpus": 2, "ram": 4096},
                       has_service=lambda service: True)
    assert quota.limits == {"instances": 10, "cores": -1, "ram_mb": 51200, "ports": 50, "floatingips": 2,
                            "security_groups": -1, "load_balancers": 1, "members": 4}
    assert quota.used == {"instances": 4, "cores": 8, "ram_mb": 8192, "ports": 8, "floatingips": 0,
                          "security_groups": 3, "load_balancers": 1, "members": 3}
    assert quota.per_server == {"instances": 1, "ports": 1, "members": 1, "cores": 2, "ram_mb": 4096}


def test_neutron_without_quota_details_counts_its_listings() -> None:
    neutron = Stub({"/quotas/p1": {"quota": {"port": 5, "floatingip": -1, "security_group": 10, "network": 100}},
                    "/ports": [{}, {}, {}], "/security-groups": [{}]})
    quota = read_quota(Stub(NOVA), neutron, Stub({}), "p1", flavor=lambda: None, has_service=lambda s: s != "load-balancer")
    assert {k: quota.limits[k] for k in ("ports", "floatingips", "security_groups")} == {"ports": 5, "floatingips": -1,
                                                                                          "security_groups": 10}
    assert quota.used["ports"] == 3 and quota.used["security_groups"] == 1 and "floatingips" not in quota.used
    assert "/floatingips" not in neutron.asked  # unlimited: not counted
    assert "load_balancers" not in quota.limits and quota.per_server == {"instances": 1, "ports": 1, "members": 1}


def test_a_cloud_that_publishes_no_quota_checks_nothing() -> None:
    quota = read_quota(Stub({"/limits": {"limits": {"absolute": {}}}}), Stub({}), Stub({}), "p1", flavor=lambda: None,
                       has_service=lambda s: s == "compute")
    assert quota.limits == {} and quota.used == {}


class Refusing(Stub):
    """A service whose quota API answers 403 (the account's role may not read quotas), or 500."""

    def __init__(self, status: int) -> None:
        super().__init__({})
        self.status = status

    def get_json(self, path: str, **_: Any) -> Any:
        from releasectl.errors import ProviderError

        exc = ProviderError(f"GET {path} failed: HTTP {self.status}")
        exc.status = self.status  # type: ignore[attr-defined]
        raise exc


def test_a_quota_the_account_may_not_read_is_left_unchecked_and_any_other_failure_is_raised() -> None:
    import pytest

    from releasectl.errors import ProviderError

    octavia = Stub({"/quotas/p1": {"quota": {"loadbalancer": 1, "member": -1}}, "/loadbalancers": []})
    quota = read_quota(Stub(NOVA), Refusing(403), octavia, "p1", flavor=lambda: None, has_service=lambda s: True)
    assert "ports" not in quota.limits and quota.limits["instances"] == 10 and quota.limits["load_balancers"] == 1
    with pytest.raises(ProviderError):
        read_quota(Stub(NOVA), Refusing(500), octavia, "p1", flavor=lambda: None, has_service=lambda s: True)
