"""The live view: `releasectl status --watch`, and `rollout`/`promote`/`rollback` while stderr is a terminal.

On a terminal a `rich.live` screen, redrawn every REFRESH seconds from the newest sample (a background
thread takes one every SAMPLE_EVERY seconds: engine/status.py `WatchSampler`), so time left moves even while
a sample is slow. Without a terminal, one line per event plus a heartbeat line every HEARTBEAT seconds
while nothing else was said. rich is imported here only, so plain `status` never pays for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Iterator, TextIO

from releasectl.cli.exitcodes import ExitCode
from releasectl.engine.events import Event
from releasectl.engine.live import WatchFrame, WatchSampler
from releasectl.timefmt import rfc3339

REFRESH = 0.25  # seconds between redraws of the live screen (at least once a second)
SAMPLE_EVERY = 0.5  # seconds between samples of the provider
HEARTBEAT = 30.0  # seconds of silence after which a line says what is being waited for
RECENT_EVENTS = 6
NO_LIVE_VARIABLE = "RELEASECTL_NO_LIVE"  # set (to anything) to keep plain progress lines on a terminal

# The end states of a watched release and the exit code `status --watch` ends with (that of the command
# that drove it): succeeded 0; failed or aborted, and so rolled back, 1.
END_CODES = {"succeeded": ExitCode.OK, "failed": ExitCode.ROLLED_BACK, "aborted": ExitCode.ROLLED_BACK}


class Sampling:
    """Samples in a background thread; `latest` is the newest frame, `error` what the last sample raised."""

    def __init__(self, sampler: WatchSampler, every: float = SAMPLE_EVERY) -> None:
        self.sampler = sampler
        self.every = every
        self.latest: WatchFrame | None = None
        self.error: str | None = None
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="releasectl-watch", daemon=True)

    def start(self) -> "Sampling":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def wait_first(self, timeout: float) -> None:
        """Until the first sample (or error) is in, at most `timeout` seconds."""
        end = time.monotonic() + timeout
        while self.latest is None and self.error is None and time.monotonic() < end and not self._stop.is_set():
            time.sleep(0.02)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.latest = self.sampler.sample()
                self.error = None
            except Exception as exc:  # shown on the screen; the next sample tries again
                self.error = f"{type(exc).__name__}: {exc}"
            self.samples += 1
            self._stop.wait(max(0.05, self.every - (time.monotonic() - started)))


# ---- figures in words --------------------------------------------------------------------------------


def _pct(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}%"


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def version_row(v) -> dict[str, str]:
    return {
        "version": v.version,
        "role": v.role,
        "healthy": f"{v.healthy}/{v.members}",
        "requested": _pct(v.requested_pct),
        "achieved": _pct(v.achieved_pct, 1),
        "req/s": "-" if v.request_rate is None else f"{v.request_rate:.1f}",
        "5xx": "-" if v.error_rate is None else f"{v.error_rate * 100:.2f}%",
        "p95": "-" if v.p95_ms is None else f"{v.p95_ms:.1f}ms",
        "source": f"{v.rate_source}; p95: {v.p95_source}",
    }


def timing(frame: WatchFrame, now: float) -> str:
    """Time left in the step (counted down to `now`, between samples too) and the progress deadline."""
    left = None if frame.wake_at is None else frame.wake_at - now
    deadline = "-" if frame.deadline_at is None else f"{rfc3339(frame.deadline_at)} (in {_span(frame.deadline_at - now)})"
    return f"time left in step: {_span(left)}   progress deadline: {deadline}"


def release_line(frame: WatchFrame) -> str:
    r = frame.release
    if r is None:
        return "release: none in progress (waiting for one to start)"
    return (f"{r['kind']} {r['id']} of {r['version']} from {r['from_version'] or 'none'}, pipeline {r['pipeline']}: "
            f"{r['state']} at step {r['step']}/{r['steps']} ({r['step_description']})")


# ---- the terminal screen -----------------------------------------------------------------------------


def screen(frame: WatchFrame | None, now: float, recent: list[str], error: str | None = None) -> Any:
    """The live screen for one redraw (a rich renderable)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text
    from rich import box

    parts: list[Any] = []
    if frame is None:
        parts.append(Text(f"releasectl watch {rfc3339(now)}: reading state" + (f" ({error})" if error else "...")))
        return Group(*parts)
    view = frame.view
    parts.append(Text(f"releasectl watch  {view.app}/{view.environment} ({view.provider})  {rfc3339(now)}  "
                      f"LB {view.lb['status']}  live {view.live_version or 'none'}", style="bold"))
    parts.append(Text(release_line(frame)))
    if frame.release is not None:
        parts.append(Text(timing(frame, now)))
        parts.append(Text(f"reason: {frame.release['reason'] or '-'}"))
    if frame.steps:
        steps = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for column in ("", "#", "step"):
            steps.add_column(column)
        for i, step in enumerate(frame.steps):
            mark = ">>" if i == frame.step_index else ("ok" if frame.step_index is None or i < frame.step_index else "")
            steps.add_row(mark, str(i + 1), step)
        parts.append(steps)
    versions = Table(title="traffic by version", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    rows = [version_row(v) for v in frame.versions]
    for column in ("version", "role", "healthy", "requested", "achieved", "req/s", "5xx", "p95", "source"):
        versions.add_column(column)
    for row in rows:
        versions.add_row(*row.values())
    parts.append(versions)
    members = Table(title="members", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("name", "version", "weight", "share", "health", "admin"):
        members.add_column(column)
    for m in view.members:
        members.add_row(m["name"], str(m["version"]), str(m["weight"]), f"{m['share']:.1f}%", m["health"], m["admin"])
    parts.append(members)
    if error:
        parts.append(Text(f"last sample failed: {error}", style="red"))
    if recent:
        parts.append(Text("\n".join(recent), style="dim"))
    return Group(*parts)


def _console(stream: TextIO):
    from rich.console import Console

    return Console(file=stream, highlight=False, soft_wrap=False)


# ---- plain lines (no terminal) -----------------------------------------------------------------------


def line(at: float, kind: str, message: str) -> str:
    return f"{rfc3339(at)} {kind:<8} {message}"


class Heartbeat:
    """Says what is being waited for when nothing else was said for `every` seconds (CD logs on a pipe)."""

    def __init__(self, every: float = HEARTBEAT, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self.last = clock()

    def spoke(self) -> None:
        self.last = self.clock()

    def due(self) -> bool:
        return self.clock() - self.last >= self.every


def frame_events(before: WatchFrame | None, after: WatchFrame) -> list[tuple[str, str]]:
    """The changes between two samples worth a line: a release starting, its state, step or reason."""
    old, new = (before.release if before else None), after.release
    if new is None:
        return [] if before is not None else [("status", release_line(after))]
    if old is None or old["id"] != new["id"]:
        return [("release", release_line(after))]
    events = []
    if (old["state"], old["step"]) != (new["state"], new["step"]):
        events.append(("step" if old["state"] == new["state"] else new["state"], release_line(after)))
    if old["reason"] != new["reason"]:
        events.append(("reason", new["reason"]))
    return events


def waiting_for(frame: WatchFrame | None, now: float) -> str:
    if frame is None or frame.release is None:
        return "waiting for a release to start"
    return f"waiting: {frame.release['reason'] or frame.release['step_description']}; {timing(frame, now)}"


# ---- `status --watch` --------------------------------------------------------------------------------


def watch_status(ectx, stream: TextIO | None = None, *, heartbeat: float = HEARTBEAT, tty: bool | None = None) -> tuple[int, WatchFrame | None]:
    """Watch until Ctrl-C (exit 0) or the end of the watched release (its exit code)."""
    stream = stream or sys.stderr
    tty = stream.isatty() if tty is None else tty
    _quiet_interrupt(ectx.stop)
    sampling = Sampling(WatchSampler(ectx)).start()
    code: int | None = None
    try:
        if tty:
            code = _watch_screen(sampling, ectx.stop, stream)
        else:
            code = _watch_lines(sampling, ectx.stop, stream, heartbeat)
    finally:
        sampling.stop()
    return (int(ExitCode.OK) if code is None else int(code)), sampling.latest


def _ended(sampling: Sampling) -> int | None:
    frame = sampling.latest
    if frame is None or frame.release is None:
        return None
    code = END_CODES.get(frame.release["state"])
    return None if code is None else int(code)


def _watch_screen(sampling: Sampling, stop, stream: TextIO) -> int | None:
    from rich.live import Live

    sampling.wait_first(2.0)
    with Live(screen(sampling.latest, time.time(), [], sampling.error), console=_console(stream),
              refresh_per_second=1 / REFRESH, transient=False, redirect_stdout=False) as live:
        while not stop.is_set:
            code = _ended(sampling)
            live.update(screen(sampling.latest, time.time(), [], sampling.error))
            if code is not None:
                return code
            _pause(stop, REFRESH)
    return None


def _watch_lines(sampling: Sampling, stop, stream: TextIO, every: float) -> int | None:
    beat = Heartbeat(every)
    seen: WatchFrame | None = None
    count = -1
    said_error: str | None = None
    while not stop.is_set:
        if sampling.error != said_error:
            said_error = sampling.error
            if said_error:
                stream.write(line(time.time(), "error", f"sample failed (trying again): {said_error}") + "\n")
                beat.spoke()
        if sampling.samples != count and sampling.latest is not None:
            count = sampling.samples
            for kind, message in frame_events(seen, sampling.latest):
                stream.write(line(time.time(), kind, message) + "\n")
                beat.spoke()
            seen = sampling.latest
        if beat.due():
            stream.write(line(time.time(), "wait", waiting_for(seen, time.time())) + "\n")
            beat.spoke()
        stream.flush()
        code = _ended(sampling)
        if code is not None:
            return code
        _pause(stop, REFRESH)
    return None


def _pause(stop, seconds: float) -> None:
    end = time.monotonic() + seconds
    while not stop.is_set and time.monotonic() < end:
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))


def _quiet_interrupt(stop) -> None:
    """Ctrl-C (or SIGTERM) ends a watch quietly: nothing is running that needs a safe point."""
    def handler(signum: int, _frame: object) -> None:
        stop.set(signal.Signals(signum).name)

    with contextlib.suppress(ValueError):  # not the main thread (in-process test runners)
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)


# ---- rollout, promote and rollback on a terminal -----------------------------------------------------


class LiveProgress:
    """The event sink of a release command on a terminal: events scroll above the live screen."""

    def __init__(self, sampling: Sampling, stream: TextIO) -> None:
        from rich.live import Live

        self.sampling = sampling
        self.recent: deque[str] = deque(maxlen=RECENT_EVENTS)
        self.live = Live(console=_console(stream), refresh_per_second=1 / REFRESH, transient=False,
                         redirect_stdout=False, get_renderable=self._renderable)

    def _renderable(self) -> Any:
        return screen(self.sampling.latest, time.time(), [], self.sampling.error)

    def __call__(self, event: Event) -> None:
        text = line(event.at, event.kind, event.message)
        self.recent.append(text)
        self.live.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        """Called by the command when it is done; the context manager stops the screen."""


@contextlib.contextmanager
def live_release(g, make_context: Callable[[], Any]) -> Iterator[None]:
    """While a release command runs with stderr on a terminal: the live screen instead of progress lines.
    `make_context` builds a read-only engine context of its own (before the command's, whose signal
    handlers then stay in force). Anything wrong with it: plain progress lines, the command reports it."""
    stream = sys.stderr
    if not stream.isatty() or os.environ.get(NO_LIVE_VARIABLE):
        yield
        return
    try:
        sampler = WatchSampler(make_context())
    except Exception:
        yield
        return
    sampling = Sampling(sampler).start()
    progress = LiveProgress(sampling, stream)
    saved = g.printer
    g.printer = progress
    progress.live.start()
    try:
        yield
    finally:
        try:
            progress.live.stop()
        finally:
            sampling.stop()
            g.printer = saved
