"""LB supervision through the CLI: `status` while the local HAProxy is down, and a kill -9 of HAProxy in the
middle of a canary under load (the LB answers again within 2 s, the release ends 0 or 1)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from releasectl.loadgen import LoadGenerator
from releasectl.providers.base import LBStatus
from releasectl.wait import wait_for
from tests.integration.procs import start_cli

pytestmark = pytest.mark.slow

HOLD = "name: hold\nsteps:\n  - launch: {}\n  - weight: {percent: 50, hold: 6s}\n  - weight: {percent: 100, hold: 500ms}\n  - retire: {drain_timeout: 5s}\n"


def kill_lb(ws) -> tuple[int, float]:
    """kill -9 the environment's HAProxy; (its pid, time.monotonic() of the kill)."""
    pid = ws.provider().pool.running()["pid"]
    os.kill(pid, signal.SIGKILL)
    return pid, time.monotonic()


def status_json(ws) -> tuple[int, dict]:
    result = ws.cli("status", "--output", "json")
    return result.code, result.json()


def test_status_exits_5_while_the_lb_is_down_and_0_once_a_command_restarts_it(live_100):
    ws = live_100
    code, before = status_json(ws)
    assert code == 0 and before["lb"]["status"] == "up" and before["exit_code"] == 0
    pid, _ = kill_lb(ws)
    wait_for(lambda: ws.provider().lb_state().status is LBStatus.DOWN, timeout=5, interval=0.01, what="lb_state DOWN")

    code, down = status_json(ws)
    assert code == 5 and down["exit_code"] == 5
    assert down["lb"] == {"status": "down", "detail": f"haproxy pid {pid} is gone"}
    assert [e["code"] for e in down["errors"]] == ["lb_down"]
    assert down["live_version"] == "1.0.0" and down["endpoint"] == before["endpoint"]
    # the members it comes back with: same names and weights, health unknown
    assert [(m["name"], m["weight"]) for m in down["members"]] == [(m["name"], m["weight"]) for m in before["members"]]
    assert {m["health"] for m in down["members"]} == {"unknown"}
    text = ws.cli("status")
    assert text.code == 5

    ws.bake("1.1.0")
    rollout = ws.cli("rollout", "1.1.0", "--pipeline", "canary-fast.yaml", "--output", "json")
    assert rollout.code == 0, rollout.stderr[-2000:]
    code, after = status_json(ws)
    assert code == 0 and after["lb"]["status"] == "up" and after["live_version"] == "1.1.0"


def test_kill_9_of_haproxy_mid_canary_under_load(live_100):
    """Needs the engine to call ensure_pool within one poll when lb_state is DOWN (the eng change): with
    only the provider side, the LB comes back at the runner's next pool change (the end of the hold)."""
    ws = live_100
    ws.bake("1.1.0")
    (ws.path / "hold.yaml").write_text(HOLD)
    with LoadGenerator(ws.url, duration=60, max_requests=200_000, keepalive_clients=2, new_connection_clients=1,
                       timeout=3.0) as load:
        running = start_cli("rollout", "1.1.0", "--pipeline", "hold.yaml", cwd=ws.path)
        try:
            assert running.wait_for_line(lambda l: "holding at 50%" in l or "50% verified; holding" in l, timeout=60)
            pid, killed_at = kill_lb(ws)

            def answering() -> bool:
                provider = ws.provider()
                restarted = (provider.pool.running() or {}).get("pid") not in (None, pid)
                return restarted and provider.lb_state().status is LBStatus.UP and load.stats(since=time.time() - 0.1).ok > 0

            wait_for(answering, timeout=max(0.05, 2.0 - (time.monotonic() - killed_at)), interval=0.02,
                     what="the LB to answer again within 2 s of the kill")
            back_after = time.monotonic() - killed_at
            back_at = time.time()
            release_code = running.finish(timeout=120)
        finally:
            if running.proc.poll() is None:  # a failed assertion: let the workspace's `down` find no runner
                running.kill(signal.SIGKILL)
                ws.cli("abort")
            load.stop()
    assert release_code in (0, 1), running.stderr[-3000:]
    assert ws.provider().pool.running()["pid"] != pid
    served = load.stats(since=back_at)
    assert served.failed == 0 and served.ok > 0, served.to_dict()
    code, status = status_json(ws)
    assert code == 0 and status["lb"]["status"] == "up"
    assert status["live_version"] == ("1.1.0" if release_code == 0 else "1.0.0")
    assert any(m["weight"] > 0 and m["health"] == "healthy" for m in status["members"])
    whole = load.snapshot()
    print(f"\nHAProxy killed mid-canary: answering again {back_after:.2f}s after the kill; release exit "
          f"{release_code}; load {whole.requests} requests, {whole.failed} failed (while down), "
          f"{served.requests} after it was back, 0 failed")
