"""Issue 5: one release at a time, signals, kill -9 and resume, unlock, provider faults."""

from __future__ import annotations

import json
import os
import signal
import time

from tests.conftest import run_cli_in_process
from tests.integration.conftest import Watch
from tests.integration.procs import start_cli


def assert_converged(ws, live: str) -> None:
    """Exactly one version live, every member healthy and backed by a server, no orphans, lock free."""
    status = ws.status()
    assert status["release"] is None, status["release"]
    assert status["live_version"] == live
    serving = [m for m in status["members"] if m["weight"] > 0]
    assert serving and {m["version"] for m in serving} == {live}
    assert all(m["health"] == "healthy" for m in serving)
    servers = {s["address"]: s for s in status["servers"]}
    for member in status["members"]:
        assert member["address"] in servers, f"member {member['name']} has no server"
        assert member["role"] in ("stable", "previous")
    for server in status["servers"]:
        assert server["role"] in ("stable", "previous"), f"orphaned server {server}"
        assert server["status"] == "active"
        assert any(m["address"] == server["address"] for m in status["members"]), f"server {server['name']} not in the pool"
    assert status["lock"] is None
    gc = ws.ok("gc", "--dry-run", "-o", "json").json()
    assert gc["members"] == [] and gc["servers"] == [] and gc["images"] == []


def test_two_rollouts_at_once_exactly_one_proceeds(live_100):
    ws = live_100
    ws.bake("1.1.0")
    first = start_cli("rollout", "1.1.0", "--pipeline", "canary-fast.yaml", cwd=ws.path)
    second = start_cli("rollout", "1.1.0", "--pipeline", "canary-fast.yaml", cwd=ws.path)
    codes = sorted([first.finish(), second.finish()])
    assert codes == [0, 3], (codes, first.stderr, second.stderr)
    loser = first if first.proc.returncode == 3 else second
    assert "is locked by rollout by " in loser.stderr and "(pid " in loser.stderr
    assert " act " not in loser.stderr  # it changed nothing
    releases = ws.ok("history", "-o", "json").json()["releases"]
    assert [r["version"] for r in releases] == ["1.1.0", "1.0.0"]
    assert_converged(ws, "1.1.0")


SLOW = "name: slow\nsteps:\n  - launch: {}\n  - weight: {percent: 10, hold: 8s}\n  - weight: {percent: 100}\n  - retire: {drain_timeout: 5s}\n"


def test_a_second_command_is_refused_with_exit_3_while_a_release_runs(live_100):
    ws = live_100
    ws.bake("1.1.0")
    (ws.path / "slow.yaml").write_text(SLOW)
    running = start_cli("rollout", "1.1.0", "--pipeline", "slow.yaml", cwd=ws.path)
    assert running.wait_for_line(lambda l: "holding at 10%" in l or "verified; holding" in l)
    # in process: refusals plus unlock as new processes could outlast the 8 s hold on a loaded machine;
    # abort is not here: it hands the live runner an intent (test_intents.py)
    for command in (["rollback"], ["rollout", "1.1.0"], ["gc"]):
        result = run_cli_in_process(*command, cwd=ws.path)
        assert result.code == 3, (command, result.stderr)
        assert "locked by" in result.stderr
    unlock = run_cli_in_process("unlock", cwd=ws.path)
    assert unlock.code == 2 and "lease is alive" in unlock.stderr
    assert running.finish() == 0
    assert_converged(ws, "1.1.0")


def test_sigterm_stops_at_a_safe_point_and_resume_finishes(live_100):
    ws = live_100
    ws.bake("1.1.0")
    with Watch(ws) as watch:
        running = start_cli("rollout", "1.1.0", "--pipeline", "canary-fast.yaml", cwd=ws.path)
        assert running.wait_for_line(lambda l: "holding at 10%" in l or "verified; holding" in l)
        code = running.kill(signal.SIGTERM)
        assert code == 5, running.stderr
        assert "rollout --resume" in running.stderr
        status = ws.status()
        assert status["release"]["state"] == "interrupted" and status["release"]["step"] == 2
        assert status["lock"] is None  # released on the way out
        resumed = ws.cli("rollout", "--resume")
        assert resumed.code == 0, resumed.stderr
    watch.assert_served_throughout()
    assert_converged(ws, "1.1.0")


def test_kill_9_leaves_an_interrupted_release_that_abort_undoes(live_100):
    ws = live_100
    ws.bake("1.1.0")
    with Watch(ws) as watch:
        running = start_cli("rollout", "1.1.0", "--pipeline", "canary-fast.yaml", cwd=ws.path)
        assert running.wait_for_line(lambda l: "setting weights for 50%" in l)
        running.kill(signal.SIGKILL)
        status = ws.status()
        assert status["release"]["state"] == "interrupted"
        assert status["lock"]["alive"] is False and "gone" in status["lock"]["dead_reason"]
        text = ws.ok("status").stdout
        assert "rollout --resume" in text and "abort" in text
        aborted = ws.cli("abort")
        assert aborted.code == 0, aborted.stderr
        assert "took over" in aborted.stderr or "aborting" in aborted.stderr
    watch.assert_served_throughout()
    assert_converged(ws, "1.0.0")


def test_rollback_of_an_interrupted_release_returns_to_the_old_version(live_100):
    ws = live_100
    ws.bake("1.1.0")
    running = start_cli("rollout", "1.1.0", "--pipeline", "canary-fast.yaml", cwd=ws.path)
    assert running.wait_for_line(lambda l: "adding" in l and "to the pool" in l)
    running.kill(signal.SIGKILL)
    result = ws.cli("rollback")
    assert result.code == 0, result.stderr
    assert_converged(ws, "1.0.0")


def test_unlock_force_breaks_a_live_lock_and_the_holder_stops(live_100):
    ws = live_100
    ws.bake("1.1.0")
    (ws.path / "slow.yaml").write_text(SLOW)
    running = start_cli("rollout", "1.1.0", "--pipeline", "slow.yaml", cwd=ws.path, env={"RELEASECTL_LOCK_TTL": "3"})
    assert running.wait_for_line(lambda l: "holding at 10%" in l or "verified; holding" in l)
    assert ws.cli("unlock", "--force").code == 0
    code = running.finish()
    assert code in (0, 5), running.stderr  # it may finish before its next renewal notices
    if code == 5:
        assert "lost the release lock" in running.stderr
        assert ws.cli("rollout", "--resume").code == 0
    assert_converged(ws, "1.1.0")


def test_a_provider_fault_exits_5_and_leaves_the_release_resumable(live_100):
    ws = live_100
    ws.bake("1.1.0")
    assert ws.cli("rollout", "1.1.0", "--pipeline", "gate-fast.yaml").code == 4
    config = ws.path / "releasectl.yaml"
    good = config.read_text()
    # the load balancer dies, and cannot be restarted because HAProxy "is not installed" any more
    config.write_text(good.replace("  start_command:", "  haproxy: /nonexistent/haproxy\n  start_command:"))
    lb_state = json.loads((ws.path / ".releasectl" / "envs" / "production" / "lb" / "lb.json").read_text())
    os.kill(int(lb_state["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and ws.cli("status", "--output", "json").json()["lb"]["status"] != "down":
        time.sleep(0.1)
    result = ws.cli("promote")
    assert result.code == 5, result.stderr
    assert "haproxy" in result.stderr.lower() and "Traceback" not in result.stderr
    down = ws.cli("status", "--output", "json")  # exits 5 while the LB is down, its JSON still printed
    assert down.code == 5 and down.json()["lb"]["status"] == "down"
    release = down.json()["release"]
    assert release is not None and release["version"] == "1.1.0"  # nothing claims it went further
    config.write_text(good)
    resumed = ws.cli("rollout", "--resume") if release["state"] != "paused" else ws.cli("promote")
    assert resumed.code == 0, resumed.stderr
    assert_converged(ws, "1.1.0")


def test_gc_removes_what_no_release_owns(live_100):
    """A crashed run can leave a tagged server (and its pool member) that no release owns any more."""
    from releasectl.providers.base import Role, ServerSpec

    ws = live_100
    provider = ws.provider()
    image = next(i for i in provider.list_images() if i.version == "1.0.0")
    ghost = provider.create_server(
        ServerSpec(name="shop-1.0.0-ghost", image_id=image.id, app="shop", version="1.0.0", env="production",
                   role=Role.CANDIDATE, release_id="long-gone")
    )
    provider.add_member(provider.get_server(ghost.id))
    dry = ws.ok("gc", "--dry-run", "-o", "json").json()
    assert dry["servers"] == ["shop-1.0.0-ghost"] and len(dry["members"]) == 1
    assert any(s["name"] == "shop-1.0.0-ghost" for s in ws.status()["servers"])  # dry run removed nothing
    with Watch(ws) as watch:
        ws.ok("gc")
    watch.assert_served_throughout()
    assert_converged(ws, "1.0.0")
