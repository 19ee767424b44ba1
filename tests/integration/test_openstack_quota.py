"""Quota preflight through the real CLI against the OpenStack simulator: a blue-green that does not fit the
project's instance quota is refused with exit 2 and the numbers, and nothing is created."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from releasectl.cli.runtime import Globals, engine_context
from tests.integration.openstack_fixtures import Cloud, make_cloud, ours
from tests.openstack_sim import Simulator
from tests.openstack_sim.fixtures import openstack_sim_apps, openstack_sim_factory  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture
def sim(openstack_sim_apps: Simulator) -> Simulator:
    return openstack_sim_apps


@pytest.fixture
def cloud(sim: Simulator, tmp_path: Path) -> Cloud:
    return make_cloud(sim, tmp_path / "ws", count=2, drain="200ms")


def test_a_blue_green_that_does_not_fit_is_refused_with_the_numbers_and_nothing_is_created(cloud: Cloud, sim: Simulator) -> None:
    cloud.bake("1.0.0")
    cloud.ok("rollout", "1.0.0", "--pipeline", "bluegreen-fast.yaml")
    cloud.bake("1.1.0")
    used = cloud.control("GET", "quota")["used"]
    assert used["instances"] == 3  # the builder and the two servers of 1.0.0
    cloud.control("POST", "quota", {"instances": 4, "cores": -1})  # a second fleet of 2 needs 5
    before = cloud.state()
    refused = cloud.cli("rollout", "1.1.0", "--pipeline", "bluegreen-fast.yaml", "--output", "json")
    assert refused.code == 2, refused.stderr
    error = refused.json()["errors"][0]
    assert error["code"] == "usage" and "instances: needed 2, used 3, limit 4" in error["message"], error
    after = cloud.state()
    assert [s["id"] for s in ours(after)] == [s["id"] for s in ours(before)]
    assert [m["id"] for m in after["members"]] == [m["id"] for m in before["members"]]
    assert cloud.status()["release"] is None and cloud.status()["lock"] is None
    assert cloud.status()["live_version"] == "1.0.0"

    cloud.control("POST", "quota", {"instances": 5})  # exactly enough
    cloud.ok("rollout", "1.1.0", "--pipeline", "bluegreen-fast.yaml")
    assert cloud.status()["live_version"] == "1.1.0"


def test_the_provider_reads_every_quota_of_the_simulator(cloud: Cloud, sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    sim.set_quota(instances=10, cores=20, ram_mb=40960, ports=50, floatingips=2, security_groups=3,
                  load_balancers=1, members=8)
    cloud.bake("1.0.0")
    cloud.ok("rollout", "1.0.0", "--pipeline", "bluegreen-fast.yaml")
    for key, value in cloud.env.items():
        monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith("OS_") and k not in cloud.env]:
        monkeypatch.delenv(key)
    ctx = engine_context(Globals(config=cloud.path / "releasectl.yaml"), writes=False)
    try:
        quota = ctx.provider.quota()
    finally:
        ctx.provider.close()
    assert quota.limits == {"instances": 10, "cores": 20, "ram_mb": 40960, "ports": 50, "floatingips": 2,
                            "security_groups": 3, "load_balancers": 1, "members": 8}
    assert quota.used["instances"] == 3 and quota.used["members"] == 2 and quota.used["load_balancers"] == 1
    assert quota.used["cores"] == 3 and quota.used["ram_mb"] == 3 * 2048
    assert quota.per_server == {"instances": 1, "ports": 1, "members": 1, "cores": 1, "ram_mb": 2048}
