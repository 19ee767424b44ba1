"""The reconcile loop: observe -> decide (pure) -> apply -> record. Until done, paused or failed.

Each pass re-reads the servers and the pool, so a pass is idempotent and a runner that starts late (after
a crash, on another machine) continues from what is really there. `observe` does all the reading (LB
state, servers, members, due health probes, member stats, images, operator intents); `decide`
(engine/decide.py) is a pure function of that observation, the record and the time; the runner checks the
action against the safety invariants (engine/invariants.py), applies it (engine/actions.py), and writes
the record only when it changed: before an action, at the end, on a pause, failure or intent, and at most
RECORD_LAG after any other change (engine/transition.py). Time is data: holds, pauses,
analyses and drains end at `release.wake_at`.
"""

from __future__ import annotations

import copy
import dataclasses
import uuid
from dataclasses import dataclass, field

from releasectl.engine import records, samples
from releasectl.engine.actions import AddMember, AddMembers, DrainMembers, MarkImage, RemoveMembers, SetWeights, apply, pairs
from releasectl.engine.context import EngineContext
from releasectl.engine.decide import Decision, Kind, Policy, analyse, decide, restore_release_id
from releasectl.engine.health import HealthTracker, probe_all, snapshot
from releasectl.engine.invariants import InvariantRefused, check, describe_serving
from releasectl.engine.lock import LockKeeper
from releasectl.engine.model import Analyze, Launch, Phase, Release, ReleaseKind, Retire, SetWeight, describe_step
from releasectl.engine.observe import Observed, lb_state, settle_roles
from releasectl.engine.transition import note_members, record_key, transition
from releasectl.errors import Conflict, NotFound, PausedAtGate, ProviderError, ReleaseFailed, ReleasectlError, ResourceFailure
from releasectl.providers.base import Health, Image, ImageOutcome, Label, LBState, LBStatus, Role, ServerStatus
from releasectl.wait import FIRST_POLL, backoff_delay, retry_call

try:  # operator intents (engine/intents.py); absent on branches that predate it
    from releasectl.engine import intents
except ImportError:  # pragma: no cover
    intents = None  # type: ignore[assignment]


OPEN_WAIT_CAP = 0.5  # seconds: the longest look-again of a wait with no known end (a boot, a health gate)
# steps whose end a resumed runner sees again in the world (the fleet healthy, the weights set, the old fleet
# gone): their transition may wait for the next write. An analysis's verdict or a gate's opening may not: a
# runner killed after it would replay that step (a passed analysis, lost to every kill, replayed forever)
WORLD_SHOWN_STEPS = (Launch, SetWeight, Retire)
RECORD_LAG = 5.0  # seconds the stored record may lag the runner's (never an action: see _write_when_due)
LB_RECHECK = 3.0  # seconds an UP load balancer seen by a pass vouches for the passes after it (calls: issue 12)
POOL_WRITES = (AddMember, AddMembers, SetWeights, DrainMembers, RemoveMembers)  # fail while the LB is down


@dataclass
class Runner:
    """Drives one release to an end state. Owns nothing durable: the record and the provider hold it all."""

    ctx: EngineContext
    release: Release
    lock: LockKeeper | None = None
    first_look: Observed | None = None  # servers and members read by the command just before (see _look)
    health: HealthTracker = field(init=False)
    _last_reason: str = ""
    _asserted: set[str] = field(default_factory=set)  # members this runner added or re-asserted
    _busy_since: float | None = None  # first Conflict of the current run of busy answers
    _written: str | None = None  # record_key of the record as last written (or loaded)
    _samples: list = field(default_factory=list)  # taken since the last write; they ride along with the next one
    _kept: samples.Kept = field(default_factory=samples.Kept)  # the record's samples, held here, not in self.release
    _pass_stats: dict | None = None  # the LB's counters read by this pass's observe (for the sample)
    _intents_at: float | None = None  # when operator intents were last listed (engine clock)
    _wait_reason: str = ""  # the open-ended wait going on, and how many passes it has lasted
    _waits: int = 0
    _reuse: Observed | None = None  # the observation the next pass may use again (see _look)
    _lb_up: tuple[float, LBState] | None = None  # the LB last seen UP by a pass, and when (see _lb_look)
    _pending_since: float | None = None  # when the record first differed from the one written (see _write_when_due)

    def __post_init__(self) -> None:
        self.health = HealthTracker(self.ctx.health, lb_verdicts=not self.provider.capabilities.own_probes)
        self.sampler = samples.Sampler(self.health)
        # the record's samples live here during the run, not in self.release, which is copied every pass
        self._kept, self.release = samples.Kept.of(self.release.samples), copy.copy(self.release)
        self.release.samples = []
        self._reuse, self.first_look = self.first_look, None

    @property
    def provider(self):
        return self.ctx.provider

    def now(self) -> float:
        return self.ctx.clock.time()

    @property
    def _poll(self) -> float:
        """How long a waiting pass sleeps: the health interval, at most 1 s."""
        return max(0.05, min(self.ctx.health.interval, 1.0))

    @property
    def policy(self) -> Policy:
        caps = self.provider.capabilities
        return Policy(drain_timeout=self.ctx.drain_timeout, max_weight=caps.max_weight, member_sessions=caps.member_sessions)

    # ---- the loop ---------------------------------------------------------------------------------------

    def run(self) -> Release:
        try:
            return self._run()
        except ReleasectlError:
            self._flush()
            raise

    def _run(self) -> Release:
        self.provider.ensure_pool()  # every command that drives a release (re)starts a dead LB first
        self._written = record_key(self.release)
        if intents is not None and not intents.discard_others(self.provider, self.release.id):
            self._intents_at = self.now()  # listed just now, none of this release's: the first pass need not
        if self.release.step_started_at is None:
            self.release.step_started_at = self.now()
            self._write()
        poll = self._poll
        while True:
            self.ctx.stop.check()
            if self.lock is not None:
                self.lock.check()
            obs, fresh = self._look()
            rel = self.release
            if fresh:
                self._samples.append(self.sampler.take(obs, rel, self._pass_stats, self.now()))  # hook: report samples
            if intents is not None and obs.intents:  # hook: operator intents are folded in before decide
                for verdict in intents.verdicts(rel, list(obs.intents)):
                    self.ctx.event("intent", verdict.reason, intent=verdict.intent.id, applied=verdict.applied)
                rel = intents.fold(rel, list(obs.intents))
            rel = note_members(rel, obs, (rel.id, restore_release_id(rel)))
            decision = decide(obs, rel, self.now(), self.policy)
            if decision.reason != self._last_reason:
                skipped = {"skipped": True} if decision.skipped else {}
                self.ctx.event(decision.kind.value, decision.reason, step=rel.step_index, phase=rel.phase.value, **skipped)
                self._last_reason = decision.reason
            if decision.kind is Kind.ACT:
                # write-ahead: the record is never behind the cloud by an action. A step transition or a
                # hold's start left pending is written now, before the next step changes anything (a
                # runner killed after the action resumes past the step that ended, never replaying it)
                self.release = rel
                self._write()
                if not self._act(obs, rel, decision):
                    self._consume(obs)
                    self.ctx.clock.sleep(poll)
                    continue
            if decision.reset_window or decision.kind is Kind.ADVANCE:
                self.health.reset_window()
            new = transition(rel, decision, self.now())
            if decision.kind is Kind.DONE:
                self._mark_images(new)
            self.release = new
            sleep_for = self._sleep_for(decision, new, obs) if decision.kind is Kind.WAIT else 0.0
            follows_at_once = decision.kind in (Kind.ACT, Kind.ADVANCE, Kind.WAIT) and not sleep_for and not obs.intents
            if follows_at_once and decision.kind is not Kind.ACT:
                self._reuse = obs  # a pass that changed nothing in the cloud (an advance, a 0 s hold) lends its look
            # hook: the record write of the pass, when due (see _write_when_due)
            urgent = (decision.kind in (Kind.FAIL, Kind.PAUSE, Kind.HALT, Kind.DONE) or bool(obs.intents)
                      or (decision.kind is Kind.ADVANCE and not isinstance(rel.current_step, WORLD_SHOWN_STEPS)))
            self._write_when_due(urgent, sleep_for)
            self._consume(obs)  # hook: operator intents are deleted once the record lists them as applied
            if decision.kind is Kind.ADVANCE and new.current_step is not None:
                self.ctx.event("step", f"step {new.step_index + 1}/{len(new.pipeline.steps)}: {describe_step(new.current_step)}")
            elif decision.kind is Kind.FAIL:
                self.ctx.event("rollback", f"rolling back: {decision.reason}")
            elif decision.kind is Kind.WAIT and sleep_for:
                self.ctx.clock.sleep(max(sleep_for, 0.02))
            elif decision.kind is Kind.PAUSE:
                if intents is not None:
                    raise intents.paused_error(new)
                raise PausedAtGate(
                    f"{new.app} {new.version} is paused at step {new.step_index + 1}/{len(new.pipeline.steps)} "
                    f"({describe_step(new.current_step) if new.current_step else 'finalize'})"
                    + (" by an operator" if decision.reason.startswith("paused by operator") else ""),
                    hint="run `releasectl promote` to continue, or `releasectl abort` to roll back",
                )
            elif decision.kind is Kind.HALT:
                self._halt(obs, decision)
            elif decision.kind is Kind.DONE:
                self._settle_leftover_intents()
                return self._finished(self.release)

    def _sleep_for(self, decision: Decision, new: Release, obs: Observed) -> float:
        """How long a WAIT sleeps; 0 when the wait it starts is over already (a hold of 0 s)."""
        if new.wake_at is None:  # no known end (a boot, a health gate): look again soon, then less often
            sleep = self._open_wait(decision.reason)
            due = self._next_probe(obs)
            return sleep if due is None else max(sleep, min(due - self.now(), self.ctx.health.interval))
        if new.wake_at <= self.now():  # already past: just set (no sleep), or an analysis extended for want of requests
            return 0.0 if decision.wake_at is not None else self._poll
        return min(self._poll, new.wake_at - self.now())

    def _next_probe(self, obs: Observed) -> float | None:
        """When a health gate can pass at the earliest: the next probe of a server whose probes have not
        passed yet (all of its fleet up and probed once). None when the gate waits for anything else (a boot,
        a first probe, the LB's verdict): then the open wait's polls see it at once."""
        fleet = obs.of_release(self._gated_release())
        if not fleet or any(s.status is not ServerStatus.ACTIVE for s in fleet):
            return None
        waiting = [s for s in fleet if not obs.health.passing(s.id) and (s.id in obs.asserted or not obs.health.answered(s.id))]
        last = [self.health.streaks[s.id].last_at for s in waiting if s.id in self.health.streaks]
        if not waiting or len(last) < len(waiting):
            return None
        return min(last) + self.ctx.health.interval

    def _gated_release(self) -> str:
        """The release whose fleet this run probes and gates: the one it restores while rolling back."""
        rel = self.release
        return restore_release_id(rel) if rel.phase is Phase.ROLLING_BACK else rel.id

    def _look(self) -> tuple[Observed, bool]:
        """This pass's observation, and whether it is a new one: the last pass's, when that pass changed
        nothing in the cloud and this one follows at once (its health view refreshed, its intents handled)."""
        reuse, self._reuse = self._reuse, None
        if reuse is not None:
            return dataclasses.replace(reuse, health=snapshot(self.health), intents=()), False
        return self.observe(), True

    def _flush(self) -> None:
        """A run that stops on an error writes the record it deferred, unless it lost the lock (the record is
        another runner's then)."""
        try:
            if self.lock is not None:
                self.lock.check()
            self._write()
        except ReleasectlError:
            pass

    def _open_wait(self, reason: str) -> float:
        """Sleep of a wait with no known end (a boot, a health gate): FIRST_POLL, growing to the poll interval
        (at most OPEN_WAIT_CAP: a boot seen a whole second late is a second on the critical path) while the
        same wait goes on, so what settles in a moment is seen in a moment (`_sleep_for` sleeps on to the next
        due probe when nothing can pass before it)."""
        self._waits = self._waits + 1 if reason == self._wait_reason else 0
        self._wait_reason = reason
        return backoff_delay(self._waits, first=FIRST_POLL, cap=min(self._poll, OPEN_WAIT_CAP))

    def _act(self, obs: Observed, rel: Release, decision: Decision) -> bool:
        """Check the action against the invariants and apply it. False when the provider was busy."""
        assert decision.action is not None
        undoing_first = rel.phase is Phase.ROLLING_BACK and rel.previous_version is None
        violation = check(
            obs, decision.action, app=rel.app, env=rel.env, own_members=rel.own_members, had_live_version=not undoing_first
        )
        if violation is not None:
            self.ctx.event("refused", f"refused ({violation.invariant}): {decision.reason}: {violation.message}")
            raise InvariantRefused(
                f"refused to {decision.reason} ({violation}); left serving: {describe_serving(obs)}",
                invariant=violation.invariant,
                hint="nothing was removed; run `releasectl rollout --resume` once the cause is fixed",
            )
        if isinstance(decision.action, POOL_WRITES):
            self._lb_up = None  # the pass after a pool write looks at the LB again (free on OpenStack: the write's wait saw it)
        try:
            apply(decision.action, self.provider)
        except Conflict as exc:
            # busy (an LB update in flight, a server still being created): observe again later,
            # for as long as the progress deadline allows
            self._busy_since = self._busy_since or self.now()
            self._lb_up = None
            if self.now() - self._busy_since > rel.progress_deadline:
                raise
            self.ctx.event("wait", f"{decision.reason}: busy, retrying ({exc})")
            return False
        except ProviderError as exc:
            # the LB may have died between this pass's look and a pool write: the next pass sees it down
            # and restarts it (RestartLB) instead of the run ending with the LB down
            if not isinstance(decision.action, POOL_WRITES) or lb_state(self.provider).status not in (LBStatus.DOWN, LBStatus.ABSENT):
                raise
            self._busy_since = self._busy_since or self.now()
            if self.now() - self._busy_since > rel.progress_deadline:
                raise
            self.ctx.event("wait", f"{decision.reason}: the load balancer went down ({exc}); restarting it")
            return False
        self._busy_since = None
        if isinstance(decision.action, AddMember):
            self._asserted.add(decision.action.server.id)
        if isinstance(decision.action, AddMembers):
            self._asserted.update(server.id for server in decision.action.servers)
        return True

    def _lb_look(self) -> tuple[LBState, bool]:
        """The LB's state for this pass: read, unless a pass saw it UP less than LB_RECHECK ago and nothing was
        applied since. An LB that breaks in between is seen by the next read, by a pool read failing (observe
        looks again then), or by our next pool write (which waits for the LB and fails on an LB in ERROR)."""
        now = self.now()
        if self._lb_up is not None and 0 <= now - self._lb_up[0] < LB_RECHECK:
            return self._lb_up[1], False
        lb = lb_state(self.provider)
        self._lb_up = (now, lb) if lb.status is LBStatus.UP else None
        return lb, True

    def observe(self) -> Observed:
        """Everything this pass needs, read from the provider (the only reads of a pass)."""
        lb, read = self._lb_look()
        self._pass_stats = None
        if lb.status in (LBStatus.DOWN, LBStatus.ABSENT, LBStatus.ERROR):
            return Observed(servers=(), members=(), lb=lb)
        try:
            obs = self._read(lb)
        except ProviderError:
            if read:
                raise
            obs = None
        if read or (obs is not None and not any(m.weight > 0 and m.health is Health.UNKNOWN for m in obs.members)):
            return obs
        # the LB was not read this pass, and its pool failed to answer or cannot tell the health of a member
        # that serves (a dead HAProxy reports its last known members so): look at the LB now
        self._lb_up = None
        lb, _ = self._lb_look()
        if lb.status is LBStatus.UP and obs is None:
            return self._read(lb)
        return obs if lb.status is LBStatus.UP else Observed(servers=(), members=(), lb=lb)

    def _read(self, lb: LBState) -> Observed:
        rel = self.release
        servers = settle_roles(self.provider.list_servers(), rel)
        members = tuple(self.provider.list_members())
        rolling_back = rel.phase is Phase.ROLLING_BACK
        if rolling_back or rel.current_step is not None:
            now = self.now()
            pool = Observed(servers=servers, members=members, lb=lb)  # for member_of: the LB's verdict per server
            gated = self._gated_release()
            due = [s for s in servers if s.release_id == gated and s.status is ServerStatus.ACTIVE and self.health.due(s.id, now)]
            check = self.ctx.health
            for server, probe in zip(due, probe_all(lambda s: self.provider.probe(s, check.path, check.timeout), due)):
                self.health.record(server.id, probe, now, pool.member_of(server))
        stats = None
        if self.provider.capabilities.member_stats:  # every pass: the record's samples chart traffic over time
            self._pass_stats = dict(self.provider.member_stats())
        if not rolling_back and isinstance(rel.current_step, Analyze):
            stats = self._pass_stats if self._pass_stats is not None else self.provider.member_stats()
        images = None
        if rolling_back and rel.previous_version:
            old = [s for s in servers if s.role is Role.STABLE and s.release_id != rel.id and s.status is ServerStatus.ACTIVE]
            if not old:
                images = tuple(self.provider.list_images())
        pending = ()  # hook: intents, listed at most once per poll interval (a burst of actions lists once)
        if intents is not None and (self._intents_at is None or self.now() - self._intents_at >= self._poll):
            self._intents_at = self.now()
            pending = tuple(intents.pending(self.provider, rel.id))
        return Observed(
            servers=servers, members=members, lb=lb, health=snapshot(self.health), stats=stats, images=images,
            intents=pending, asserted=frozenset(self._asserted),
        )

    def _write_when_due(self, urgent: bool, sleep_for: float) -> None:
        """Write the record now if it must be, else leave the change pending (writes: issue 12).

        Pending changes are the ones a resuming runner recomputes from the world: the end of a launch, hold
        or retire step (WORLD_SHOWN_STEPS), a hold's, analysis's or drain's start (a resumed run holds,
        analyses or drains again, in full), an action's effects (observed again). They ride along with the
        next write: the write-ahead of the next action (see `_run`), the end, a pause, a failure, an
        analysis's verdict, an intent, or, so that `status` and `watch` lag the runner by at most
        RECORD_LAG, the first pass that would leave one pending longer: at once when the wait just started
        (a hold, an analysis, a drain) ends later than that, so a long hold shows its end at once."""
        key = record_key(self.release)
        if key == self._written:
            self._pending_since = None
            return
        now = self.now()
        if self._pending_since is None:
            self._pending_since = now
        pending_until = max(now + sleep_for, self.release.wake_at or 0.0)
        if urgent or pending_until - self._pending_since >= RECORD_LAG:
            self._write(key)

    def _write(self, key: str | None = None) -> None:
        """Write the record when it differs from the last one written (ignoring updated_at and reason)."""
        key = key or record_key(self.release)
        if key == self._written:
            return
        self._kept.extend(self._samples)  # samples cause no write of their own: they ride along with this one
        self._samples = []
        self.release.updated_at = self.now()
        self.release.samples = self._kept.items
        try:
            records.save(self.provider, self.release)
        finally:
            self.release.samples = []
        self._written, self._pending_since = key, None

    def _consume(self, obs: Observed) -> None:
        if intents is not None and obs.intents:
            intents.consume(self.provider, list(obs.intents))

    def _settle_leftover_intents(self) -> None:
        """Intents posted during the last pass, after its look: the release has ended, so each is recorded
        as ignored (a waiting operator is told why) and deleted; none is left for a later release."""
        if intents is None:
            return
        left = intents.pending(self.provider, self.release.id)
        if not left:
            return
        for verdict in intents.verdicts(self.release, left):
            self.ctx.event("intent", verdict.reason, intent=verdict.intent.id, applied=verdict.applied)
        self.release = intents.fold(self.release, left)
        self._write()
        intents.consume(self.provider, left)

    def _halt(self, obs: Observed, decision: Decision) -> None:
        if obs.lb.status is LBStatus.ERROR:
            raise ResourceFailure(decision.reason, hint=decision.hint)
        self.ctx.event("refused", decision.reason)
        raise InvariantRefused(decision.reason, invariant="I2", hint=decision.hint)

    def _mark_images(self, rel: Release) -> None:
        """Outcome labels on the images. An image that vanished is skipped: the release itself is over,
        and failing here would leave `rollout --resume` failing forever."""
        if rel.phase is Phase.SUCCEEDED:
            marks = release_marks(rel, self.provider.list_images(), self.now())
        elif rel.phase is Phase.FAILED and rel.kind is ReleaseKind.ROLLOUT:
            marks = [MarkImage(rel.image_id, pairs({Label.OUTCOME: ImageOutcome.FAILED.value}))]
        else:
            marks = []
        for mark in marks:
            try:  # the release is over: a busy image service (409) is waited out, not an exit 5
                retry_call(lambda: apply(mark, self.provider), retry_on=(Conflict,), attempts=8, interval=0.5,
                           what=f"labelling image {mark.image_id}", clock=self.ctx.clock)
            except NotFound as exc:
                self.ctx.event("warn", f"image {mark.image_id} is gone, not labelled: {exc}")

    def _finished(self, rel: Release) -> Release:
        rel.samples = self._kept.items  # the caller gets the whole record, as written
        self.ctx.event("done", f"{rel.kind.value} of {rel.version} {rel.phase.value}: {rel.reason}")
        if rel.phase is Phase.FAILED:
            raise ReleaseFailed(
                f"{rel.kind.value} of {rel.app} {rel.version} failed and was rolled back: {rel.failure}",
                hint=None if rel.previous_version is None else f"traffic is back on {rel.previous_version}",
            )
        return rel


def release_marks(rel: Release, images: list[Image], now: float) -> list[MarkImage]:
    """Labels make the environment's history observable on the images themselves (for rollback and prune):
    `role_<env>` is live or previous, and only those images stay protected."""
    env = rel.env
    role_key, state_key, at_key = f"role_{env}", f"state_{env}", f"released_at_{env}"
    marks = []
    for image in images:
        if image.id == rel.image_id:
            continue
        role = image.labels.get(role_key)
        if role == "live":
            if rel.kind is ReleaseKind.ROLLBACK:
                labels = {role_key: None, state_key: ImageOutcome.ROLLED_BACK.value}
                marks.append(MarkImage(image.id, pairs(labels), _still_protected(image, role_key)))
            else:
                marks.append(MarkImage(image.id, pairs({role_key: "previous"}), True))
        elif role == "previous":
            marks.append(MarkImage(image.id, pairs({role_key: None}), _still_protected(image, role_key)))
    labels = {role_key: "live", state_key: ImageOutcome.RELEASED.value, at_key: f"{rel.ended_at or now:.3f}"}
    marks.append(MarkImage(rel.image_id, pairs(labels), True))
    return marks


def record_release_on_images(ctx: EngineContext, rel: Release) -> None:
    for mark in release_marks(rel, ctx.provider.list_images(), ctx.clock.time()):
        apply(mark, ctx.provider)


def _still_protected(image, dropping: str) -> bool:
    return any(k.startswith("role_") and k != dropping for k in image.labels)


def new_release_id() -> str:
    return uuid.uuid4().hex[:10]


__all__ = ["Runner", "Decision", "Kind", "analyse", "new_release_id", "record_release_on_images"]
