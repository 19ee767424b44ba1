"""Operator verbs on releases: rollout, resume, promote, abort, pause, rollback, gc and down.

Each one takes the lock, writes its intent into the release record, and lets the reconcile Runner act.
While a live runner holds the lock, `promote`, `abort` and `pause` post an intent for it instead
(engine/intents.py) and return at once, or wait for the outcome. Input is validated before anything
changes; a bad request raises UsageError (exit 2) untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from releasectl.engine import intents, quota, records
from releasectl.engine.context import EngineContext
from releasectl.engine.decide import restore_release_id
from releasectl.engine.images import usable_image
from releasectl.engine.invariants import owns_member
from releasectl.engine.lock import LockKeeper
from releasectl.engine.model import (
    Analyze,
    Launch,
    Phase,
    Pipeline,
    Release,
    ReleaseKind,
    Retire,
    SetWeight,
)
from releasectl.engine.observe import Observed, lb_state, live_version, observe, rollback_targets
from releasectl.engine.reconcile import Runner, new_release_id
from releasectl.engine.versions import parse_version, version_key
from releasectl.engine.weights import plan_weights
from releasectl.engine.intents import Intent, IntentKind, Posted
from releasectl.errors import Conflict, Interrupted, LockHeld, ReleaseFailed, UsageError
from releasectl.wait import retry_call, wait_for
from releasectl.engine.doctor import refuse_on_damaged_servers, report_damage
from releasectl.engine.events import note, who
from releasectl.providers.base import Image, ImageOutcome, ImageStatus, Label, LBStatus, Role, Server, ServerStatus

def rollback_pipeline(drain_timeout: float) -> Pipeline:
    return Pipeline(
        name="rollback",
        description="Bring the last known-good version back: adopt its warm fleet or relaunch it, switch, retire.",
        steps=(Launch(), SetWeight(percent=100.0), Retire(drain_timeout=drain_timeout, keep_previous=0.0)),
    )


def restart_dead_lb(ctx: EngineContext) -> LBStatus:
    """A load balancer that is down is restarted before the pool is read (what serves decides what to roll
    out); an absent one (no release yet) is created later, by the runner, once the input was validated.
    Returns the status it saw."""
    status = lb_state(ctx.provider).status
    if status is LBStatus.DOWN:
        ctx.event("lb", "the load balancer is down: restarting it")
        ctx.provider.ensure_pool()
    return status


def _locked(ctx: EngineContext, command: str) -> LockKeeper:
    return LockKeeper(ctx.provider, {**ctx.actor, "command": command}, ttl=ctx.lock_ttl)


def _unfinished(ctx: EngineContext) -> Release | None:
    rel = records.load_current(ctx.provider)
    return rel if rel is not None and not rel.phase.finished else None


def _in_progress_error(rel: Release) -> UsageError:
    return UsageError(
        f"a {rel.kind.value} of {rel.app} {rel.version} is {rel.phase.value} at step "
        f"{rel.step_index + 1}/{len(rel.pipeline.steps)}",
        hint="continue it with `releasectl rollout --resume` (or `promote` at a gate), or undo it with `releasectl abort`",
    )


def _drive(ctx: EngineContext, release: Release, lock: LockKeeper, first_look: Observed | None = None) -> Release:
    """Run the release to its end. An operator's abort (an intent, applied by this runner) ends a command
    that set out to release with exit 1: the release did not happen and traffic is back where it was.
    `first_look`: the servers and members the command read a moment ago, with nothing changed since."""
    rel = Runner(ctx, release, lock, first_look=first_look).run()
    if rel.phase is Phase.ABORTED:
        raise _rolled_back(rel)
    return rel


def _rolled_back(rel: Release) -> ReleaseFailed:
    """Exit 1 for a command whose release ended rolled back (failed, or aborted by someone else)."""
    why = "was aborted by an operator" if rel.phase is Phase.ABORTED else f"failed ({rel.failure})"
    return ReleaseFailed(
        f"the {rel.kind.value} of {rel.app} {rel.version} {why} and was rolled back",
        hint=None if rel.previous_version is None else f"traffic is back on {rel.previous_version}",
    )


def choose_image(ctx: EngineContext, version: str | None, live: str | None, found: Image | None = None) -> Image:
    """The image to roll out: the named version (`found`: its image as read a moment ago), or the newest
    baked one that is not live."""
    if version is not None:
        image = found if found is not None and found.version == version else usable_image(ctx, version)
        if image.outcome is ImageOutcome.FAILED:
            raise UsageError(
                f"{version} failed an earlier release and is marked failed",
                hint=f"fix it and bake a new version, or re-bake it with `releasectl bake {version} --force`",
            )
        if version == live:
            raise UsageError(
                f"{version} is already live in {ctx.env}",
                hint="bake a new version to roll out, or use `releasectl rollback` to go back",
            )
        return image
    images = [i for i in ctx.provider.list_images() if i.status is ImageStatus.ACTIVE]
    candidates = sorted(
        (i for i in images if i.version != live and i.outcome is not ImageOutcome.FAILED),
        key=lambda i: version_key(i.version),
        reverse=True,
    )
    if not candidates:
        raise UsageError(f"no baked version of {ctx.app} to roll out", hint="bake one: `releasectl bake VERSION`")
    if live is not None and version_key(candidates[0].version) < version_key(live):
        raise UsageError(
            f"no baked version newer than the live {live}",
            hint=f"bake a new version, or name an older one explicitly: `releasectl rollout {candidates[0].version}`",
        )
    return candidates[0]


def check_weight_steps(ctx: EngineContext, pipeline: Pipeline, n_new: int, n_old: int) -> None:
    """Refuse, before anything changes, a weight step the integer weights cannot reach within tolerance.

    With no old fleet (the first release) there is nothing to split: every step sends all traffic to the
    new fleet, which is the only possible share, and the rollout says so instead of refusing."""
    if n_old == 0:
        if any(isinstance(s, Analyze) or (isinstance(s, SetWeight) and s.percent < 100) for s in pipeline.steps):
            ctx.event("start", "first release (no live fleet): weight and analysis steps are skipped (health gate, then 100%)")
        return
    for index, step in enumerate(pipeline.steps):
        if isinstance(step, SetWeight):
            plan = plan_weights(step.percent, n_new, n_old, ctx.provider.capabilities.max_weight)
            if plan.error > ctx.weight_tolerance:
                raise UsageError(
                    f"step {index + 1} asks for {step.percent:g}% but {n_new} new and {n_old} old members can only "
                    f"get {plan.achieved:.2f}% (off by {plan.error:.2f} points, tolerance {ctx.weight_tolerance:g})",
                    hint="change the step's percent, the instance count, or rollout.weight_tolerance",
                )


def _new_release(ctx: EngineContext, kind: ReleaseKind, image: Image, pipeline: Pipeline, previous: str | None, count: int) -> Release:
    now = ctx.clock.time()
    return Release(
        id=new_release_id(),
        app=ctx.app,
        env=ctx.env,
        kind=kind,
        version=image.version,
        image_id=image.id,
        previous_version=previous,
        pipeline=pipeline,
        count=count,
        started_at=now,
        updated_at=now,
        progress_deadline=ctx.progress_deadline,
        actor=dict(ctx.actor),
    )


def _require_unfinished(ctx: EngineContext, message: str, hint: str | None = None) -> None:
    """Checked read-only before the lock is taken, so a refusal (exit 2) writes nothing, not even the lock
    file; the verb checks again under the lock (the world may change in between)."""
    if _unfinished(ctx) is None:
        raise UsageError(message, hint=hint)


def _baked_before_lock(ctx: EngineContext, version: str) -> Image:
    """Read-only, before the lock: an unbaked version writes nothing. The record is read only when the image
    is missing (an unfinished release is the better answer then); the lock re-reads it anyway."""
    try:
        return usable_image(ctx, version)
    except UsageError:
        current = _unfinished(ctx)
        if current is not None:
            raise _in_progress_error(current) from None
        raise


def rollout(ctx: EngineContext, version: str | None, pipeline: Pipeline, *, resume: bool = False) -> Release:
    if version is not None:
        parse_version(version)
    if resume:
        _require_unfinished(ctx, "there is no unfinished release to resume", hint="start one with `releasectl rollout VERSION`")
    found = None
    if version is not None and not resume:
        found = _baked_before_lock(ctx, version)
    with _locked(ctx, "rollout") as lock:
        current = _unfinished(ctx)
        if resume:
            if current is None:
                raise UsageError("there is no unfinished release to resume", hint="start one with `releasectl rollout VERSION`")
            if version is not None and version != current.version:
                raise UsageError(f"the unfinished release is {current.version}, not {version}")
            if current.phase is Phase.PAUSED:
                return _drive(ctx, current, lock)  # re-checks the gate: exits 4 until promoted
            ctx.event("resume", f"resuming {current.kind.value} of {current.version} at step {current.step_index + 1}")
            note(current.events, ctx.clock.time(), f"{who(ctx.actor)} resumed the release", by=ctx.actor)
            records.save(ctx.provider, current)
            return _drive(ctx, current, lock)
        if current is not None:
            raise _in_progress_error(current)
        lb_was = restart_dead_lb(ctx)
        observed = observe(ctx.provider)
        refuse_on_damaged_servers(observed.servers)
        live = live_version(observed, ctx.env, ctx.provider.list_images)
        image = choose_image(ctx, version, live, found)
        old_count = len(observed.members_for(observed.with_role(Role.STABLE)))
        check_weight_steps(ctx, pipeline, ctx.count, old_count)
        warm = sum(1 for s in observed.servers if s.version == image.version)  # adopted, not booted
        quota.preflight(ctx.provider, what=f"rollout of {ctx.app} {image.version} with pipeline {pipeline.name}",
                        servers=max(0, quota.peak_new_servers(pipeline, ctx.count) - warm))
        retired = retire_expired_warm(ctx, observed)
        release = _new_release(ctx, ReleaseKind.ROLLOUT, image, pipeline, live, ctx.count)
        ctx.event("start", f"rollout of {ctx.app} {image.version} ({image.name}) to {ctx.env} with pipeline "
                  f"{pipeline.name}; live: {live or 'none'}")
        unchanged = lb_was is LBStatus.UP and not retired  # the runner's first pass need not read them again
        return _drive(ctx, release, lock, first_look=observed if unchanged else None)


def promote(ctx: EngineContext, *, full: bool = False, wait: float | None = None) -> Release | Posted:
    """Open the gate (or with `full`, skip the remaining steps): here, or by intent to a live runner."""
    kind = IntentKind.PROMOTE_FULL if full else IntentKind.PROMOTE
    return _here_or_by_intent(ctx, kind, wait, lambda: _promote(ctx, full))


def _promote(ctx: EngineContext, full: bool) -> Release:
    _require_unfinished(ctx, "there is no release in progress to promote")
    with _locked(ctx, "promote") as lock:
        current = _unfinished(ctx)
        if current is None:
            raise UsageError("there is no release in progress to promote")
        kind = IntentKind.PROMOTE_FULL if full else IntentKind.PROMOTE
        why_not = intents.refusal(current, kind)
        if why_not is not None:
            raise UsageError(why_not, hint="`releasectl rollout --resume` continues the release (or finishes its rollback)")
        current = intents.apply(current, kind, ctx.clock.time())
        note(current.events, ctx.clock.time(), f"{who(ctx.actor)} {'fully promoted' if full else 'promoted'} the release", by=ctx.actor)
        records.save(ctx.provider, current)
        ctx.event("promote", f"promoted {current.version}" + (" fully" if full else f" past step {current.step_index + 1}"))
        return _drive(ctx, current, lock)


def abort(ctx: EngineContext, *, wait: float | None = None) -> Release | Posted:
    """Roll the release back: here, or by intent to a live runner."""
    return _here_or_by_intent(ctx, IntentKind.ABORT, wait, lambda: _abort_here(ctx))


def _abort_here(ctx: EngineContext) -> Release:
    _require_unfinished(ctx, "there is no release in progress to abort", hint="use `releasectl rollback` after a finished rollout")
    with _locked(ctx, "abort") as lock:
        current = _unfinished(ctx)
        if current is None:
            raise UsageError("there is no release in progress to abort", hint="use `releasectl rollback` after a finished rollout")
        return _abort(ctx, current, lock)


def _abort(ctx: EngineContext, current: Release, lock: LockKeeper) -> Release:
    if current.phase is not Phase.ROLLING_BACK:
        current = intents.apply(current, IntentKind.ABORT, ctx.clock.time())
        note(current.events, ctx.clock.time(), f"{who(ctx.actor)} aborted the release", by=ctx.actor)
        records.save(ctx.provider, current)
    ctx.event("abort", f"aborting the {current.kind.value} of {current.version}")
    return Runner(ctx, current, lock).run()


def pause(ctx: EngineContext, *, wait: float | None = None) -> Release | Posted:
    """Stop the release where it is until `promote` (exit 4): here, or by intent to a live runner."""
    return _here_or_by_intent(ctx, IntentKind.PAUSE, wait, lambda: _pause_here(ctx))


def _pause_here(ctx: EngineContext) -> Release:
    """No runner is alive: mark the release paused, as the runner would at its next pass, and exit 4."""
    _require_unfinished(ctx, "there is no release in progress to pause")
    with _locked(ctx, "pause"):
        current = _unfinished(ctx)
        if current is None:
            raise UsageError("there is no release in progress to pause")
        why_not = intents.refusal(current, IntentKind.PAUSE)
        if why_not is not None:
            raise UsageError(why_not)
        current = intents.apply(current, IntentKind.PAUSE, ctx.clock.time())
        current.phase = Phase.PAUSED  # as the runner does at its next pass
        current.updated_at = ctx.clock.time()
        note(current.events, ctx.clock.time(), f"{who(ctx.actor)} paused the release", by=ctx.actor)
        records.save(ctx.provider, current)
        ctx.event("pause", f"paused the {current.kind.value} of {current.version} at step {current.step_index + 1}")
        raise intents.paused_error(current)


# ---- intents for a live runner ---------------------------------------------------------------------------

def _here_or_by_intent(ctx: EngineContext, kind: IntentKind, wait: float | None, here: Callable[[], Release]) -> Release | Posted:
    """With a live runner, post the intent (and with `wait` seconds, wait for its outcome); else act here as
    the verb always did. A runner that takes the lock between the look and the act makes `here` raise
    LockHeld: then the intent goes to it."""
    posted = _post_to_runner(ctx, kind, wait)
    if posted is not None:
        return posted
    try:
        return here()
    except LockHeld:
        posted = _post_to_runner(ctx, kind, wait)
        if posted is None:
            raise
        return posted


def _post_to_runner(ctx: EngineContext, kind: IntentKind, wait: float | None) -> Posted | None:
    """None when no live runner drives an unfinished release (the caller acts itself)."""
    posted = intents.hand_to_runner(ctx, kind)
    if posted is None or wait is None:
        return posted
    return Posted(intent=posted.intent, release=wait_for_intent(ctx, posted.intent, wait), runner=posted.runner, waited=True)


def wait_for_intent(ctx: EngineContext, intent: Intent, timeout: float) -> Release:
    """Wait (bounded) for the runner to apply the intent and for its outcome, and return the release.

    Raises what the same verb raises when it runs itself: PausedAtGate when the release stops paused (the
    outcome of `pause`, or a later gate after `promote`), ReleaseFailed when it failed and was rolled back,
    UsageError when the runner ignored the intent, Interrupted when the runner stopped before the end."""
    provider = ctx.provider

    def settled() -> Release | None:
        runner_alive = _runner_alive(ctx)  # looked at before the record: a record read after the runner ended is final
        rel = _record_of(ctx, intent.release_id)
        if intent.id not in rel.applied_intents:
            if rel.phase.finished:
                intents.consume(provider, [intent])
                raise UsageError(
                    f"the {rel.kind.value} of {rel.version} {rel.phase.value} before its runner applied the {intent.kind.value}"
                )
            if not runner_alive:
                raise Interrupted(
                    f"the runner of {rel.version} stopped before it applied the {intent.kind.value} (intent {intent.id})",
                    hint="the intent stays pending: the next runner applies it (`releasectl rollout --resume`)",
                )
            return None
        ignored = next((e for e in rel.events if e.get("intent") == intent.id and not e.get("applied")), None)
        if ignored is not None:
            raise UsageError(ignored["message"], hint="see `releasectl status`")
        if rel.phase is Phase.PAUSED:
            raise intents.paused_error(rel)
        if rel.phase.finished:
            if rel.phase is Phase.FAILED or (rel.phase is Phase.ABORTED and intent.kind is not IntentKind.ABORT):
                raise _rolled_back(rel)
            return rel
        if not runner_alive:
            raise Interrupted(
                f"the runner of {rel.version} stopped with the release {rel.phase.value} at step {rel.step_index + 1}",
                hint="`releasectl rollout --resume` continues it, `releasectl abort` undoes it",
            )
        return None

    return wait_for(settled, timeout=timeout, interval=0.1, max_interval=1.0, what=f"the outcome of {intent.kind.value}",
                    clock=ctx.clock)


def _runner_alive(ctx: EngineContext) -> bool:
    lease = ctx.provider.read_lock()
    return lease is not None and lease.alive(ctx.clock.time())


def _record_of(ctx: EngineContext, release_id: str) -> Release:
    current = records.load_current(ctx.provider)
    if current is not None and current.id == release_id:
        return current
    for rel in records.load_history(ctx.provider):
        if rel.id == release_id:
            return rel
    raise Interrupted(f"the record of release {release_id} is gone", hint="see `releasectl history`")


def rollback(ctx: EngineContext, to: str | None = None) -> Release:
    """Back to the last known-good version: its warm fleet if there is one, else relaunched from its image."""
    if to is not None:
        parse_version(to)
    if _unfinished(ctx) is None:
        rollback_target(ctx, to)  # read-only, before the lock: a refusal writes nothing
    with _locked(ctx, "rollback") as lock:
        current = _unfinished(ctx)
        if current is not None:
            if to is not None and to != current.previous_version:
                raise _in_progress_error(current)
            return _abort(ctx, current, lock)
        lb_was = restart_dead_lb(ctx)
        observed = observe(ctx.provider)
        refuse_on_damaged_servers(observed.servers)
        live = live_version(observed, ctx.env, ctx.provider.list_images)
        target = rollback_target(ctx, to)
        if target.version == live:
            raise UsageError(f"{target.version} is already live: nothing to roll back")
        warm = [s for s in observed.with_role(Role.PREVIOUS) if s.version == target.version and s.status is ServerStatus.ACTIVE]
        count = max(ctx.count, len(warm))
        release = _new_release(ctx, ReleaseKind.ROLLBACK, target, rollback_pipeline(ctx.drain_timeout), live, count)
        how = f"its {len(warm)} warm server(s)" if warm else "a relaunch from its image"
        ctx.event("start", f"rollback of {ctx.app} in {ctx.env} from {live or 'none'} to {target.version} using {how}")
        return _drive(ctx, release, lock)


def rollback_target(ctx: EngineContext, to: str | None) -> Image:
    """The image a rollback goes to (read-only): `to`, or the newest known-good version; UsageError if none."""
    images = ctx.provider.list_images()
    targets = rollback_targets(images, ctx.env)
    if to is not None:
        chosen = [i for i in images if i.version == to]
        if not chosen:
            raise UsageError(f"no image for {ctx.app} {to}")
        if chosen[0] not in targets:
            raise UsageError(
                f"{to} is not a known-good version of {ctx.env} (never released there, or marked failed or rolled back)",
                hint=f"known-good versions: {', '.join(i.version for i in targets) or 'none'}",
            )
        return chosen[0]
    if targets:
        return targets[0]
    raise UsageError(f"no earlier known-good version of {ctx.app} in {ctx.env} to roll back to")


# ---- housekeeping ------------------------------------------------------------------------------------------


@dataclass
class GcReport:
    removed_members: list[str] = field(default_factory=list)
    deleted_servers: list[str] = field(default_factory=list)
    deleted_images: list[str] = field(default_factory=list)
    dry_run: bool = False
    spared: list[str] = field(default_factory=list)  # left alone because state about them is damaged


def delete_server(ctx: EngineContext, server_id: str, timeout: float = 60.0) -> None:
    """Delete, waiting out a server that is busy (still being created): Conflict means try again."""
    retry_call(
        lambda: ctx.provider.delete_server(server_id),
        retry_on=(Conflict,),
        attempts=max(2, int(timeout / 2)),
        interval=1.0,
        what=f"deleting server {server_id}",
        clock=ctx.clock,
    )


def retire_expired_warm(ctx: EngineContext, observed: Observed) -> list[str]:
    """Warm previous fleets past their keep_previous time are drained already (weight 0): remove them."""
    now = ctx.clock.time()
    retired = []
    for server in observed.with_role(Role.PREVIOUS):
        if float(server.labels.get(Label.RETIRE_AFTER, "inf")) <= now:
            member = observed.member_of(server)
            if member is not None:
                ctx.provider.set_weights({member.id: 0})
                ctx.provider.remove_member(member.id)
            delete_server(ctx, server.id)
            ctx.event("retire", f"retired warm server {server.name} ({server.version}): its keep time is over")
            retired.append(server.name)
    return retired


def orphans(ctx: EngineContext, observed: Observed, current: Release | None) -> tuple[list, list, list]:
    """What releasectl tagged but no live, warm, staged or in-progress release owns. Members only when they
    are this app and environment's (I3): a second app on the same pool keeps its members."""
    active_release = current.id if current is not None and not current.phase.finished else None
    now = ctx.clock.time()
    servers = []
    for s in observed.servers:
        if s.role in (Role.STABLE, Role.STAGING):
            continue
        if s.role is Role.PREVIOUS and float(s.labels.get(Label.RETIRE_AFTER, "inf")) > now:
            continue
        if active_release is not None and s.release_id in (active_release, restore_release_id(current)):
            continue  # the unfinished release's fleet, or the previous version its rollback relaunched
        servers.append(s)
    members = [
        m
        for m in observed.members
        if owns_member(observed, m, ctx.app, ctx.env) and (observed.server_of(m) is None or observed.server_of(m) in servers)
    ]
    images = [i for i in ctx.provider.list_images() if i.status is ImageStatus.PENDING and now - i.created_at > 3600]
    return members, servers, images


def spare_around_damage(observed: Observed, servers: list[Server], current_damaged: bool) -> list[Server]:
    """What gc must leave alone: a server that still serves (weight > 0: its traffic would go with it, and
    after a damaged or quarantined record nothing says what replaces it), and, while the release record
    is unreadable, every candidate (it may belong to that release). `releasectl doctor --fix`, a rollout
    or an abort settles them."""
    spared = []
    for s in servers:
        member = observed.member_of(s)
        serving = member is not None and member.weight > 0
        if serving or (current_damaged and s.role is Role.CANDIDATE):
            spared.append(s)
    return spared


def gc(ctx: EngineContext, *, dry_run: bool) -> GcReport:
    with _locked(ctx, "gc"):
        current, damage = records.load_current_or_damage(ctx.provider)
        observed = observe(ctx.provider)
        if damage is None:  # the release in progress has candidates; with a damaged record every server looks stable
            observed = observed.settled(current)
        report_damage(ctx, [damage] if damage else [])
        members, servers, images = orphans(ctx, observed, current)
        spared = spare_around_damage(observed, servers, damage is not None)
        servers = [s for s in servers if s not in spared]
        spared_members = {m.id for m in observed.members_for(spared)}
        members = [m for m in members if m.id not in spared_members]
        report = GcReport(
            removed_members=[m.name for m in members],
            deleted_servers=[s.name for s in servers],
            deleted_images=[i.name for i in images],
            dry_run=dry_run,
            spared=[s.name for s in spared],
        )
        if dry_run:
            return report
        for m in members:
            ctx.provider.set_weights({m.id: 0})
            ctx.provider.remove_member(m.id)
        for s in servers:
            delete_server(ctx, s.id)
        for i in images:
            ctx.provider.delete_image(i.id)
        return report


def down(ctx: EngineContext) -> list[str]:
    """Stop the environment: every member and server of this app and environment (the one command allowed
    to remove the last serving member, invariant I1), and an LB releasectl owns. Images stay."""
    with _locked(ctx, "down"):
        current, damage = records.load_current_or_damage(ctx.provider)
        if current is not None and not current.phase.finished:
            raise _in_progress_error(current)
        observed = observe(ctx.provider)
        report_damage(ctx, [damage] if damage else [])  # down stops it all the same
        for m in observed.members:
            if not owns_member(observed, m, ctx.app, ctx.env):
                continue  # I3: another app's member on a shared pool keeps serving
            ctx.provider.set_weights({m.id: 0})
            ctx.provider.remove_member(m.id)
        stopped = []
        for s in observed.servers:
            delete_server(ctx, s.id)
            stopped.append(s.name)
        ctx.provider.destroy_pool()
        return stopped
