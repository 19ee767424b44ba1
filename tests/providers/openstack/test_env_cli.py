"""`releasectl env plan|up|down` through the real CLI against a bare simulator (an empty project): plan writes
nothing, up builds everything tagged and named for the app and environment, a second up changes nothing, a
config change plans exactly that change, down refuses while servers live (unless --force), leaves nothing of
the app behind, and a kill -9 after every single write of up and of down converges on the next run."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CliRun, run_cli
from tests.integration.openstack_fixtures import cli_env
from tests.integration.procs import start_cli
from tests.openstack_sim import Simulator
from tests.openstack_sim.fixtures import openstack_sim_bare, openstack_sim_factory  # noqa: F401
from tests.test_openstack_sim import Cloud as Raw
from tests.test_openstack_sim import wait_for

pytestmark = pytest.mark.slow

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq1kV0Yw0zQ0bWc8kqj9n8Zr2ZQ4m2nqkJm0f7mZr1a ops@example"
TAGS = ["releasectl", "releasectl_app=web", "releasectl_env=production"]
WRITES = ("POST", "PUT", "PATCH", "DELETE")
ENV_SECTION = {"network": {"name": "web-net", "cidr": "10.20.0.0/24"}, "keypair": {"public_key": "id.pub"},
               "ssh_from": "203.0.113.0/24", "floating_ip": True, "dns": {"zone": "example.test", "name": "web", "ttl": 60}}


class Workspace:
    def __init__(self, sim: Simulator, root: Path) -> None:
        self.sim, self.path = sim, root / "app"
        self.path.mkdir(parents=True)
        clouds = root / "clouds.yaml"
        clouds.write_text(yaml.safe_dump(sim.clouds_yaml("sim")))
        clouds.chmod(0o600)
        self.env = cli_env(root / "home", clouds)
        (self.path / "id.pub").write_text(KEY + "\n")
        self.config({"app": "web", "provider": "openstack", "openstack": {"cloud": "sim", "flavor": "m1.small"},
                     "health": {"interval": "1s"}, "env": ENV_SECTION})

    def config(self, doc: dict) -> None:
        (self.path / "releasectl.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def edit_env(self, **changes: Any) -> None:
        doc = yaml.safe_load((self.path / "releasectl.yaml").read_text())
        doc["env"].update(changes)
        self.config(doc)

    def cli(self, *args: str) -> CliRun:
        return run_cli(*args, cwd=self.path, env=self.env, inherit=False, timeout=120)

    def ok(self, *args: str) -> dict:
        result = self.cli(*args, "--output", "json")
        assert result.code == 0, f"releasectl {' '.join(args)} exited {result.code}:\n{result.stderr[-3000:]}"
        return result.json()


def shape(state: dict) -> dict[str, list]:
    """The app's resources in the simulator, by kind, as comparable (name, detail) pairs; ids left out."""
    tagged = lambda items: [i for i in items if set(TAGS) <= set(i.get("tags") or [])]  # noqa: E731
    return {
        "networks": sorted(n["name"] for n in tagged(state["networks"])),
        "subnets": sorted((s["name"], s["cidr"]) for s in tagged(state["subnets"])),
        "security_groups": sorted(g["name"] for g in tagged(state["security_groups"])),
        "rules": sorted((r["description"], r["port_range_min"], r["remote_ip_prefix"]) for r in state["security_group_rules"]
                        if (r["description"] or "").startswith("releasectl:")),
        "floatingips": sorted((f["description"], f["port_id"] is not None) for f in tagged(state["floatingips"])),
        "keypairs": sorted(k["name"] for k in state["keypairs"]),
        "loadbalancers": sorted((lb["name"], lb["provisioning_status"]) for lb in tagged(state["loadbalancers"])),
        "listeners": sorted((x["name"], x["protocol_port"]) for x in tagged(state["listeners"])),
        "pools": sorted((p["name"], p["lb_algorithm"]) for p in tagged(state["pools"])),
        "healthmonitors": sorted((h["name"], h["url_path"]) for h in tagged(state["healthmonitors"])),
        "zones": sorted(z["name"] for z in state["zones"]),
        "recordsets": sorted((r["name"], r["type"], r["ttl"], tuple(r["records"])) for r in state["recordsets"]
                             if r["type"] in ("A", "AAAA")),
    }


EMPTY = {k: [] for k in ("networks", "subnets", "security_groups", "rules", "floatingips", "keypairs", "loadbalancers",
                         "listeners", "pools", "healthmonitors", "zones", "recordsets")}


def writes(sim: Simulator) -> int:
    return sum(1 for r in sim.requests()["journal"] if r["method"] in WRITES and r["service"] not in ("identity", "object-store"))


@pytest.fixture
def ws(openstack_sim_bare: Simulator, tmp_path: Path) -> Workspace:
    return Workspace(openstack_sim_bare, tmp_path)


def test_plan_up_twice_change_and_down_on_an_empty_project(ws: Workspace) -> None:
    sim = ws.sim
    before = sim.state()
    sim.reset_requests()
    plan = ws.ok("env", "plan")
    assert writes(sim) == 0 and shape(sim.state()) == EMPTY == shape(before)
    assert [(c["action"], c["kind"]) for c in plan["changes"]][:2] == [("create", "network"), ("create", "subnet")]
    assert len(plan["changes"]) == 13 and plan["unchanged"] == 0

    up = ws.ok("env", "up")
    assert up["applied"] == 13 and up["changes"] == []
    state = sim.state()
    built = shape(state)
    lb = next(x for x in state["loadbalancers"] if x["name"] == "web-production")
    fip = next(f for f in state["floatingips"] if f["description"] == "releasectl:web-production")
    assert fip["port_id"] == lb["vip_port_id"] and fip["fixed_ip_address"] == lb["vip_address"]
    assert built == {
        "networks": ["web-net"], "subnets": [("web-net", "10.20.0.0/24")], "security_groups": ["web-production"],
        "rules": [("releasectl:web-production-app", 8000, "10.20.0.0/24"), ("releasectl:web-production-ssh", 22, "203.0.113.0/24")],
        "floatingips": [("releasectl:web-production", True)], "keypairs": ["web-production"],
        "loadbalancers": [("web-production", "ACTIVE")], "listeners": [("web-production", 80)],
        "pools": [("web-production", "ROUND_ROBIN")], "healthmonitors": [("web-production", "/healthz")],
        "zones": ["example.test."], "recordsets": [("web.example.test.", "A", 60, (fip["floating_ip_address"],))]}
    assert next(k for k in state["keypairs"])["fingerprint"]

    sim.reset_requests()
    again = ws.ok("env", "up")
    assert again["applied"] == 0 and again["unchanged"] == 13 and writes(sim) == 0
    assert ws.ok("env", "plan")["changes"] == []

    ws.edit_env(dns={"zone": "example.test", "name": "web", "ttl": 300})
    changed = ws.ok("env", "plan")
    assert [(c["action"], c["kind"], c["name"]) for c in changed["changes"]] == [("update", "dns_record", "web.example.test.")]
    assert "ttl: 60 -> 300" in changed["changes"][0]["detail"]
    assert ws.ok("env", "up")["applied"] == 1
    assert shape(sim.state())["recordsets"][0][2] == 300
    assert ws.ok("env", "plan")["changes"] == []

    ws.edit_env(ssh_from="198.51.100.0/24")  # a rule cannot change in place: the new one first, then the old goes
    changed = ws.ok("env", "plan")
    assert [(c["action"], c["kind"], c["name"]) for c in changed["changes"]] == [
        ("replace", "security_rule", "web-production-ssh")]
    assert ws.ok("env", "up")["applied"] == 1
    assert shape(sim.state())["rules"] == [("releasectl:web-production-app", 8000, "10.20.0.0/24"),
                                           ("releasectl:web-production-ssh", 22, "198.51.100.0/24")]
    assert ws.ok("env", "plan")["changes"] == []

    # a server of the environment is live: down refuses (exit 2, nothing deleted) unless --force
    raw = Raw(sim)
    net = next(n for n in sim.state()["networks"] if n["name"] == "web-net")
    raw.create_server("web-production-1", networks=[{"uuid": net["id"]}],
                      metadata={"releasectl_app": "web", "releasectl_env": "production", "releasectl_version": "1.0.0",
                                "releasectl_role": "stable"})
    before = shape(sim.state())
    refused = ws.cli("env", "down", "--output", "json")
    assert refused.code == 2 and "still there" in refused.json()["errors"][0]["message"]
    assert shape(sim.state()) == before
    # something that is not ours sits on the network: down stops there (exit 5) and says so
    foreign = raw.create_server("hand-made", networks=[{"uuid": net["id"]}])
    blocked = ws.cli("env", "down", "--force", "--output", "json")
    assert blocked.code == 5, blocked.stderr
    assert "still in use by something that is not web/production's" in blocked.json()["errors"][0]["message"]
    assert [s["name"] for s in sim.state()["servers"]] == ["hand-made"]  # ours retired, the foreign one untouched
    assert raw.compute("DELETE", f"/servers/{foreign}").status_code == 204
    wait_for(lambda: not sim.state()["servers"], what="the foreign server to go")
    down = ws.ok("env", "down")
    assert down["applied"] == 2  # what was left: the subnet and the network
    final = sim.state()
    assert shape(final) == EMPTY
    assert [n["name"] for n in final["networks"]] == ["external"]
    assert [g["name"] for g in final["security_groups"]] == ["default"]
    assert final["ports"] == [] and final["servers"] == []
    assert ws.ok("env", "down")["applied"] == 0  # idempotent


def test_env_up_that_does_not_fit_the_quota_is_refused_with_the_numbers_and_creates_nothing(ws: Workspace) -> None:
    sim = ws.sim
    used = sim.quota()["used"].get("load_balancers", 0)
    sim.set_quota(load_balancers=used)  # no room for the environment's load balancer
    sim.reset_requests()
    result = ws.cli("env", "up", "--output", "json")
    assert result.code == 2, result.stderr
    error = result.json()["errors"][0]
    assert "load_balancers" in error["message"] and f"limit {used}" in error["message"]
    assert writes(sim) == 0 and shape(sim.state()) == EMPTY
    sim.set_quota(load_balancers=-1)
    assert ws.ok("env", "up")["applied"] == 13


def test_an_existing_network_is_used_and_left_alone(openstack_sim_factory: Any, tmp_path: Path) -> None:
    sim = openstack_sim_factory()  # not bare: the `private` network exists
    ws = Workspace(sim, tmp_path)
    ws.config({"app": "web", "provider": "openstack", "openstack": {"cloud": "sim"},
               "env": {"network": {"existing": "private"}, "dns": {"zone": "example.test", "name": "web"}}})
    up = ws.ok("env", "up")
    kinds = [r["kind"] for r in up["resources"] if r["owned"]]
    assert "network" not in kinds and "subnet" not in kinds and "keypair" not in kinds
    rule = next(r for r in sim.state()["security_group_rules"] if r["description"] == "releasectl:web-production-app")
    assert rule["remote_ip_prefix"] == "127.0.1.0/24"
    lb = next(x for x in sim.state()["loadbalancers"] if x["name"] == "web-production")
    assert shape(sim.state())["recordsets"] == [("web.example.test.", "A", 300, (lb["vip_address"],))]
    ws.ok("env", "down")
    assert [n["name"] for n in sim.state()["networks"]] == ["private", "external"]
    assert shape(sim.state()) == EMPTY


def _kill_after_each_write(ws: Workspace, command: str) -> int:
    """Run `env COMMAND` again and again, each time killed (-9) the moment its first write is made but not
    yet answered, until a run has nothing left to write. Returns how many runs were killed."""
    sim = ws.sim
    killed = 0
    for _ in range(40):  # bounded: 13 resources, a few settle-only runs
        sim.set_faults(hold_after_writes=0)
        run = start_cli("env", command, cwd=ws.path, env=ws.env, inherit=False)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and run.proc.poll() is None:
                if sim.faults()["injected"].get("held_answer"):
                    break
                time.sleep(0.02)
            held = bool(sim.faults()["injected"].get("held_answer"))
            if held:
                run.kill()
                killed += 1
        finally:
            if run.proc.poll() is None:
                run.kill()
            sim.clear_faults()  # lets the held answer go, to nobody
        if not held:
            assert run.finish() == 0, run.stderr()
            return killed
    raise AssertionError(f"env {command} never finished")


def test_kill_9_after_every_write_of_up_and_of_down_converges(ws: Workspace, tmp_path: Path) -> None:
    sim = ws.sim
    ws.ok("env", "up")
    reference = shape(sim.state())
    ws.ok("env", "down")
    assert shape(sim.state()) == EMPTY

    killed_up = _kill_after_each_write(ws, "up")
    assert killed_up >= 10
    assert ws.ok("env", "up")["applied"] == 0
    assert _normalise(shape(sim.state())) == _normalise(reference)
    state = sim.state()
    for kind in ("networks", "subnets", "security_groups", "floatingips"):
        assert len([i for i in state[kind] if set(TAGS) <= set(i["tags"])]) == len(reference[kind]), kind  # no duplicates

    killed_down = _kill_after_each_write(ws, "down")
    assert killed_down >= 10
    assert ws.ok("env", "down")["applied"] == 0
    assert shape(sim.state()) == EMPTY and sim.state()["ports"] == []


def _normalise(s: dict) -> dict:
    """Addresses differ between two builds (floating IPs are not reused): compare the rest."""
    return {**s, "recordsets": [(n, t, ttl) for n, t, ttl, _ in s["recordsets"]]}


def test_a_release_runs_in_the_environment_env_up_built(openstack_sim_factory: Any, tmp_path: Path) -> None:
    """From an empty project: `env up`, then bake and roll out with no pool, network or security group named
    in `openstack:` (they default to what `env up` made); the members land in the environment's pool and the
    DNS record points at its VIP."""
    from tests.helpers import fast_pipelines

    sim = openstack_sim_factory(bare=True, serve_apps=True)
    ws = Workspace(sim, tmp_path)
    ws.config({"app": "web", "provider": "openstack",
               "openstack": {"cloud": "sim", "flavor": "m1.small", "builder": "web-builder"},
               "health": {"interval": "1s", "rise": 1}, "rollout": {"count": 2, "progress_deadline": "60s"},
               "env": {"network": {"name": "web-net", "cidr": "10.20.0.0/24"}, "dns": {"zone": "example.test", "name": "web"}}})
    for name, body in fast_pipelines("300ms", "300ms").items():
        (ws.path / name).write_text(body)
    ws.ok("env", "up")
    net = next(n for n in sim.state()["networks"] if n["name"] == "web-net")
    raw = Raw(sim)
    builder = raw.create_server("web-builder", networks=[{"uuid": net["id"]}])
    wait_for(lambda: [s for s in sim.state()["servers"] if s["status"] == "ACTIVE"], what="the builder")
    ws.ok("bake", "1.0.0")
    ws.ok("rollout", "1.0.0", "--pipeline", "bluegreen-fast.yaml")
    state = sim.state()
    pool = next(p for p in state["pools"] if p["name"] == "web-production")
    members = [m for m in state["members"] if m["pool_id"] == pool["id"]]
    assert len(members) == 2 and all(m["operating_status"] == "ONLINE" and m["weight"] > 0 for m in members)
    lb = next(x for x in state["loadbalancers"] if x["name"] == "web-production")
    assert shape(state)["recordsets"] == [("web.example.test.", "A", 300, (lb["vip_address"],))]
    assert raw.compute("DELETE", f"/servers/{builder}").status_code == 204  # not releasectl's: the user's to remove
    wait_for(lambda: builder not in [x["id"] for x in sim.state()["servers"]], what="the builder to go")
    down = ws.ok("env", "down", "--force")
    assert len(down["retired"]) == 2 and shape(sim.state()) == EMPTY
