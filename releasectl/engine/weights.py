"""Traffic share -> integer member weights.

A share p for the new version across N new and M old members becomes one weight for every new member and
one for every old member, both in 0..max_weight, such that the achieved share N*wn / (N*wn + M*wo) is as
close to p as the integer range allows. Uniform weights inside a fleet keep every member equally loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

FULL_WEIGHT = 100  # the weight of a fleet that takes all traffic


@dataclass(frozen=True)
class WeightPlan:
    requested: float  # percent for the new fleet
    achieved: float  # percent the weights really give
    new_weight: int
    old_weight: int

    @property
    def error(self) -> float:
        return abs(self.achieved - self.requested)


def achieved_share(n_new: int, new_weight: int, n_old: int, old_weight: int) -> float:
    total = n_new * new_weight + n_old * old_weight
    return 100.0 * n_new * new_weight / total if total else 0.0


def plan_weights(percent: float, n_new: int, n_old: int, max_weight: int = 256) -> WeightPlan:
    """The weights closest to `percent` for the new fleet. Ties keep the larger weights (finer later steps)."""
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be within 0..100, got {percent}")
    full = min(FULL_WEIGHT, max_weight)
    if n_new == 0:
        return WeightPlan(percent, 0.0, 0, full)
    if n_old == 0:
        return WeightPlan(percent, 100.0, full, 0)
    if percent == 0:
        return WeightPlan(percent, 0.0, 0, full)
    if percent == 100:
        return WeightPlan(percent, 100.0, full, 0)
    p = percent / 100.0
    # Candidates: the all-or-nothing extremes, then for every old weight the integer neighbours of the exact
    # solution of n*wn / (n*wn + m*wo) = p. Iterating old weights downwards makes ties keep larger weights.
    candidates = [(0, full), (full, 0)]
    for old_weight in range(max_weight, 0, -1):
        ideal = p * n_old * old_weight / (n_new * (1.0 - p))
        candidates += [(min(max_weight, w), old_weight) for w in (int(ideal), int(ideal) + 1)]
    best: WeightPlan | None = None
    for new_weight, old_weight in candidates:
        plan = WeightPlan(percent, achieved_share(n_new, new_weight, n_old, old_weight), new_weight, old_weight)
        if best is None or plan.error < best.error - 1e-12:
            best = plan
    assert best is not None
    return best
