"""Helpers shared by tests and benchmarks: free loopback ports, and processes left under a folder."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path


def free_port() -> int:
    """A free loopback port whose neighbour is free too (`releasectl init` gives staging port+1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65534:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of loopback ports")


def processes_under(root: Path) -> list[tuple[int, str]]:
    """Live (non-zombie) processes whose working folder is under root or whose command line mentions it:
    what a test must not leave behind."""
    root_s = str(root.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            if stat[stat.rindex(")") + 2] in "ZX":
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                cwd = ""
        except (OSError, ValueError):
            continue
        if root_s in cmd or cwd == root_s or cwd.startswith(root_s + "/"):
            found.append((int(entry.name), cmd or "?"))
    return found


def stop_leftovers(*roots: Path) -> list[tuple[int, str]]:
    """SIGKILL, by PID, every process `processes_under` finds below roots; returns them, so the caller can
    fail the test for the leak after cleaning it up."""
    left = [p for root in roots for p in processes_under(root)]
    for pid, _cmd in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def fast_pipelines(hold: str, drain: str, final_hold: str | None = None) -> dict[str, str]:
    """The tests' pipelines, by file name: the built-in shapes with short holds and drains, so a whole
    release takes seconds. `final_hold` holds 100% (and the gate's steps) before retiring; the local tests
    use holds of 1s, the OpenStack ones 300ms (health checks every 200ms there)."""
    final = f", hold: {final_hold}" if final_hold else ""
    return {
        "canary-fast.yaml": f"""\
name: canary-fast
steps:
  - launch: {{}}
  - weight: {{percent: 10, hold: {hold}}}
  - analyze: {{duration: {hold}, max_error_rate: 1%}}
  - weight: {{percent: 50, hold: {hold}}}
  - weight: {{percent: 100{final}}}
  - retire: {{drain_timeout: {drain}}}
""",
        "bluegreen-fast.yaml": f"""\
name: bluegreen-fast
steps:
  - launch: {{}}
  - weight: {{percent: 100, hold: {hold}}}
  - retire: {{drain_timeout: {drain}, keep_previous: 10m}}
""",
        "gate-fast.yaml": f"""\
name: gate-fast
steps:
  - launch: {{}}
  - weight: {{percent: 10{final}}}
  - pause: {{}}
  - weight: {{percent: 100{final}}}
  - retire: {{drain_timeout: {drain}}}
""",
        "first-fast.yaml": f"""\
name: first-fast
steps:
  - launch: {{}}
  - weight: {{percent: 100}}
  - retire: {{drain_timeout: {drain}}}
""",
    }
