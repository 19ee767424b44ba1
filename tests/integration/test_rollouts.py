"""Issue 3 end to end: real HAProxy, real app processes, the real CLI. Every traffic-moving test runs under
a Watch that sends bounded load through the LB and samples the pool: zero failed requests, and never a
moment without a healthy member in rotation."""

from __future__ import annotations

import time

from tests.integration.conftest import Watch


def versions_in_pool(ws) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in ws.status()["members"]:
        out[m["version"]] = out.get(m["version"], 0) + m["weight"]
    return out


def test_canary_succeeds_without_dropping_a_request(live_100):
    ws = live_100
    ws.bake("1.1.0")
    with Watch(ws) as watch:
        result = ws.cli("rollout", "1.1.0", "--pipeline", "canary-fast.yaml")
    assert result.code == 0, result.stderr
    watch.assert_served_throughout()
    assert watch.responses["1.0.0"] > 0 and watch.responses["1.1.0"] > 0
    status = ws.status()
    assert status["live_version"] == "1.1.0"
    assert {m["version"] for m in status["members"]} == {"1.1.0"}
    assert len(status["members"]) == 2 and status["release"] is None
    assert {s["version"] for s in status["servers"]} == {"1.1.0"}  # the old fleet is stopped
    for step in ("weight 10%", "weight 50%", "analysis passed", "retiring the old fleet"):
        assert step in result.stderr


def test_blue_green_switches_at_once_and_keeps_the_old_fleet_warm(live_100):
    ws = live_100
    ws.bake("1.1.0")
    with Watch(ws) as watch:
        result = ws.cli("rollout", "1.1.0", "--pipeline", "bluegreen-fast.yaml")
    assert result.code == 0, result.stderr
    watch.assert_served_throughout()
    assert "setting weights for 100%" in result.stderr and "weight 10%" not in result.stderr
    status = ws.status()
    assert status["live_version"] == "1.1.0"
    warm = [m for m in status["members"] if m["version"] == "1.0.0"]
    assert len(warm) == 2 and all(m["weight"] == 0 and m["role"] == "previous" for m in warm)
    assert all(m["weight"] == 100 for m in status["members"] if m["version"] == "1.1.0")


def test_failing_health_rolls_back_automatically(live_100):
    ws = live_100
    ws.bake("1.2.0", broken=True)
    with Watch(ws) as watch:
        result = ws.cli("rollout", "1.2.0", "--pipeline", "canary-fast.yaml", "--output", "json")
    assert result.code == 1, result.stderr
    watch.assert_served_throughout()
    assert watch.responses.keys() == {"1.0.0"}  # the broken version never took a request
    assert "health check failed" in result.stderr and "traffic is back on 1.0.0" in result.stderr
    status = ws.status()
    assert status["live_version"] == "1.0.0"
    assert {s["version"] for s in status["servers"]} == {"1.0.0"}
    assert {m["version"] for m in status["members"]} == {"1.0.0"}
    images = {i["version"]: i["status"] for i in ws.ok("images", "-o", "json").json()["images"]}
    assert images["1.2.0"] == "failed"
    history = ws.ok("history", "-o", "json").json()["releases"]
    assert history[0]["version"] == "1.2.0" and history[0]["state"] == "failed"
    # a failed version is never rolled out again by default, nor a rollback target
    again = ws.cli("rollout", "1.2.0")
    assert again.code == 2 and "marked failed" in again.stderr


def test_pause_then_promote(live_100):
    ws = live_100
    ws.bake("1.1.0")
    with Watch(ws) as watch:
        paused = ws.cli("rollout", "1.1.0", "--pipeline", "gate-fast.yaml")
        assert paused.code == 4, paused.stderr
        assert "releasectl promote" in paused.stderr
        status = ws.status()
        assert status["release"]["state"] == "paused" and status["release"]["step"] == 3
        assert versions_in_pool(ws).get("1.1.0", 0) > 0 and versions_in_pool(ws)["1.0.0"] > 0
        second = ws.cli("rollout", "1.1.0")
        assert second.code == 2 and "paused" in second.stderr  # no second release over a paused one
        promoted = ws.cli("promote")
        assert promoted.code == 0, promoted.stderr
    watch.assert_served_throughout()
    assert ws.status()["live_version"] == "1.1.0"


def test_pause_then_abort(live_100):
    ws = live_100
    ws.bake("1.1.0")
    with Watch(ws) as watch:
        assert ws.cli("rollout", "1.1.0", "--pipeline", "gate-fast.yaml").code == 4
        aborted = ws.cli("abort", "--output", "json")
    assert aborted.code == 0, aborted.stderr
    assert aborted.json()["release"]["state"] == "aborted"
    watch.assert_served_throughout()
    status = ws.status()
    assert status["live_version"] == "1.0.0" and {s["version"] for s in status["servers"]} == {"1.0.0"}
    images = {i["version"]: i["status"] for i in ws.ok("images", "-o", "json").json()["images"]}
    assert images["1.1.0"] == "baked"  # aborted by a person, not failed: it may be rolled out again


def test_promote_full_skips_the_remaining_steps(live_100):
    ws = live_100
    ws.bake("1.1.0")
    assert ws.cli("rollout", "1.1.0", "--pipeline", "gate-fast.yaml").code == 4
    result = ws.cli("promote", "--full")
    assert result.code == 0, result.stderr
    assert ws.status()["live_version"] == "1.1.0"


def test_rollback_to_the_warm_fleet_is_immediate(live_100):
    ws = live_100
    ws.bake("1.1.0")
    ws.ok("rollout", "1.1.0", "--pipeline", "bluegreen-fast.yaml")
    warm_before = {s["name"] for s in ws.status()["servers"] if s["version"] == "1.0.0"}
    with Watch(ws) as watch:
        started = time.monotonic()
        result = ws.cli("rollback")
        took = time.monotonic() - started
    assert result.code == 0, result.stderr
    watch.assert_served_throughout()
    assert "adopting warm server" in result.stderr and "launching server" not in result.stderr
    status = ws.status()
    assert status["live_version"] == "1.0.0"
    assert {s["name"] for s in status["servers"]} == warm_before  # the same processes, no relaunch
    assert took < 30
    images = {i["version"]: i["status"] for i in ws.ok("images", "-o", "json").json()["images"]}
    assert images["1.1.0"] == "rolled back" and images["1.0.0"] == "live"


def test_rollback_relaunches_after_the_old_fleet_was_retired(live_100):
    ws = live_100
    ws.bake("1.1.0")
    ws.ok("rollout", "1.1.0", "--pipeline", "canary-fast.yaml")
    assert {s["version"] for s in ws.status()["servers"]} == {"1.1.0"}
    with Watch(ws) as watch:
        result = ws.cli("rollback", "--output", "json")
    assert result.code == 0, result.stderr
    watch.assert_served_throughout()
    assert "launching server" in result.stderr
    assert result.json()["release"]["kind"] == "rollback"
    status = ws.status()
    assert status["live_version"] == "1.0.0" and {s["version"] for s in status["servers"]} == {"1.0.0"}
    # nothing earlier than 1.0.0 is known-good: a second rollback has nowhere to go
    again = ws.cli("rollback")
    assert again.code == 2 and "known-good" in again.stderr


def test_rollback_never_targets_a_failed_version(live_100):
    ws = live_100
    ws.bake("1.1.0")
    ws.ok("rollout", "1.1.0", "--pipeline", "canary-fast.yaml")
    ws.bake("1.2.0", broken=True)
    assert ws.cli("rollout", "1.2.0", "--pipeline", "canary-fast.yaml").code == 1
    refused = ws.cli("rollback", "--to", "1.2.0")
    assert refused.code == 2 and "not a known-good version" in refused.stderr
    assert ws.cli("rollback").code == 0
    assert ws.status()["live_version"] == "1.0.0"


def test_status_json_shape_and_endpoint(live_100):
    status = live_100.status()
    for key in ("app", "environment", "live_version", "endpoint", "members", "release"):
        assert key in status
    assert status["app"] == "shop" and status["environment"] == "production"
    assert status["endpoint"] == f"http://127.0.0.1:{live_100.port}"
    for member in status["members"]:
        assert {"name", "version", "address", "weight", "share", "health"} <= member.keys()
    assert sum(m["share"] for m in status["members"]) == 100


def test_rollout_refuses_the_live_version_and_picks_the_newest_by_default(live_100):
    ws = live_100
    refused = ws.cli("rollout", "1.0.0")
    assert refused.code == 2 and "already live" in refused.stderr and "rollback" in refused.stderr
    ws.bake("1.10.0")
    ws.bake("1.9.0")
    result = ws.cli("rollout", "--pipeline", "canary-fast.yaml", "-o", "json")
    assert result.code == 0, result.stderr
    assert result.json()["release"]["version"] == "1.10.0"


def test_a_weight_step_out_of_tolerance_is_refused_before_anything_changes(live_100):
    ws = live_100
    (ws.path / "odd.yaml").write_text(
        "name: odd\nsteps:\n  - launch: {count: 1}\n  - weight: {percent: 0.1}\n  - weight: {percent: 100}\n  - retire: {}\n"
    )
    config = ws.path / "releasectl.yaml"
    config.write_text(config.read_text().replace("  count: 2 ", "  count: 40 ").replace("progress_deadline: 30s", "progress_deadline: 30s\n  weight_tolerance: 0%"))
    ws.bake("1.1.0")
    before = ws.status()["servers"]
    result = ws.cli("rollout", "1.1.0", "--pipeline", "odd.yaml")
    assert result.code == 2 and "asks for 0.1%" in result.stderr and "tolerance" in result.stderr
    assert ws.status()["servers"] == before


def test_history_records_who_ran_each_release(live_100):
    ws = live_100
    ws.bake("1.1.0")
    result = ws.cli("rollout", "1.1.0", "--pipeline", "canary-fast.yaml", env={"CI_JOB_ID": "4242"})
    assert result.code == 0
    releases = ws.ok("history", "-o", "json").json()["releases"]
    assert [r["version"] for r in releases] == ["1.1.0", "1.0.0"]
    assert releases[0]["actor"]["ci_job"] == "CI_JOB_ID=4242" and releases[0]["actor"]["host"]
    assert releases[0]["ended_at"] >= releases[0]["started_at"]
    assert "1.1.0" in ws.ok("history").stdout


def test_down_stops_everything(live_100):
    ws = live_100
    ws.ok("down")
    status = ws.status()
    assert status["members"] == [] and status["servers"] == [] and status["endpoint"] is None
