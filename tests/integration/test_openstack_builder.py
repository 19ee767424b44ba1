"""The builder from code through the real CLI against the OpenStack simulator (apps served): the patch path
from the last image with a recipe, its effect served by the new version's servers, the labels that trace an
image to its inputs, a quiesced snapshot, a failing recipe, and the smoke checks on the builder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests
import yaml

from tests.integration.openstack_fixtures import LABEL, Cloud, make_cloud
from tests.openstack_sim import Simulator
from tests.openstack_sim.fixtures import openstack_sim_apps, openstack_sim_factory  # noqa: F401

pytestmark = pytest.mark.slow
PATCH = "echo patching to 1.1.0\necho 1.1.0 > /srv/app/PATCH_LEVEL\n"


@pytest.fixture
def sim(openstack_sim_apps: Simulator) -> Simulator:
    return openstack_sim_apps


@pytest.fixture
def cloud(sim: Simulator, tmp_path: Path) -> Cloud:
    cloud = make_cloud(sim, tmp_path / "ws", count=1, drain="200ms")
    (cloud.path / "patch.sh").write_text(PATCH)
    return cloud


def builders(sim: Simulator) -> list[dict]:
    return [s for s in sim.state()["servers"] if (s["metadata"] or {}).get(LABEL + "builder")]


def test_bake_with_a_recipe_patches_the_last_image_and_the_new_fleet_serves_its_effect(cloud: Cloud, sim: Simulator) -> None:
    cloud.bake("1.0.0")
    first = next(i for i in cloud.ok("images", "-o", "json").json()["images"] if i["version"] == "1.0.0")
    baked = cloud.ok("bake", "1.1.0", "--recipe", "patch.sh", "-o", "json").json()
    labels = baked["image"]["labels"]
    assert labels["source_image"] == first["id"]
    assert labels["recipe_sha256"] == hashlib.sha256(PATCH.encode()).hexdigest()
    assert int(labels["baked_at"]) > 0 and baked["builder"]["status"] == "ready"
    assert builders(sim) == []  # taken down after the snapshot
    cloud.ok("rollout", "1.1.0", "--pipeline", "bluegreen-fast.yaml")
    member = next(m for m in sim.state()["members"] if m["weight"] > 0)
    served = requests.get(f"http://{member['address']}:{member['protocol_port']}/files/srv/app/PATCH_LEVEL", timeout=5)
    assert served.status_code == 200 and served.text == "1.1.0\n"


def test_builder_up_by_hand_is_offline_and_bake_quiesces_it(cloud: Cloud, sim: Simulator) -> None:
    cloud.bake("1.0.0")
    up = cloud.ok("builder", "up", "--recipe", "patch.sh", "-o", "json").json()["builder"]
    assert up["status"] == "ready" and up["address"]
    made = builders(sim)
    assert len(made) == 1 and LABEL + "env" not in made[0]["metadata"]  # never part of an environment
    assert all(m["address"] != up["address"] for m in sim.state()["members"])  # offline: not in the pool
    sim.reset_requests()
    cloud.ok("bake", "1.1.0")
    actions = [e for e in sim.ctx.journal.entries() if e["method"] == "POST" and e["path"].endswith("/action")]
    assert len(actions) == 3 and {a["path"] for a in actions} == {f"/compute/v2.1/servers/{up['id']}/action"}, actions
    console = sim.ctx.store.servers[up["id"]].console
    down = max(i for i, line in enumerate(console) if "Power down" in line)
    assert any("Linux version" in line for line in console[down:])  # stopped for the snapshot, then started
    assert cloud.ok("builder", "status", "-o", "json").json()["builder"]["status"] == "ready"  # running again
    assert cloud.ok("builder", "down", "-o", "json").json()["removed"] is True
    assert builders(sim) == [] and cloud.ok("builder", "down", "-o", "json").json()["removed"] is False


def test_a_failing_recipe_exits_1_with_its_console_output_and_leaves_nothing(cloud: Cloud, sim: Simulator) -> None:
    cloud.bake("1.0.0")
    (cloud.path / "bad.sh").write_text("echo E: Unable to locate package nginx-extras\nexit 100\n")
    failed = cloud.cli("bake", "1.1.0", "--recipe", "bad.sh", "-o", "json")
    assert failed.code == 1, failed.stderr
    message = failed.json()["errors"][0]["message"]
    assert "exited 100" in message and "nginx-extras" in message
    assert builders(sim) == [] and set(cloud.images()) == {"1.0.0"}


def test_a_recipe_that_never_reports_done_times_out(cloud: Cloud, sim: Simulator) -> None:
    cloud.bake("1.0.0")
    (cloud.path / "slow.sh").write_text("sleep 60\n")
    failed = cloud.cli("builder", "up", "--recipe", "slow.sh", "--timeout", "2s", "-o", "json")
    assert failed.code == 1 and "did not report done within 2s" in failed.json()["errors"][0]["message"]
    assert cloud.ok("builder", "status", "-o", "json").json()["builder"]["status"] == "failed"
    cloud.ok("builder", "down")


def test_cloud_config_from_the_base_image_and_the_smoke_checks_on_the_builder(cloud: Cloud, sim: Simulator) -> None:
    config = cloud.path / "releasectl.yaml"
    doc = yaml.safe_load(config.read_text())
    doc["openstack"]["base_image"] = sim.options.base_image_name
    doc.setdefault("stage", {})["checks"] = [{"path": "/files/etc/motd", "expected_status": 200, "body_contains": "hello"}]
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    (cloud.path / "cfg.yaml").write_text("#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: hello\n")
    baked = cloud.ok("bake", "1.0.0", "--recipe", "cfg.yaml", "--from", "base", "-o", "json").json()
    assert baked["image"]["labels"]["source_image"] == "base"
    assert {c["path"]: c["passed"] for c in baked["checks"]}["/files/etc/motd"] is True
    (cloud.path / "nomotd.yaml").write_text("#cloud-config\nruncmd:\n  - echo no motd here\n")
    failed = cloud.cli("bake", "1.1.0", "--recipe", "nomotd.yaml", "--from", "base", "-o", "json")
    assert failed.code == 1 and "smoke checks failed on the builder" in failed.json()["errors"][0]["message"]
    assert builders(sim) == [] and set(cloud.images()) == {"1.0.0"}


def test_quota_refuses_builder_up(cloud: Cloud, sim: Simulator) -> None:
    cloud.bake("1.0.0")
    used = cloud.control("GET", "quota")["used"]["instances"]
    cloud.control("POST", "quota", {"instances": used})
    refused = cloud.cli("builder", "up", "-o", "json")
    assert refused.code == 2 and f"instances: needed 1, used {used}, limit {used}" in refused.json()["errors"][0]["message"]
    assert builders(sim) == []


# ---- kill -9 of `bake --recipe` (tests/integration/test_builder_kill.py is the local provider's) -------------


BAKE = ("bake", "1.1.0", "--recipe", "patch.sh")
UP = ("builder", "up", "--recipe", "patch.sh")


@pytest.mark.parametrize("command, point", [(BAKE, "builder booting"), (BAKE, "snapshot saving"), (UP, "builder booting")])
def test_kill_then_the_same_command_finishes(openstack_sim_factory, tmp_path: Path, command: tuple, point: str) -> None:
    """SIGKILL by PID while the builder boots, or while its snapshot is saved: the builder left is listed by
    `builder status`, the unfinished image is never listed as baked, no lock is held, and running the same
    command again takes the half-made builder down (and deletes the unfinished image) and finishes."""
    import os
    import signal

    from releasectl.wait import wait_for
    from tests.integration.procs import start_cli

    sim = openstack_sim_factory(serve_apps=True, build_delay=2.0, snapshot_delay=4.0)
    cloud = make_cloud(sim, tmp_path / "ws", count=1, drain="200ms")
    (cloud.path / "patch.sh").write_text(PATCH)
    cloud.bake("1.0.0")

    def unfinished() -> list[dict]:
        return [i for i in sim.state()["images"]
                if i["properties"].get(LABEL + "version") == "1.1.0" and i["status"] != "active"]

    probe = builders if point == "builder booting" else (lambda _sim: unfinished())
    running = start_cli(*command, cwd=cloud.path, env=cloud.env, inherit=False)
    wait_for(lambda: probe(sim) or running.proc.poll() is not None, timeout=60, interval=0.02, max_interval=0.1,
             what=point)
    assert running.proc.poll() is None, running.stderr[-2000:]
    os.kill(running.proc.pid, signal.SIGKILL)
    assert running.finish() == -signal.SIGKILL

    left = cloud.ok("builder", "status", "-o", "json").json()["builder"]
    assert left is not None and [b["id"] for b in builders(sim)] == [left["id"]]  # what is left, the tool lists
    listed = [i for i in cloud.ok("images", "-o", "json").json()["images"] if i["version"] == "1.1.0"]
    assert all(i["status"] != "baked" for i in listed), listed  # half-made: never listed as usable
    assert cloud.ok("status", "-o", "json").json()["lock"] is None

    again = cloud.cli(*command, "-o", "json")
    assert again.code == 0, again.stderr[-3000:]
    if command == UP:  # a new builder, ready, in place of the half-made one
        assert again.json()["builder"]["status"] == "ready" and [b["id"] for b in builders(sim)] == [again.json()["builder"]["id"]]
        assert again.json()["builder"]["id"] != left["id"]
        assert cloud.ok("builder", "down", "-o", "json").json()["removed"] is True
    else:
        assert again.json()["image"]["status"] == "baked"
    assert builders(sim) == [] and unfinished() == []
    assert [i["version"] for i in cloud.ok("images", "-o", "json").json()["images"]].count("1.1.0") == (command == BAKE)
