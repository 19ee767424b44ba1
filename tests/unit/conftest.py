"""Fixtures of the fast CLI tests: a project on the in-memory provider with a fake clock."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli_in_process
from tests.fakes.clock import FakeClock
from tests.fakes.memory import MemoryCloud, MemoryProvider


@pytest.fixture
def memory_project(tmp_path, monkeypatch):
    """A scaffolded project whose provider is the in-memory one and whose clock is fake: `run(*args)` runs
    `releasectl -o json ARGS` in this process and returns (exit code, JSON document, stderr)."""
    from releasectl.cli import runtime

    clock = FakeClock()
    cloud = MemoryCloud(clock)
    monkeypatch.setattr(runtime, "load_provider", lambda _name, pctx: MemoryProvider(pctx, cloud))
    monkeypatch.setattr(runtime, "RealClock", lambda stop_check=None: clock)
    assert run_cli_in_process("init", str(tmp_path), "--app", "demo", cwd=tmp_path).code == 0

    def run(*args: str):
        result = run_cli_in_process("-o", "json", *args, cwd=tmp_path)
        return result.code, result.json(), result.stderr

    run.table = lambda *args: run_cli_in_process(*args, cwd=tmp_path)  # type: ignore[attr-defined]
    run.path = tmp_path  # type: ignore[attr-defined]
    run.cloud = cloud  # type: ignore[attr-defined]
    run.clock = clock  # type: ignore[attr-defined]
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        assert run("bake", version)[0] == 0
    return run
