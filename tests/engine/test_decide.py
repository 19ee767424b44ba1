"""Table tests of the pure `decide`: plain Observed and Release values, a fake `now`, no provider.

Each case is one situation of one step kind and the decision it must produce; a 2-hour hold is tested by
moving `now`, not by waiting. The last test proves `decide` does no provider I/O: it imports the module in
a subprocess with the provider packages blocked.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from releasectl.engine.actions import (
    AddMembers,
    DrainMembers,
    LaunchServers,
    RelabelServers,
    RemoveMembers,
    ReplaceBroken,
    RestartLB,
    SetWeights,
    StopServers,
)
from releasectl.engine.decide import Kind, Policy, decide, restore_release_id
from releasectl.engine.health import HealthView, StreakView
from releasectl.engine.invariants import check
from releasectl.engine.model import Analyze, Launch, Pause, Phase, Pipeline, Release, ReleaseKind, Retire, SetWeight
from releasectl.engine.observe import Observed
from releasectl.engine.transition import transition
from releasectl.providers.base import (
    AdminState,
    Health,
    Image,
    ImageStatus,
    LBState,
    LBStatus,
    Member,
    MemberStats,
    Role,
    Server,
    ServerStatus,
)

NOW = 1_000_000.0
HOUR = 3600.0
RID = "rel0000001"


def server(n: int, version: str, role: Role, release: str, status: ServerStatus = ServerStatus.ACTIVE, app: str = "shop") -> Server:
    return Server(
        id=f"s{n}", name=f"{app}-{version}-{n}", app=app, version=version, env="production", role=role,
        release_id=release, status=status, address="127.0.0.1", port=9000 + n, fault="boom" if status is ServerStatus.ERROR else None,
    )


def member(s: Server, weight: int, health: Health = Health.HEALTHY, admin: AdminState = AdminState.READY,
           sessions: int | None = 0) -> Member:
    return Member(id=f"m{s.id}", name=s.name, address=s.address, port=s.port, weight=weight, admin=admin,
                  health=health, sessions=sessions, server_id=s.id, version=s.version, app=s.app, env="production")


def healthy(*servers: Server, rise: int = 2) -> HealthView:
    return HealthView(rise=rise, fall=2, streaks=tuple((s.id, StreakView(ok=rise, last="HTTP 200")) for s in servers))


def release(*steps, step_index: int = 0, **kw) -> Release:
    base = dict(
        id=RID, app="shop", env="production", kind=ReleaseKind.ROLLOUT, version="1.1.0", image_id="img-110",
        previous_version="1.0.0", pipeline=Pipeline("t", tuple(steps)), count=2, step_index=step_index,
        step_started_at=NOW - 1, started_at=NOW - 10,
    )
    base.update(kw)
    return Release(**base)


OLD = [server(1, "1.0.0", Role.STABLE, "old"), server(2, "1.0.0", Role.STABLE, "old")]
NEW = [server(3, "1.1.0", Role.CANDIDATE, RID), server(4, "1.1.0", Role.CANDIDATE, RID)]
CANARY = (Launch(), SetWeight(10, hold=2 * HOUR), Analyze(60, 0.01), SetWeight(100), Retire(drain_timeout=30))


def obs(servers, members, **kw) -> Observed:
    return Observed(servers=tuple(servers), members=tuple(members), **kw)


def live_old(new_weight: int = 0, old_weight: int = 100, health: Health = Health.HEALTHY) -> Observed:
    members = [member(s, old_weight) for s in OLD] + [member(s, new_weight, health) for s in NEW]
    return obs(OLD + NEW, members, health=healthy(*NEW))


# ---- launch -------------------------------------------------------------------------------------------


LAUNCH_CASES = [
    ("launches the first server", obs(OLD, [member(s, 100) for s in OLD]), Kind.ACT, LaunchServers),
    ("launches the second", obs(OLD + NEW[:1], [member(s, 100) for s in OLD]), Kind.ACT, LaunchServers),
    ("waits for a boot", obs(OLD + [replace(n, status=ServerStatus.BUILDING) for n in NEW], [member(s, 100) for s in OLD]), Kind.WAIT, None),
    ("adds a member at weight 0", obs(OLD + NEW, [member(s, 100) for s in OLD]), Kind.ACT, AddMembers),
    ("replaces a broken server", obs(OLD + [NEW[0], replace(NEW[1], status=ServerStatus.ERROR)], []), Kind.ACT, ReplaceBroken),
    ("gates on our probes", obs(OLD + NEW, [member(s, 100) for s in OLD] + [member(s, 0) for s in NEW], asserted=frozenset({"s3", "s4"})), Kind.WAIT, None),
    ("advances once healthy", live_old(), Kind.ADVANCE, None),
]


@pytest.mark.parametrize("name, observed, kind, action", LAUNCH_CASES, ids=[c[0] for c in LAUNCH_CASES])
def test_launch(name, observed, kind, action):
    decision = decide(observed, release(*CANARY), NOW)
    assert decision.kind is kind, decision
    assert (type(decision.action) if decision.action else None) is action


def test_launch_names_are_derived_so_a_retried_create_finds_the_server():
    observed = obs(OLD, [member(s, 100) for s in OLD])
    first, again = decide(observed, release(*CANARY), NOW), decide(observed, release(*CANARY), NOW + 5)
    assert first.action == again.action and {spec.release_id for spec in first.action.specs} == {RID}


def test_start_failures_are_bounded_then_fail_the_release():
    broken = obs(OLD + [replace(NEW[0], status=ServerStatus.ERROR, fault="boom")], [member(s, 100) for s in OLD])
    assert decide(broken, release(*CANARY, relaunches=1), NOW).kind is Kind.ACT
    failed = decide(broken, release(*CANARY, relaunches=2), NOW)
    assert failed.kind is Kind.FAIL and "boom" in failed.reason


def test_launch_past_the_progress_deadline_fails():
    observed = obs(OLD + NEW, [member(s, 100) for s in OLD] + [member(s, 0, Health.UNKNOWN) for s in NEW],
                   asserted=frozenset({"s3", "s4"}))
    decision = decide(observed, release(*CANARY, step_started_at=NOW - 601), NOW)
    assert decision.kind is Kind.FAIL and "progress deadline" in decision.reason


def test_a_warm_server_of_the_same_version_is_adopted():
    warm = server(5, "1.1.0", Role.PREVIOUS, "older")
    decision = decide(obs(OLD + [warm], [member(s, 100) for s in OLD]), release(*CANARY), NOW)
    assert isinstance(decision.action, RelabelServers) and decision.action.server_ids == ("s5",)


# ---- weights and holds ---------------------------------------------------------------------------------


def test_a_two_hour_hold_in_microseconds():
    rel = release(*CANARY, step_index=1)
    first = decide(live_old(), rel, NOW)
    assert first.kind is Kind.ACT and isinstance(first.action, SetWeights)
    weights = dict(first.action.weights)
    assert weights["ms3"] == weights["ms4"] and 100 * weights["ms3"] / (weights["ms3"] + weights["ms1"]) == pytest.approx(10, abs=1)
    weighted = obs(OLD + NEW, [member(s, weights[f"m{s.id}"]) for s in OLD + NEW], health=healthy(*NEW))
    start = decide(weighted, rel, NOW)
    assert start.kind is Kind.WAIT and start.wake_at == NOW + 2 * HOUR
    rel = transition(rel, start, NOW)
    assert rel.wake_at == NOW + 2 * HOUR
    assert decide(weighted, rel, NOW + 2 * HOUR - 0.001).kind is Kind.WAIT
    done = decide(weighted, rel, NOW + 2 * HOUR)
    assert done.kind is Kind.ADVANCE
    rel = transition(rel, done, NOW + 2 * HOUR)
    assert rel.step_index == 2 and rel.wake_at is None and rel.step_started_at == NOW + 2 * HOUR


def test_an_unhealthy_new_member_during_a_hold_fails_the_release():
    decision = decide(live_old(new_weight=11, health=Health.UNHEALTHY), release(*CANARY, step_index=1), NOW)
    assert decision.kind is Kind.FAIL and "unhealthy" in decision.reason


def test_abort_requested_fails_at_once():
    decision = decide(live_old(new_weight=11), release(*CANARY, step_index=1, abort_requested=True), NOW)
    assert decision.kind is Kind.FAIL and decision.reason == "aborted by operator"


def test_a_pause_intent_pauses():
    rel = release(*CANARY, step_index=1)
    rel.pause_requested = True  # set by engine.intents.fold once it exists
    assert decide(live_old(new_weight=11), rel, NOW).kind is Kind.PAUSE


# ---- pause and analysis --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "promoted, kind", [(None, Kind.PAUSE), (2, Kind.ADVANCE)], ids=["gate closed", "gate opened by promote"]
)
def test_manual_gate(promoted, kind):
    rel = release(Launch(), SetWeight(10), Pause(), SetWeight(100), Retire(), step_index=2, promoted_step=promoted)
    assert decide(live_old(new_weight=11), rel, NOW).kind is kind


def test_analysis_takes_a_baseline_then_judges_the_window():
    rel = release(*CANARY, step_index=2)
    stats = {"ms3": MemberStats("ms3", 100, 0, 0), "ms4": MemberStats("ms4", 100, 0, 0)}
    start = decide(replace(live_old(new_weight=11), stats=stats), rel, NOW)
    assert start.kind is Kind.WAIT and start.reset_window and start.baseline["ms3"]["requests"] == 100
    rel = transition(rel, start, NOW)
    bad = {"ms3": MemberStats("ms3", 200, 50, 0), "ms4": MemberStats("ms4", 200, 0, 0)}
    verdict = decide(replace(live_old(new_weight=11), stats=bad), rel, NOW + 60)
    assert verdict.kind is Kind.FAIL and "analysis failed" in verdict.reason
    good = {"ms3": MemberStats("ms3", 200, 0, 0), "ms4": MemberStats("ms4", 200, 0, 0)}
    assert decide(replace(live_old(new_weight=11), stats=good), rel, NOW + 60).kind is Kind.ADVANCE


# ---- retire --------------------------------------------------------------------------------------------


def test_retire_drains_waits_removes_then_stops():
    rel = release(*CANARY, step_index=4)
    weighted = live_old(new_weight=100, old_weight=100)
    assert isinstance(decide(weighted, rel, NOW).action, DrainMembers)
    drained = live_old(new_weight=100, old_weight=0)
    drained = replace(drained, members=tuple(replace(m, sessions=3) if m.server_id in ("s1", "s2") else m for m in drained.members))
    start = decide(drained, rel, NOW)
    assert start.kind is Kind.WAIT and start.wake_at == NOW + 30
    rel = transition(rel, start, NOW)
    assert decide(drained, rel, NOW + 1).kind is Kind.WAIT  # sessions still open
    remove = decide(drained, rel, NOW + 30)  # the drain timeout passed
    assert remove.action == RemoveMembers(("ms1", "ms2"))  # the whole fleet in one LB change
    gone = obs(OLD + NEW, [member(s, 100) for s in NEW], health=healthy(*NEW))
    stop = decide(gone, rel, NOW + 31)
    assert stop.action == StopServers(("s1", "s2")) and stop.clear_wake


def test_a_drain_that_finds_the_members_idle_removes_them_without_waiting():
    rel = release(*CANARY, step_index=4)
    idle = live_old(new_weight=100, old_weight=0)  # drained, 0 sessions at the first look
    decision = decide(idle, rel, NOW)
    assert decision.action == RemoveMembers(("ms1", "ms2"))


def test_finalize_marks_stable_then_done():
    rel = release(*CANARY, step_index=5)
    only_new = obs(NEW, [member(s, 100) for s in NEW])
    assert isinstance(decide(only_new, rel, NOW).action, RelabelServers)
    stable = [replace(s, role=Role.STABLE) for s in NEW]
    done = decide(obs(stable, [member(s, 100) for s in stable]), rel, NOW)
    assert done.kind is Kind.DONE
    assert transition(rel, done, NOW).phase is Phase.SUCCEEDED


# ---- the load balancer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status, kind", [(LBStatus.DOWN, Kind.ACT), (LBStatus.ABSENT, Kind.ACT), (LBStatus.ERROR, Kind.HALT)])
def test_lb_down_is_restarted_within_one_pass_and_error_halts(status, kind):
    for step_index in range(len(CANARY)):
        decision = decide(obs([], [], lb=LBState(status, "haproxy pid 42 is gone")), release(*CANARY, step_index=step_index), NOW)
        assert decision.kind is kind
        if kind is Kind.ACT:
            assert isinstance(decision.action, RestartLB)


# ---- rollback ------------------------------------------------------------------------------------------


def rolling_back(**kw) -> Release:
    return release(*CANARY, step_index=5, phase=Phase.ROLLING_BACK, rollback_outcome="aborted", **kw)


def test_rollback_with_the_old_fleet_moves_traffic_back_first():
    decision = decide(live_old(new_weight=100, old_weight=0), rolling_back(), NOW)
    assert isinstance(decision.action, SetWeights)
    assert dict(decision.action.weights) == {"ms1": 100, "ms2": 100, "ms3": 0, "ms4": 0}


IMAGES = (Image("img-100", "shop-1.0.0", "shop", "1.0.0", ImageStatus.ACTIVE, 0.0),)


def test_rollback_after_retirement_relaunches_the_previous_version_before_removing_anything():
    """The outage of issue 8: abort after the old fleet was retired must not remove the only serving fleet."""
    only_new = obs(NEW, [member(s, 100) for s in NEW], health=healthy(*NEW), images=IMAGES)
    rel = rolling_back()
    first = decide(only_new, rel, NOW)
    assert isinstance(first.action, LaunchServers) and len(first.action.specs) == 2  # the whole fleet at once
    spec = first.action.specs[0]
    assert spec.version == "1.0.0" and spec.image_id == "img-100" and spec.release_id == restore_release_id(rel)
    restore = [server(7, "1.0.0", Role.CANDIDATE, restore_release_id(rel)), server(8, "1.0.0", Role.CANDIDATE, restore_release_id(rel))]
    not_ready = obs(NEW + restore, [member(s, 100) for s in NEW] + [member(s, 0, Health.UNKNOWN) for s in restore],
                    images=IMAGES, asserted=frozenset({"s7", "s8"}))
    assert decide(not_ready, rel, NOW).kind is Kind.WAIT  # gated on health: nothing moves yet
    ready = obs(NEW + restore, [member(s, 100) for s in NEW] + [member(s, 0) for s in restore],
                images=IMAGES, health=healthy(*restore))
    shift = decide(ready, rel, NOW)
    assert dict(shift.action.weights) == {"ms3": 0, "ms4": 0, "ms7": 100, "ms8": 100}
    assert check(ready, shift.action, app="shop", env="production") is None
    shifted = obs(NEW + restore, [member(s, 0, sessions=1) for s in NEW] + [member(s, 100) for s in restore], health=healthy(*restore))
    assert decide(shifted, rel, NOW).kind is Kind.WAIT  # draining the new fleet, only now


def test_rollback_after_retirement_without_an_image_halts_saying_what_serves():
    only_new = obs(NEW, [member(s, 100) for s in NEW], images=())
    decision = decide(only_new, rolling_back(), NOW)
    assert decision.kind is Kind.HALT
    assert "left serving: 2 member(s) of 1.1.0" in decision.reason


def test_a_failed_first_release_is_removed_without_relaunching_anything():
    rel = rolling_back(previous_version=None)
    decision = decide(obs(NEW, [member(s, 0) for s in NEW]), rel, NOW)
    assert isinstance(decision.action, RemoveMembers) or decision.kind is Kind.WAIT


# ---- invariants ----------------------------------------------------------------------------------------


def test_i1_refuses_draining_the_only_serving_fleet():
    only_new = obs(NEW, [member(s, 100) for s in NEW])
    violation = check(only_new, DrainMembers(("ms3", "ms4")), app="shop", env="production")
    assert violation is not None and violation.invariant == "I1"
    assert check(only_new, DrainMembers(("ms3", "ms4")), app="shop", env="production", command="down") is None
    # undoing the environment's first release: there was no live version to keep
    assert check(only_new, DrainMembers(("ms3", "ms4")), app="shop", env="production", had_live_version=False) is None


def test_i2_refuses_removing_a_member_still_weighted_in():
    violation = check(live_old(new_weight=100), RemoveMembers(("ms1",)), app="shop", env="production")
    assert violation is not None and violation.invariant == "I2"


def test_i3_refuses_another_apps_member():
    other = server(9, "9.9.9", Role.STABLE, "x", app="blog")
    stranger = replace(member(other, 0), app="blog")
    observed = obs(OLD, [member(s, 100) for s in OLD] + [stranger])
    violation = check(observed, RemoveMembers((stranger.id,)), app="shop", env="production")
    assert violation is not None and violation.invariant == "I3"


def test_decide_does_not_mutate_its_inputs():
    rel = release(*CANARY, step_index=1)
    before = rel.to_json()
    decide(live_old(), rel, NOW)
    transition(rel, decide(live_old(new_weight=11), rel, NOW), NOW)
    assert rel.to_json() == before


def test_decide_imports_without_any_provider_package():
    code = (
        "import sys\n"
        "for name in ('releasectl.providers.local', 'releasectl.providers.openstack', 'requests'):\n"
        "    sys.modules[name] = None\n"
        "import releasectl.engine.decide, releasectl.engine.transition, releasectl.engine.invariants\n"
        "assert not any(m.startswith('releasectl.providers.local') or m.startswith('releasectl.providers.openstack')"
        " for m in sys.modules if sys.modules[m] is not None)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_policy_weights_follow_the_provider_range():
    rel = release(*CANARY, step_index=1)
    decision = decide(live_old(), rel, NOW, Policy(max_weight=1))
    assert set(dict(decision.action.weights).values()) <= {0, 1}


# ---- findings of the property test (each failed before its fix) -------------------------------------------


def test_i1_does_not_count_another_apps_members_as_serving_ours():
    """A pool shared with another app: its weighted members never make draining our last fleet safe."""
    other = server(9, "9.9.9", Role.STABLE, "x", app="blog")
    observed = obs(NEW + [other], [member(s, 100) for s in NEW] + [replace(member(other, 100), app="blog")])
    violation = check(observed, DrainMembers(("ms3", "ms4")), app="shop", env="production")
    assert violation is not None and violation.invariant == "I1"


def test_i1_does_not_count_a_member_whose_server_died():
    """The LB's verdict lags a server's death by `fall` checks: a stopped server's member serves nothing."""
    dead = replace(OLD[0], status=ServerStatus.STOPPED)
    observed = obs([dead] + NEW, [member(dead, 100)] + [member(s, 100) for s in NEW])
    violation = check(observed, DrainMembers(("ms3", "ms4")), app="shop", env="production")
    assert violation is not None and violation.invariant == "I1"


def test_rollback_after_the_old_members_left_the_pool_puts_them_back_before_draining_the_new():
    """Finding b: a failure during retire (old members removed, servers not stopped yet) drained the new
    fleet with the old one out of the pool: nothing served."""
    survivors = [NEW[0], replace(NEW[1], status=ServerStatus.STOPPED)]
    members = [member(s, 100) for s in survivors]
    rel = rolling_back()
    first = decide(obs(OLD + survivors, members), rel, NOW)
    assert first.action == AddMembers(tuple(OLD))
    rejoined = [member(s, 0, Health.UNKNOWN) for s in OLD]
    assert decide(obs(OLD + survivors, members + rejoined), rel, NOW).kind is Kind.WAIT  # the LB's checks first
    assert decide(obs(OLD + survivors, members + rejoined), rel, NOW + 601).kind is Kind.HALT  # never drains blind
    healthy_again = obs(OLD + survivors, members + [member(s, 0) for s in OLD])
    shift = decide(healthy_again, rel, NOW)
    assert dict(shift.action.weights) == {"ms1": 100, "ms2": 100, "ms3": 0, "ms4": 0}
    assert check(healthy_again, shift.action, app="shop", env="production") is None


def test_rollback_with_every_old_server_dead_relaunches_the_previous_version():
    """A start failure while the old fleet had died: "rolled back to 1.0.0" must mean 1.0.0 serves."""
    dead_old = [replace(s, status=ServerStatus.STOPPED) for s in OLD]
    never_served = obs(dead_old + NEW, [member(s, 100) for s in dead_old] + [member(s, 0) for s in NEW], images=IMAGES)
    decision = decide(never_served, rolling_back(), NOW)
    assert isinstance(decision.action, LaunchServers) and decision.action.specs[0].version == "1.0.0"


def test_finalize_never_reports_success_without_a_serving_new_fleet():
    """Finding c: the only new server died after the old fleet was retired; the release said it succeeded."""
    rel = release(*CANARY, step_index=5)
    stable = [replace(s, role=Role.STABLE) for s in NEW]
    dead = [replace(s, status=ServerStatus.STOPPED) for s in stable]
    assert decide(obs(dead, [member(s, 100) for s in dead]), rel, NOW).kind is Kind.FAIL
    unhealthy = obs(stable, [member(s, 100, Health.UNHEALTHY) for s in stable])
    assert decide(unhealthy, rel, NOW).kind is Kind.FAIL
    not_yet = obs(stable, [member(s, 100, Health.UNKNOWN) for s in stable])
    assert decide(not_yet, rel, NOW).kind is Kind.WAIT
    assert decide(not_yet, rel, NOW + 601).kind is Kind.FAIL


def test_a_relaunch_that_cannot_start_halts_whether_or_not_the_new_fleet_serves():
    """Old fleet dead: a relaunch of the previous version that cannot start leaves no safe move. The rollback
    halts (exit 5, resumable) and removes nothing: finishing it would claim "traffic is back on 1.0.0"."""
    dead_old = [replace(s, status=ServerStatus.STOPPED) for s in OLD]
    rel = rolling_back(relaunches=2)
    broken = server(7, "1.0.0", Role.CANDIDATE, restore_release_id(rel), status=ServerStatus.ERROR)
    for new_weight in (0, 100):
        observed = obs(dead_old + NEW + [broken], [member(s, new_weight) for s in NEW], images=IMAGES)
        decision = decide(observed, rel, NOW)
        assert decision.kind is Kind.HALT, decision
        assert "the previous version 1.0.0 could not be restored: its relaunched server shop-1.0.0-7 is error" in decision.reason
    assert decide(obs(dead_old + [broken], [], images=IMAGES), rel, NOW).kind is Kind.HALT
    relaunch = decide(obs(dead_old, [], images=IMAGES), rel, NOW)  # the new fleet is gone already: relaunch
    assert isinstance(relaunch.action, LaunchServers) and relaunch.action.specs[0].version == "1.0.0"


def test_restores_that_never_get_healthy_halt_instead_of_claiming_a_rollback():
    """A relaunched previous version that fails its health checks, or an old fleet the LB never sees healthy
    again, halts the rollback (exit 5), whether or not the new fleet serves."""
    dead_old = [replace(s, status=ServerStatus.STOPPED) for s in OLD]
    rel = rolling_back()
    restore = [server(7, "1.0.0", Role.CANDIDATE, restore_release_id(rel)), server(8, "1.0.0", Role.CANDIDATE, restore_release_id(rel))]
    failing = HealthView(rise=2, fall=2, streaks=tuple((s.id, StreakView(bad=2, last="HTTP 500")) for s in restore))
    members = [member(s, 0) for s in NEW] + [member(s, 0, Health.UNKNOWN) for s in restore]
    unhealthy = obs(dead_old + NEW + restore, members, images=IMAGES, health=failing, asserted=frozenset({"s7", "s8"}))
    assert decide(unhealthy, rel, NOW).kind is Kind.HALT
    serving_new = obs(dead_old + NEW + restore, [member(s, 100) for s in NEW] + members[2:], images=IMAGES,
                      health=failing, asserted=frozenset({"s7", "s8"}))
    assert decide(serving_new, rel, NOW).kind is Kind.HALT
    old_never_healthy = obs(OLD + NEW, [member(s, 0, Health.UNHEALTHY) for s in OLD] + [member(s, 0) for s in NEW])
    assert decide(old_never_healthy, rel, NOW).kind is Kind.WAIT
    assert decide(old_never_healthy, rel, NOW + 601).kind is Kind.HALT


# (situation, observed, release) -> the rollback halts and says what is (not) serving; it never ends "rolled back"
DEAD_OLD = [replace(s, status=ServerStatus.STOPPED) for s in OLD]
BROKEN_NEW = [replace(s, status=ServerStatus.ERROR) for s in NEW]
NO_RESTORE_CASES = [
    ("old fleet dead, new fleet cannot start, previous image gone",
     obs(DEAD_OLD + BROKEN_NEW, [member(s, 100) for s in DEAD_OLD] + [member(s, 0) for s in BROKEN_NEW], images=()),
     "the previous version 1.0.0 could not be restored: its image is gone",
     "left serving: no member of shop in production serves traffic"),
    ("the same after the new fleet was removed",
     obs(DEAD_OLD, [member(s, 100) for s in DEAD_OLD], images=()),
     "the previous version 1.0.0 could not be restored: its image is gone",
     "left serving: no member of shop in production serves traffic"),
    ("old fleet dead, new fleet serving, previous image gone",
     obs(DEAD_OLD + NEW, [member(s, 100) for s in NEW], images=()),
     "the previous version 1.0.0 could not be restored: its image is gone",
     "left serving: 2 member(s) of 1.1.0 (shop-1.1.0-3, shop-1.1.0-4)"),
]


@pytest.mark.parametrize("name, observed, why, left", NO_RESTORE_CASES, ids=[c[0] for c in NO_RESTORE_CASES])
def test_a_rollback_that_cannot_restore_the_previous_version_halts_saying_what_serves(name, observed, why, left):
    rel = rolling_back()
    decision = decide(observed, rel, NOW)
    assert decision.kind is Kind.HALT, decision
    assert why in decision.reason and left in decision.reason, decision.reason
    assert "bake 1.0.0 again" in decision.hint
    # the next runner, once the operator re-baked 1.0.0, gets a fresh progress deadline for the relaunch
    assert transition(rel, decision, NOW).step_started_at is None
    rebaked = replace(observed, images=IMAGES)
    assert isinstance(decide(rebaked, rel, NOW + 3600).action, LaunchServers)


def test_a_rollback_ends_only_once_the_previous_version_serves():
    """The end of a rollback: the old fleet is weighted in but the LB's verdict flapped to unhealthy. It
    waits for the checks (within the deadline), then halts; it never reports "rolled back" meanwhile."""
    rel = rolling_back()
    flapping = obs(OLD, [member(s, 100, Health.UNHEALTHY) for s in OLD])
    assert decide(flapping, rel, NOW).kind is Kind.WAIT
    assert decide(flapping, rel, NOW + 601).kind is Kind.HALT
    assert decide(obs(OLD, [member(s, 100) for s in OLD]), rel, NOW).kind is Kind.DONE
    # the last safety net: what serves is not the previous version (a stable fleet of another one)
    other = [replace(s, version="0.9.0") for s in OLD]
    decision = decide(obs(other, [member(s, 100) for s in other]), rel, NOW)
    assert decision.kind is Kind.HALT and "left serving: 2 member(s) of 0.9.0" in decision.reason
