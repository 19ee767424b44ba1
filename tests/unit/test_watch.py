"""The live view's pieces, fast and in-process: samples on the in-memory provider (fake clock), the screen
rendered to text, the lines and heartbeats without a terminal, and the progress printer's heartbeat."""

from __future__ import annotations

import io
import re
import time

from releasectl.cli.render import ProgressPrinter
from releasectl.cli.watch import Heartbeat, frame_events, screen, version_row, waiting_for
from releasectl.engine.events import Event
from releasectl.engine.status import WatchSampler, requested_share


def sampler_of(memory_project):
    """A WatchSampler on the project's memory cloud, as `status --watch` builds it."""
    from releasectl.cli.runtime import Globals, engine_context

    g = Globals(config=memory_project.path / "releasectl.yaml", printer=ProgressPrinter(io.StringIO()))
    return WatchSampler(engine_context(g, writes=False))


def test_samples_show_steps_weights_rates_and_time_left(memory_project):
    assert memory_project("rollout", "1.0.0")[0] == 0
    assert memory_project("rollout", "1.1.0", "--pipeline", "canary-manual")[0] == 4
    sampler = sampler_of(memory_project)
    first = sampler.sample()
    assert first.release["version"] == "1.1.0" and first.release["state"] == "paused"
    assert first.steps and first.step_index is not None and first.steps[first.step_index].startswith("pause")
    by_version = {v.version: v for v in first.versions}
    new, old = by_version["1.1.0"], by_version["1.0.0"]
    assert (new.role, old.role) == ("new", "old")
    assert new.requested_pct + old.requested_pct == 100 and 0 < new.requested_pct < 100
    assert abs(new.achieved_pct - new.requested_pct) <= 1.0
    assert new.request_rate is None  # one sample: no interval yet
    memory_project.clock.advance(5.0)
    second = {v.version: v for v in sampler.sample().versions}
    assert second["1.0.0"].request_rate > 0 and second["1.1.0"].request_rate > 0
    assert second["1.1.0"].error_rate == 0.0 and second["1.1.0"].rate_source
    text = render(sampler.sample(), memory_project.clock.time())
    assert re.search(r"1\.1\.0\s+new\s+2/2\s+\d+%\s+[\d.]+%", text), text
    assert ">>" in text and "time left in step" in text


def test_requested_share_follows_the_pipeline(memory_project):
    from releasectl.engine import records

    assert memory_project("rollout", "1.0.0")[0] == 0
    assert memory_project("rollout", "1.1.0", "--pipeline", "canary-manual")[0] == 4
    rel = records.load_current(sampler_of(memory_project).ctx.provider)
    weights = [s.percent for s in rel.pipeline.steps[: rel.step_index + 1] if hasattr(s, "percent")]
    assert requested_share(rel) == weights[-1]
    assert memory_project("promote", "--full")[0] == 0
    assert requested_share(records.load_current(sampler_of(memory_project).ctx.provider)) == 100.0


def test_lines_without_a_terminal(memory_project):
    assert memory_project("rollout", "1.0.0")[0] == 0
    sampler = sampler_of(memory_project)
    idle = sampler.sample()
    assert idle.release is None
    assert [kind for kind, _ in frame_events(None, idle)] == ["status"]
    assert waiting_for(idle, time.time()) == "waiting for a release to start"
    assert memory_project("rollout", "1.1.0", "--pipeline", "canary-manual")[0] == 4
    started = sampler.sample()
    assert [kind for kind, _ in frame_events(idle, started)] == ["release"]
    assert frame_events(started, started) == []
    assert memory_project("abort")[0] == 0
    ended = sampler.sample()
    assert ended.release["state"] == "aborted"
    assert "aborted" in [kind for kind, _ in frame_events(started, ended)]


def test_heartbeat_is_due_after_its_interval():
    now = [100.0]
    beat = Heartbeat(30.0, clock=lambda: now[0])
    assert not beat.due()
    now[0] += 29.9
    assert not beat.due()
    now[0] += 0.2
    assert beat.due()
    beat.spoke()
    assert not beat.due()


def test_progress_printer_says_what_it_waits_for_when_quiet():
    stream = io.StringIO()
    printer = ProgressPrinter(stream, live=False, heartbeat=0.2)
    printer(Event("wait", "holding at 10% until 2026-12-06T03:03:33Z", at=1.0))
    deadline = time.monotonic() + 10
    while "still waiting" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)  # polling for the heartbeat's line, bounded
    printer.close()
    printer._beat.join(timeout=5)
    assert not printer._beat.is_alive()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("1970-01-01T00:00:01Z wait ")
    beats = [line for line in lines if "still waiting" in line]
    assert beats and "holding at 10% until 2026-12-06T03:03:33Z" in beats[0]
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z waiting ", beats[0])


def render(frame, now: float) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200, record=True, color_system=None)
    console.print(screen(frame, now, []))
    return console.export_text()


def test_version_row_words():
    from releasectl.engine.status import VersionFigures

    row = version_row(VersionFigures("1.1.0", "new", 2, 1, 10.0, 9.8, 12.345, 0.015, 7.25, "HAProxy stats", "releasectl probes"))
    assert row == {"version": "1.1.0", "role": "new", "healthy": "1/2", "requested": "10%", "achieved": "9.8%",
                   "req/s": "12.3", "5xx": "1.50%", "p95": "7.2ms", "source": "HAProxy stats; p95: releasectl probes"}


def test_without_lb_counters_errors_come_from_probes_and_say_so(memory_project, monkeypatch):
    """Octavia has no per-member counters: the error rate is that of releasectl's probes, labelled so."""
    from tests.fakes.memory import MemoryProvider

    assert memory_project("rollout", "1.0.0")[0] == 0
    sampler = sampler_of(memory_project)
    monkeypatch.setattr(MemoryProvider, "member_stats", lambda self: {})
    figures = sampler.sample().versions
    assert figures and all(v.request_rate is None for v in figures)
    assert all(v.rate_source.startswith("releasectl probes") and v.error_rate == 0.0 for v in figures)
