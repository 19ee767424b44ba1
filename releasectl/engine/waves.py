"""Multi-region waves: one environment's regions released one after the other, as ordinary releases.

A wave is a sequence of region releases, each one the engine's own `rollout` with a provider bound to that
region (its own release record and lock). The wave record ties them together: which version, which region is
next, what each one ended as. It is kept with the provider of the first region, under its own record scope
and lock, so a second `rollout` cannot start a wave while one runs, and `rollout --resume` after a killed
runner continues with the region it stopped in.

`next_move` is pure (table-tested): the runner only applies what it says. Between regions there may be a
gate (`pause`: exit 4 until `promote`) and a hold. The first failure stops the wave: the failing region's
release has already rolled itself back; the regions done before it stay on the new version (`keep_done`)
or are rolled back too, newest first (`rollback_all`). Regions after it are never touched.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from releasectl.engine import release as releases
from releasectl.engine import records
from releasectl.engine.context import EngineContext
from releasectl.engine.images import usable_image
from releasectl.engine.lock import LockKeeper
from releasectl.engine.model import Phase, Pipeline, Release, ReleaseKind
from releasectl.engine.observe import live_version, observe
from releasectl.engine.reconcile import new_release_id
from releasectl.errors import DamagedState, PausedAtGate, ReleaseFailed, UsageError
from releasectl.providers.base import ImageOutcome

WAVES_SCOPE = "waves"  # the record scope of the wave record and lock (see config.Settings.for_region)
CURRENT = "wave/current"
HISTORY_PREFIX = "wave/history/"


class WavePhase(str, enum.Enum):
    RUNNING = "running"
    PAUSED = "paused"  # at a gate between regions, or a region paused at its own gate
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a region failed; see each region's state

    @property
    def finished(self) -> bool:
        return self in (WavePhase.SUCCEEDED, WavePhase.FAILED)


class RegionState(str, enum.Enum):
    PENDING = "pending"  # not touched yet
    RUNNING = "running"  # its release started (resume continues it)
    DONE = "done"  # released the new version
    FAILED = "failed"  # its release failed and rolled itself back
    ROLLED_BACK = "rolled_back"  # was done, rolled back because a later region failed (rollback_all)


@dataclass
class RegionWave:
    region: str
    state: RegionState = RegionState.PENDING
    release_id: str | None = None
    previous_version: str | None = None  # what the region ran before (rollback_all goes back to it)
    gate_open: bool = False  # promoted past the gate before this region
    hold_until: float | None = None  # epoch seconds: the hold before this region ends then
    reason: str = ""


@dataclass
class Wave:
    id: str
    app: str
    env: str
    version: str
    pipeline: dict[str, Any]  # Pipeline.to_dict(): every region releases with the pipeline the wave began with
    gate: str
    hold: float
    on_failure: str
    regions: list[RegionWave]
    started_at: float
    updated_at: float
    phase: WavePhase = WavePhase.RUNNING
    ended_at: float | None = None
    reason: str = ""
    actor: dict[str, str] = field(default_factory=dict)
    aborted: bool = False  # an operator's `abort`: the wave ends as at a failure (on_failure applies)

    SCHEMA = 1

    def to_json(self) -> str:
        data = asdict(self)
        data["schema"] = self.SCHEMA
        data["phase"] = self.phase.value
        data["regions"] = [{**asdict(r), "state": r.state.value} for r in self.regions]
        return json.dumps(data, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Wave":
        data = json.loads(text)
        data.pop("schema", None)
        data["phase"] = WavePhase(data["phase"])
        data["regions"] = [RegionWave(**{**r, "state": RegionState(r["state"])}) for r in data["regions"]]
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        """For JSON output."""
        return {**json.loads(self.to_json()), "current_region": self.current_region()}

    def summary(self) -> dict[str, Any]:
        """What a wave's notification carries: the wave and each region's state, release and reason."""
        return {
            "id": self.id, "version": self.version, "phase": self.phase.value, "reason": self.reason,
            "current_region": self.current_region(), "on_failure": self.on_failure,
            "regions": [{"region": r.region, "state": r.state.value, "release_id": r.release_id,
                         "previous_version": r.previous_version, "reason": r.reason} for r in self.regions],
        }

    def current_region(self) -> str | None:
        """The region the wave is at (running, paused before, or failed in), None once all are settled."""
        for r in self.regions:
            if r.state in (RegionState.RUNNING, RegionState.FAILED) or (r.state is RegionState.PENDING and not self.phase.finished):
                return r.region
        return None


# ---- planning (pure) -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """What the wave runner does next: `run` (or resume) a region, wait at its `gate` (exit 4), `hold` until
    a time, `rollback` a done region, or `finish` with a phase."""

    kind: str
    index: int | None = None
    until: float | None = None
    phase: WavePhase | None = None


def next_move(wave: Wave, now: float) -> Move:
    if wave.aborted or any(r.state is RegionState.FAILED for r in wave.regions):
        if wave.on_failure == "rollback_all":
            # a region that ran nothing before the wave has nothing to go back to: it stays
            done = [i for i, r in enumerate(wave.regions) if r.state is RegionState.DONE and r.previous_version]
            if done:
                return Move("rollback", done[-1])
        return Move("finish", phase=WavePhase.FAILED)
    for i, r in enumerate(wave.regions):
        if r.state is RegionState.DONE:
            continue
        if r.state is RegionState.RUNNING or i == 0:
            return Move("run", i)
        if wave.gate == "pause" and not r.gate_open:
            return Move("gate", i)
        if wave.hold > 0:
            until = r.hold_until if r.hold_until is not None else now + wave.hold
            if now < until:
                return Move("hold", i, until=until)
        return Move("run", i)
    return Move("finish", phase=WavePhase.SUCCEEDED)


# ---- the wave record -------------------------------------------------------------------------------------


def load_wave(ctx: EngineContext) -> Wave | None:
    """The newest wave of the environment, or None; a damaged record is DamagedState (exit 2)."""
    return _parse(CURRENT, ctx.provider.read_record(CURRENT))


def _parse(key: str, text: str | None) -> Wave | None:
    if text is None:
        return None
    try:
        return Wave.from_json(text)
    except Exception as exc:  # any record that does not make a Wave is damage
        raise DamagedState(f"the wave record {key!r}", f"{type(exc).__name__}: {str(exc)[:200]}") from None


def wave_history(ctx: EngineContext, limit: int = 20) -> list[Wave]:
    """Finished waves and the current one, newest first."""
    keys = sorted(ctx.provider.list_records(HISTORY_PREFIX), reverse=True)[:limit]
    waves = {w.id: w for w in (_parse(k, ctx.provider.read_record(k)) for k in [CURRENT, *keys]) if w is not None}
    return sorted(waves.values(), key=lambda w: w.started_at, reverse=True)


def save_wave(ctx: EngineContext, wave: Wave) -> None:
    wave.updated_at = ctx.clock.time()
    text = wave.to_json()
    ctx.provider.write_record(CURRENT, text)
    if wave.phase.finished:
        ctx.provider.write_record(f"{HISTORY_PREFIX}{int(wave.started_at):012d}-{wave.id}", text)


# ---- running -----------------------------------------------------------------------------------------------


@dataclass
class WaveContext:
    """The wave's own context (record and lock, in the first region) and one engine context per region."""

    home: EngineContext
    region_ctx: Callable[[str], EngineContext]
    regions: tuple[str, ...]
    gate: str = "none"
    hold: float = 0.0
    on_failure: str = "keep_done"
    _cache: dict[str, EngineContext] = field(default_factory=dict)

    def region(self, name: str) -> EngineContext:
        if name not in self._cache:
            self._cache[name] = self.region_ctx(name)
        return self._cache[name]


def _lock(w: WaveContext, command: str) -> LockKeeper:
    return LockKeeper(w.home.provider, {**w.home.actor, "command": command}, ttl=w.home.lock_ttl)


def _in_progress(wave: Wave) -> UsageError:
    return UsageError(
        f"a wave rollout of {wave.app} {wave.version} is {wave.phase.value} at region {wave.current_region()}",
        hint="continue it with `releasectl rollout --resume` (or `promote` at a gate)",
    )


def rollout(w: WaveContext, version: str | None, pipeline: Pipeline, *, resume: bool = False) -> Wave:
    """Start a wave (or with `resume`, continue the unfinished one) and drive it to its end."""
    home = w.home
    with _lock(w, "rollout") as lock:
        wave = load_wave(home)
        unfinished = wave if wave is not None and not wave.phase.finished else None
        if resume:
            if unfinished is None:
                raise UsageError("there is no unfinished wave rollout to resume", hint="start one with `releasectl rollout VERSION`")
            if version is not None and version != unfinished.version:
                raise UsageError(f"the unfinished wave rollout is {unfinished.version}, not {version}")
            home.event("resume", f"resuming the wave rollout of {unfinished.version} at region {unfinished.current_region()}",
                       wave=unfinished.summary())
            return _drive(w, unfinished, lock)
        if unfinished is not None:
            raise _in_progress(unfinished)
        first = w.region(w.regions[0])
        if version is None:  # the newest baked version that is not live in the first region
            version = releases.choose_image(first, None, live_version(observe(first.provider))).version
        _preflight(w, version)
        now = home.clock.time()
        wave = Wave(id=new_release_id(), app=home.app, env=home.env, version=version, pipeline=pipeline.to_dict(),
                    gate=w.gate, hold=w.hold, on_failure=w.on_failure, regions=[RegionWave(r) for r in w.regions],
                    started_at=now, updated_at=now, actor=dict(home.actor))
        save_wave(home, wave)
        home.event("start", f"wave rollout of {home.app} {version} to {home.env} in {len(w.regions)} region(s): "
                   f"{', '.join(w.regions)} (gate {w.gate}, hold {w.hold:g}s, on failure {w.on_failure})",
                   wave=wave.summary())
        return _drive(w, wave, lock)


def _preflight(w: WaveContext, version: str) -> None:
    """Refuse (exit 2, nothing changed) a wave that could not go through every region: a region with a
    release in progress, or without a usable image of the version (images are regional: bake in each)."""
    for name in w.regions:
        ctx = w.region(name)
        try:
            current = records.load_current(ctx.provider)
            if current is not None and not current.phase.finished:
                raise releases._in_progress_error(current)
            if usable_image(ctx, version).outcome is ImageOutcome.FAILED:
                raise UsageError(f"{version} failed an earlier release and is marked failed",
                                 hint="fix it and bake a new version in every region")
        except UsageError as exc:
            raise UsageError(f"region {name}: {exc.message}", hint=exc.hint) from None


def promote(w: WaveContext, *, full: bool = False) -> Wave:
    """Open the gate before the next region (or promote the region release paused at its own gate), then
    drive the wave on."""
    home = w.home
    with _lock(w, "promote") as lock:
        wave = load_wave(home)
        if wave is None or wave.phase.finished:
            raise UsageError("there is no wave rollout in progress to promote")
        move = next_move(wave, home.clock.time())
        if move.kind == "gate":
            wave.regions[move.index].gate_open = True
            home.event("promote", f"promoted past the gate before region {wave.regions[move.index].region}")
        elif move.kind == "run" and wave.regions[move.index].state is RegionState.RUNNING:
            _settle(w, wave, move.index, lambda ctx: releases.promote(ctx, full=full))
        else:
            raise UsageError(f"the wave rollout of {wave.version} is not at a gate",
                             hint="`releasectl rollout --resume` continues it")
        save_wave(home, wave)
        return _drive(w, wave, lock)


def abort(w: WaveContext, *, wait: float | None = None) -> "Wave | releases.Posted":
    """Stop the wave as at a failure: the region in progress is rolled back (by intent to its live runner,
    whose wave then stops there, or here), and the regions done are kept or rolled back by on_failure."""
    home = w.home
    wave = load_wave(home)
    if wave is None or wave.phase.finished:
        raise UsageError("there is no wave rollout in progress to abort")
    running = next((i for i, r in enumerate(wave.regions) if r.state is RegionState.RUNNING), None)
    lease = home.provider.read_lock()
    if running is not None and lease is not None and lease.alive(home.clock.time()):
        return releases.abort(w.region(wave.regions[running].region), wait=wait)
    with _lock(w, "abort") as lock:
        wave = load_wave(home) or wave
        running = next((i for i, r in enumerate(wave.regions) if r.state is RegionState.RUNNING), None)
        if running is not None:
            _settle(w, wave, running, _abort_region)
        if running is None or wave.regions[running].state is not RegionState.FAILED:
            wave.aborted = True
        home.event("abort", f"aborting the wave rollout of {wave.version}")
        save_wave(home, wave)
        try:
            return _drive(w, wave, lock)
        except ReleaseFailed:  # what abort asked for: the wave stopped and what it touched is settled
            return load_wave(home) or wave


def _abort_region(ctx: EngineContext) -> Release:
    """Roll back the region's unfinished release (ReleaseFailed: the region failed, as _settle records it);
    with none, the region's release ended and stands as it is."""
    try:
        rel = releases.abort(ctx)
    except UsageError:
        current = records.load_current(ctx.provider)
        if current is None or current.phase is not Phase.SUCCEEDED:
            raise
        return current
    if isinstance(rel, Release) and rel.phase is not Phase.SUCCEEDED:
        raise releases._rolled_back(rel)
    return rel


def _drive(w: WaveContext, wave: Wave, lock: LockKeeper) -> Wave:
    home = w.home
    pipeline = Pipeline.from_dict(wave.pipeline)
    while True:
        lock.check()
        home.stop.check()
        move = next_move(wave, home.clock.time())
        if move.kind == "finish":
            return _finish(home, wave, move.phase)
        region = wave.regions[move.index]
        if move.kind == "gate":
            wave.phase = WavePhase.PAUSED
            save_wave(home, wave)
            _announce(home, wave, "paused", f"paused before region {region.region}")
            raise PausedAtGate(f"the wave rollout of {wave.app} {wave.version} is paused before region {region.region}",
                               hint="run `releasectl promote` to release the next region")
        if move.kind == "hold":
            if region.hold_until != move.until:
                region.hold_until = move.until
                save_wave(home, wave)
                home.event("hold", f"holding {max(0.0, move.until - home.clock.time()):.0f}s before region {region.region}")
            home.clock.sleep(min(1.0, max(0.0, move.until - home.clock.time())))
            continue
        if move.kind == "rollback":
            ctx = w.region(region.region)
            home.event("rollback", f"rolling region {region.region} back to {region.previous_version} (on_failure: rollback_all)")
            if live_version(observe(ctx.provider)) != region.previous_version:  # a resumed wave may find it done
                try:
                    releases.rollback(ctx, to=region.previous_version)
                finally:
                    save_wave(home, wave)
            region.state = RegionState.ROLLED_BACK
            region.reason = f"rolled back to {region.previous_version} after a later region failed"
            save_wave(home, wave)
            continue
        wave.phase = WavePhase.RUNNING
        _settle(w, wave, move.index, lambda ctx: _region_release(ctx, wave, pipeline))


def _settle(w: WaveContext, wave: Wave, index: int, act: Callable[[EngineContext], Any]) -> None:
    """Run one region's release (or promote it) and record how it ended; exit 4 and 5 leave the region
    RUNNING for `--resume`/`promote`, with the wave record saved first."""
    home, region = w.home, wave.regions[index]
    ctx = w.region(region.region)
    if region.state is not RegionState.RUNNING:
        region.state = RegionState.RUNNING
        save_wave(home, wave)
        home.event("region", f"region {region.region} ({index + 1}/{len(wave.regions)}): rollout of {wave.version}")
    try:
        result = act(ctx)
    except ReleaseFailed as exc:
        region.state, region.reason = RegionState.FAILED, exc.message
        save_wave(home, wave)
        return
    except PausedAtGate:
        wave.phase = WavePhase.PAUSED
        save_wave(home, wave)
        _announce(home, wave, "paused", f"region {region.region} paused at its own gate")
        raise
    except BaseException:
        save_wave(home, wave)
        raise
    rel = result if isinstance(result, Release) else records.load_current(ctx.provider)
    if rel is not None and not rel.phase.finished:  # a promote posted to a live runner: not ours to settle
        return
    region.state, region.release_id = RegionState.DONE, rel.id if rel else None
    region.previous_version = rel.previous_version if rel else None
    region.reason = rel.reason if rel else ""
    save_wave(home, wave)


def _region_release(ctx: EngineContext, wave: Wave, pipeline: Pipeline) -> Release:
    """The region's release of the wave's version: resumed when it is unfinished, taken as it ended when a
    killed runner had finished it, else a new rollout."""
    current = records.load_current(ctx.provider)
    ours = current is not None and current.kind is ReleaseKind.ROLLOUT and current.version == wave.version \
        and current.started_at >= wave.started_at - 1.0
    if ours and not current.phase.finished:
        return releases.rollout(ctx, None, pipeline, resume=True)
    if ours and current.phase is Phase.SUCCEEDED:
        return current
    if ours:  # it failed (and rolled back) before the runner could record so
        raise releases._rolled_back(current)
    if current is not None and not current.phase.finished:
        raise releases._in_progress_error(current)
    if live_version(observe(ctx.provider)) == wave.version:
        ctx.event("region", f"{wave.version} is already live here: nothing to release")
        return Release(id="", app=ctx.app, env=ctx.env, kind=ReleaseKind.ROLLOUT, version=wave.version, image_id="",
                       previous_version=None, pipeline=pipeline, count=ctx.count, started_at=ctx.clock.time(),
                       updated_at=ctx.clock.time(), phase=Phase.SUCCEEDED, reason="already live")
    return releases.rollout(ctx, wave.version, pipeline)


def _finish(home: EngineContext, wave: Wave, phase: WavePhase) -> Wave:
    wave.phase, wave.ended_at = phase, home.clock.time()
    failed = next((r for r in wave.regions if r.state is RegionState.FAILED), None)
    if phase is WavePhase.SUCCEEDED:
        wave.reason = f"{wave.version} released in {', '.join(r.region for r in wave.regions)}"
        save_wave(home, wave)
        _announce(home, wave, "succeeded", wave.reason)
        return wave
    kept = [r.region for r in wave.regions if r.state is RegionState.DONE]
    back = [r.region for r in wave.regions if r.state is RegionState.ROLLED_BACK]
    wave.reason = ((f"region {failed.region} failed ({failed.reason}) and was rolled back" if failed
                    else "aborted by an operator between regions")
                   + (f"; kept on {wave.version}: {', '.join(kept)}" if kept else "")
                   + (f"; also rolled back: {', '.join(back)}" if back else ""))
    save_wave(home, wave)
    _announce(home, wave, "rolled_back", wave.reason)
    raise ReleaseFailed(f"the wave rollout of {wave.app} {wave.version} stopped: {wave.reason}",
                        hint="untouched regions still run their earlier version; `releasectl status` shows each region")


def _announce(home: EngineContext, wave: Wave, outcome: str, why: str) -> None:
    """The wave's own end (or pause) as one event carrying every region's detail: notify.py sends it as the
    wave's one summary notification (outcome: succeeded, rolled_back or paused)."""
    home.event("wave", f"wave rollout of {wave.app} {wave.version}: {outcome.replace('_', ' ')}: {why}",
               outcome=outcome, wave=wave.summary())
