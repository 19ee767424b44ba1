"""Stage: boot one instance from an image, out of the pool, and run smoke checks against it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from releasectl.engine.context import EngineContext
from releasectl.engine.model import SmokeCheck
from releasectl.engine.images import usable_image
from releasectl.errors import ConfigError, ResourceFailure, SmokeCheckFailed
from releasectl.providers.base import Probe, Role, Server, ServerSpec, ServerStatus
from releasectl.wait import wait_for


@dataclass(frozen=True)
class CheckResult:
    check: SmokeCheck
    probe: Probe
    passed: bool
    detail: str


@dataclass(frozen=True)
class StageResult:
    version: str
    server: Server
    results: list[CheckResult]
    kept: bool

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


def evaluate(check: SmokeCheck, probe: Probe) -> CheckResult:
    problems = []
    if probe.status is None:
        problems.append(f"no answer: {probe.error}")
    elif probe.status != check.expected_status:
        problems.append(f"HTTP {probe.status}, expected {check.expected_status}")
    if check.body_contains is not None and probe.status is not None and check.body_contains not in probe.body:
        problems.append(f"body lacks {check.body_contains!r}")
    if check.max_latency is not None and probe.latency > check.max_latency:
        problems.append(f"{probe.latency * 1000:.0f}ms > {check.max_latency * 1000:.0f}ms")
    detail = "; ".join(problems) or f"HTTP {probe.status} in {probe.latency * 1000:.0f}ms"
    return CheckResult(check, probe, not problems, detail)


def stage(ctx: EngineContext, version: str, *, keep: bool = False) -> StageResult:
    refuse_without_own_probes(ctx)
    image = usable_image(ctx, version)
    spec = ServerSpec(
        name=f"{ctx.app}-{version}-stage-{uuid.uuid4().hex[:6]}",
        image_id=image.id,
        app=ctx.app,
        version=version,
        env=ctx.env,
        role=Role.STAGING,
        release_id=f"stage-{uuid.uuid4().hex[:8]}",
    )
    ctx.event("stage", f"booting {spec.name} from {image.name}")
    server = ctx.provider.create_server(spec)
    try:
        server = wait_for(lambda: _ready(ctx, server.id), timeout=ctx.stage_timeout, what=f"{spec.name} to boot", clock=ctx.clock)
        health_path = ctx.stage_checks[0].path if ctx.stage_checks else ctx.health.path
        # the app is up once it answers HTTP at all; the checks then judge what it answers
        wait_for(
            lambda: ctx.provider.probe(server, health_path, ctx.health.timeout).status is not None,
            timeout=ctx.stage_timeout,
            interval=0.1,
            what=f"{spec.name} to answer HTTP",
            clock=ctx.clock,
        )
        ctx.stop.check()
        results = []
        for check in ctx.stage_checks:
            probe = ctx.provider.probe(server, check.path, max(ctx.health.timeout, check.max_latency or 0) + 1)
            result = evaluate(check, probe)
            results.append(result)
            ctx.event("check", f"{check.path}: {'pass' if result.passed else 'FAIL'} ({result.detail})")
    except BaseException:
        if not keep:
            ctx.provider.delete_server(server.id)
        raise
    if not keep:
        ctx.provider.delete_server(server.id)
        ctx.event("stage", f"removed {spec.name}")
    outcome = StageResult(version, server, results, keep)
    if not outcome.passed:
        failed = [r for r in results if not r.passed]
        error = SmokeCheckFailed(
            f"{len(failed)} of {len(results)} smoke checks failed for {version}: "
            + "; ".join(f"{r.check.path}: {r.detail}" for r in failed)
        )
        error.result = outcome  # type: ignore[attr-defined]
        raise error
    return outcome


def refuse_without_own_probes(ctx: EngineContext) -> None:
    """Smoke checks GET paths on the staging server itself. A provider that cannot reach servers (openstack
    `probe: false`) could at best learn the LB monitor's verdict through a temporary pool membership: that
    checks none of the configured paths, bodies or latencies, and it changes the production pool. Refuse
    before anything boots rather than report checks that never ran."""
    if not ctx.provider.capabilities.own_probes:
        raise ConfigError(
            "stage cannot run its smoke checks with openstack.probe: false: releasectl cannot reach the "
            "servers to GET the check paths, and the load balancer's health monitor checks none of them",
            hint="run stage from a host that reaches the servers (probe: true), or skip it: rollout's health "
            "gate uses Octavia's verdict and rolls back a member Octavia reports ERROR",
        )


def _ready(ctx: EngineContext, server_id: str) -> Server | None:
    server = ctx.provider.get_server(server_id)
    if server is None:
        raise ResourceFailure(f"staging server {server_id} vanished while booting")
    if server.status in (ServerStatus.ERROR, ServerStatus.STOPPED):
        raise ResourceFailure(f"staging server {server.name} is {server.status.value}: {server.fault or 'no reason given'}")
    return server if server.status is ServerStatus.ACTIVE else None
