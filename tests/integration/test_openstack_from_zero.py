"""Issue 11's "done when" as one walk, through the real CLI against a bare simulator (an empty project: a base
image, a flavor, an external network) whose servers serve apps: init, the `env:` section added by hand,
`env up`, the builder from the base image with a recipe, bake and roll out 1.0.0, bake 1.1.0 by patching
1.0.0's image, a canary under load with no failed request, then `env down --force` leaving nothing of the app
but the images retention keeps. Only JSON, exit codes and the simulator's state are asserted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.integration.openstack_fixtures import LABEL, Cloud, Traffic, cli_env
from tests.openstack_sim import Simulator
from tests.openstack_sim.fixtures import openstack_sim_factory  # noqa: F401

pytestmark = pytest.mark.slow

APP = "web"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq1kV0Yw0zQ0bWc8kqj9n8Zr2ZQ4m2nqkJm0f7mZr1a ops@example"
INSTALL = "echo installing\nmkdir -p /srv/app\necho installed > /srv/app/INSTALLED\necho 1.0.0 > /srv/app/PATCH_LEVEL\n"
PATCH = "echo patching to 1.1.0\necho 1.1.0 > /srv/app/PATCH_LEVEL\n"
ENV = {"network": {"name": "web-net", "cidr": "10.20.0.0/24"}, "keypair": {"public_key": "id.pub"},
       "floating_ip": True, "dns": {"zone": "example.test", "name": "web", "ttl": 60}}


def json_of(cloud: Cloud, *args: str) -> dict:
    return cloud.ok(*args, "--output", "json").json()


def served(member: dict, path: str) -> requests.Response:
    return requests.get(f"http://{member['address']}:{member['protocol_port']}{path}", timeout=5)


def in_rotation(state: dict) -> list[dict]:
    return [m for m in state["members"] if m["weight"] > 0 and m["admin_state_up"]]


def version_of(state: dict, member: dict) -> str | None:
    server = next(s for s in state["servers"] if s["id"] == member["server_id"])
    return (server["metadata"] or {}).get(LABEL + "version")


def of_the_app(state: dict) -> dict[str, list[Any]]:
    """Everything in the simulator that is the app's, by kind: what the project had before (the external
    network, the default security group, the base image) left out."""
    return {
        "servers": [s["name"] for s in state["servers"]],
        "ports": [p["id"] for p in state["ports"]],
        "networks": [n["name"] for n in state["networks"] if n["name"] != "external"],
        "subnets": [s["name"] for s in state["subnets"] if s["network_id"] in
                    {n["id"] for n in state["networks"] if n["name"] != "external"}],
        "security_groups": [g["name"] for g in state["security_groups"] if g["name"] != "default"],
        "rules": [r["description"] for r in state["security_group_rules"] if (r["description"] or "").startswith("releasectl:")],
        "keypairs": [k["name"] for k in state["keypairs"]],
        "floatingips": [f["floating_ip_address"] for f in state["floatingips"]],
        "loadbalancers": [x["name"] for x in state["loadbalancers"]],
        "listeners": [x["name"] for x in state["listeners"]],
        "pools": [x["name"] for x in state["pools"]],
        "members": [m["address"] for m in state["members"]],
        "healthmonitors": [x["name"] for x in state["healthmonitors"]],
        "zones": [z["name"] for z in state["zones"]],
        "recordsets": [(r["name"], r["type"]) for r in state["recordsets"] if r["type"] in ("A", "AAAA")],
    }


def test_from_an_empty_project_to_a_live_dns_named_app_and_back(openstack_sim_factory: Any, tmp_path: Path) -> None:
    sim: Simulator = openstack_sim_factory(bare=True, serve_apps=True)
    before = sim.state()
    base = before["ids"]["base_image"]
    assert of_the_app(before) == {k: [] for k in of_the_app(before)}  # an empty project

    # an empty folder, a clouds.yaml and OS_CLOUD, as a user has them
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump(sim.clouds_yaml("sim")))
    clouds.chmod(0o600)
    folder = tmp_path / APP
    folder.mkdir()
    cloud = Cloud(sim, folder, {**cli_env(tmp_path / "home", clouds), "OS_CLOUD": "sim"})
    assert json_of(cloud, "init", "--provider", "openstack", "--app", APP)["written"] == ["releasectl.yaml"]

    # the small edit: the environment to build, the image to build from; what init named for the network,
    # the pool and the builder is what `env up` and `builder up` make now
    config = folder / "releasectl.yaml"
    doc = yaml.safe_load(config.read_text())
    for key in ("network", "pool", "builder"):
        doc["openstack"].pop(key, None)
    doc["openstack"]["base_image"] = sim.options.base_image_name
    doc["env"] = ENV
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    (folder / "id.pub").write_text(KEY + "\n")
    (folder / "install.sh").write_text(INSTALL)
    (folder / "patch.sh").write_text(PATCH)
    cloud.tune(count=2, drain="1s")  # fast health checks and pipelines: the scaffold's are for real clouds

    plan = json_of(cloud, "env", "plan")
    assert of_the_app(sim.state()) == of_the_app(before)  # a plan writes nothing
    up = json_of(cloud, "env", "up")
    assert up["applied"] == len(plan["changes"]) > 0 and up["changes"] == []
    assert json_of(cloud, "env", "up")["applied"] == 0  # a second run changes nothing
    state = sim.state()
    lb = next(x for x in state["loadbalancers"] if x["name"] == f"{APP}-production")
    fip = next(f for f in state["floatingips"] if f["port_id"] == lb["vip_port_id"])
    assert [(r["name"], r["type"], r["records"]) for r in state["recordsets"] if r["type"] == "A"] == [
        ("web.example.test.", "A", [fip["floating_ip_address"]])]

    builder = json_of(cloud, "builder", "up", "--recipe", "install.sh", "--from", "base")["builder"]
    assert builder["status"] == "ready"
    first = json_of(cloud, "bake", "1.0.0")["image"]
    assert first["labels"]["source_image"] == "base"
    assert json_of(cloud, "builder", "down")["removed"] is True
    assert not [s for s in sim.state()["servers"] if (s["metadata"] or {}).get(LABEL + "builder")]

    json_of(cloud, "rollout", "1.0.0")
    state = sim.state()
    pool = next(p for p in state["pools"] if p["name"] == f"{APP}-production")
    live = in_rotation(state)
    assert len(live) == 2 and all(m["pool_id"] == pool["id"] and version_of(state, m) == "1.0.0" for m in live)
    assert all(served(m, "/files/srv/app/INSTALLED").text == "installed\n" for m in live)

    patched = json_of(cloud, "bake", "1.1.0", "--recipe", "patch.sh")
    assert patched["image"]["labels"]["source_image"] == first["id"]  # the patch path: from 1.0.0's image
    assert not [s for s in sim.state()["servers"] if (s["metadata"] or {}).get(LABEL + "builder")]

    with Traffic(sim, max_seconds=120) as traffic:
        canary = json_of(cloud, "rollout", "1.1.0")  # the configured pipeline: canary-fast (see Cloud.tune)
    traffic.assert_served_throughout()  # 0 failed requests, a member in rotation at every view of the pool
    assert traffic.responses["1.1.0"] > 0 and traffic.responses["1.0.0"] > 0, traffic.summary()
    assert (canary["release"]["version"], canary["release"]["pipeline"]) == ("1.1.0", "canary-fast")
    state = sim.state()
    live = in_rotation(state)
    assert len(live) == 2 and {version_of(state, m) for m in live} == {"1.1.0"}
    assert all(served(m, "/files/srv/app/PATCH_LEVEL").text == "1.1.0\n" for m in live)
    assert all(served(m, "/files/srv/app/INSTALLED").text == "installed\n" for m in live)  # 1.0.0's install kept

    down = json_of(cloud, "env", "down", "--force")
    assert len(down["retired"]) >= 2
    after = sim.state()
    assert of_the_app(after) == {k: [] for k in of_the_app(after)}
    kept = {i["id"] for i in after["images"]}
    assert kept == {base, first["id"], patched["image"]["id"]}  # the baked versions: retention keeps 5
