"""A pass reads the LB only when no pass saw it UP in the last LB_RECHECK seconds or after a pool write
(calls: issue 12), and a serving member whose health the pool cannot tell makes the pass look at once.
In process, memory provider, fake clock."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from releasectl.engine import reconcile
from releasectl.engine.context import EngineContext
from releasectl.engine.images import bake
from releasectl.engine.model import Analyze, Launch, Phase, Pipeline, Retire, SetWeight
from releasectl.engine.release import rollout
from releasectl.providers.base import Health, HealthCheck, LBStatus
from tests.fakes.memory import MemoryCloud, MemoryProvider, memory_engine

CHECK = HealthCheck(path="/healthz", expected_status=200, interval=1.0, timeout=1.0, rise=2, fall=2)
CANARY = Pipeline(name="c", steps=(Launch(), SetWeight(percent=50.0, hold=5.0), Analyze(duration=5.0, max_error_rate=1.0),
                                   SetWeight(percent=100.0), Retire(drain_timeout=0.0)))


class Counting(MemoryProvider):
    """Counts the LB reads and the member reads, and when each happened (engine clock)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lb_reads: list[float] = []
        self.member_reads = 0
        self.unknown_serving = False
        self.last: list = []

    def lb_state(self):
        self.lb_reads.append(self.cloud.clock.time())
        return super().lb_state()

    def list_members(self):
        """`unknown_serving`: as a dead HAProxy does, the last members seen, with health unknown."""
        self.member_reads += 1
        if self.unknown_serving:
            return [dataclasses.replace(m, health=Health.UNKNOWN) for m in self.last]
        self.last = super().list_members()
        return self.last


def make(tmp_path: Path) -> tuple[EngineContext, Counting, MemoryCloud]:
    return memory_engine(tmp_path, CHECK, provider_cls=Counting)


def test_a_canary_reads_the_lb_far_less_often_than_its_pool(tmp_path: Path) -> None:
    ctx, provider, _ = make(tmp_path)
    for version in ("1.0.0", "1.1.0"):
        bake(ctx, version)
    assert rollout(ctx, "1.0.0", CANARY).phase is Phase.SUCCEEDED
    provider.lb_reads.clear()
    provider.member_reads = 0
    assert rollout(ctx, "1.1.0", CANARY).phase is Phase.SUCCEEDED
    assert provider.member_reads >= 10  # passes through 10 s of hold and analysis
    assert len(provider.lb_reads) * 2 <= provider.member_reads


def test_a_serving_member_of_unknown_health_makes_the_pass_read_the_lb(tmp_path: Path, monkeypatch) -> None:
    """A dead HAProxy reports its last known members with health unknown: the pass looks at the LB at once
    instead of trusting an UP seen up to LB_RECHECK ago."""
    ctx, provider, cloud = make(tmp_path)
    bake(ctx, "1.0.0")
    assert rollout(ctx, "1.0.0", CANARY).phase is Phase.SUCCEEDED
    bake(ctx, "1.1.0")
    seen: list[LBStatus] = []
    holding: list[float] = []
    real_observe = reconcile.Runner.observe

    def observe(runner):
        if runner.release.step_index == 1:
            holding.append(runner.now())
        if len(holding) == 2 and not seen:  # the second pass of the hold at 50 % (the first read the LB after
            # the weight change): the LB dies, its pool says "unknown"
            assert runner._lb_up is not None and holding[1] - runner._lb_up[0] < reconcile.LB_RECHECK
            cloud.kill_lb("pool")
            provider.unknown_serving = True
        obs = real_observe(runner)
        if provider.unknown_serving:
            seen.append(obs.lb.status)
            provider.unknown_serving = False
        return obs

    monkeypatch.setattr(reconcile.Runner, "observe", observe)
    assert rollout(ctx, "1.1.0", CANARY).phase is Phase.SUCCEEDED
    assert seen[:1] == [LBStatus.DOWN]  # that very pass, not up to LB_RECHECK later; then restarted, and on
