"""One percentile (releasectl.loadgen.percentile, nearest rank) for the load generator and the engine's
`analyze.max_p95` gate, checked against an exact reference on many cases."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from releasectl.engine import health
from releasectl.loadgen import percentile

QUANTILES = (0, 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100)


def nearest_rank(values: list[float], q: float) -> float:
    """The textbook definition in exact arithmetic: the smallest value v with #{x <= v} / n >= q / 100."""
    ordered = sorted(values)
    wanted = Fraction(str(q)) / 100
    for i, v in enumerate(ordered):
        if Fraction(i + 1, len(ordered)) >= wanted:
            return v
    return ordered[-1]


def test_the_engine_uses_the_same_function():
    assert health.percentile is percentile


def test_matches_nearest_rank_on_every_size():
    """1,560 cases: sizes 1..120, 13 quantiles, values in descending order (order must not matter)."""
    wrong = []
    for n in range(1, 121):
        values = [float(v) for v in range(n, 0, -1)]
        wrong += [(n, q) for q in QUANTILES if percentile(values, q) != nearest_rank(values, q)]
    assert wrong == []


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=300),
       st.integers(min_value=0, max_value=10_000).map(lambda hundredths: hundredths / 100))
def test_matches_nearest_rank_on_random_samples(values, q):
    assert percentile(values, q) == nearest_rank(values, q)


def test_known_values():
    latencies = [0.010] * 90 + [0.300] * 10
    assert percentile(latencies, 95) == 0.300
    assert percentile(latencies, 90) == 0.010  # exactly 90% are at or below 10 ms
    assert percentile(list(range(1, 61)), 95) == 57  # 0.95 * 60 is 57.000000000000007 in floating point
    assert percentile([], 50) is None
