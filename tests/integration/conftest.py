"""A releasectl workspace on the local provider: a real folder, real HAProxy, real app processes, driven
through the real CLI. Health checks and pipelines are fast so a whole canary takes seconds."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from releasectl.providers.base import AdminState, Health
from releasectl.providers.local import LocalProvider
from tests.conftest import CliRun, run_cli
from tests.helpers import free_port, local_provider, processes_under

FAST_PIPELINES = {
    "canary-fast.yaml": """\
name: canary-fast
steps:
  - launch: {}
  - weight: {percent: 10, hold: 1s}
  - analyze: {duration: 1s, max_error_rate: 1%}
  - weight: {percent: 50, hold: 1s}
  - weight: {percent: 100, hold: 500ms}
  - retire: {drain_timeout: 5s}
""",
    "bluegreen-fast.yaml": """\
name: bluegreen-fast
steps:
  - launch: {}
  - weight: {percent: 100, hold: 1s}
  - retire: {drain_timeout: 5s, keep_previous: 10m}
""",
    "gate-fast.yaml": """\
name: gate-fast
steps:
  - launch: {}
  - weight: {percent: 10, hold: 500ms}
  - pause: {}
  - weight: {percent: 100, hold: 500ms}
  - retire: {drain_timeout: 5s}
""",
}



@dataclass
class Workspace:
    path: Path
    port: int

    def cli(self, *args: str, **kw) -> CliRun:
        return run_cli(*args, cwd=self.path, **kw)

    def ok(self, *args: str) -> CliRun:
        result = self.cli(*args)
        assert result.code == 0, f"releasectl {' '.join(args)} exited {result.code}:\n{result.stderr[-3000:]}"
        return result

    def bake(self, version: str, broken: bool = False) -> None:
        flag = self.path / "app" / "FAIL_HEALTH"
        if broken:
            flag.touch()
        try:
            self.ok("bake", version)
        finally:
            flag.unlink(missing_ok=True)

    def provider(self, env: str | None = None) -> LocalProvider:
        """A read-only view of the same state, as a second CLI run would have."""
        return local_provider(self.path / "releasectl.yaml", env)

    def status(self) -> dict:
        return self.ok("status", "--output", "json").json()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def make_workspace(root: Path) -> Workspace:
    port = free_port()
    result = run_cli("init", str(root), "--app", "shop", "--port", str(port), cwd=root.parent)
    assert result.code == 0, result.stderr
    config = root / "releasectl.yaml"
    text = config.read_text()
    text = text.replace("interval: 1s", "interval: 100ms").replace("timeout: 2s", "timeout: 1s")
    text = text.replace("progress_deadline: 5m", "progress_deadline: 30s\n  drain_timeout: 5s")
    config.write_text(text)
    for name, body in FAST_PIPELINES.items():
        (root / name).write_text(body)
    return Workspace(root, port)



@pytest.fixture
def workspace(tmp_path):
    ws = make_workspace(tmp_path / "shop")
    yield ws
    run_cli("down", cwd=ws.path)
    run_cli("down", "--env", "staging", cwd=ws.path)
    leftovers = [pid for pid, _cmd in processes_under(ws.path)]
    for pid in leftovers:  # stop by PID what `down` missed, then fail the test: it is a leak
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not leftovers, f"processes left running after `releasectl down`: {leftovers}"


@pytest.fixture
def live_100(workspace):
    """1.0.0 baked and live on 2 servers."""
    workspace.bake("1.0.0")
    workspace.ok("rollout", "1.0.0", "--pipeline", "canary-fast.yaml")
    return workspace


@dataclass
class Watch:
    """Samples the pool every 20 ms and sends bounded load through the LB while a test acts."""

    ws: Workspace
    max_seconds: float = 60.0
    max_requests: int = 30_000
    min_in_rotation: int = 10**9
    samples: int = 0
    responses: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list = field(default_factory=list)

    def __enter__(self) -> "Watch":
        self._threads = [threading.Thread(target=self._pool_loop, daemon=True), threading.Thread(target=self._load_loop, daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)

    def _pool_loop(self) -> None:
        provider = self.ws.provider()
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            members = provider.list_members()
            serving = [m for m in members if m.health is Health.HEALTHY and m.weight > 0 and m.admin is AdminState.READY]
            self.min_in_rotation = min(self.min_in_rotation, len(serving))
            self.samples += 1
            time.sleep(0.02)

    def _load_loop(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        sent = 0
        while not self._stop.is_set() and time.monotonic() < deadline and sent < self.max_requests:
            sent += 1
            try:
                with urllib.request.urlopen(self.ws.url, timeout=3) as r:
                    self.responses[r.read().decode().strip()] += 1
            except urllib.error.HTTPError as e:
                self.failures[f"HTTP {e.code}"] += 1
            except OSError as e:
                self.failures[type(e).__name__] += 1

    def assert_served_throughout(self) -> None:
        assert self.samples > 10
        assert self.min_in_rotation >= 1, "the LB had no healthy member in rotation at some point"
        assert not self.failures, f"failed requests: {dict(self.failures)} (served {dict(self.responses)})"
