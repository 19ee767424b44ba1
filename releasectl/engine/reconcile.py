"""The reconcile loop: observe, decide the next action, act, record. Until done, paused or failed.

Each pass re-reads the servers and the pool, so a pass is idempotent and a runner that starts late (after
a crash, on another machine) continues from what is really there. `decide` looks at the current step and
returns one Decision with a reason; the loop performs at most one action per pass and saves the record
when it changed. Time is data: holds, pauses, analyses and drains end at `release.wake_at`.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from typing import Callable

from releasectl.engine import intents, records
from releasectl.engine.context import EngineContext
from releasectl.engine.health import HealthTracker, percentile
from releasectl.engine.lock import LockKeeper
from releasectl.engine.model import (
    Analyze,
    Launch,
    Pause,
    Phase,
    Release,
    ReleaseKind,
    Retire,
    SetWeight,
    describe_step,
)
from releasectl.engine.observe import Observed, observe
from releasectl.engine.weights import FULL_WEIGHT, WeightPlan, plan_weights
from releasectl.errors import Conflict, PausedAtGate, ReleaseFailed
from releasectl.providers.base import (
    AdminState,
    Health,
    ImageOutcome,
    Label,
    Member,
    Role,
    Server,
    ServerSpec,
    ServerStatus,
)

MAX_EVENTS = 50


class Kind(enum.Enum):
    ACT = "act"  # perform `action`, then observe again
    WAIT = "wait"  # nothing to do until the world changes or wake_at passes
    ADVANCE = "advance"  # the current step is complete
    FAIL = "fail"  # start rolling back
    PAUSE = "pause"  # stop at a manual gate (exit 4)
    DONE = "done"  # rollout finished, or rollback finished


@dataclass(frozen=True)
class Decision:
    kind: Kind
    reason: str
    action: Callable[[], None] | None = None
    wake_at: float | None = None  # set the record's wake_at (start of a hold, a drain...)


def act(reason: str, action: Callable[[], None]) -> Decision:
    return Decision(Kind.ACT, reason, action)


def wait(reason: str, wake_at: float | None = None) -> Decision:
    return Decision(Kind.WAIT, reason, wake_at=wake_at)


@dataclass
class Runner:
    """Drives one release to an end state. Owns nothing durable: the record and the provider hold it all."""

    ctx: EngineContext
    release: Release
    lock: LockKeeper | None = None
    health: HealthTracker = field(init=False)
    _last_reason: str = ""
    _asserted: set[str] = field(default_factory=set)  # members this runner added or re-asserted
    _busy_since: float | None = None  # first Conflict of the current run of busy answers

    def __post_init__(self) -> None:
        self.health = HealthTracker(self.ctx.health)

    @property
    def provider(self):
        return self.ctx.provider

    def now(self) -> float:
        return self.ctx.clock.time()

    # ---- the loop ---------------------------------------------------------------------------------------

    def run(self) -> Release:
        rel = self.release
        self.provider.ensure_pool()
        if rel.step_started_at is None:
            rel.step_started_at = self.now()
            self._save()
        poll = max(0.05, min(self.ctx.health.interval, 1.0))
        while True:
            self.ctx.stop.check()
            if self.lock is not None:
                self.lock.check()
            # intents hook: apply operator intents posted since the last pass, record them, then delete them
            found = intents.pending(self.provider, rel.id)
            if found:
                for verdict in intents.verdicts(rel, found):
                    self.ctx.event("intent", verdict.reason, intent=verdict.intent.id, applied=verdict.applied)
                folded = intents.fold(rel, found)
                if folded != rel:
                    self.release = rel = folded
                    self._save()
                intents.consume(self.provider, found)
            if rel.pause_requested:
                rel.phase = Phase.PAUSED
                self._save()
                raise intents.paused_error(rel)
            observed = observe(self.provider)
            decision = self.decide(observed)
            if decision.reason != self._last_reason:
                self.ctx.event(decision.kind.value, decision.reason, step=rel.step_index, phase=rel.phase.value)
                self._last_reason = decision.reason
            rel.reason = decision.reason
            if decision.kind is Kind.ACT:
                assert decision.action is not None
                try:
                    decision.action()
                except Conflict as exc:
                    # busy (an LB update in flight, a server still being created): observe again later,
                    # for as long as the progress deadline allows
                    self._busy_since = self._busy_since or self.now()
                    if self.now() - self._busy_since > rel.progress_deadline:
                        raise
                    self.ctx.event("wait", f"{decision.reason}: busy, retrying ({exc})")
                    self.ctx.clock.sleep(poll)
                    continue
                self._busy_since = None
                self._save()
                continue
            if decision.kind is Kind.WAIT:
                if decision.wake_at is not None and rel.wake_at is None:
                    rel.wake_at = decision.wake_at
                    self._save()
                sleep_for = poll if rel.wake_at is None else min(poll, max(0.0, rel.wake_at - self.now()))
                self.ctx.clock.sleep(max(sleep_for, 0.02))
                continue
            if decision.kind is Kind.ADVANCE:
                self._advance(decision.reason)
                continue
            if decision.kind is Kind.FAIL:
                self._start_rollback(decision.reason, Phase.ABORTED if rel.abort_requested else Phase.FAILED)
                continue
            if decision.kind is Kind.PAUSE:
                rel.phase = Phase.PAUSED
                self._save()
                raise PausedAtGate(
                    f"{rel.app} {rel.version} is paused at step {rel.step_index + 1}/{len(rel.pipeline.steps)} "
                    f"({describe_step(rel.current_step)})",
                    hint="run `releasectl promote` to continue, or `releasectl abort` to roll back",
                )
            # DONE
            return self._finish()

    def _save(self) -> None:
        rel = self.release
        rel.updated_at = self.now()
        records.save(self.provider, rel)

    def _log(self, message: str) -> None:
        self.release.events.append({"at": self.now(), "message": message})
        del self.release.events[:-MAX_EVENTS]

    def _advance(self, reason: str) -> None:
        rel = self.release
        self._log(f"step {rel.step_index + 1} done: {reason}")
        rel.step_index += 1
        rel.step_started_at = self.now()
        rel.wake_at = None
        rel.baseline = {}
        self.health.reset_window()
        if rel.promote_full:
            # skip to the last weight step (100 %) and the retire step after it
            last_weight = max(i for i, s in enumerate(rel.pipeline.steps) if isinstance(s, SetWeight))
            rel.step_index = max(rel.step_index, last_weight)
        self._save()
        if rel.current_step is not None:
            self.ctx.event("step", f"step {rel.step_index + 1}/{len(rel.pipeline.steps)}: {describe_step(rel.current_step)}")

    def _start_rollback(self, reason: str, end_phase: Phase) -> None:
        rel = self.release
        rel.failure = reason
        rel.rollback_outcome = end_phase.value
        rel.phase = Phase.ROLLING_BACK
        rel.wake_at = None
        rel.reason = reason
        self._log(f"rolling back: {reason}")
        self._save()
        self.ctx.event("rollback", f"rolling back: {reason}")

    # ---- decide -----------------------------------------------------------------------------------------

    def decide(self, obs: Observed) -> Decision:
        rel = self.release
        if rel.phase is Phase.ROLLING_BACK:
            return self.decide_rollback(obs)
        if rel.abort_requested:
            return Decision(Kind.FAIL, "aborted by operator")
        step = rel.current_step
        if step is None:
            return self.decide_finalize(obs)
        new = obs.of_release(rel.id)
        broken = [s for s in new if s.status in (ServerStatus.ERROR, ServerStatus.STOPPED)]
        if broken:
            s = broken[0]
            why = f"server {s.name} is {s.status.value}: {s.fault or 'no reason given'}"
            if isinstance(step, Launch) and rel.relaunches < rel.count:
                # a failed boot (or a create cut short by a crash) gets a bounded number of replacements
                return act(f"replacing {why}", lambda: self.replace_broken(s, obs.member_of(s)))
            return Decision(Kind.FAIL, why)
        if isinstance(step, Launch):
            return self.decide_launch(obs, step)
        problem = self.watch_health(obs, new)
        if problem:
            return Decision(Kind.FAIL, problem)
        if isinstance(step, SetWeight):
            return self.decide_weight(obs, step)
        if isinstance(step, Pause):
            return self.decide_pause(step)
        if isinstance(step, Analyze):
            return self.decide_analyze(obs, step)
        assert isinstance(step, Retire)
        return self.decide_retire(obs, step)

    def past_deadline(self) -> bool:
        rel = self.release
        return rel.step_started_at is not None and self.now() - rel.step_started_at > rel.progress_deadline

    # launch ------------------------------------------------------------------------------------------------

    def decide_launch(self, obs: Observed, step: Launch) -> Decision:
        rel = self.release
        want = step.count or rel.count
        deleting = [s for s in obs.of_release(rel.id) if s.status is ServerStatus.DELETING]
        if deleting:  # a replacement cut short by a crash: finish deleting before counting capacity
            server = deleting[0]
            return act(f"finishing the removal of {server.name}", lambda: self.replace_broken(server, obs.member_of(server)))
        new = obs.of_release(rel.id)
        if len(new) < want:
            warm = [
                s
                for s in obs.with_role(Role.PREVIOUS, Role.STABLE, exclude_release=rel.id)
                if s.version == rel.version and s.status is ServerStatus.ACTIVE
            ]
            if warm:
                server = warm[0]
                return act(f"adopting warm server {server.name} ({server.version})", lambda: self.adopt(server))
            return act(f"launching server {len(new) + 1}/{want} from {rel.version}", self.launch_one)
        if self.past_deadline():
            return Decision(Kind.FAIL, f"progress deadline: the new fleet was not healthy within {rel.progress_deadline:g}s")
        building = [s for s in new if s.status is ServerStatus.BUILDING]
        if building:
            return wait(f"waiting for {len(building)} server(s) to boot")
        for server in new:
            member = obs.member_of(server)
            if member is None:
                return act(f"adding {server.name} to the pool (weight 0)", lambda s=server: self.add_member(s))
            if member.health is not Health.HEALTHY and server.id not in self._asserted:
                # this runner did not add it: a crash may have cut the add short (checks never enabled),
                # so assert it once; add_member is idempotent and re-arms a half-added member
                return act(f"checking {server.name}'s pool membership", lambda s=server: self.add_member(s))
        self.probe_fleet(new)
        for server in new:
            if self.health.failed_at_launch(server.id):
                return Decision(
                    Kind.FAIL, f"health check failed on {server.name}: {self.health.describe(server.id)}"
                )
        not_ready = [s for s in new if not (self.health.passing(s.id) and _lb_healthy(obs, s))]
        if not_ready:
            names = ", ".join(s.name for s in not_ready)
            return wait(f"health gate: waiting for {names} ({len(new) - len(not_ready)}/{len(new)} healthy)")
        return Decision(Kind.ADVANCE, f"{len(new)} new server(s) healthy ({self.ctx.health.rise} checks in a row)")

    def launch_one(self) -> None:
        rel = self.release
        suffix = uuid.uuid4().hex[:6]
        spec = ServerSpec(
            name=f"{rel.app}-{rel.version}-{suffix}",
            image_id=rel.image_id,
            app=rel.app,
            version=rel.version,
            env=rel.env,
            role=Role.CANDIDATE,
            release_id=rel.id,
        )
        self.provider.create_server(spec)

    def replace_broken(self, server: Server, member: Member | None) -> None:
        if server.status is not ServerStatus.DELETING:
            self.release.relaunches += 1
        if member is not None:
            self.provider.remove_member(member.id)
        self.provider.delete_server(server.id)

    def adopt(self, server: Server) -> None:
        self.provider.update_server_labels(
            server.id, {Label.RELEASE: self.release.id, Label.ROLE: Role.CANDIDATE.value, Label.RETIRE_AFTER: None}
        )

    def add_member(self, server: Server) -> None:
        self.provider.add_member(server)
        self._asserted.add(server.id)

    def probe_fleet(self, servers: list[Server]) -> None:
        now = self.now()
        for server in servers:
            if server.status is ServerStatus.ACTIVE and self.health.due(server.id, now):
                probe = self.provider.probe(server, self.ctx.health.path, self.ctx.health.timeout)
                self.health.record(server.id, probe, now)

    def watch_health(self, obs: Observed, new: list[Server]) -> str | None:
        """During holds: the LB's verdict and our probes must stay good for every new server."""
        self.probe_fleet(new)
        for server in new:
            member = obs.member_of(server)
            if member is None:
                return f"server {server.name} left the pool"
            if member.health is Health.UNHEALTHY:
                return f"load balancer reports {server.name} unhealthy"
            if self.health.failed_in_service(server.id):
                return f"health check failed on {server.name}: {self.health.describe(server.id)}"
        return None

    # weight ------------------------------------------------------------------------------------------------

    def fleets(self, obs: Observed) -> tuple[list[Member], list[Member]]:
        """(new members, old members): this release's fleet, and the stable fleet it replaces."""
        new = obs.members_for(obs.of_release(self.release.id))
        old = obs.members_for(obs.with_role(Role.STABLE, exclude_release=self.release.id))
        return new, old

    def decide_weight(self, obs: Observed, step: SetWeight) -> Decision:
        rel = self.release
        new, old = self.fleets(obs)
        plan = plan_weights(step.percent, len(new), len(old), self.provider.capabilities.max_weight)
        desired = {m.id: plan.new_weight for m in new} | {m.id: plan.old_weight for m in old}
        pending = {mid: w for mid, w in desired.items() if not _applied(_find(obs.members, mid), w)}
        if pending:
            note = "" if not old else f" (achieved {plan.achieved:.2f}%: new {plan.new_weight}, old {plan.old_weight})"
            return act(f"setting weights for {step.percent:g}% to {rel.version}{note}", lambda: self.set_weights(pending, plan))
        if rel.wake_at is None:
            return wait(f"weight {step.percent:g}% verified; holding {step.hold:g}s", wake_at=self.now() + step.hold)
        if self.now() < rel.wake_at:
            return wait(f"holding at {step.percent:g}% until {_clock(rel.wake_at)}")
        return Decision(Kind.ADVANCE, f"held {step.percent:g}% for {step.hold:g}s, healthy")

    def set_weights(self, weights: dict[str, int], plan: WeightPlan) -> None:
        self.provider.set_weights(weights)
        self._log(f"weights {plan.requested:g}% requested, {plan.achieved:.2f}% achieved")

    # pause -------------------------------------------------------------------------------------------------

    def decide_pause(self, step: Pause) -> Decision:
        rel = self.release
        if step.duration is None:
            if rel.promoted_step == rel.step_index or rel.promote_full:
                return Decision(Kind.ADVANCE, "promoted by operator")
            return Decision(Kind.PAUSE, f"paused at a manual gate (step {rel.step_index + 1})")
        if rel.wake_at is None:
            return wait(f"pausing {step.duration:g}s", wake_at=self.now() + step.duration)
        if self.now() < rel.wake_at:
            return wait(f"paused until {_clock(rel.wake_at)}")
        return Decision(Kind.ADVANCE, f"paused {step.duration:g}s")

    # analyze -----------------------------------------------------------------------------------------------

    def decide_analyze(self, obs: Observed, step: Analyze) -> Decision:
        rel = self.release
        stats = self.provider.member_stats()
        if rel.wake_at is None:
            rel.baseline = {mid: {"requests": s.requests, "bad": s.http_5xx + s.errors} for mid, s in stats.items()}
            self.health.reset_window()
            return wait(f"analysing for {step.duration:g}s", wake_at=self.now() + step.duration)
        if self.now() < rel.wake_at:
            return wait(f"analysing until {_clock(rel.wake_at)}")
        new, old = self.fleets(obs)
        verdict = analyse(step, stats, rel.baseline, new, old, self.health)
        return Decision(Kind.FAIL if verdict.failed else Kind.ADVANCE, verdict.reason)

    # retire ------------------------------------------------------------------------------------------------

    def decide_retire(self, obs: Observed, step: Retire) -> Decision:
        rel = self.release
        old_stable = obs.with_role(Role.STABLE, exclude_release=rel.id)
        warm = obs.with_role(Role.PREVIOUS, exclude_release=rel.id)
        if step.keep_previous > 0:
            older = [s for s in warm if s.version != rel.previous_version]
            if older:  # only one warm fleet is kept: the one this release replaces
                return self.retire_servers(obs, older, step.drain_timeout, "retiring an older warm fleet")
            if old_stable:
                until = self.now() + step.keep_previous
                return act(
                    f"keeping {len(old_stable)} {old_stable[0].version} server(s) warm for {step.keep_previous:g}s",
                    lambda: self.keep_warm(old_stable, until),
                )
            return Decision(Kind.ADVANCE, "previous fleet kept warm")
        if old_stable:
            return self.retire_servers(obs, old_stable, step.drain_timeout, "retiring the old fleet")
        return Decision(Kind.ADVANCE, "old fleet retired")

    def keep_warm(self, servers: list[Server], until: float) -> None:
        for s in servers:
            self.provider.update_server_labels(
                s.id, {Label.ROLE: Role.PREVIOUS.value, Label.RETIRE_AFTER: f"{until:.0f}"}
            )

    def retire_servers(self, obs: Observed, servers: list[Server], drain_timeout: float, why: str) -> Decision:
        """Drain → wait for 0 sessions (or the drain timeout) → remove member → delete server. One at a time."""
        return retire_decision(self, obs, servers, drain_timeout, why)

    # finalize ----------------------------------------------------------------------------------------------

    def decide_finalize(self, obs: Observed) -> Decision:
        rel = self.release
        new = obs.of_release(rel.id)
        unpromoted = [s for s in new if s.role is not Role.STABLE]
        if unpromoted:
            return act(f"marking {len(unpromoted)} server(s) stable", lambda: self.mark_stable(unpromoted))
        return Decision(Kind.DONE, f"{rel.version} is live on {len(new)} server(s)")

    def mark_stable(self, servers: list[Server]) -> None:
        for s in servers:
            self.provider.update_server_labels(s.id, {Label.ROLE: Role.STABLE.value})

    def _finish(self) -> Release:
        rel = self.release
        if rel.phase is Phase.ROLLING_BACK:
            end = Phase(rel.rollback_outcome or Phase.FAILED.value)
            rel.phase = end
            if end is Phase.FAILED and rel.kind is ReleaseKind.ROLLOUT:
                self.provider.update_image(rel.image_id, labels={Label.OUTCOME: ImageOutcome.FAILED.value})
        else:
            rel.phase = Phase.SUCCEEDED
            record_release_on_images(self.ctx, rel)
        rel.ended_at = self.now()
        rel.wake_at = None
        self._save()
        self.ctx.event("done", f"{rel.kind.value} of {rel.version} {rel.phase.value}: {rel.reason}")
        if rel.phase is Phase.FAILED:
            raise ReleaseFailed(
                f"{rel.kind.value} of {rel.app} {rel.version} failed and was rolled back: {rel.failure}",
                hint=None if rel.previous_version is None else f"traffic is back on {rel.previous_version}",
            )
        return rel

    # rollback --------------------------------------------------------------------------------------------

    def traffic_started(self) -> bool:
        """Whether any weight step was reached: before that, new members only ever had weight 0."""
        steps = self.release.pipeline.steps
        return any(isinstance(s, SetWeight) for s in steps[: self.release.step_index + 1])

    def decide_rollback(self, obs: Observed) -> Decision:
        """Restore all traffic to the old fleet, then drain, remove and stop the new one."""
        rel = self.release
        new_servers = obs.of_release(rel.id)
        new, old = self.fleets(obs)
        if old:
            desired = {m.id: FULL_WEIGHT for m in old} | {m.id: 0 for m in new}
            pending = {mid: w for mid, w in desired.items() if not _applied(_find(obs.members, mid), w)}
            if pending:
                return act(
                    f"restoring all traffic to {rel.previous_version or 'the old fleet'}",
                    lambda: self.provider.set_weights(pending),
                )
        if new_servers:
            # members that never took traffic (the release failed during launch) have nothing to drain
            drain = self.ctx.drain_timeout if self.traffic_started() else 0.0
            return retire_decision(self, obs, new_servers, drain, "removing the new fleet")
        return Decision(Kind.DONE, f"rolled back to {rel.previous_version or 'no version (first release)'}")


def _lb_healthy(obs: Observed, server: Server) -> bool:
    member = obs.member_of(server)
    return member is not None and member.health is Health.HEALTHY


def _clock(ts: float) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(ts))


def _find(members: tuple[Member, ...], member_id: str) -> Member | None:
    return next((m for m in members if m.id == member_id), None)


def _applied(member: Member | None, weight: int) -> bool:
    if member is None:
        return True  # gone: nothing to set
    if member.weight != weight:
        return False
    return weight == 0 or member.admin is AdminState.READY


def retire_decision(runner: Runner, obs: Observed, servers: list[Server], drain_timeout: float, why: str) -> Decision:
    """Retire a fleet: drain every member at once (one weight change), wait until all have 0 sessions or
    the drain timeout passes (one wait for the whole fleet), then remove the members and stop the servers,
    one action per pass. Never stops a process that is still in the pool."""
    rel = runner.release
    members = [m for m in (obs.member_of(s) for s in servers) if m is not None]
    undrained = {m.id: 0 for m in members if m.weight != 0}
    if undrained:
        return act(f"{why}: draining {len(undrained)} member(s)", lambda: runner.provider.set_weights(undrained))
    if members:
        if rel.wake_at is None:
            return wait(f"{why}: draining {len(members)} member(s)", wake_at=runner.now() + drain_timeout)
        sessions_known = runner.provider.capabilities.member_sessions and all(m.sessions is not None for m in members)
        drained = sessions_known and all(m.sessions == 0 for m in members)
        if not drained and runner.now() < rel.wake_at:
            return wait(f"{why}: waiting for {len(members)} member(s) to drain (at most until {_clock(rel.wake_at)})")
        member = members[0]
        server = obs.server_of(member)
        name = server.name if server is not None else member.name
        return act(f"{why}: removing {name} from the pool", lambda: runner.provider.remove_member(member.id))
    rel.wake_at = None
    server = servers[0]
    return act(f"{why}: stopping {server.name}", lambda: runner.provider.delete_server(server.id))


@dataclass(frozen=True)
class Verdict:
    failed: bool
    reason: str


def analyse(step: Analyze, stats, baseline, new: list[Member], old: list[Member], health: HealthTracker) -> Verdict:
    """Error rate of the new members over the window (LB counters when the provider has them, else our
    probes), compared with the old members', and p95 latency of our probes."""

    def rate(members: list[Member]) -> tuple[float | None, int]:
        requests = bad = 0
        for m in members:
            now, then = stats.get(m.id), baseline.get(m.id)
            if now is None:
                continue
            then = then or {"requests": 0, "bad": 0}
            requests += max(0, now.requests - int(then["requests"]))
            bad += max(0, now.http_5xx + now.errors - int(then["bad"]))
        return (bad / requests if requests else None), requests

    new_rate, new_requests = rate(new)
    old_rate, _ = rate(old)
    source = "load balancer"
    if new_rate is None:
        source = "releasectl probes"
        new_rate = health.failures / health.probes if health.probes else 0.0
    old_text = "n/a" if old_rate is None else f"{old_rate * 100:.2f}%"
    summary = f"new error rate {new_rate * 100:.2f}% over {new_requests or health.probes} requests ({source}), old {old_text}"
    if new_rate > step.max_error_rate:
        return Verdict(True, f"analysis failed: {summary} > {step.max_error_rate * 100:g}%")
    if step.max_p95_ms is not None:
        p95 = percentile(health.latencies, 95)
        if p95 is not None and p95 * 1000 > step.max_p95_ms:
            return Verdict(True, f"analysis failed: p95 latency {p95 * 1000:.0f}ms > {step.max_p95_ms:g}ms")
        summary += "" if p95 is None else f", p95 {p95 * 1000:.0f}ms"
    return Verdict(False, f"analysis passed: {summary}")


def record_release_on_images(ctx: EngineContext, rel: Release) -> None:
    """Labels make the environment's history observable on the images themselves (for rollback and prune):
    `role_<env>` is live or previous, and only those images stay protected."""
    env = rel.env
    role_key, state_key, at_key = f"role_{env}", f"state_{env}", f"released_at_{env}"
    images = ctx.provider.list_images()
    for image in images:
        if image.id == rel.image_id:
            continue
        role = image.labels.get(role_key)
        if role == "live":
            if rel.kind is ReleaseKind.ROLLBACK:
                labels = {role_key: None, state_key: ImageOutcome.ROLLED_BACK.value}
                ctx.provider.update_image(image.id, labels=labels, protected=_still_protected(image, role_key))
            else:
                ctx.provider.update_image(image.id, labels={role_key: "previous"}, protected=True)
        elif role == "previous":
            ctx.provider.update_image(image.id, labels={role_key: None}, protected=_still_protected(image, role_key))
    ctx.provider.update_image(
        rel.image_id,
        labels={role_key: "live", state_key: ImageOutcome.RELEASED.value, at_key: f"{rel.ended_at or ctx.clock.time():.3f}"},
        protected=True,
    )


def _still_protected(image, dropping: str) -> bool:
    return any(k.startswith("role_") and k != dropping for k in image.labels)


def new_release_id() -> str:
    return uuid.uuid4().hex[:10]


__all__ = ["Runner", "Decision", "Kind", "new_release_id", "record_release_on_images"]
