"""`releasectl status --watch` on OpenStack (the simulator): Octavia keeps no per-member counters, so the
live view's error rate and p95 come from releasectl's probes and say so; Ctrl-C ends it with exit 0 and
one JSON document."""

from __future__ import annotations

import json
import signal

import pytest

from tests.integration.test_openstack_cli import cloud, live_100, sim  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


def test_status_watch_labels_its_sources_on_openstack(live_100):  # noqa: F811
    watcher = live_100.start("status", "--watch", "-o", "json")
    try:
        assert watcher.wait_for_line(lambda line: " status " in line, timeout=60), watcher.stderr
        code = watcher.kill(signal.SIGINT)
    finally:
        if watcher.proc.poll() is None:
            watcher.kill()
    assert code == 0, watcher.stderr
    doc = json.loads(watcher.stdout)
    assert doc["exit_code"] == 0 and doc["release"] is None and doc["live_version"] == "1.0.0"
    traffic = {v["version"]: v for v in doc["traffic"]}
    live = traffic["1.0.0"]
    assert live["role"] == "live" and live["members"] == 2 and live["achieved_pct"] == 100.0
    assert live["request_rate"] is None and live["rate_source"].startswith("releasectl probes")
    assert live["p95_source"] == "releasectl probes"
