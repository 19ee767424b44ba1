"""Weight math: property-based, against a brute-force search on small ranges."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from releasectl.engine.weights import achieved_share, plan_weights

percent = st.floats(min_value=0, max_value=100, allow_nan=False)
count = st.integers(min_value=1, max_value=40)


@given(percent, count, count)
def test_weights_in_range_and_share_reported_truthfully(p, n, m):
    plan = plan_weights(p, n, m)
    assert 0 <= plan.new_weight <= 256 and 0 <= plan.old_weight <= 256
    assert plan.new_weight + plan.old_weight > 0
    assert plan.achieved == pytest.approx(achieved_share(n, plan.new_weight, m, plan.old_weight))
    assert plan.requested == p


@given(percent, count, count)
def test_reachable_shares_are_met_within_one_point(p, n, m):
    # between the smallest and the largest non-trivial share the weights can express, they always get
    # within one point; outside it (e.g. 97 % with 1 new vs 11 old: at most 256/267 = 95.9 %) the engine
    # refuses the step against rollout.weight_tolerance instead
    lowest, highest = achieved_share(n, 1, m, 256), achieved_share(n, 256, m, 1)
    if lowest <= p <= highest or p in (0, 100):
        assert plan_weights(p, n, m).error <= 1.0


def test_a_share_the_weights_cannot_reach_is_reported_not_hidden():
    # 40 new vs 1 old: the smallest non-zero share is 40/(40+256) = 13.5 %, so 5 % is out of reach
    plan = plan_weights(5, 40, 1)
    assert plan.error > 1.0 and plan.achieved in (0.0, pytest.approx(100 * 40 / 296))


@settings(max_examples=60)
@given(percent, st.integers(1, 4), st.integers(1, 4), st.integers(2, 12))
def test_no_better_integer_weights_exist(p, n, m, max_weight):
    plan = plan_weights(p, n, m, max_weight=max_weight)
    best = min(
        abs(achieved_share(n, wn, m, wo) - p)
        for wn in range(max_weight + 1)
        for wo in range(max_weight + 1)
        if wn + wo > 0
    )
    assert plan.error <= best + 1e-9


@given(count, count)
def test_extremes(n, m):
    assert plan_weights(0, n, m).new_weight == 0 and plan_weights(0, n, m).achieved == 0
    assert plan_weights(100, n, m).old_weight == 0 and plan_weights(100, n, m).achieved == 100


def test_no_old_fleet_takes_everything_and_says_so():
    plan = plan_weights(10, 3, 0)
    assert plan.achieved == 100 and plan.old_weight == 0 and plan.error == 90


def test_canary_examples():
    assert plan_weights(10, 2, 2).achieved == pytest.approx(10, abs=0.05)
    assert plan_weights(50, 3, 3).achieved == 50
    with pytest.raises(ValueError):
        plan_weights(101, 1, 1)
