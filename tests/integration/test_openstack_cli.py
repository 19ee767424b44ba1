"""The real CLI against the OpenStack simulator (tests/openstack_sim): Keystone, Nova, Glance, Octavia and
Swift over loopback HTTP, with a real app process per server and real HTTP health checks by "Octavia".

Each test starts its own simulator (short delays, ``serve_apps=True``) and stops it at teardown, writes a
clouds.yaml for it that the CLI finds through ``OS_CLIENT_CONFIG_FILE``, and runs ``releasectl init
--provider openstack --cloud sim`` in a fresh folder (so a fresh state dir). Every command is a new
process with JSON output where the test reads it, and its exit code is asserted.

Under random 5xx faults a command may exit 0, 1 (rolled back cleanly) or 5 (then ``rollout --resume``
or ``abort`` finishes the job); afterwards the simulator's state must hold no duplicate or orphaned
server, image or member.

About 2.5 minutes without the tests marked slow (two more fault seeds, about 2 minutes).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
import requests

from tests.conftest import CliRun
from tests.integration.openstack_fixtures import LABEL, Cloud, make_cloud
from tests.openstack_sim import Simulator
from tests.openstack_sim.fixtures import FAST

DRAIN = "200ms"  # every drain: no load runs here, so nothing needs draining for longer


@pytest.fixture
def sim() -> Any:
    simulator = Simulator(serve_apps=True, **FAST).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def cloud(sim: Simulator, tmp_path: Path) -> Cloud:
    return make_cloud(sim, tmp_path / "ws", drain=DRAIN)


@pytest.fixture
def live_100(cloud: Cloud) -> Cloud:
    cloud.bake("1.0.0")
    cloud.ok("rollout", "1.0.0", "--pipeline", "first-fast.yaml")
    return cloud


# ---------------------------------------------------------------------------------------- invariants


def assert_clean(cloud: Cloud, *, count: int = 2) -> dict:
    """No duplicate or orphaned server, image or member; returns the status."""
    status = cloud.status()
    assert status["release"] is None and status["lock"] is None, status
    state = cloud.state()
    live = status["live_version"]
    ours = [s for s in state["servers"] if any(k.startswith(LABEL) for k in s["metadata"])]
    members = {m["server_id"]: m for m in state["members"]}
    assert state["orphans"] == {"processes": [], "members": []}, state["orphans"]
    assert len(members) == len(state["members"]), "two members for one server"
    for server in ours:
        meta = server["metadata"]
        assert server["status"] == "ACTIVE" and server["task_state"] is None, server
        role, version = meta[LABEL + "role"], meta[LABEL + "version"]
        assert server["id"] in members, f"server {server['name']} ({role} {version}) is not in the pool"
        if version == live and role == "stable":
            assert members[server["id"]]["weight"] > 0, server["name"]
        else:
            assert role == "previous", f"server {server['name']} is {role} {version}, not live {live} or warm"
            assert members[server["id"]]["weight"] == 0, server["name"]
    assert sum(1 for s in ours if s["metadata"][LABEL + "version"] == live) == count
    assert set(members) == {s["id"] for s in ours}, "a member whose server is not ours"
    images = Counter(i["properties"].get(LABEL + "version") for i in state["images"]
                     if i["properties"].get(LABEL + "app") == "demo")
    assert all(n == 1 for n in images.values()), f"several images of one version: {images}"
    assert all(i["status"] == "active" for i in state["images"]), [(i["name"], i["status"]) for i in state["images"]]
    return status


# ---------------------------------------------------------------------------------------- scaffold


def test_init_config_works_against_the_simulator_without_edits(sim: Simulator, tmp_path: Path) -> None:
    cloud = make_cloud(sim, tmp_path / "ws", drain=None)
    written = yaml.safe_load((cloud.path / "releasectl.yaml").read_text())
    assert written["provider"] == "openstack" and written["openstack"]["cloud"] == "sim", written
    check = cloud.cli("config", "check", "--output", "json")
    assert check.code == 0, check.stderr
    baked = cloud.cli("bake", "1.0.0", "--output", "json")
    assert baked.code == 0, baked.stderr
    image = next(i for i in cloud.state()["images"] if i["name"] == "demo-1.0.0")
    assert image["status"] == "active" and image["properties"][LABEL + "version"] == "1.0.0"
    assert cloud.images() == {"1.0.0": "baked"}
    status = cloud.status()  # nothing released yet
    assert status["live_version"] is None and status["members"] == [] and status["release"] is None
    assert status["endpoint"] == f"http://{cloud.state()['loadbalancers'][0]['vip_address']}:80"


# ---------------------------------------------------------------------------------------- images


def test_bake_images_by_semver_and_stage(cloud: Cloud) -> None:
    for version in ("1.0.0", "1.10.0", "1.9.0"):
        cloud.bake(version)
    with cloud.sim.ctx.store.lock:  # decoys: found by name they would be listed, by properties they are not
        for name, props in (("demo-9.9.9", {}), ("other-2.0.0", {LABEL + "app": "other", LABEL + "version": "2.0.0"})):
            cloud.sim.ctx.glance.add_image(name=name, status="queued", properties=props, disk_format="qcow2",
                                           container_format="bare").mark_active()
    listed = cloud.ok("images", "--output", "json").json()["images"]
    assert [i["version"] for i in listed] == ["1.10.0", "1.9.0", "1.0.0"]  # by semver, not by name or date
    assert {i["name"] for i in listed} == {"demo-1.0.0", "demo-1.9.0", "demo-1.10.0"}
    staged = cloud.cli("stage", "1.9.0", "--output", "json")
    assert staged.code == 0, staged.stderr
    assert staged.json()["passed"] is True and staged.json()["kept"] is False
    cloud.bake("1.11.0", broken=True)
    failed = cloud.cli("stage", "1.11.0", "--output", "json")
    assert failed.code == 1, failed.stderr
    assert failed.json()["passed"] is False
    state = cloud.state()
    assert [s["name"] for s in state["servers"]] == ["demo-builder"]  # stage servers are removed either way
    assert state["orphans"] == {"processes": [], "members": []} and state["members"] == []


# ---------------------------------------------------------------------------------------- releases


def test_rollout_canary_status_rollback_history(live_100: Cloud) -> None:
    """1.0.0 live, a canary to 1.1.0, `status`; then `rollback` relaunches 1.0.0 (the canary retired its
    fleet), and `history`. Octavia cannot count sessions, so the rollback drains the old fleet for
    `rollout.drain_timeout` (200ms here)."""
    cloud = live_100
    first = cloud.status()
    vip = cloud.state()["loadbalancers"][0]["vip_address"]
    assert first["live_version"] == "1.0.0" and first["endpoint"] == f"http://{vip}:80"
    cloud.bake("1.1.0")
    canary = cloud.cli("rollout", "1.1.0", "--output", "json")  # canary-fast.yaml from releasectl.yaml
    assert canary.code == 0, canary.stderr
    assert canary.json()["release"]["state"] == "succeeded"
    for step in ("weight 10%", "analysis passed", "weight 50%", "retiring the old fleet"):
        assert step in canary.stderr
    status = assert_clean(cloud)
    assert status["live_version"] == "1.1.0" and status["endpoint"] == f"http://{vip}:80"
    assert {m["version"] for m in status["members"]} == {"1.1.0"} and len(status["members"]) == 2
    assert all(m["health"] == "healthy" and m["weight"] > 0 for m in status["members"])
    assert sum(m["share"] for m in status["members"]) == pytest.approx(100)
    assert {s["version"] for s in status["servers"]} == {"1.1.0"}
    served = {requests.get(f"http://{m['address']}/", timeout=5).json()["version"] for m in status["members"]}
    assert served == {"1.1.0"}  # the app processes behind the members really run 1.1.0

    result = cloud.cli("rollback", "--output", "json")
    assert result.code == 0, result.stderr
    assert result.json()["release"]["kind"] == "rollback" and "launching server" in result.stderr
    status = assert_clean(cloud)
    assert status["live_version"] == "1.0.0" and {s["version"] for s in status["servers"]} == {"1.0.0"}
    assert cloud.images()["1.1.0"] == "rolled back"
    releases = cloud.ok("history", "--output", "json").json()["releases"]
    assert [(r["kind"], r["version"], r["state"]) for r in releases] == [
        ("rollback", "1.0.0", "succeeded"), ("rollout", "1.1.0", "succeeded"), ("rollout", "1.0.0", "succeeded")]
    assert "1.1.0" in cloud.ok("history").stdout
    again = cloud.cli("rollback")
    assert again.code == 2 and "known-good" in again.stderr

    # the records and the lock are Swift objects; every command released the lock
    state = cloud.state()
    names = {(o["container"], o["name"]) for o in state["objects"]}
    assert ("releasectl", "demo/production/records/current") in names
    assert sum(1 for _, n in names if n.startswith("demo/production/records/history/")) == 3
    lock = sorted(n for c, n in names if n.startswith("demo/production/lock/"))
    assert lock and json.loads(next(o["data"] for o in state["objects"] if o["name"] == lock[-1]))["released"] is True


def test_failing_release_rolls_back_automatically(live_100: Cloud) -> None:
    cloud = live_100
    cloud.bake("1.2.0", broken=True)
    result = cloud.cli("rollout", "1.2.0", "--output", "json")
    assert result.code == 1, result.stderr
    assert "health check failed" in result.stderr and "traffic is back on 1.0.0" in result.stderr
    assert result.json()["exit_code"] == 1 and result.json()["errors"][0]["code"] == "rolled_back"
    status = assert_clean(cloud)
    assert status["live_version"] == "1.0.0" and {s["version"] for s in status["servers"]} == {"1.0.0"}
    assert cloud.images()["1.2.0"] == "failed"
    image = next(i for i in cloud.state()["images"] if i["name"] == "demo-1.2.0")
    assert image["properties"][LABEL + "outcome"] == "failed"
    history = cloud.ok("history", "--output", "json").json()["releases"]
    assert (history[0]["version"], history[0]["state"]) == ("1.2.0", "failed")
    again = cloud.cli("rollout", "1.2.0")
    assert again.code == 2 and "marked failed" in again.stderr


# ---------------------------------------------------------------------------------------- credentials


@pytest.mark.parametrize("auth_type", ["password", "v3applicationcredential"])
def test_auth_types(sim: Simulator, tmp_path: Path, auth_type: str) -> None:
    cloud = make_cloud(sim, tmp_path / "ws", auth_type=auth_type, drain=DRAIN)
    cloud.bake("1.0.0")
    cloud.ok("rollout", "1.0.0", "--pipeline", "first-fast.yaml")
    assert cloud.status()["live_version"] == "1.0.0"
    issued = [e for e in sim.requests()["journal"] if e["service"] == "identity" and e["method"] == "POST"]
    assert issued and all(e["status"] == 201 for e in issued)
    # the token is cached between runs: four commands, far fewer token requests
    assert len(issued) <= 2, issued
    assert_clean(cloud)


# ---------------------------------------------------------------------------------------- faults


class Faulty:
    """Runs the release sequence with random 5xx on, tolerating what an operator would see."""

    MAX_TRIES = 6

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.log: list[str] = []

    def note(self, args: tuple[str, ...], result: CliRun) -> None:
        last = result.stderr.strip().splitlines()[-1:] if result.stderr.strip() else [""]
        self.log.append(f"{' '.join(args)} -> {result.code}: {last[0][:200]}")

    def bake(self, version: str) -> None:
        for _ in range(self.MAX_TRIES):
            result = self.cloud.cli("bake", version)
            self.note(("bake", version), result)
            if result.code == 0:
                return
            assert result.code == 5, self.report(result)
        raise AssertionError(self.report(result))

    def rollout(self, version: str, *, outage_at: str | None = None, then: str = "resume") -> str:
        """`rollout`, then `rollout --resume` (or `abort`) after exit 5; returns how it ended.

        With `outage_at`, every service call fails (HTTP 500/503) from the first progress line containing
        that text until the command gives up, then the random faults come back and `then` finishes it."""
        if outage_at is None:
            result = self.cloud.cli("rollout", version)
        else:
            result = self.outage(("rollout", version), outage_at)
            assert result.code == 5, self.report(result)
        self.note(("rollout", version), result)
        if result.code in (0, 1):
            return "succeeded" if result.code == 0 else "rolled back"
        assert result.code == 5, self.report(result)
        for attempt in range(self.MAX_TRIES):
            abort = then == "abort" or attempt >= self.MAX_TRIES - 2
            args = ("abort",) if abort else ("rollout", "--resume")
            result = self.cloud.cli(*args)
            self.note(args, result)
            if result.code == 0:
                return "succeeded" if args[0] == "rollout" else "aborted"
            if result.code == 1:
                return "rolled back"
            assert result.code == 5, self.report(result)
        raise AssertionError(self.report(result))

    def outage(self, args: tuple[str, ...], marker: str, timeout: float = 120) -> CliRun:
        """Run a command; when its progress shows `marker`, fail every call until it exits."""
        saved = self.cloud.control("GET", "faults")["faults"]
        running = self.cloud.start(*args)
        try:
            seen = running.wait_for_line(lambda line: marker in line, timeout=timeout) is not None
            if seen:
                self.cloud.control("POST", "faults", {"error_rate": 1.0})
            code = running.finish(timeout)
        finally:
            if running.proc.poll() is None:
                running.kill()
            self.cloud.control("POST", "faults", {"error_rate": saved["error_rate"], "seed": saved["seed"]})
        assert seen, f"never saw {marker!r}:\n{running.stderr[-3000:]}"
        return CliRun(code, running.stdout, running.stderr)

    def report(self, result: CliRun) -> str:
        return "\n".join(self.log) + f"\n--- last stderr:\n{result.stderr[-3000:]}"


def release_under_faults(cloud: Cloud, seed: int, then: str = "resume") -> Faulty:
    """bake and roll out 1.0.0, then 1.1.0 (a canary, with an outage at 10 % that ends it with exit 5,
    finished by `then`), then a 1.2.0 that fails its health checks; 10 % of all calls fail throughout."""
    faulty = Faulty(cloud)
    faults = cloud.control("POST", "faults", {"reset": True, "error_rate": 0.1, "seed": seed})
    assert "object-store" in faults["faults"]["error_services"]
    faulty.bake("1.0.0")
    faulty.rollout("1.0.0")
    faulty.bake("1.1.0")
    assert faulty.rollout("1.1.0", outage_at="weight 10%", then=then) in (
        "succeeded" if then == "resume" else "aborted", "rolled back"), "\n".join(faulty.log)
    cloud.fail_health(True)
    faulty.bake("1.2.0")
    cloud.fail_health(False)
    assert faulty.rollout("1.2.0") in ("rolled back", "aborted"), "\n".join(faulty.log)
    injected = cloud.control("GET", "faults")["injected"].get("random_error", 0)
    cloud.control("POST", "faults", {"reset": True})
    assert injected > 0
    faulty.log.append(f"{injected} faults injected")
    return faulty


def check_after_faults(cloud: Cloud, faulty: Faulty) -> None:
    print("\n".join(faulty.log))  # shown with -s or -rP: what each command did under faults
    status = assert_clean(cloud)
    assert status["live_version"] in ("1.0.0", "1.1.0"), "\n".join(faulty.log)
    images = cloud.images()
    assert images["1.2.0"] in ("failed", "baked"), images  # failed, or aborted by the retries above
    assert images[status["live_version"]] == "live"


def test_release_sequence_under_random_5xx(cloud: Cloud) -> None:
    faulty = release_under_faults(cloud, seed=1)
    check_after_faults(cloud, faulty)


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "then"), [(2, "abort"), (3, "resume")])
def test_release_sequence_under_random_5xx_more_seeds(cloud: Cloud, seed: int, then: str) -> None:
    faulty = release_under_faults(cloud, seed=seed, then=then)
    check_after_faults(cloud, faulty)
