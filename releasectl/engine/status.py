"""Status and history views: read-only, no lock, safe from any machine while a release runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from releasectl.engine import records
from releasectl.engine.records import report_damage
from releasectl.engine.context import EngineContext
from releasectl.engine.model import Phase, Release, describe_step
from releasectl.engine.observe import lb_state, live_version, observe
from releasectl.errors import UsageError
from releasectl.providers.base import LBStatus, Lease

if TYPE_CHECKING:
    from releasectl.engine.timeline import TimelineEntry

# The LB states in which nothing serves or can be changed: `status` exits 5 on them (the JSON still printed).
LB_NOT_SERVING = (LBStatus.DOWN, LBStatus.ERROR)


@dataclass
class StatusView:
    """What `status` shows of one environment (the CLI and the Python API render it)."""

    app: str
    environment: str
    provider: str
    live_version: str | None
    endpoint: str | None
    members: list[dict[str, Any]]
    servers: list[dict[str, Any]]
    release: dict[str, Any] | None
    lock: dict[str, Any] | None
    warm: list[dict[str, Any]] = field(default_factory=list)
    damaged: list[dict[str, str]] = field(default_factory=list)  # unreadable state: `releasectl doctor`
    lb: dict[str, str] = field(default_factory=lambda: {"status": LBStatus.UP.value, "detail": ""})

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @property
    def lb_problem(self) -> str | None:
        """Why the load balancer is not serving (DOWN or ERROR), or None."""
        if self.lb["status"] in {s.value for s in LB_NOT_SERVING}:
            return f"the load balancer of {self.app}/{self.environment} is {self.lb['status']}: {self.lb['detail']}"
        return None


def release_state(rel: Release, lease: Lease | None, now: float) -> str:
    """A running phase without a live lock holder means its runner died: the release is interrupted."""
    if rel.phase in (Phase.PROGRESSING, Phase.ROLLING_BACK) and (lease is None or not lease.alive(now)):
        return "interrupted"
    return rel.phase.value


def step_number(rel: Release) -> int:
    """1-based, never past the pipeline's length: a finished or finalizing release is at its last step."""
    return max(1, min(rel.step_index + 1, len(rel.pipeline.steps)))


def release_summary(rel: Release, state: str | None = None) -> dict[str, Any]:
    """Everything the CLI shows of one release (times as epoch seconds; the CLI formats them). `state`:
    the phase as seen from outside (`release_state`), else the record's own phase."""
    step = rel.current_step
    return {
        "id": rel.id,
        "kind": rel.kind.value,
        "app": rel.app,
        "environment": rel.env,
        "version": rel.version,
        "from_version": rel.previous_version,
        "previous_version": rel.previous_version,
        "pipeline": rel.pipeline.name,
        "state": state or rel.phase.value,
        "step": step_number(rel),
        "steps": len(rel.pipeline.steps),
        "step_description": describe_step(step) if step is not None else "finalize",
        "reason": rel.reason,
        "failure": rel.failure,
        "failing_member": rel.failing_member.name if rel.failing_member else None,
        "failing_member_id": rel.failing_member.id if rel.failing_member else None,
        "analysis": rel.failure_analysis.to_dict() if rel.failure_analysis else None,  # figures of a failed analysis
        "started_at": rel.started_at,
        "ended_at": rel.ended_at,
        "actor": rel.actor,
    }


def release_of_command(ctx: EngineContext, since: float) -> dict[str, Any] | None:
    """The release a command that ended in an error was about: the unfinished one (its own, or the one
    whose lock it met), or one it changed since `since`. None when there is none or it cannot be read
    (the error being reported may be that the provider is unreachable)."""
    try:
        current = records.load_current(ctx.provider)
        if current is None or (current.phase.finished and current.updated_at < since):
            return None
        return release_summary(current, release_state(current, ctx.provider.read_lock(), ctx.clock.time()))
    except Exception:  # reporting an error must not raise another one
        return None


def status(ctx: EngineContext) -> StatusView:
    provider = ctx.provider
    lb = lb_state(provider)  # first: while it is DOWN the members below are the ones it comes back with
    observed = observe(provider)
    now = ctx.clock.time()
    lease = provider.read_lock()
    current, damage = records.load_current_or_damage(provider)
    if damage is None:  # roles as the engine sees them: the release in progress has candidates
        observed = observed.settled(current)
    damaged = report_damage(ctx, [damage] if damage else [])
    total = sum(m.weight for m in observed.members if m.admin.value == "ready")
    members = []
    for m in observed.members:
        server = observed.server_of(m)
        share = (100.0 * m.weight / total) if total and m.admin.value == "ready" else 0.0
        members.append(
            {
                "name": m.name,
                "id": m.id,
                "version": server.version if server else m.version,
                "role": server.role.value if server and server.role else None,
                "address": f"{m.address}:{m.port}",
                "weight": m.weight,
                "share": round(share, 2),
                "health": m.health.value,
                "admin": m.admin.value,
                "sessions": m.sessions,
            }
        )
    servers = [
        {
            "name": s.name,
            "id": s.id,
            "version": s.version,
            "role": s.role.value if s.role else None,
            "status": s.status.value,
            "address": f"{s.address}:{s.port}" if s.address else None,
            "release": s.release_id,
            "retire_after": s.labels.get("retire_after"),
        }
        for s in sorted(observed.servers, key=lambda s: (s.version, s.name))
    ]
    release = None
    if current is not None and not current.phase.finished:
        release = release_summary(current, release_state(current, lease, now))
    lock = None
    if lease is not None:
        lock = {
            "holder": dict(lease.owner),
            "expires_in": round(lease.expires_at - now, 1),
            "alive": lease.alive(now),
            "dead_reason": lease.dead_reason,
        }
    return StatusView(
        app=ctx.app,
        environment=ctx.env,
        provider=provider.name,
        live_version=live_version(observed, ctx.env, provider.list_images),
        endpoint=provider.pool_endpoint(),
        members=members,
        servers=servers,
        release=release,
        lock=lock,
        warm=[s for s in servers if s["role"] == "previous"],
        damaged=damaged,
        lb={"status": lb.status.value, "detail": lb.detail},
    )


def history(ctx: EngineContext) -> list[dict[str, Any]]:
    lease = ctx.provider.read_lock()
    now = ctx.clock.time()
    releases, damages = records.load_history_and_damage(ctx.provider)
    report_damage(ctx, damages)
    return [release_summary(r, release_state(r, lease, now)) for r in releases]


def release_story(ctx: EngineContext, ref: str) -> tuple[dict[str, Any], list[TimelineEntry]]:
    """`history show REF`: one release (REF is `latest`, an id, or an id's unique prefix) and its timeline."""
    from releasectl.engine.timeline import timeline  # here: `status` reads no timeline back

    lease = ctx.provider.read_lock()
    now = ctx.clock.time()
    releases, damages = records.load_history_and_damage(ctx.provider)
    report_damage(ctx, damages)
    if not releases:
        raise UsageError(f"no release of {ctx.app} in {ctx.env} yet", hint="start one with `releasectl rollout VERSION`")
    if ref == "latest":
        chosen = [releases[0]]
    else:
        chosen = [r for r in releases if r.id == ref] or [r for r in releases if r.id.startswith(ref)]
    if len(chosen) != 1:
        why = "no release has" if not chosen else f"{len(chosen)} releases have"
        raise UsageError(f"{why} the id {ref!r} in {ctx.app}/{ctx.env}", hint="`releasectl history` lists the ids")
    rel = chosen[0]
    return release_summary(rel, release_state(rel, lease, now)), timeline(rel)


_LIVE = frozenset({"PROBE_WINDOW", "RATE_SOURCES", "VersionFigures", "WatchFrame", "requested_share", "WatchSampler"})


def __getattr__(name: str) -> Any:
    """The live view's names, re-exported from engine/live.py on first use (not on plain `status`'s path)."""
    if name in _LIVE:
        from releasectl.engine import live

        return getattr(live, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
