"""Issue 8 item 5: operator intents on a running release, through the real CLI, on the local provider
(real HAProxy, real app processes) under load from releasectl.loadgen.

A rollout holds its 10 % canary; a second process runs `abort`, `promote --full` or `pause`. That command
returns 0 at once with the intent accepted, and the runner applies it at its next pass: it exits 1 with the
old version live (abort), 0 with the new one live (promote --full), or 4 paused (pause; then `promote`
continues it). Outcomes are read from exit codes and `status -o json`; no request may fail meanwhile.
"""

from __future__ import annotations

import time

import pytest

from releasectl.engine import records
from releasectl.loadgen import LoadGenerator
from releasectl.wait import wait_for
from tests.integration.procs import Running, start_cli
from tests.integration.test_crash_safety import assert_converged

pytestmark = pytest.mark.slow

HOLD = """\
name: hold
steps:
  - launch: {}
  - weight: {percent: 10, hold: 60s}
  - weight: {percent: 100, hold: 500ms}
  - retire: {drain_timeout: 5s}
"""


def start_canary(ws) -> tuple[Running, dict]:
    """A rollout of 1.1.0 holding 10 % for a minute; returns the runner and the release from `status`."""
    ws.bake("1.1.0")
    (ws.path / "hold.yaml").write_text(HOLD)
    runner = start_cli("rollout", "1.1.0", "--pipeline", "hold.yaml", cwd=ws.path)

    def holding() -> dict | None:
        assert runner.proc.poll() is None, f"the rollout ended early ({runner.proc.returncode}):\n{runner.stderr[-2000:]}"
        status = ws.status()
        release = status["release"]
        canary = [m for m in status["members"] if m["version"] == "1.1.0" and m["weight"] > 0]
        if release and release["step"] == 2 and release["state"] == "progressing" and canary:
            return release
        return None

    return runner, wait_for(holding, timeout=90, interval=0.2, max_interval=0.5, what="the 10% canary hold")


def post(ws, *args: str) -> dict:
    """Run an intent verb from a second process; it must return 0 with the intent accepted."""
    started = time.time()
    result = ws.cli(*args, "-o", "json")
    ended = time.time()
    assert result.code == 0, result.stderr
    doc = result.json()
    posted_at = int(doc["intent"]["id"].split("-")[0]) / 1000
    print(f"\n`releasectl {' '.join(args)}` returned in {ended - started:.2f}s "
          f"(posted its intent {posted_at - started:.2f}s after it started)")
    return doc


def assert_accepted(doc: dict, kind: str, release: dict) -> None:
    intent = doc["intent"]
    assert intent["state"] == "accepted" and intent["kind"] == kind
    assert intent["release_id"] == release["id"] and intent["version"] == "1.1.0"
    assert intent["runner"]["command"] == "rollout"
    assert doc["release"]["id"] == release["id"] and doc["exit_code"] == 0 and doc["errors"] == []


def applied(ws, doc: dict) -> None:
    """Wait for the runner to list the intent as applied in the release record; print how long it took."""
    provider = ws.provider()
    posted = time.monotonic()
    wait_for(lambda: doc["intent"]["id"] in records.load_current(provider).applied_intents, timeout=30, interval=0.02,
             max_interval=0.05, what="the runner to apply the intent")
    print(f"the runner applied the {doc['intent']['kind']} intent {time.monotonic() - posted:.2f}s after it returned")


def load(ws) -> LoadGenerator:
    return LoadGenerator(ws.url, duration=150, max_requests=200_000, keepalive_clients=2, new_connection_clients=1)


def test_abort_from_a_second_process_rolls_the_running_canary_back(live_100):
    ws = live_100
    with load(ws) as traffic:
        runner, release = start_canary(ws)
        doc = post(ws, "abort")
        assert_accepted(doc, "abort", release)
        applied(ws, doc)
        assert runner.finish() == 1, runner.stderr[-3000:]
    stats = traffic.snapshot()
    assert stats.failed == 0 and stats.ok > 0, stats.to_dict()
    assert_converged(ws, "1.0.0")
    last = ws.ok("history", "-o", "json").json()["releases"][0]
    assert (last["id"], last["version"], last["state"]) == (release["id"], "1.1.0", "aborted")


def test_promote_full_from_a_second_process_finishes_the_running_canary(live_100):
    ws = live_100
    with load(ws) as traffic:
        runner, release = start_canary(ws)
        doc = post(ws, "promote", "--full")
        assert_accepted(doc, "promote_full", release)
        applied(ws, doc)
        assert runner.finish() == 0, runner.stderr[-3000:]  # well before the 60 s hold would have ended
    stats = traffic.snapshot()
    assert stats.failed == 0 and stats.ok > 0, stats.to_dict()
    assert_converged(ws, "1.1.0")


def test_pause_stops_the_runner_with_exit_4_and_promote_continues_it(live_100):
    ws = live_100
    with load(ws) as traffic:
        runner, release = start_canary(ws)
        paused = ws.cli("pause", "--wait", "--wait-timeout", "60", "-o", "json")
        assert paused.code == 4, paused.stderr
        assert paused.json()["errors"][0]["code"] == "paused"
        assert runner.finish() == 4, runner.stderr[-3000:]
        status = ws.status()
        assert status["release"]["id"] == release["id"]
        assert status["release"]["state"] == "paused" and status["release"]["step"] == 2
        assert status["lock"] is None
        assert ws.cli("rollout", "--resume").code == 4  # still paused until promoted
        promoted = ws.cli("promote", "-o", "json")  # no runner alive: promote drives it to the end itself
        assert promoted.code == 0, promoted.stderr
        assert promoted.json()["release"]["state"] == "succeeded"
    stats = traffic.snapshot()
    assert stats.failed == 0 and stats.ok > 0, stats.to_dict()
    assert_converged(ws, "1.1.0")
