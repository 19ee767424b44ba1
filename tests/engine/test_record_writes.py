"""The release record is written before each action, at the end and on intents, not per step or wait
(issue 12), and a runner killed while a change is pending resumes from the world: it holds, analyses or
drains again, in full, and never re-applies an action a later step overrode. In process, on a fake clock."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from releasectl.engine import records
from releasectl.engine.context import EngineContext
from releasectl.engine.images import bake
from releasectl.engine.model import Analyze, Launch, Phase, Pipeline, Release, Retire, SetWeight
from releasectl.engine.reconcile import RECORD_LAG
from releasectl.engine.release import rollout
from releasectl.providers.base import HealthCheck
from tests.fakes.memory import Crash, MemoryProvider, memory_engine

CHECK = HealthCheck(path="/healthz", expected_status=200, interval=1.0, timeout=1.0, rise=2, fall=2)
CANARY = Pipeline(name="canary", steps=(
    Launch(), SetWeight(percent=10.0, hold=1.0), Analyze(duration=1.0, max_error_rate=0.01, min_requests=0),
    SetWeight(percent=50.0, hold=1.0), Analyze(duration=1.0, max_error_rate=0.01, min_requests=0),
    SetWeight(percent=100.0), Retire(drain_timeout=1.0),
))
FIRST = Pipeline(name="first", steps=(Launch(), SetWeight(percent=100.0), Retire(drain_timeout=0.0)))


class Writes(MemoryProvider):
    """Counts the writes of the current record, and the step each pool write finds recorded."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.record_writes = 0
        self.weights_at: list[tuple[int, dict]] = []
        self.written: list[tuple[float, Release]] = []  # (when, what) of each write of the current record

    def write_record(self, key: str, data: str) -> None:
        if key == records.CURRENT:
            self.record_writes += 1
            self.written.append((self.cloud.clock.time(), Release.from_json(data)))
        super().write_record(key, data)

    def set_weights(self, weights):
        current = records.load_current(self)
        self.weights_at.append((current.step_index if current and not current.phase.finished else -1, dict(weights)))
        return super().set_weights(weights)


def live_100(tmp_path: Path, emit=None) -> tuple[EngineContext, Writes, object]:
    ctx, _, cloud = memory_engine(tmp_path, CHECK, provider_cls=Writes, emit=emit)
    for version in ("1.0.0", "1.1.0"):
        bake(ctx, version)
    assert rollout(ctx, "1.0.0", FIRST).phase is Phase.SUCCEEDED
    ctx.provider.record_writes = 0
    ctx.provider.weights_at.clear()
    return ctx, ctx.provider, cloud


def test_a_canary_with_short_holds_writes_its_record_once_per_action_step_and_at_the_end(tmp_path: Path):
    ctx, provider, _ = live_100(tmp_path)
    rel = rollout(ctx, "1.1.0", CANARY)
    assert rel.phase is Phase.SUCCEEDED
    # start; before the 10 %, 50 % and 100 % weights; before the retire's pool write; the end. The holds,
    # analyses and the drain (each shorter than RECORD_LAG) ride along with the write-ahead of the next action
    assert provider.record_writes <= 7, provider.record_writes
    stored = records.load_current(provider)
    assert stored.phase is Phase.SUCCEEDED and stored.step_index == len(CANARY.steps)
    assert [e["message"] for e in stored.events if e["message"].startswith("step ")] == [
        e["message"] for e in rel.events if e["message"].startswith("step ")]  # every step transition is kept
    # each weight step's pool write finds that step in the record already (write-ahead)
    assert [i for i, _ in provider.weights_at if i in (1, 3, 5)] == [1, 3, 5], provider.weights_at


def test_a_long_hold_is_recorded_as_it_starts(tmp_path: Path):
    """`status` and `watch` read the record: a hold longer than RECORD_LAG shows its end as it starts."""
    ctx, provider, _ = live_100(tmp_path)
    hold = RECORD_LAG * 4
    pipeline = Pipeline(name="long", steps=(Launch(), SetWeight(percent=50.0, hold=hold), SetWeight(percent=100.0),
                                            Retire(drain_timeout=0.0)))
    assert rollout(ctx, "1.1.0", pipeline).phase is Phase.SUCCEEDED
    holding = [(at, rel) for at, rel in provider.written if rel.step_index == 1 and rel.wake_at is not None]
    assert holding, [(at, r.step_index, r.wake_at) for at, r in provider.written]
    at, rel = holding[0]
    started = rel.wake_at - hold
    assert at - started <= CHECK.interval, (at - started)  # its first pass (no later than one poll)


@pytest.mark.parametrize("kind, point, step", [("wait", "analysing for", 1), ("step", "step 7/7", 5)])
def test_a_runner_killed_with_a_change_pending_resumes_from_the_world(tmp_path: Path, kind: str, point: str, step: int):
    """Killed (kill -9: no flush) as the first analysis starts, when neither its start nor the end of the hold
    before it was written, or as the retire step starts (its transition not written): the record still says
    the step whose action was applied (10 %, 100 %); the resumed run finds the weights in place, holds again
    in full, and finishes without setting again a weight of the recorded step."""
    events = []
    ctx, provider, cloud = live_100(tmp_path, emit=events.append)

    def kill_at_point(event) -> None:
        events.append(event)
        if event.kind == kind and event.message.startswith(point) and not provider.dead:
            provider._die()

    with pytest.raises(Crash):
        rollout(dataclasses.replace(ctx, emit=kill_at_point), "1.1.0", CANARY)
    fresh = Writes(provider.ctx, cloud)
    stored = records.load_current(fresh)
    assert stored.phase is Phase.PROGRESSING and stored.step_index == step, (stored.phase, stored.step_index)
    applied = [w for _, w in provider.weights_at]

    resumed_at = cloud.clock.time()
    events.clear()
    rel = rollout(dataclasses.replace(ctx, provider=fresh, emit=events.append), None, CANARY, resume=True)
    assert rel.phase is Phase.SUCCEEDED
    # the step recorded is done again from the world: no weight of that step is set again...
    first_steps = [i for i, _ in fresh.weights_at]
    assert step not in first_steps, fresh.weights_at
    # ...and its hold (or drain) is waited in full after the resume
    ended = next(e for e in events if e.kind == "advance")
    wait = CANARY.steps[step].hold if step == 1 else 0.0
    assert ended.at - resumed_at >= wait, (ended.at - resumed_at, wait)
    assert applied, "the killed run applied its step's weights"


def test_a_passed_analysis_is_recorded_at_once_and_never_replayed(tmp_path: Path):
    """An analysis's verdict is not in the world: a runner killed as the next step starts resumes past it."""
    events = []
    ctx, provider, cloud = live_100(tmp_path, emit=events.append)

    def kill_after_the_analysis(event) -> None:
        if event.kind == "step" and event.message.startswith("step 4/7") and not provider.dead:
            provider._die()

    with pytest.raises(Crash):
        rollout(dataclasses.replace(ctx, emit=kill_after_the_analysis), "1.1.0", CANARY)
    fresh = Writes(provider.ctx, cloud)
    assert records.load_current(fresh).step_index == 3
    rel = rollout(dataclasses.replace(ctx, provider=fresh, emit=events.append), None, CANARY, resume=True)
    assert rel.phase is Phase.SUCCEEDED
    analyses = [e for e in rel.events if e["message"].startswith("step 3 done: analysis passed")]
    assert len(analyses) == 1, [e["message"] for e in rel.events]
