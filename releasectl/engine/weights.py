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
    best: WeightPlan | None = None
    p = percent / 100.0
    for old_weight in range(max_weight, 0, -1):
        # exact solution of n*wn / (n*wn + m*wo) = p for wn, then its integer neighbours
        ideal = p * n_old * old_weight / (n_new * (1.0 - p))
        for new_weight in {int(ideal), int(ideal) + 1}:
            if not 1 <= new_weight <= max_weight:
                continue
            plan = WeightPlan(percent, achieved_share(n_new, new_weight, n_old, old_weight), new_weight, old_weight)
            if best is None or plan.error < best.error - 1e-12:
                best = plan
    if best is None:  # share so small or large that even 1 vs max_weight overshoots: take the extreme
        extreme = (1, max_weight) if p < 0.5 else (max_weight, 1)
        best = WeightPlan(percent, achieved_share(n_new, extreme[0], n_old, extreme[1]), *extreme)
    return best
