"""The live view's samples (`releasectl status --watch`): status plus LB counters and probes, per version.
Apart from engine/status.py so that a plain `status` does not create these classes (start-up, issue 12)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from releasectl.engine import records
from releasectl.engine.context import EngineContext
from releasectl.engine.model import Launch, Phase, Release, SetWeight, describe_step
from releasectl.engine.status import StatusView, release_state, release_summary, status
from releasectl.errors import ReleasectlError
from releasectl.loadgen import percentile
from releasectl.providers.base import Role, ServerStatus

# ---- the live view's samples (`releasectl status --watch`) -------------------------------------------------

PROBE_WINDOW = 30  # latencies per version kept for the live view's p95
RATE_SOURCES = {"local": "HAProxy stats", "openstack": "Octavia stats"}


@dataclass(frozen=True)
class VersionFigures:
    """One version's traffic in a live-view sample. Rates are over the time since the previous sample."""

    version: str
    role: str  # new (the release's version), old (what it replaces); without a release: live, or other
    members: int
    healthy: int
    requested_pct: float | None  # what the release's current step asks for; None without a release
    achieved_pct: float  # its share of the pool's weight now
    request_rate: float | None  # requests per second (None: first sample, or no LB counters)
    error_rate: float | None  # 5xx and errors per request over the interval
    p95_ms: float | None  # of releasectl's own probes in the window
    rate_source: str  # where request_rate and error_rate come from
    p95_source: str


@dataclass(frozen=True)
class WatchFrame:
    """What the live view shows at one instant: read-only, from the record and the provider."""

    at: float
    view: StatusView
    release: dict[str, Any] | None  # release_summary of the release being watched (finished ones too)
    steps: list[str]
    step_index: int | None  # 0-based current step; None after the last or without a release
    versions: list[VersionFigures]
    wake_at: float | None  # end of the current hold, pause, analysis or drain
    deadline_at: float | None  # progress deadline of a step that must make progress (launch, rollback)

    @property
    def time_left(self) -> float | None:
        return None if self.wake_at is None else max(0.0, self.wake_at - self.at)


def requested_share(rel: Release) -> float:
    """The share of traffic (percent) the release's current step asks for its new version."""
    if rel.phase in (Phase.ROLLING_BACK, Phase.FAILED, Phase.ABORTED):
        return 0.0
    if rel.phase is Phase.SUCCEEDED or rel.current_step is None:
        return 100.0
    done = [s for s in rel.pipeline.steps[: rel.step_index + 1] if isinstance(s, SetWeight)]
    return done[-1].percent if done else 0.0


class WatchSampler:
    """Takes live-view samples: status, the release record, LB counters (rates between two samples) and one
    probe of each active server per sample (p95 of a rolling window). `release_id` is the release being
    watched: the unfinished one, else the first one that starts."""

    def __init__(self, ctx: EngineContext, *, probe_timeout: float = 0.5) -> None:
        self.ctx = ctx
        self.probe_timeout = probe_timeout
        self.release_id: str | None = None
        self._last: tuple[float, dict[str, Any]] | None = None  # (time, member stats)
        self._latencies: dict[str, deque[float]] = {}
        self._outcomes: dict[str, deque[bool]] = {}  # passed or not, of the same probes

    def sample(self) -> WatchFrame:
        ctx = self.ctx
        view = status(ctx)
        now = ctx.clock.time()
        current = records.load_current(ctx.provider)
        if current is not None and (self.release_id is None and not current.phase.finished or current.id == self.release_id):
            self.release_id = current.id
        rel = current if current is not None and current.id == self.release_id else None
        summary = None if rel is None else release_summary(rel, release_state(rel, ctx.provider.read_lock(), now))
        return WatchFrame(
            at=now,
            view=view,
            release=summary,
            steps=[describe_step(s) for s in rel.pipeline.steps] if rel else [],
            step_index=rel.step_index if rel is not None and rel.current_step is not None and not rel.phase.finished else None,
            versions=self._versions(view, rel, now),
            wake_at=rel.wake_at if rel is not None and not rel.phase.finished else None,
            deadline_at=_progress_deadline(rel),
        )

    def _versions(self, view: StatusView, rel: Release | None, now: float) -> list[VersionFigures]:
        provider = self.ctx.provider
        stats: dict[str, Any] = {}
        if provider.capabilities.member_stats and view.members:
            try:
                stats = dict(provider.member_stats())
            except ReleasectlError:
                stats = {}
        last, self._last = self._last, (now, stats)
        self._probe(view)
        by_version: dict[str, list[dict[str, Any]]] = {}
        for m in view.members:
            by_version.setdefault(m["version"] or "?", []).append(m)
        total = sum(m["weight"] for m in view.members if m["admin"] == "ready")
        new_share = requested_share(rel) if rel is not None else None
        # without per-member LB counters (Octavia has none), the error rate is that of our own probes
        rate_source = RATE_SOURCES.get(provider.name, f"{provider.name} stats") if stats else "releasectl probes (no LB counters)"
        lines = []
        for version, members in sorted(by_version.items()):
            if rel is None:
                role = "live" if version == view.live_version else "other"
            else:  # a rollback's "new" is the version it returns to
                role = "new" if version == rel.version else "old"
            requested = None if new_share is None else (new_share if role == "new" else 100.0 - new_share)
            weight = sum(m["weight"] for m in members if m["admin"] == "ready")
            rate, errors = _rates(last, now, stats, [m["id"] for m in members])
            outcomes = self._outcomes.get(version)
            if not stats and outcomes:
                errors = sum(1 for ok in outcomes if not ok) / len(outcomes)
            window = self._latencies.get(version)
            p95 = percentile(list(window), 95) if window else None
            lines.append(VersionFigures(
                version=version, role=role, members=len(members),
                healthy=sum(1 for m in members if m["health"] == "healthy"),
                requested_pct=requested, achieved_pct=round(100.0 * weight / total, 2) if total else 0.0,
                request_rate=rate, error_rate=errors, p95_ms=None if p95 is None else p95 * 1000.0,
                rate_source=rate_source, p95_source="releasectl probes",
            ))
        return lines

    def _probe(self, view: StatusView) -> None:
        """One GET of the health path on each active server of the pool, for the p95 column."""
        pooled = {s["id"] for s in view.servers if s["role"] != Role.STAGING.value}
        for server in self.ctx.provider.list_servers():
            if server.id not in pooled or server.status is not ServerStatus.ACTIVE:
                continue
            probe = self.ctx.provider.probe(server, self.ctx.health.path, self.probe_timeout)
            passed = probe.passed(self.ctx.health.expected_status)
            self._outcomes.setdefault(server.version, deque(maxlen=PROBE_WINDOW)).append(passed)
            if passed:
                self._latencies.setdefault(server.version, deque(maxlen=PROBE_WINDOW)).append(probe.latency)


def _rates(last: tuple[float, dict[str, Any]] | None, now: float, stats: dict[str, Any], member_ids: list[str]) -> tuple[float | None, float | None]:
    """(requests per second, errors per request) of these members between the last sample and now."""
    if last is None or not stats or now <= last[0]:
        return None, None
    then, before = last
    requests = bad = 0
    for mid in member_ids:
        a, b = before.get(mid), stats.get(mid)
        if a is None or b is None:
            continue
        requests += max(0, b.requests - a.requests)
        bad += max(0, (b.http_5xx + b.errors) - (a.http_5xx + a.errors))
    return requests / (now - then), (bad / requests if requests else 0.0)


def _progress_deadline(rel: Release | None) -> float | None:
    """When a step that must make progress (launch, or a rollback) runs out of time; holds have none."""
    if rel is None or rel.phase.finished or rel.step_started_at is None:
        return None
    if rel.phase is Phase.ROLLING_BACK or isinstance(rel.current_step, Launch):
        return rel.step_started_at + rel.progress_deadline
    return None
