"""`releasectl status --watch` through a pseudo-terminal during a canary under load (local provider: real
HAProxy, real app processes, releasectl.loadgen): the screen's figures (time left, weights, request rates)
change at least once a second; Ctrl-C ends it with exit 0. Without a terminal, it prints one line per event
and ends with the release's exit code. What is asserted is screen content parsed for numbers, and JSON."""

from __future__ import annotations

import codecs
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time

import pytest

from releasectl.loadgen import LoadGenerator
from tests.integration.test_intents import start_canary  # 1.1.0 holding 10% for a minute

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\r")
HEADER = "releasectl watch "
ROW = re.compile(r"^\s*(?P<version>\d+\.\d+\.\d+)\s+(?P<role>new|old|live|other)\s+\d+/\d+\s+(?P<requested>[\d.]+%|-)\s+"
                 r"(?P<achieved>[\d.]+%)\s+(?P<rate>[\d.]+|-)\s+(?P<errors>[\d.]+%|-)\s+(?P<p95>[\d.]+ms|-)", re.M)
TIME_LEFT = re.compile(r"time left in step: (?P<left>[\d.]+)s")


def spawn_on_pty(ws, *args: str) -> tuple[int, int]:
    """`releasectl ARGS` in a child whose stdin/stdout/stderr are a pseudo-terminal of 200x60."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: never returns
        try:
            os.chdir(ws.path)
            env = {**os.environ, "COLUMNS": "200", "LINES": "60", "TERM": "xterm-256color"}
            env.pop("OS_CLOUD", None)
            os.execve(sys.executable, [sys.executable, "-m", "releasectl", *args], env)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 200, 0, 0))
    return pid, fd


def read_frames(fd: int, seconds: float) -> list[tuple[float, str]]:
    """The screens drawn in `seconds`, each with the time its drawing was complete (the next one began)."""
    frames: list[tuple[float, str]] = []
    text, raw = "", ""
    decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode  # a character may span two reads
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        raw += decode(chunk)
        cut = raw.rfind("\x1b")
        if cut >= 0 and not ANSI.match(raw, cut):  # an escape sequence cut in two by the read: keep its start
            raw, rest = raw[:cut], raw[cut:]
        else:
            rest = ""
        text += ANSI.sub("", raw)
        raw = rest
        parts = text.split(HEADER)
        for part in parts[1:-1]:  # complete screens: a newer header follows them
            frames.append((time.monotonic(), part))
        text = HEADER + parts[-1] if len(parts) > 1 else text
    return frames


def figures(screen: str) -> dict:
    rows = {m["version"]: m.groupdict() for m in ROW.finditer(screen)}
    left = TIME_LEFT.search(screen)
    return {"rows": rows, "left": float(left["left"]) if left else None}


def test_status_watch_on_a_terminal_moves_every_second_during_a_canary_under_load(live_100):
    ws = live_100
    with LoadGenerator(ws.url, duration=90, max_requests=60_000, keepalive_clients=1, new_connection_clients=1,
                       timeout=3) as load:
        runner, _ = start_canary(ws)
        pid, fd = spawn_on_pty(ws, "status", "--watch")
        try:
            frames = read_frames(fd, 8.0)
            os.kill(pid, signal.SIGINT)
            tail = read_frames(fd, 5.0)
            _, status = os.waitpid(pid, 0)
        finally:
            os.close(fd)
        assert os.waitstatus_to_exitcode(status) == 0, tail[-1:] if tail else frames[-1:]
        load.stop()
        assert ws.cli("promote", "--full").code == 0
        assert runner.finish() == 0, runner.stderr[-2000:]

    parsed = [(at, figures(screen)) for at, screen in frames]
    shown = [(at, f) for at, f in parsed if "1.1.0" in f["rows"] and "1.0.0" in f["rows"] and f["left"] is not None]
    assert len(shown) >= 8, frames[-1:]  # about 4 a second for 8 s; the first second may go to start-up
    new, old = shown[-1][1]["rows"]["1.1.0"], shown[-1][1]["rows"]["1.0.0"]
    assert new["role"] == "new" and old["role"] == "old" and new["requested"] == "10%" and old["requested"] == "90%"
    assert 5.0 <= float(new["achieved"].rstrip("%")) <= 15.0, new
    assert any(f["rows"]["1.0.0"]["rate"] not in ("-", "0.0") for _, f in shown), "no request rate while under load"
    assert len({f["rows"]["1.0.0"]["rate"] for _, f in shown}) >= 2, "the request rate never changed"

    # at least one change of what the screen shows in every second from the first full screen on
    first, last = shown[0][0], shown[-1][0]
    seconds = int(last - first)
    assert seconds >= 5, (first, last)
    for second in range(seconds):
        window = [f for at, f in shown if first + second <= at <= first + second + 1.0]
        assert len({repr(f) for f in window}) >= 2, f"nothing changed on screen between {second}s and {second + 1}s"
    lefts = [f["left"] for _, f in shown]
    assert lefts[-1] < lefts[0], lefts  # the hold counts down


def test_status_watch_without_a_terminal_prints_events_and_ends_with_the_release(live_100):
    ws = live_100
    runner, _ = start_canary(ws)
    watcher = ws.start("status", "--watch", "-o", "json")
    try:
        assert watcher.wait_for_line(lambda line: " release " in line, timeout=30), watcher.stderr
        assert ws.cli("promote", "--full").code == 0
        assert runner.finish() == 0, runner.stderr[-2000:]
        code = watcher.finish(timeout=60)
    finally:
        if watcher.proc.poll() is None:
            watcher.kill()
    assert code == 0, watcher.stderr
    doc = json.loads(watcher.stdout)
    assert doc["exit_code"] == 0 and doc["release"]["version"] == "1.1.0" and doc["release"]["state"] == "succeeded"
    lines = [line.split(None, 2) for line in watcher.stderr.splitlines() if line.strip()]
    assert lines and all(re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", parts[0]) for parts in lines), watcher.stderr
    assert {"release", "succeeded"} <= {parts[1] for parts in lines}, watcher.stderr


def test_rollout_on_a_terminal_shows_the_live_view_and_its_events(live_100):
    ws = live_100
    ws.bake("1.1.0")
    pid, fd = spawn_on_pty(ws, "rollout", "1.1.0", "--pipeline", "canary-fast.yaml")
    try:
        frames = []
        deadline = time.monotonic() + 120
        done = None
        while done is None and time.monotonic() < deadline:
            frames += read_frames(fd, 1.0)
            finished, status = os.waitpid(pid, os.WNOHANG)
            done = os.waitstatus_to_exitcode(status) if finished else None
        frames += read_frames(fd, 1.0)
    finally:
        os.close(fd)
        if done is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert done == 0
    assert ws.status()["live_version"] == "1.1.0"
    screens = [figures(s) for _, s in frames]
    assert any(f["rows"].get("1.1.0", {}).get("requested") == "10%" for f in screens), frames[-1:]
    assert any(f["rows"].get("1.1.0", {}).get("requested") == "50%" for f in screens), frames[-1:]
    # the steps table's current-step marker moved through the pipeline on screen (screen content, not log text)
    current = {int(m[1]) for _, s in frames for m in re.finditer(r"^\s*>>\s+(\d+)\s", s, re.M)}
    assert len(current) >= 3, (sorted(current), frames[-1:])  # the retire may end between two redraws
