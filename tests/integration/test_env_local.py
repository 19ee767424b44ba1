"""`env plan|up|down` on the local provider: the same commands build the environment's state folders and its
HAProxy load balancer, a second `up` changes nothing, and `down` refuses while servers run unless --force."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_local_env_up_starts_the_load_balancer_and_down_stops_it(workspace) -> None:
    plan = workspace.ok("env", "plan", "--output", "json").json()
    assert [(c["action"], c["kind"]) for c in plan["changes"]] == [("create", "folder"), ("create", "loadbalancer")]
    assert workspace.provider().lb_state().status.value == "absent"

    up = workspace.ok("env", "up", "--output", "json").json()
    assert up["applied"] == 2
    assert workspace.provider().lb_state().status.value == "up"
    lb = next(r for r in up["resources"] if r["kind"] == "loadbalancer")
    assert lb["address"] == f"http://127.0.0.1:{workspace.port}"
    assert workspace.ok("env", "up", "--output", "json").json()["applied"] == 0

    workspace.bake("1.0.0")
    workspace.ok("rollout", "1.0.0", "--pipeline", "first-fast.yaml")
    refused = workspace.cli("env", "down", "--output", "json")
    assert refused.code == 2 and "still there" in refused.json()["errors"][0]["message"]
    assert workspace.status()["live_version"] == "1.0.0"

    down = workspace.ok("env", "down", "--force", "--output", "json").json()
    assert len(down["retired"]) == 2
    assert workspace.provider().lb_state().status.value == "absent"
    assert workspace.provider().list_servers() == []
