"""The waits on a release's critical path (issue 12): paced LB waits, parallel probes, no sleep after a
zero hold, open waits that look again soon but not before a probe is due. In process, on fake clocks."""

from __future__ import annotations

import threading
from pathlib import Path

from releasectl.engine.health import probe_all
from releasectl.engine.images import bake
from releasectl.engine.model import Launch, Phase, Pipeline, Retire, SetWeight
from releasectl.engine.release import rollout
from releasectl.providers.base import HealthCheck
from releasectl.wait import Pace, wait_for
from tests.fakes.clock import FakeClock
from tests.fakes.memory import memory_engine

CHECK = HealthCheck(path="/healthz", expected_status=200, interval=1.0, timeout=1.0, rise=2, fall=2)


def settles_at(clock: FakeClock, seconds: float):
    """A probe that passes once `seconds` have gone by on `clock` (an LB update of that length), and its looks."""
    start, looks = clock.monotonic(), []

    def probe() -> bool:
        looks.append(clock.monotonic() - start)
        return clock.monotonic() - start >= seconds

    return probe, looks


def test_a_paced_wait_sees_an_update_within_a_tenth_of_a_second_in_no_more_looks():
    clock, pace = FakeClock(), Pace()
    probe, first = settles_at(clock, 2.0)
    wait_for(probe, timeout=30, interval=1.0, max_interval=5.0, backoff=1.25, clock=clock, pace=pace)
    assert pace.last is not None and 2.0 <= pace.last < 2.7  # backing off from 0.2 s: seen late
    probe, second = settles_at(clock, 2.0)
    wait_for(probe, timeout=30, interval=1.0, max_interval=5.0, backoff=1.25, clock=clock, pace=pace)
    assert 2.0 <= second[-1] <= 2.0 + Pace.FINE + 1e-9
    assert len(second) <= len(first)
    assert second[1] < 2.0  # one look halfway: a faster update than last time is not slept through


def test_a_pace_follows_a_faster_update_and_falls_back_to_backoff_on_a_slower_one():
    clock, pace = FakeClock(), Pace(last=2.0)
    probe, looks = settles_at(clock, 1.0)
    wait_for(probe, timeout=30, interval=1.0, clock=clock, pace=pace)
    assert looks[-1] == 1.0 and pace.last == 1.0  # seen at the halfway look, and learnt
    probe, looks = settles_at(clock, 6.0)
    wait_for(probe, timeout=30, interval=1.0, max_interval=5.0, clock=clock, pace=pace)
    assert 6.0 <= looks[-1] < 8.0 and len(looks) < 25  # past LATE x last: backing off, not polling every 0.1 s


def test_a_wait_over_at_the_first_look_teaches_nothing():
    clock, pace = FakeClock(), Pace(last=2.0)
    wait_for(lambda: True, timeout=5, clock=clock, pace=pace)
    assert pace.last == 2.0


def test_probe_all_probes_a_fleet_at_once_and_keeps_its_order():
    servers = [f"s{i}" for i in range(6)]
    together = threading.Barrier(len(servers) - 1, timeout=10)  # the first probe runs alone, the rest at once

    def probe(server: str) -> str:
        if server != servers[0]:
            together.wait()  # BrokenBarrierError (the test fails) if they ran one by one
        return f"probed {server}"

    assert probe_all(probe, servers) == [f"probed {s}" for s in servers]
    assert probe_all(probe, []) == []


def test_a_zero_hold_ends_without_sleeping_a_poll(tmp_path: Path):
    events = []
    ctx, _, _ = memory_engine(tmp_path, CHECK, emit=events.append)
    blue_green = Pipeline(name="bg", steps=(Launch(), SetWeight(percent=100.0), Retire(drain_timeout=0.0)))
    for version in ("1.0.0", "1.1.0"):
        bake(ctx, version)
        assert rollout(ctx, version, blue_green).phase is Phase.SUCCEEDED
    held = [e for e in events if e.message.startswith("weight 100% verified; holding 0s")][-1]
    after = next(e for e in events[events.index(held) + 1:] if e.kind == "advance")
    assert after.at - held.at < 0.05  # was a whole poll interval (1 s)


def test_a_step_transition_is_recorded_before_the_next_step_acts(tmp_path: Path):
    """A runner killed while the next step acts resumes past the step that ended (its hold or analysis is not
    replayed): the advance is written before the action that follows at once, not left to that pass."""
    from releasectl.engine import records

    ctx, provider, _ = memory_engine(tmp_path, CHECK)
    two_steps = Pipeline(name="two", steps=(Launch(), SetWeight(percent=50.0, hold=1.0), SetWeight(percent=100.0),
                                            Retire(drain_timeout=0.0)))
    for version in ("1.0.0", "1.1.0"):
        bake(ctx, version)
    assert rollout(ctx, "1.0.0", two_steps).phase is Phase.SUCCEEDED
    recorded_at_write: list[int] = []
    set_weights = provider.set_weights

    def watched(weights):
        current = records.load_current(provider)
        recorded_at_write.append(current.step_index if current is not None and not current.phase.finished else -1)
        return set_weights(weights)

    provider.set_weights = watched
    assert rollout(ctx, "1.1.0", two_steps).phase is Phase.SUCCEEDED
    # each weight step's write happens with that step already in the record: 1 (50 %), then 2 (100 %)
    assert [i for i in recorded_at_write if i in (1, 2)][-2:] == [1, 2], recorded_at_write
