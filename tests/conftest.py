"""Shared helpers: run the real CLI as a subprocess, in a folder of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180) -> CliRun:
    """`releasectl ARGS` in `cwd`, as a user would run it (a new process, no shared state)."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("OS_CLOUD", None)
    proc = subprocess.run(
        [sys.executable, "-m", "releasectl", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli(tmp_path):
    """run_cli bound to a fresh folder: `cli("bake", "1.0.0")`."""

    def run(*args: str, **kw) -> CliRun:
        return run_cli(*args, cwd=kw.pop("cwd", tmp_path), **kw)

    run.path = tmp_path  # type: ignore[attr-defined]
    return run


def snapshot_tree(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file below root: proves a command changed nothing on disk."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out
