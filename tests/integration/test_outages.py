"""Issue 8's outages, each reproduced on the local provider under load (real HAProxy, real app processes,
the real CLI): after the fault is handled the LB serves 2xx and `status` shows a live version with weight > 0.

- abort, or rollback, after the old fleet was retired: the previous version is relaunched from its image,
  gated on health, traffic moves to it, and only then is the new fleet removed (invariants I1/I2);
- the release's image vanishing at the end of a release no longer leaves `rollout --resume` failing;
- a new fleet that cannot start fails the release: exit 1, image failed, the old version still live.
"""

from __future__ import annotations

import signal
import urllib.request

import pytest

from tests.integration.conftest import Watch
from tests.integration.procs import start_cli
from tests.integration.test_crash_safety import assert_converged

pytestmark = pytest.mark.slow


def retired_then_killed(ws) -> None:
    """Run a canary of 1.1.0 and kill -9 it once the old fleet is retired, before the release ends."""
    ws.bake("1.1.0")
    running = start_cli("rollout", "1.1.0", "--pipeline", "canary-fast.yaml", cwd=ws.path)
    assert running.wait_for_line(lambda l: "old fleet retired" in l, timeout=120), running.stderr[-3000:]
    running.kill(signal.SIGKILL)
    status = ws.status()
    assert status["release"]["state"] == "interrupted"
    assert {s["version"] for s in status["servers"]} == {"1.1.0"}  # the old fleet is gone


def assert_serving(ws, version: str) -> None:
    status = ws.status()
    assert status["live_version"] == version
    assert any(m["weight"] > 0 and m["version"] == version for m in status["members"])
    with urllib.request.urlopen(ws.url, timeout=5) as response:
        assert 200 <= response.status < 300 and response.read().decode().strip() == version


@pytest.mark.parametrize("command", ["abort", "rollback"])
def test_undo_after_retirement_relaunches_the_previous_version_before_removing_the_new_fleet(live_100, command):
    ws = live_100
    retired_then_killed(ws)
    with Watch(ws) as watch:
        result = ws.cli(command, "--output", "json")
    assert result.code == 0, result.stderr
    assert result.json()["release"]["state"] == "aborted"
    watch.assert_served_throughout()
    assert watch.responses["1.0.0"] > 0
    stderr = result.stderr
    relaunch, shift, remove = (
        stderr.index("relaunching 1.0.0"), stderr.index("restoring all traffic to 1.0.0"), stderr.index("removing the new fleet")
    )
    assert relaunch < shift < remove
    assert_serving(ws, "1.0.0")
    assert_converged(ws, "1.0.0")


def test_a_vanished_release_image_does_not_leave_resume_failing(live_100):
    ws = live_100
    retired_then_killed(ws)
    provider = ws.provider()
    provider.delete_image(next(i.id for i in provider.list_images() if i.version == "1.1.0"))
    with Watch(ws) as watch:
        resumed = ws.cli("rollout", "--resume", "--output", "json")
    assert resumed.code == 0, resumed.stderr
    watch.assert_served_throughout()
    assert_serving(ws, "1.1.0")


def test_a_new_fleet_that_cannot_start_fails_the_release_and_the_old_version_stays_live(live_100):
    ws = live_100
    ws.bake("1.1.0")
    config = ws.path / "releasectl.yaml"
    config.write_text(config.read_text().replace('start_command: ["{python}", "app.py"]', 'start_command: ["/nonexistent/releasectl-start"]'))
    with Watch(ws) as watch:
        result = ws.cli("rollout", "1.1.0", "--pipeline", "canary-fast.yaml", "--output", "json")
    assert result.code == 1, result.stderr
    assert "could not start" in result.stderr
    watch.assert_served_throughout()
    images = {i["version"]: i["status"] for i in ws.ok("images", "-o", "json").json()["images"]}
    assert images["1.1.0"] == "failed"
    assert_serving(ws, "1.0.0")
    assert_converged(ws, "1.0.0")
    history = ws.ok("history", "-o", "json").json()["releases"]
    assert history[0]["version"] == "1.1.0" and history[0]["state"] == "failed"
    again = ws.cli("rollout", "--resume")
    assert again.code == 2  # nothing left to resume: no loop on a deterministic failure
