"""Run releasectl as a child process and act on its progress lines (kill it at a chosen point), and the one
kill -9 walk the chaos tests of both providers share."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

DECISION = re.compile(r"^\S+ (act|wait|advance|rollback|step)\s+(.*)$")


@dataclass
class Running:
    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    out: list[str] = field(default_factory=list)  # stdout, once the process has ended
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

    @property
    def stdout(self) -> str:
        return "".join(self.out)


def start_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, inherit: bool = True) -> Running:
    """`releasectl ARGS` as a child whose progress lines can be waited on. With inherit=False, `env` is the
    whole environment (e.g. one stripped of OS_* variables) instead of additions to this process's."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "releasectl", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})} if inherit else dict(env or {}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
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

    def out_reader() -> None:  # stdout in a thread of its own: a full pipe must never block the child
        assert proc.stdout is not None
        running.out.append(proc.stdout.read())

    threading.Thread(target=reader, daemon=True).start()
    threading.Thread(target=out_reader, daemon=True).start()
    return running


def normalise(message: str) -> str:
    """A decision line without ids, clock times and durations: the same point of two runs compares equal."""
    message = re.sub(r"-[0-9a-f]{6}\b", "-X", message)
    message = re.sub(r"\d\d:\d\d:\d\d", "T", message)
    return re.sub(r"\d+(\.\d+)?s\b", "Ns", message)


class Target(Protocol):
    """A releasectl folder the walk drives: a local Workspace or an OpenStack Cloud."""

    def start(self, *args: str) -> Running: ...

    def status(self) -> dict: ...


def kill_walk(target: Target, first: list[str], then: list[list[str]], points: list[str], label: str, *,
              first_kill_at: str | None = None, max_kills: int = 40) -> int:
    """Start `first`; kill -9 each run at the first decision line after it made progress; after each kill
    `status` must show the release interrupted and its holder dead; then run the next command of `then` (the
    last one again once they are used up), until a run finishes on its own. Returns that run's exit code.
    With `first_kill_at`, the first run is killed at the first decision line containing that text instead.

    Progress is an `act` or `advance` line that no earlier run of this walk printed: such a line is printed
    once the previous action completed and was recorded, so each run ends at least one action further than
    the last, and the kill cuts the action it announces at an arbitrary moment. (An action an earlier run
    printed does not count: a resumed run re-asserts the pool membership of members that are not healthy
    yet, an idempotent no-op; counting it would kill every run before it gets anywhere.)"""
    args = first
    done_before: set[str] = set()
    runs = []
    for kills in range(max_kills):
        running = target.start(*args)
        runs.append(running)
        seen: list[str] = []
        progressed = [False]

        def after_progress(line: str) -> bool:
            match = DECISION.match(line.strip())
            if not match:
                return False
            kind, reason = match.groups()
            seen.append(reason)
            if progressed[0] or (kills == 0 and first_kill_at is not None and first_kill_at in reason):
                return True
            if kills == 0 and first_kill_at is not None:
                return False
            if kind in ("act", "advance") and reason not in done_before:
                progressed[0] = True
            return False

        if running.wait_for_line(after_progress, timeout=90) is None:
            code = running.finish()
            print(f"{label}: last run ({' '.join(args)}) exited {code}:\n{running.stderr[-2000:]}")
            return code
        code = running.kill(signal.SIGKILL)
        if code != -signal.SIGKILL:  # it ended on its own before the signal landed: the walk is over
            print(f"{label}: last run ({' '.join(args)}) exited {code} before its kill landed:\n{running.stderr[-2000:]}")
            return code
        done_before.update(m.group(2) for m in map(DECISION.match, (line.strip() for line in running.lines))
                           if m and m.group(1) in ("act", "advance"))
        points.append(f"{label}: {normalise(seen[-1])}")
        status = target.status()
        release = status["release"]
        if release is None:  # the kill landed after the run had ended its release (record closed): over too
            code = _ended_release_exit_code(target, args)
            print(f"{label}: last run ({' '.join(args)}) was killed after its release ended (exit {code} by history)")
            return code
        assert release["state"] == "interrupted", (points[-1], release)
        lock = status["lock"]  # the dead holder's lease, until a run takes it over
        assert lock is None or (lock["alive"] is False and "gone" in lock["dead_reason"]), (points[-1], lock)
        args = then[min(kills, len(then) - 1)]
    last = "\n---\n".join(r.stderr[-1500:] for r in runs[-3:])
    raise AssertionError(f"{label}: still not finished after {max_kills} kills: {points}\nlast runs:\n{last}")


def _ended_release_exit_code(target: Target, args: list[str]) -> int:
    """The exit code the killed run would have given for the release `history` shows last: 0 succeeded, 1 failed
    and rolled back; an aborted release is what `abort` succeeds at and what `rollout` fails with."""
    history = target.start("history", "--output", "json")
    assert history.finish() == 0, history.stderr[-2000:]
    rows = json.loads(history.stdout)["releases"]  # newest first
    state = rows[0]["state"]
    assert state in ("succeeded", "failed", "aborted"), rows[0]
    if state == "aborted":
        return 0 if args[0] == "abort" else 1
    return 0 if state == "succeeded" else 1
