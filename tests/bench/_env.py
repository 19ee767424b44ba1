"""The environment benches run the CLI in: bytecode cached, as for a pip-installed tool.

A pip-installed releasectl has its .pyc files, but CI and this machine set PYTHONDONTWRITEBYTECODE=1, so a
plain child recompiles every module it imports (about 50 ms of CPU per start). A bench that times the CLI
runs its children with `cli_env()`: .pyc files go to a temporary PYTHONPYCACHEPREFIX (the source tree stays
clean) and PYTHONDONTWRITEBYTECODE is cleared. The first run of each command compiles; `warm_up` makes that
run before the timed ones. Use:

    with bytecode_cache() as additions:       # tests.conftest.run_cli(*args, cwd=..., env=additions)
        print(bytecode_mode(additions))
        warm_up([sys.executable, "-m", "releasectl", "status"], project, additions)
        ...  # or a whole environment: subprocess.run(cmd, env=cli_env(additions))

`bytecode_cache(cached=False)` gives no additions: the plain (recompiling) mode, for comparison.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path


@contextlib.contextmanager
def bytecode_cache(cached: bool = True) -> Iterator[dict[str, str]]:
    """Environment additions that make children cache bytecode in a temporary folder, removed on exit.
    PYTHONDONTWRITEBYTECODE="" counts as unset (Python honours it only when non-empty), so the additions
    work with run_cli's inherited environment too. With cached=False: no additions (the plain mode)."""
    if not cached:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="releasectl-pyc-") as prefix:
        yield {"PYTHONPYCACHEPREFIX": prefix, "PYTHONDONTWRITEBYTECODE": ""}


def cli_env(additions: dict[str, str], base: dict[str, str] | None = None) -> dict[str, str]:
    """A whole environment for a child: `base` (default this process's) with the additions applied."""
    env = dict(os.environ if base is None else base)
    env.update(additions)
    if not env.get("PYTHONDONTWRITEBYTECODE"):
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def bytecode_mode(additions: dict[str, str]) -> str:
    """One line for a bench's output: which mode its children ran in."""
    if "PYTHONPYCACHEPREFIX" in additions:
        return f"bytecode cached (PYTHONPYCACHEPREFIX={additions['PYTHONPYCACHEPREFIX']}, warm-up runs not counted)"
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return "bytecode NOT cached (PYTHONDONTWRITEBYTECODE set: every run recompiles)"
    return "bytecode as this environment has it"


def warm_up(cmd: Sequence[str], cwd: Path, additions: dict[str, str]) -> None:
    """One run of `cmd`, not timed, so the modules it imports are compiled before the timed runs."""
    subprocess.run(list(cmd), cwd=cwd, env=cli_env(additions), stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
