"""Item 9 of issue 10 in `decide`: a first release skips its weight steps (but the last) and its analyses;
an analysis with fewer than `min_requests` follows its `inconclusive` policy."""

from __future__ import annotations

from dataclasses import replace

import pytest

from releasectl.engine.decide import Kind, decide
from releasectl.engine.model import Analyze, Launch, Pause, SetWeight
from releasectl.engine.transition import transition
from releasectl.providers.base import MemberStats
from tests.engine.test_decide import CANARY, NEW, NOW, healthy, live_old, member, obs, release

FIRST = obs(NEW, [member(s, 0) for s in NEW], health=healthy(*NEW))


@pytest.mark.parametrize("index", [1, 2], ids=["weight 10%", "analysis"])
def test_a_first_release_skips_weight_and_analysis_steps_and_says_so(index):
    decision = decide(FIRST, release(*CANARY, step_index=index, previous_version=None), NOW)
    assert decision.kind is Kind.ADVANCE and decision.skipped and "first release" in decision.reason


def test_a_first_release_still_does_its_last_weight_step_and_its_gates():
    last = decide(FIRST, release(*CANARY, step_index=3, previous_version=None), NOW)
    assert last.kind is Kind.ACT and not last.skipped  # weights to 100 %
    gate = release(Launch(), SetWeight(10), Pause(), SetWeight(100), CANARY[-1], step_index=2, previous_version=None)
    assert decide(FIRST, gate, NOW).kind is Kind.PAUSE  # a manual gate is a human's decision: kept


def test_a_release_with_an_old_fleet_skips_nothing():
    decision = decide(live_old(), release(*CANARY, step_index=1), NOW)
    assert decision.kind is Kind.ACT and not decision.skipped


def _window(policy: str, requests: int, now: float, deadline: float = 600.0):
    step = Analyze(60, 0.01, inconclusive=policy)
    rel = release(*CANARY[:2], step, *CANARY[3:], step_index=2, progress_deadline=deadline)
    base = {"ms3": MemberStats("ms3", 100, 0, 0), "ms4": MemberStats("ms4", 100, 0, 0)}
    rel = transition(rel, decide(replace(live_old(new_weight=11), stats=base), rel, NOW), NOW)
    after = {"ms3": MemberStats("ms3", 100 + requests, 0, 0), "ms4": MemberStats("ms4", 100, 0, 0)}
    return decide(replace(live_old(new_weight=11), stats=after), rel, now)


@pytest.mark.parametrize(
    "policy, requests, at, kind",
    [
        ("extend", 2, NOW + 60, Kind.WAIT),  # too few: the window stays open
        ("extend", 50, NOW + 90, Kind.ADVANCE),  # enough once extended
        ("extend", 2, NOW + 700, Kind.FAIL),  # still too few at the progress deadline
        ("fail", 2, NOW + 60, Kind.FAIL),
        ("pass", 2, NOW + 60, Kind.ADVANCE),
        ("fail", 50, NOW + 60, Kind.ADVANCE),  # enough: the policy does not matter
    ],
)
def test_inconclusive_policy(policy, requests, at, kind):
    decision = _window(policy, requests, at)
    assert decision.kind is kind, decision
    if requests < 50:
        assert "inconclusive" in decision.reason and "load balancer stats" in decision.reason
