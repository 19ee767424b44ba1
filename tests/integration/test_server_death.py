"""A server dies or hangs in the middle of a canary under GET load: clients must not see it.

kill -9 and SIGSTOP, of an old (1.0.0) and of a new (1.1.0) server, while the canary holds at 50 %. HAProxy
retries an idempotent request whose server never answered (refused, reset, closed, or silent past
`timeout server`, which follows the health checks) on another server, so 0 requests fail. The release
ends 0 (an old server died: it is retired anyway) or 1 (a new one died: the canary rolls back)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from releasectl.loadgen import LoadGenerator
from releasectl.providers.local import procs
from releasectl.wait import wait_for
from tests.helpers import server_process
from tests.integration.procs import start_cli

pytestmark = pytest.mark.slow

HOLD = "name: hold\nsteps:\n  - launch: {}\n  - weight: {percent: 50, hold: 6s}\n  - weight: {percent: 100, hold: 500ms}\n  - retire: {drain_timeout: 5s}\n"
AFTER_FAULT = 3.0  # seconds of load kept on the pool after the fault, before the canary moves on
CLIENT_TIMEOUT = 5.0  # well above timeout server (1.2 s with the workspace's checks) plus one retry


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["kill9", "sigstop"])
@pytest.mark.parametrize("which", ["old", "new"])
def test_server_death_mid_canary_costs_no_request(live_100, which, sig):
    ws = live_100
    ws.bake("1.1.0")
    (ws.path / "hold.yaml").write_text(HOLD)
    stopped: procs.ProcId | None = None
    with LoadGenerator(ws.url, duration=90, max_requests=300_000, keepalive_clients=2, new_connection_clients=1,
                       timeout=CLIENT_TIMEOUT) as load:
        running = start_cli("rollout", "1.1.0", "--pipeline", "hold.yaml", cwd=ws.path)
        try:
            assert running.wait_for_line(lambda l: "50% verified; holding" in l, timeout=60), running.stderr[-2000:]
            proc = server_process(ws.provider(), "1.0.0" if which == "old" else "1.1.0")
            assert procs.is_alive(proc)
            fault_at = time.time()
            os.kill(proc.pid, sig)
            if sig == signal.SIGSTOP:
                stopped = proc
            # keep the load on the pool with the dead or hung member in it until the checks have taken it out
            # and the clients have gone through it: AFTER_FAULT seconds of requests after the fault
            wait_for(lambda: load.stats(since=fault_at + AFTER_FAULT).requests > 0 or not load.running, timeout=30,
                     interval=0.05, what="load after the fault")
            code = running.finish(timeout=180)
        finally:
            if running.proc.poll() is None:
                running.kill(signal.SIGKILL)
            if stopped is not None and procs.is_alive(stopped):
                os.kill(stopped.pid, signal.SIGCONT)  # let the fixture's `down` stop it
            load.stop()
    whole = load.snapshot()
    around = load.stats(since=fault_at - 1.0, until=fault_at + AFTER_FAULT)
    print(f"\nserver death ({which}, {signal.Signals(sig).name}): release exit {code}; {whole.requests} requests, "
          f"{whole.failed} failed ({whole.non_2xx} non-2xx, {whole.connection_errors} connection errors "
          f"{dict(whole.errors_by_kind)}); {around.requests} requests in the {AFTER_FAULT + 1:g}s around the fault; "
          f"p99 {whole.p99_ms} ms, max {whole.max_ms} ms")
    assert code in (0, 1), running.stderr[-3000:]
    assert load.running is False and whole.requests > 1000
    assert whole.failed == 0, whole.to_dict()
    status = ws.status()
    assert status["live_version"] == ("1.1.0" if code == 0 else "1.0.0")
    assert any(m["weight"] > 0 and m["health"] == "healthy" for m in status["members"])
