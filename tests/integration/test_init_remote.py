"""`init --provider openstack` and `config check --remote` against the simulator: init chooses what the project
has (never names it did not see), marks placeholders where there is nothing to choose, and the remote check
names each missing resource and a flavor too small for the image, one error each, with exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.openstack_fixtures import make_cloud
from tests.openstack_sim import Simulator
from tests.openstack_sim.fixtures import FAST

pytestmark = pytest.mark.slow


@pytest.fixture
def sim() -> Any:
    simulator = Simulator(**FAST).start()
    yield simulator
    simulator.stop()


def test_init_chooses_what_the_cloud_has_and_the_remote_check_passes(sim: Simulator, tmp_path: Path) -> None:
    cloud = make_cloud(sim, tmp_path / "ws", drain=None)
    written = yaml.safe_load((cloud.path / "releasectl.yaml").read_text())["openstack"]
    assert {k: written[k] for k in ("builder", "flavor", "network", "pool")} == {
        "builder": "demo-builder", "flavor": "m1.small", "network": "private", "pool": "demo-pool"}

    check = cloud.cli("config", "check", "--remote", "--output", "json")
    assert check.code == 0, check.stderr
    remote = check.json()["remote"]
    assert remote["checked"] and remote["problems"] == []
    assert set(remote["found"]) == {"builder", "flavor", "network", "pool", "image"}
    quota = remote["quota"]  # Provider.quota(): what the preflight reads (the simulator's limits: unlimited)
    assert quota["instances"]["used"] >= 1 and quota["instances"]["limit"] == -1 and quota["instances"]["free"] is None
    assert remote["quota_source"] == "Nova, Neutron and Octavia quotas"

    sim.set_quota(instances=5)
    limited = cloud.cli("config", "check", "--remote", "--output", "json").json()["remote"]["quota"]["instances"]
    assert limited["limit"] == 5 and limited["free"] == 5 - limited["used"]


def test_init_json_lists_the_inventory_and_its_choices(sim: Simulator, tmp_path: Path) -> None:
    cloud = make_cloud(sim, tmp_path / "ws", drain=None)
    again = cloud.cli("init", "--provider", "openstack", "--cloud", "sim", "--force", "--output", "json")
    assert again.code == 0, again.stderr
    openstack = again.json()["openstack"]
    assert openstack["cloud_error"] is None and openstack["found"]["cloud"] == "sim"
    assert openstack["found"]["flavors"][0]["name"] == "m1.small"
    assert openstack["found"]["pools"] == ["demo-pool"] and "private" in openstack["found"]["networks"]  # and the external one
    assert not any(c["placeholder"] for c in openstack["choices"].values())


def test_without_cloud_init_reads_os_cloud_chooses_from_it_and_writes_no_cloud_line(sim: Simulator, tmp_path: Path) -> None:
    """osconv's rule (cloud: only when --cloud names one; OS_CLOUD chooses otherwise) with the inventory's choices."""
    cloud = make_cloud(sim, tmp_path / "ws", drain=None)
    (cloud.path / "releasectl.yaml").unlink()
    cloud.env["OS_CLOUD"] = "sim"
    init = cloud.cli("init", "--provider", "openstack", "--output", "json")
    assert init.code == 0, init.stderr
    openstack = init.json()["openstack"]
    assert openstack["cloud_error"] is None and openstack["found"]["cloud"] == "sim"
    written = yaml.safe_load((cloud.path / "releasectl.yaml").read_text())["openstack"]
    assert "cloud" not in written
    assert {k: written[k] for k in ("builder", "flavor", "network", "pool")} == {
        "builder": "demo-builder", "flavor": "m1.small", "network": "private", "pool": "demo-pool"}
    assert cloud.cli("config", "check", "--remote", "--output", "json").code == 0  # OS_CLOUD still chooses


def test_an_empty_project_gets_marked_placeholders(sim: Simulator, tmp_path: Path) -> None:
    with sim.ctx.store.lock:  # a project without a load balancer's pool (yet)
        sim.ctx.store.pools.clear()
    cloud = make_cloud(sim, tmp_path / "ws", drain=None)
    text = (cloud.path / "releasectl.yaml").read_text()
    assert yaml.safe_load(text)["openstack"]["pool"] == "CHANGE-ME"
    assert "# PLACEHOLDER: no Octavia pool found" in text

    check = cloud.cli("config", "check", "--remote", "--output", "json")
    assert check.code == 2
    messages = [e["message"] for e in check.json()["errors"]]
    assert len(messages) == 1 and messages[0].startswith("openstack.pool is still CHANGE-ME"), messages


def test_remote_check_names_each_missing_resource_and_a_flavor_too_small(sim: Simulator, tmp_path: Path) -> None:
    cloud = make_cloud(sim, tmp_path / "ws", drain=None)
    config = cloud.path / "releasectl.yaml"
    doc = yaml.safe_load(config.read_text())
    doc["openstack"].update({"network": "nowhere", "pool": "no-such-pool"})
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    base = sim.state()["ids"]["base_image"]
    with sim.ctx.store.lock:
        sim.ctx.store.images[base].min_ram = 4096  # m1.small has 2048 MiB

    check = cloud.cli("config", "check", "--remote", "--output", "json")
    assert check.code == 2, check.stderr
    messages = sorted(e["message"] for e in check.json()["errors"])
    assert len(messages) == 3, messages
    assert messages[0].startswith("openstack.flavor: flavor m1.small has 2048 MiB of RAM") and "4096" in messages[0]
    assert messages[1].startswith("openstack.network: no network 'nowhere'")
    assert messages[2].startswith("openstack.pool: no Octavia pool 'no-such-pool'")

