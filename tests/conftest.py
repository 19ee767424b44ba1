"""Shared helpers: run the real CLI (as a subprocess, or in this process for logic tests), in a folder of its
own; and the test tiers: every test that needs HAProxy, the simulator, a real service or a CLI subprocess is
slow, by folder (below), so a new file there cannot slip into the fast tier `pytest -m "not slow"`."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

# No per-example deadline: on a loaded CI machine (2 cores, several workers) a pure function can take 400 ms
# once, and hypothesis would fail it as "unreliable timing". Tests bound their size instead.
settings.register_profile("releasectl", deadline=None)
settings.load_profile("releasectl")

TESTS = Path(__file__).resolve().parent
# Folders and modules whose every test is slow: they start HAProxy, app processes, the simulator, real
# services or the CLI as a subprocess.
SLOW_PATHS = (
    TESTS / "integration",
    TESTS / "providers" / "local",
    TESTS / "providers" / "openstack",
    TESTS / "bench",
    TESTS / "test_openstack_sim.py",
)


# Tests against the one real Keystone/Octavia/Glance/Swift of a CI run rewrite its shared catalog: under
# pytest-xdist (`--dist loadgroup`, see .ci/test) they all run on one worker, one after another.
REAL_SERVICES_GROUP = "real_services"


def _uses_real_services(item: pytest.Item, path: Path) -> bool:
    if path.name.startswith("test_real") or "real_services" in path.parts:
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "real" in callspec.id.replace("_", "-").split("-")


def pytest_collection_modifyitems(config, items):
    """Mark slow by location, whatever the module says (explicit marks elsewhere still count); keep the
    real-services tests on one xdist worker."""
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if any(path == slow or slow in path.parents for slow in SLOW_PATHS):
            item.add_marker(pytest.mark.slow)
        if _uses_real_services(item, path):
            item.add_marker(pytest.mark.xdist_group(REAL_SERVICES_GROUP))
    # RELEASECTL_REAL_TESTS=skip|only: .ci/test runs the real-services tests apart, in one process of their
    # own after the parallel run, so nothing else interleaves with their rewrites of the shared catalog
    which = os.environ.get("RELEASECTL_REAL_TESTS", "")
    if which in ("skip", "only"):
        keep = [i for i in items if _uses_real_services(i, Path(str(i.fspath)).resolve()) == (which == "only")]
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180,
            inherit: bool = True) -> CliRun:
    """`releasectl ARGS` in `cwd`, as a user would run it (a new process, no shared state). With
    inherit=False, `env` is the whole environment (e.g. one stripped of OS_* variables) instead of additions
    to this process's."""
    full_env = dict(os.environ) if inherit else {}
    full_env.pop("OS_CLOUD", None)  # the machine's OS_CLOUD would beat every test's config; a test's own counts
    full_env.update(env or {})
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


def run_cli_in_process(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float | None = None,
                       inherit: bool = True) -> CliRun:
    """`releasectl ARGS` in this process (`releasectl.cli.main`), for logic tests that need no process of
    their own: the same argument handling, error boundary, exit code and separate stdout/stderr as run_cli,
    without a Python start-up per call. The working folder, environment, signal handlers and root logger are
    restored afterwards. Use run_cli for anything about processes, signals, locks between runs or
    concurrency, and for commands that start servers or HAProxy (they would become this process's children).
    Not thread-safe (the working folder and environment are the process's). `timeout` is accepted for
    run_cli's signature and ignored; `inherit` means what it means there."""
    from releasectl.cli import main

    saved_cwd, saved_env = os.getcwd(), dict(os.environ)
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    out, err = io.StringIO(), io.StringIO()
    try:
        if not inherit:
            os.environ.clear()
        os.environ.pop("OS_CLOUD", None)  # as in run_cli: the machine's, not a test's own
        os.environ.update(env or {})
        os.chdir(cwd)
        root.handlers = []  # as in a fresh process: the CLI's basicConfig logs to (captured) stderr
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # typer.Exit / sys.exit below the error boundary
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for sig, handler in saved_signals.items():
            signal.signal(sig, handler)
        root.handlers, root.level = saved_handlers, saved_level
    return CliRun(int(code), out.getvalue(), err.getvalue())


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
