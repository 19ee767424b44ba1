"""`releasectl demo` end to end: a real CLI process, real HAProxy and app processes, real load."""

from __future__ import annotations

from tests.conftest import run_cli
from tests.helpers import free_port, stop_leftovers

import json
from pathlib import Path

import pytest




@pytest.mark.slow
def test_demo_releases_under_load_without_a_failed_request_and_cleans_up(tmp_path):
    folder = tmp_path / "demo"
    port = free_port()
    try:
        proc = run_cli("demo", str(folder), "--port", str(port), "--output", "json", cwd=tmp_path, timeout=240)
    finally:
        leftovers = stop_leftovers(folder)  # what the demo left behind: fail below
    assert proc.code == 0, f"exit {proc.code}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}"
    document = json.loads(proc.stdout)
    assert document["errors"] == []
    demo = document["demo"]
    assert Path(demo["directory"]) == folder.resolve()

    phases = {p["version"]: p for p in demo["phases"]}
    assert [p["version"] for p in demo["phases"]] == ["1.0.0", "1.1.0", "1.2.0", "1.0.0"]
    canary, broken, restore = demo["phases"][1:]
    assert canary["outcome"] == "succeeded", canary
    assert broken["outcome"] == "failed" and broken["rolled_back"] is True, broken
    assert broken["traffic_back_on"] == "1.1.0"
    assert restore["outcome"] == "succeeded", restore
    assert demo["live_version"] == "1.0.0"
    assert demo["rollback_path"] in ("warm", "relaunch")
    assert phases["1.1.0"]["versions_seen"].keys() >= {"1.0.0", "1.1.0"}, "the canary shifted no traffic"

    for phase in (canary, broken, restore):
        assert phase["requests"] > 0, f"no load during {phase['phase']}"
        assert phase["failed"] == 0, f"failed requests during {phase['phase']}: {phase['load']['whole']}"
        assert phase["p50_ms"] is not None and phase["p99_ms"] is not None
    totals = demo["totals"]
    assert totals["failed"] == 0 and totals["requests"] == sum(p["requests"] for p in demo["phases"])
    assert demo["zero_downtime"] is True
    assert "requests" in demo["table"] and "failed" in demo["table"]

    assert not leftovers, f"processes left running from the demo folder: {leftovers}"
