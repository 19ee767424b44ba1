"""decide: the next move of a release, as data, from what was observed. A pure function.

`decide(observed, release, now)` reads the observation (servers, members, LB state, a frozen copy of the
health probes, member stats, images) and the release record, and returns one Decision: an action to apply
(`engine.actions`), or wait / advance / fail / pause / done / halt, with its reason. It does no I/O and
never mutates its inputs, so every step's decisions are table-tested with plain values and a fake `now`
(tests/engine/test_decide.py). Record changes follow from the decision in `engine.transition`.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

from releasectl.timefmt import rfc3339
from releasectl.engine.actions import (
    Action,
    AddMembers,
    DrainMembers,
    LaunchServers,
    RemoveMembers,
    ReplaceBroken,
    RestartLB,
    SetWeights,
    StopServers,
    pairs,
    relabel,
)
from releasectl.engine.health import AnalysisResult, FailingMember, HealthView, Verdict, analyse  # noqa: F401  (analyse: re-exported)
from releasectl.engine.invariants import describe_serving, owns_member, serving, version_of
from releasectl.engine.model import Analyze, Launch, Pause, Phase, Release, ReleaseKind, Retire, SetWeight, describe_step
from releasectl.engine.model import restore_release_id  # noqa: F401  (re-exported)
from releasectl.engine.observe import Observed
from releasectl.engine.weights import FULL_WEIGHT, plan_weights
from releasectl.providers.base import (
    AdminState,
    Health,
    ImageStatus,
    Label,
    LBStatus,
    Member,
    Role,
    Server,
    ServerSpec,
    ServerStatus,
)


class Kind(enum.Enum):
    ACT = "act"  # perform `action`, then observe again
    WAIT = "wait"  # nothing to do until the world changes or wake_at passes
    ADVANCE = "advance"  # the current step is complete
    FAIL = "fail"  # start rolling back
    PAUSE = "pause"  # stop at a manual gate or an operator's pause (exit 4)
    DONE = "done"  # rollout finished, or rollback finished
    HALT = "halt"  # no safe move: stop with exit 5, the release left resumable


@dataclass(frozen=True)
class Decision:
    kind: Kind
    reason: str
    action: Action | None = None
    wake_at: float | None = None  # set the record's wake_at (start of a hold, a drain...)
    clear_wake: bool = False  # a drain is over: forget its deadline
    baseline: Mapping[str, Mapping[str, float]] | None = None  # analysis counters at the start of a window
    reset_window: bool = False  # start a new health/latency window (analysis)
    log: str | None = None  # a line for the record's event log, once the action is done
    hint: str | None = None  # for HALT: what the operator can do
    skipped: bool = False  # ADVANCE without doing the step (a first release's weight and analysis steps)
    failing_member: FailingMember | None = None  # FAIL: the server it failed on, as data (status, JSON)
    analysis: AnalysisResult | None = None  # an analysis verdict's figures (ADVANCE or FAIL)


@dataclass(frozen=True)
class Policy:
    """Settings `decide` needs besides the observation: from the engine context and provider capabilities."""

    drain_timeout: float = 30.0  # rollbacks and expired warm fleets (pipelines set their own)
    max_weight: int = 256
    member_sessions: bool = True


def act(reason: str, action: Action, **kw: Any) -> Decision:
    return Decision(Kind.ACT, reason, action, **kw)


def wait(reason: str, wake_at: float | None = None) -> Decision:
    return Decision(Kind.WAIT, reason, wake_at=wake_at)


def server_name(app: str, version: str, release_id: str, index: int, attempt: int) -> str:
    """Derived from the release, not random: a create retried after a crash finds the same server."""
    suffix = hashlib.sha1(f"{release_id}:{index}:{attempt}".encode()).hexdigest()[:6]
    return f"{app}-{version}-{suffix}"


def decide(obs: Observed, rel: Release, now: float, policy: Policy = Policy()) -> Decision:
    if obs.lb.status in (LBStatus.DOWN, LBStatus.ABSENT):
        return act(f"load balancer is {obs.lb.status.value} ({obs.lb.detail or 'no detail'}): restarting it", RestartLB(obs.lb.detail))
    if obs.lb.status is LBStatus.ERROR:
        return Decision(
            Kind.HALT,
            f"the load balancer is in ERROR: {obs.lb.detail or 'no detail'}",
            hint="an operator must repair it (a failover), then run `releasectl rollout --resume`",
        )
    if rel.phase is Phase.ROLLING_BACK:
        return decide_rollback(obs, rel, now, policy)
    if rel.abort_requested:
        return Decision(Kind.FAIL, "aborted by operator")
    if getattr(rel, "pause_requested", False):
        return Decision(Kind.PAUSE, f"paused by operator at step {rel.step_index + 1}")
    step = rel.current_step
    new = obs.of_release(rel.id)
    broken = [s for s in new if s.status in (ServerStatus.ERROR, ServerStatus.STOPPED)]
    if broken:
        s = broken[0]
        why = f"server {s.name} is {s.status.value}: {s.fault or 'no reason given'}"
        if isinstance(step, Launch) and rel.relaunches < rel.count:
            # a failed boot (or a create cut short by a crash) gets a bounded number of replacements
            return act(f"replacing {why}", _replace(obs, s))
        return Decision(Kind.FAIL, why, failing_member=FailingMember.of(s))
    if isinstance(step, Launch):
        return decide_launch(obs, rel, now, step, policy)
    problem = watch_health(obs, new)
    if problem:
        return problem
    if step is None:  # finalize: after the health watch, so a fleet that died is never reported live
        return decide_finalize(obs, rel, now)
    skip = first_release_skip(obs, rel, step)
    if skip is not None:
        return skip
    if isinstance(step, SetWeight):
        return decide_weight(obs, rel, now, step, policy)
    if isinstance(step, Pause):
        return decide_pause(rel, now, step)
    if isinstance(step, Analyze):
        return decide_analyze(obs, rel, now, step)
    assert isinstance(step, Retire)
    return decide_retire(obs, rel, now, step, policy)


def _replace(obs: Observed, server: Server) -> ReplaceBroken:
    member = obs.member_of(server)
    return ReplaceBroken(server.id, member.id if member else None, finishing=server.status is ServerStatus.DELETING)


def past_deadline(rel: Release, now: float) -> bool:
    return rel.step_started_at is not None and now - rel.step_started_at > rel.progress_deadline


# launch ------------------------------------------------------------------------------------------------


def decide_launch(obs: Observed, rel: Release, now: float, step: Launch, policy: Policy = Policy()) -> Decision:
    want = step.count or rel.count
    new = obs.of_release(rel.id)
    deleting = [s for s in new if s.status is ServerStatus.DELETING]
    if deleting:  # a replacement cut short by a crash: finish deleting before counting capacity
        return act(f"finishing the removal of {deleting[0].name}", _replace(obs, deleting[0]))
    swap = warm_swap(obs, rel, want, policy)
    if swap is not None:
        return swap
    if len(new) < want:
        warm = [
            s
            for s in obs.with_role(Role.PREVIOUS, Role.STABLE, exclude_release=rel.id)
            if s.version == rel.version and s.status is ServerStatus.ACTIVE
        ]
        if warm:
            take = warm[: want - len(new)]
            return act(
                f"adopting warm server(s) {', '.join(s.name for s in take)} ({take[0].version})",
                relabel(take, **{Label.RELEASE: rel.id, Label.ROLE: Role.CANDIDATE.value, Label.RETIRE_AFTER: None}),
            )
        specs = _missing_specs(rel, rel.version, rel.image_id, rel.id, new, want)
        return act(f"launching server(s) {_span(len(new), len(specs), want)} from {rel.version}", LaunchServers(specs))
    if past_deadline(rel, now):
        return Decision(Kind.FAIL, f"progress deadline: the new fleet was not healthy within {rel.progress_deadline:g}s")
    gate = health_gate(obs, new, "new")
    if gate is not None:
        return gate
    return Decision(Kind.ADVANCE, f"{len(new)} new server(s) healthy ({obs.health.rise} checks in a row)")


def warm_swap(obs: Observed, rel: Release, want: int, policy: Policy) -> Decision | None:
    """A rollback to a warm fleet: all traffic moves to it in its first action, one weight change, before it
    is adopted or probed (that change is the whole of the rollback's critical path; the rest follows it).
    Only when every server of the fleet is up and the LB reports its member healthy (`rise` checks passed,
    the last one too): the LB's own verdict is the gate, as for any member it routes to; the runner still
    checks I1 on the action. None when there is no such fleet (then it is adopted and gated as a launch),
    or once the traffic is on it."""
    if rel.kind is not ReleaseKind.ROLLBACK or not _next_step_is_full_weight(rel) or obs.of_release(rel.id):
        return None
    warm = [s for s in obs.with_role(Role.PREVIOUS, Role.STABLE, exclude_release=rel.id) if s.version == rel.version]
    warm_members = [m for m in obs.members_for(warm) if _can_serve(obs, m)]
    if len(warm) < want or len(warm_members) < len(warm):
        return None
    leaving = [s for s in obs.with_role(Role.STABLE, exclude_release=rel.id) if s.version != rel.version]
    old_members = obs.members_for(leaving)
    plan = plan_weights(100.0, len(warm_members), len(old_members), policy.max_weight)
    desired = {m.id: plan.new_weight for m in warm_members} | {m.id: plan.old_weight for m in old_members}
    pending = {mid: w for mid, w in desired.items() if not _applied(_find(obs.members, mid), w)}
    if not pending:
        return None
    return act(
        f"restoring all traffic to {rel.version}: its {len(warm)} warm server(s) are healthy in the load balancer",
        SetWeights(pairs(pending)),
        log=f"all traffic to the warm {rel.version} fleet ({len(warm_members)} member(s)), before adopting it",
    )


def swapped_warm(obs: Observed, rel: Release) -> list[Member]:
    """Members of the warm fleet a rollback weighted in (warm_swap) but had not adopted yet when it was cut
    short: undoing that rollback drains them back to warm, beside its own fleet."""
    if rel.kind is not ReleaseKind.ROLLBACK:
        return []
    warm = [s for s in obs.with_role(Role.PREVIOUS, exclude_release=rel.id) if s.version == rel.version]
    return [m for m in obs.members_for(warm) if m.weight > 0]


def _next_step_is_full_weight(rel: Release) -> bool:
    steps = rel.pipeline.steps
    following = steps[rel.step_index + 1] if rel.step_index + 1 < len(steps) else None
    return isinstance(following, SetWeight) and following.percent == 100


def _missing_specs(rel: Release, version: str, image_id: str, release_id: str, have: list[Server], want: int) -> tuple[ServerSpec, ...]:
    """Specs for the servers still missing, at indexes no server of the fleet uses yet (a batch cut short by
    a crash may have created any subset, and a retried create must find its own name, never another's)."""
    taken = {s.name for s in have}
    specs: list[ServerSpec] = []
    index = 0
    while len(have) + len(specs) < want:
        spec = _spec(rel, version, image_id, release_id, index)
        if spec.name not in taken:
            specs.append(spec)
        index += 1
    return tuple(specs)


def _span(have: int, adding: int, want: int) -> str:
    """'3/3', or '1-3/3' for a batch."""
    return f"{have + adding}/{want}" if adding == 1 else f"{have + 1}-{have + adding}/{want}"


def _spec(rel: Release, version: str, image_id: str, release_id: str, index: int) -> ServerSpec:
    return ServerSpec(
        name=server_name(rel.app, version, release_id, index, rel.relaunches),
        image_id=image_id,
        app=rel.app,
        version=version,
        env=rel.env,
        role=Role.STABLE,  # what it is once its release ends: no relabel then (observe.settle_roles)
        release_id=release_id,
    )


def unlabelled_stable(fleet: list[Server]) -> list[Server]:
    """Servers of an ending release whose label does not say stable yet: adopted warm servers (relabelled
    candidates) and servers launched before servers were labelled stable at launch. The rest are labelled
    stable already and are a candidate only while their release is in progress (observe.settle_roles)."""
    return [s for s in fleet if s.role is not Role.STABLE and s.labels.get(Label.ROLE) != Role.STABLE.value]


def health_gate(obs: Observed, fleet: list[Server], what: str) -> Decision | None:
    """Boot, join the pool, pass `rise` probes of ours and the LB's check: None once the whole fleet has."""
    building = [s for s in fleet if s.status is ServerStatus.BUILDING]
    if building:
        return wait(f"waiting for {len(building)} server(s) to boot")
    missing = tuple(s for s in fleet if obs.member_of(s) is None)
    if missing:  # the whole fleet joins in one LB change
        return act(f"adding {_names(missing)} to the pool (weight 0)", AddMembers(missing))
    # one this runner did not add: a crash may have cut the add short (checks never enabled), so assert
    # it once; add_members is idempotent and re-arms a half-added member
    unsure = tuple(s for s in fleet if obs.member_of(s).health is not Health.HEALTHY and s.id not in obs.asserted)
    if unsure:
        return act(f"checking the pool membership of {_names(unsure)}", AddMembers(unsure))
    for server in fleet:
        if obs.health.failed_at_launch(server.id):
            return Decision(Kind.FAIL, f"health check failed on {server.name}: {obs.health.describe(server.id)}",
                            failing_member=FailingMember.of(server))
    not_ready = [s for s in fleet if not _gate_passed(obs, s)]
    if not_ready:
        names = ", ".join(s.name for s in not_ready)
        return wait(f"health gate: waiting for {names} ({len(fleet) - len(not_ready)}/{len(fleet)} healthy)")
    return None


def _gate_passed(obs: Observed, server: Server) -> bool:
    """`rise` probes of ours and the LB's verdict. A warm server (its member was in the pool before this
    runner, and the LB reports it healthy: it passed `rise` checks already) needs one good probe of ours, so
    a rollback to a warm fleet is not gated again."""
    if not _lb_healthy(obs, server):
        return False
    return obs.health.passing(server.id) or (server.id not in obs.asserted and obs.health.answered(server.id))


def _names(servers: tuple[Server, ...]) -> str:
    return servers[0].name if len(servers) == 1 else f"{len(servers)} servers"


def watch_health(obs: Observed, new: list[Server]) -> Decision | None:
    """During holds: the LB's verdict and our probes must stay good for every new server (else FAIL)."""
    for server in new:
        member = obs.member_of(server)
        problem = None
        if member is None:
            problem = f"server {server.name} left the pool"
        elif member.health is Health.UNHEALTHY:
            problem = f"load balancer reports {server.name} unhealthy"
        elif obs.health.failed_in_service(server.id):
            problem = f"health check failed on {server.name}: {obs.health.describe(server.id)}"
        if problem:
            return Decision(Kind.FAIL, problem, failing_member=FailingMember.of(server))
    return None


def first_release_skip(obs: Observed, rel: Release, step) -> Decision | None:
    """A first release has no old fleet to share traffic with or to compare against: its analyses and its
    weight steps before the last one (100 %) are skipped, so it is a health gate, then 100 %."""
    if rel.previous_version is not None or obs.with_role(Role.STABLE, exclude_release=rel.id):
        return None
    steps = rel.pipeline.steps
    last_weight = max((i for i, s in enumerate(steps) if isinstance(s, SetWeight)), default=-1)
    if isinstance(step, Analyze) or (isinstance(step, SetWeight) and rel.step_index < last_weight):
        return Decision(Kind.ADVANCE, f"first release (no old fleet): skipped {describe_step(step)}", skipped=True)
    return None


# weight ------------------------------------------------------------------------------------------------


def fleets(obs: Observed, rel: Release) -> tuple[list[Member], list[Member]]:
    """(new members, old members): this release's fleet, and the stable fleet it replaces (or the previous
    version a rollback relaunched)."""
    new = obs.members_for(obs.of_release(rel.id))
    old_servers = obs.with_role(Role.STABLE, exclude_release=rel.id) + obs.of_release(restore_release_id(rel))
    return new, obs.members_for(old_servers)


def decide_weight(obs: Observed, rel: Release, now: float, step: SetWeight, policy: Policy) -> Decision:
    new, old = fleets(obs, rel)
    plan = plan_weights(step.percent, len(new), len(old), policy.max_weight)
    desired = {m.id: plan.new_weight for m in new} | {m.id: plan.old_weight for m in old}
    pending = {mid: w for mid, w in desired.items() if not _applied(_find(obs.members, mid), w)}
    if pending:
        note = "" if not old else f" (achieved {plan.achieved:.2f}%: new {plan.new_weight}, old {plan.old_weight})"
        return act(
            f"setting weights for {step.percent:g}% to {rel.version}{note}",
            SetWeights(pairs(pending)),
            log=f"weights {plan.requested:g}% requested, {plan.achieved:.2f}% achieved",
        )
    if rel.wake_at is None:
        return wait(f"weight {step.percent:g}% verified; holding {step.hold:g}s", wake_at=now + step.hold)
    if now < rel.wake_at:
        return wait(f"holding at {step.percent:g}% until {_clock(rel.wake_at)}")
    return Decision(Kind.ADVANCE, f"held {step.percent:g}% for {step.hold:g}s, healthy")


# pause -------------------------------------------------------------------------------------------------


def decide_pause(rel: Release, now: float, step: Pause) -> Decision:
    if step.duration is None:
        if rel.promoted_step == rel.step_index or rel.promote_full:
            return Decision(Kind.ADVANCE, "promoted by operator")
        return Decision(Kind.PAUSE, f"paused at a manual gate (step {rel.step_index + 1})")
    if rel.wake_at is None:
        return wait(f"pausing {step.duration:g}s", wake_at=now + step.duration)
    if now < rel.wake_at:
        return wait(f"paused until {_clock(rel.wake_at)}")
    return Decision(Kind.ADVANCE, f"paused {step.duration:g}s")


# analyze -----------------------------------------------------------------------------------------------


def decide_analyze(obs: Observed, rel: Release, now: float, step: Analyze) -> Decision:
    stats = obs.stats or {}
    if rel.wake_at is None:
        baseline = {mid: {"requests": s.requests, "bad": s.http_5xx + s.errors} for mid, s in stats.items()}
        return Decision(
            Kind.WAIT, f"analysing for {step.duration:g}s", wake_at=now + step.duration, baseline=baseline,
            reset_window=True,
        )
    if now < rel.wake_at:
        return wait(f"analysing until {_clock(rel.wake_at)}")
    new, old = fleets(obs, rel)
    verdict = analyse(step, stats, rel.baseline, new, old, obs.health, obs.server_of)
    if verdict.inconclusive:
        return inconclusive(rel, now, step, verdict)
    return Decision(Kind.FAIL if verdict.failed else Kind.ADVANCE, verdict.reason, analysis=verdict.analysis)


def inconclusive(rel: Release, now: float, step: Analyze, verdict: Verdict) -> Decision:
    """Too few requests: `extend` keeps the window open (the counters keep adding up against the same
    baseline) until the progress deadline, then fails; `fail` and `pass` decide at once."""
    if step.inconclusive == "pass":
        return Decision(Kind.ADVANCE, f"{verdict.reason}: passed (inconclusive: pass)", analysis=verdict.analysis)
    if step.inconclusive == "fail":
        return Decision(Kind.FAIL, f"{verdict.reason}: failed (inconclusive: fail)", analysis=verdict.analysis)
    if past_deadline(rel, now):
        return Decision(Kind.FAIL, f"{verdict.reason} by the progress deadline ({rel.progress_deadline:g}s)",
                        analysis=verdict.analysis)
    deadline = (rel.step_started_at or now) + rel.progress_deadline
    return wait(f"analysis inconclusive: fewer than {step.min_requests} requests ({verdict.source}); "
                f"extending it until {_clock(deadline)} at most")


# retire ------------------------------------------------------------------------------------------------


def decide_retire(obs: Observed, rel: Release, now: float, step: Retire, policy: Policy) -> Decision:
    old_stable = obs.with_role(Role.STABLE, exclude_release=rel.id)
    warm = obs.with_role(Role.PREVIOUS, exclude_release=rel.id)
    if step.keep_previous > 0:
        older = [s for s in warm if s.version != rel.previous_version]
        if older:  # only one warm fleet is kept: the one this release replaces
            return retire_decision(obs, rel, now, older, step.drain_timeout, "retiring an older warm fleet", policy)
        if old_stable:
            until = now + step.keep_previous
            return act(
                f"keeping {len(old_stable)} {old_stable[0].version} server(s) warm for {step.keep_previous:g}s",
                relabel(old_stable, **{Label.ROLE: Role.PREVIOUS.value, Label.RETIRE_AFTER: f"{until:.0f}"}),
            )
        return Decision(Kind.ADVANCE, "previous fleet kept warm")
    if old_stable:
        return retire_decision(obs, rel, now, old_stable, step.drain_timeout, "retiring the old fleet", policy)
    return Decision(Kind.ADVANCE, "old fleet retired")


def retire_decision(
    obs: Observed, rel: Release, now: float, servers: list[Server], drain_timeout: float, why: str, policy: Policy
) -> Decision:
    """Retire a fleet: drain every member at once (one weight change), wait until all have 0 sessions or
    the drain timeout passes (one wait for the whole fleet), then remove all the members in one LB change
    and stop all the servers in one (parallel) action. Never stops a process that is still in the pool."""
    members = [m for m in (obs.member_of(s) for s in servers) if m is not None]
    undrained = tuple(m.id for m in members if m.weight != 0)
    if undrained:
        return act(f"{why}: draining {len(undrained)} member(s)", DrainMembers(undrained))
    if members:
        sessions_known = policy.member_sessions and all(m.sessions is not None for m in members)
        drained = sessions_known and all(m.sessions == 0 for m in members)
        if rel.wake_at is None and not drained:  # already idle at the first look after the drain: no wait
            return wait(f"{why}: draining {len(members)} member(s)", wake_at=now + drain_timeout)
        if not drained and rel.wake_at is not None and now < rel.wake_at:
            return wait(f"{why}: waiting for {len(members)} member(s) to drain (at most until {_clock(rel.wake_at)})")
        return act(f"{why}: removing {len(members)} member(s) from the pool", RemoveMembers(tuple(m.id for m in members)))
    return act(f"{why}: stopping {_names(tuple(servers))}", StopServers(tuple(s.id for s in servers)), clear_wake=True)


# finalize ----------------------------------------------------------------------------------------------


def decide_finalize(obs: Observed, rel: Release, now: float) -> Decision:
    new = obs.of_release(rel.id)
    if not any(serving(m, obs) for m in obs.members_for(new)):
        # success means the new fleet serves: healthy and weighted in (the old one may be gone already)
        if past_deadline(rel, now) or not new:
            return Decision(Kind.FAIL, f"no server of {rel.version} is healthy and weighted in")
        return wait(f"waiting for {rel.version} to be healthy and weighted in")
    unpromoted = unlabelled_stable(new)
    if unpromoted:
        return act(f"marking {len(unpromoted)} server(s) stable", relabel(unpromoted, **{Label.ROLE: Role.STABLE.value}))
    return Decision(Kind.DONE, f"{rel.version} is live on {len(new)} server(s)")


# rollback ----------------------------------------------------------------------------------------------


def traffic_started(rel: Release) -> bool:
    """Whether any weight step was reached: before that, new members only ever had weight 0."""
    steps = rel.pipeline.steps
    return any(isinstance(s, SetWeight) for s in steps[: rel.step_index + 1])


def decide_rollback(obs: Observed, rel: Release, now: float, policy: Policy) -> Decision:
    """Restore all traffic to the old fleet, then drain, remove and stop the new one.

    After retirement (or when every old server died) there is no old fleet: the previous version is
    relaunched from its image first (gated on health like any launch), traffic moves to it, and only then is
    the new fleet removed (I2). "Rolled back" always means the previous version serves: when it cannot be
    restored, the rollback halts (exit 5, resumable) saying what is and is not serving, and removes nothing."""
    new_servers = obs.of_release(rel.id)
    restore = obs.of_release(restore_release_id(rel))
    old_active = [s for s in obs.with_role(Role.STABLE, exclude_release=rel.id) if s.status is ServerStatus.ACTIVE]
    if rel.previous_version and not old_active:
        relaunch = decide_restore(obs, rel, now, restore)
        if relaunch is not None:
            return relaunch
    elif old_active:
        back = old_fleet_gate(obs, rel, now, old_active)
        if back is not None:
            return back
    new, old = fleets(obs, rel)
    # traffic goes back only to old members whose server is up and that the LB sees healthy
    old = [m for m in old if _can_serve(obs, m)]
    if old:
        desired = {m.id: FULL_WEIGHT for m in old} | {m.id: 0 for m in new + swapped_warm(obs, rel)}
        pending = {mid: w for mid, w in desired.items() if not _applied(_find(obs.members, mid), w)}
        if pending:
            return act(f"restoring all traffic to {rel.previous_version or 'the old fleet'}", SetWeights(pairs(pending)))
    elif rel.previous_version:
        # nothing of the previous version can take the traffic: removing the new fleet would claim a rollback
        # that did not happen (and, if it serves, take the environment down)
        return _halt(f"no server of the previous version {rel.previous_version} can serve", serving_ours(obs, rel))
    if new_servers:
        # members that never took traffic (the release failed during launch) have nothing to drain
        drain = policy.drain_timeout if traffic_started(rel) else 0.0
        return retire_decision(obs, rel, now, new_servers, drain, "removing the new fleet", policy)
    broken = [s for s in restore if s.status in (ServerStatus.ERROR, ServerStatus.STOPPED, ServerStatus.DELETING)]
    if broken:  # a relaunched server that died while the old fleet came back: nothing of it serves
        return act(f"removing relaunched {broken[0].name} ({broken[0].status.value})", _replace(obs, broken[0]))
    unpromoted = unlabelled_stable(restore)
    if unpromoted:
        return act(f"marking {len(unpromoted)} relaunched server(s) stable", relabel(unpromoted, **{Label.ROLE: Role.STABLE.value}))
    # the last safety net: never "rolled back" unless the previous version serves (the gates above make it so)
    if rel.previous_version and not any(version_of(obs, m) == rel.previous_version for m in obs.members if serving(m, obs)):
        return _halt(f"the previous version {rel.previous_version} does not serve", serving_ours(obs, rel))
    return Decision(Kind.DONE, f"rolled back to {rel.previous_version or 'no version (first release)'}")


def old_fleet_gate(obs: Observed, rel: Release, now: float, old_active: list[Server]) -> Decision | None:
    """The old fleet is up, but a retire may have taken its members out of the pool before a failure: put
    them back and wait for the LB's checks, so traffic moves to members that serve. None once one does."""
    prev = rel.previous_version or "the old fleet"
    missing = [s for s in old_active if obs.member_of(s) is None]
    if missing:
        return act(f"putting {prev} server(s) {_names(tuple(missing))} back in the pool", AddMembers(tuple(missing)))
    if any(_lb_healthy(obs, s) for s in old_active):
        return None
    if past_deadline(rel, now):
        return _halt(f"no {prev} server passed the load balancer's checks within {rel.progress_deadline:g}s", serving_ours(obs, rel))
    return wait(f"waiting for the load balancer to see {prev} healthy again")


def decide_restore(obs: Observed, rel: Release, now: float, restore: list[Server]) -> Decision | None:
    """Relaunch the previous version (the old fleet was retired, or died): None once it is healthy in the
    pool. When it cannot be relaunched (no image, its servers cannot start or never get healthy), halt:
    the new fleet is left as it is, whether it serves or not, and the reason says what serves."""
    prev = rel.previous_version
    serving_now = serving_ours(obs, rel)
    restore_id = restore_release_id(rel)
    broken = [s for s in restore if s.status in (ServerStatus.ERROR, ServerStatus.STOPPED, ServerStatus.DELETING)]
    if broken:
        s = broken[0]
        if s.status is ServerStatus.DELETING or rel.relaunches < rel.count:
            return act(f"replacing relaunched {prev} server {s.name} ({s.status.value}: {s.fault or 'no reason'})", _replace(obs, s))
        return _halt(f"its relaunched server {s.name} is {s.status.value}: {s.fault or 'no reason given'}", serving_now, prev)
    if len(restore) < rel.count:
        if obs.images is None:
            return wait(f"looking up the image of {prev}")
        image = next((i for i in obs.images if i.version == prev and i.status is ImageStatus.ACTIVE), None)
        if image is None:
            return _halt("its image is gone and no server of it is up", serving_now, prev,
                         hint=f"bake {prev} again (`releasectl bake {prev}`), then run `releasectl rollout --resume`")
        specs = _missing_specs(rel, prev, image.id, restore_id, restore, rel.count)
        return act(f"relaunching {prev}: launching server(s) {_span(len(restore), len(specs), rel.count)}: no server of it is up",
                   LaunchServers(specs))
    if past_deadline(rel, now):
        return _halt(f"its relaunched fleet was not healthy within {rel.progress_deadline:g}s", serving_now, prev)
    gate = health_gate(obs, restore, prev)
    if gate is not None and gate.kind is Kind.FAIL:
        return _halt(f"its relaunched fleet is unhealthy ({gate.reason})", serving_now, prev)
    return gate


def serving_ours(obs: Observed, rel: Release) -> str:
    """What of this app and environment serves (another app's members on a shared pool do not count)."""
    ours = [m for m in obs.members if owns_member(obs, m, rel.app, rel.env, rel.own_members)]
    text = describe_serving(obs, ours)
    return f"no member of {rel.app} in {rel.env} serves traffic" if text == "no member serves traffic" else text


def _halt(why: str, serving_now: str, prev: str | None = None, hint: str | None = None) -> Decision:
    """No safe move: stop (exit 5) saying exactly what is left serving; nothing is removed."""
    what = f"the previous version {prev} could not be restored: {why}" if prev else why
    return Decision(
        Kind.HALT,
        f"cannot roll back safely: {what}; left serving: {serving_now}",
        hint=hint or "nothing was removed; fix the cause and run `releasectl rollout --resume` (or `releasectl abort`)",
    )


def _can_serve(obs: Observed, member: Member) -> bool:
    """It would serve if weighted in: the LB sees it healthy and its server is up."""
    server = obs.server_of(member)
    return member.health is Health.HEALTHY and (server is None or server.status is ServerStatus.ACTIVE)


def _lb_healthy(obs: Observed, server: Server) -> bool:
    member = obs.member_of(server)
    return member is not None and member.health is Health.HEALTHY


def _clock(ts: float) -> str:
    return rfc3339(ts) or "-"


def _find(members: tuple[Member, ...], member_id: str) -> Member | None:
    return next((m for m in members if m.id == member_id), None)


def _applied(member: Member | None, weight: int) -> bool:
    if member is None:
        return True  # gone: nothing to set
    if member.weight != weight:
        return False
    return weight == 0 or member.admin is AdminState.READY
