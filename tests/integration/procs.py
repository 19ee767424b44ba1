"""Run releasectl as a child process and act on its progress lines (kill it at a chosen point)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Running:
    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    _queue: "queue.Queue[str | None]" = field(default_factory=queue.Queue)

    def wait_for_line(self, predicate, timeout: float = 60.0) -> str | None:
        """Block until a progress line matches (returned), or the process ends / time runs out (None)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=min(0.5, max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                continue
            if line is None:
                return None
            if predicate(line):
                return line
        return None

    def kill(self, sig: int = signal.SIGKILL) -> int:
        self.proc.send_signal(sig)
        return self.finish()

    def finish(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout=timeout)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # let the reader thread drain the pipe
            try:
                if self._queue.get(timeout=0.2) is None:
                    break
            except queue.Empty:
                break
        return code

    @property
    def stderr(self) -> str:
        return "".join(self.lines)


def start_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, inherit: bool = True) -> Running:
    """`releasectl ARGS` as a child whose progress lines can be waited on. With inherit=False, `env` is the
    whole environment (e.g. one stripped of OS_* variables) instead of additions to this process's."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "releasectl", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})} if inherit else dict(env or {}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = Running(proc)

    def reader() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            running.lines.append(line)
            running._queue.put(line)
        running._queue.put(None)

    threading.Thread(target=reader, daemon=True).start()
    return running
