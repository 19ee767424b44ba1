"""Chaos: kill -9 releasectl at 20+ distinct points of rollouts and rollbacks (six walks) while load flows through the
LB, then resume, abort or roll back. The invariants: exactly one version live, traffic served throughout
(0 failed requests), no orphaned server or member, and the lock released.

A run is killed on the first decision line that follows an `act` or `advance` line: such a line is only
printed once that action (or step change) has completed and been recorded, and the action it announces is
cut at an arbitrary moment (before, during or after its provider call). Each kill therefore lands at least
one action further, so a sequence of kills walks through the whole release.
"""

from __future__ import annotations

from tests.integration.conftest import Watch
from tests.integration.procs import kill_walk
from tests.integration.test_crash_safety import assert_converged


def test_kill_9_at_twenty_points_converges_with_zero_failed_requests(live_100):
    ws = live_100
    points: list[str] = []
    with Watch(ws, max_seconds=420, max_requests=400_000) as watch:
        # 1. a canary 1.0.0 -> 1.1.0, killed over and over, resumed each time
        ws.bake("1.1.0")
        code = kill_walk(ws, ["rollout", "1.1.0", "--pipeline", "canary-fast.yaml"], [["rollout", "--resume"]], points, "canary")
        assert code == 0
        assert_converged(ws, "1.1.0")

        # 2. a broken 1.2.0: the automatic rollback itself is killed over and over, resumed each time
        ws.bake("1.2.0", broken=True)
        code = kill_walk(ws, ["rollout", "1.2.0", "--pipeline", "canary-fast.yaml"], [["rollout", "--resume"]], points, "auto-rollback")
        assert code == 1
        assert_converged(ws, "1.1.0")

        # 3. a blue-green 1.3.0 killed once mid-way, then undone with abort, itself killed and resumed
        ws.bake("1.3.0")
        code = kill_walk(ws, ["rollout", "1.3.0", "--pipeline", "bluegreen-fast.yaml"], [["abort"]], points, "abort", max_kills=3)
        if code != 0:  # the abort run was killed too: finish it
            code = kill_walk(ws, ["abort"], [["abort"]], points, "abort")
        assert_converged(ws, "1.1.0")

        # 4. a manual rollback to 1.0.0 (relaunch), killed over and over, resumed each time
        code = kill_walk(ws, ["rollback"], [["rollout", "--resume"]], points, "rollback")
        assert code == 0
        assert_converged(ws, "1.0.0")

        # 5. a blue-green of 1.1.0 again, killed over and over, resumed each time: with lean passes (issue 12) a
        # release has fewer decision lines than before, and this walk's are its own points
        code = kill_walk(ws, ["rollout", "1.1.0", "--pipeline", "bluegreen-fast.yaml"], [["rollout", "--resume"]], points, "blue-green")
        assert code == 0
        assert_converged(ws, "1.1.0")

        # 6. a canary to 1.3.0 beside the warm fleet the blue-green kept, killed over and over, resumed each time
        code = kill_walk(ws, ["rollout", "1.3.0", "--pipeline", "canary-fast.yaml"], [["rollout", "--resume"]], points, "canary beside a warm fleet")
        assert code == 0
        assert_converged(ws, "1.3.0")
    watch.assert_served_throughout()
    distinct = sorted(set(points))
    print(f"\nchaos: {len(points)} kills at {len(distinct)} distinct points; load: {dict(watch.responses)}, failed: {dict(watch.failures)}")
    for point in distinct:
        print(f"  {point}")
    assert len(distinct) >= 20, distinct
