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


def run_cli_in_process(*args: str, cwd: Path, env: dict[str, str] | None = None) -> CliRun:
    """`releasectl ARGS` in this process (the real entry point, `releasectl.cli.main`): milliseconds instead of
    a new interpreter, for tests of input handling that must not reach a provider. The working folder,
    environment variables, stdout/stderr and signal handlers are restored afterwards."""
    import contextlib
    import io
    import signal

    from releasectl.cli import main

    saved_env = {k: os.environ.get(k) for k in (env or {})}
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    saved_cwd = os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.update(env or {})
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(saved_cwd)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for sig, handler in saved_signals.items():
            signal.signal(sig, handler)
    return CliRun(code, out.getvalue(), err.getvalue())


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
