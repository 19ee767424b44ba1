"""A releasectl workspace on the local provider: a real folder, real HAProxy, real app processes, driven
through the real CLI. Health checks and pipelines are fast so a whole canary takes seconds."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from releasectl.loadgen import LoadGenerator
from releasectl.providers.base import AdminState, Health
from releasectl.providers.local import LocalProvider
from tests.conftest import CliRun, run_cli, run_cli_in_process
from tests.helpers import fast_pipelines, free_port, local_provider, stop_leftovers
from tests.integration.procs import Running, start_cli

FAST_PIPELINES = fast_pipelines(hold="1s", drain="5s", final_hold="500ms")


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

    def start(self, *args: str) -> Running:
        """`releasectl ARGS` as a child process whose progress lines (stderr) can be waited on."""
        return start_cli(*args, cwd=self.path)

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
        """`status --output json`, run in this process: a read of the state, with no process of its own to
        test (every other command here is a new process)."""
        result = run_cli_in_process("status", "--output", "json", cwd=self.path)
        assert result.code == 0, f"releasectl status exited {result.code}:\n{result.stderr[-3000:]}"
        return result.json()

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
    if (ws.path / ".releasectl" / "envs" / "staging").exists():  # a process for nothing otherwise
        run_cli("down", "--env", "staging", cwd=ws.path)
    leftovers = [pid for pid, _cmd in stop_leftovers(ws.path)]  # what `down` missed: a leak
    assert not leftovers, f"processes left running after `releasectl down`: {leftovers}"


@pytest.fixture
def live_100(workspace):
    """1.0.0 baked and live on 2 servers (the first release: no old fleet to hold a canary against)."""
    workspace.bake("1.0.0")
    workspace.ok("rollout", "1.0.0", "--pipeline", "first-fast.yaml")
    return workspace


@dataclass
class Watch:
    """Samples the pool every 20 ms and sends bounded load through the LB while a test acts: one client
    opening a new connection per request (releasectl.loadgen), as a naive client would."""

    ws: Workspace
    max_seconds: float = 60.0
    max_requests: int = 30_000
    min_in_rotation: int = 10**9
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list = field(default_factory=list)
    _load: LoadGenerator | None = None

    def __enter__(self) -> "Watch":
        self._load = LoadGenerator(self.ws.url, duration=self.max_seconds, max_requests=self.max_requests,
                                   keepalive_clients=0, new_connection_clients=1, timeout=3).start()
        self._threads = [threading.Thread(target=self._pool_loop, daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        assert self._load is not None
        self._load.stop()
        self._load.join(timeout=10)
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

    @property
    def responses(self) -> Counter:
        """2xx responses by body (the sample app answers with its version)."""
        assert self._load is not None
        return Counter(self._load.stats().by_body)

    @property
    def failures(self) -> Counter:
        """Failed requests: `HTTP <status>` for non-2xx answers, the exception's name for no answer."""
        assert self._load is not None
        stats = self._load.stats()
        failed = Counter({f"HTTP {code}": n for code, n in stats.by_status.items() if not 200 <= code < 300})
        failed.update(stats.errors_by_kind)
        return failed

    def assert_served_throughout(self) -> None:
        assert self.samples > 10
        assert self.min_in_rotation >= 1, "the LB had no healthy member in rotation at some point"
        assert not self.failures, f"failed requests: {dict(self.failures)} (served {dict(self.responses)})"
