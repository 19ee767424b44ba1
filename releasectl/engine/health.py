"""releasectl's own health probes, next to the load balancer's view.

A new member takes traffic only after `rise` consecutive passing probes of ours *and* a HEALTHY verdict
from the LB. Streaks live in memory: a resumed runner simply probes again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from releasectl.fanout import fan_out
from releasectl.loadgen import percentile  # noqa: F401  (re-exported: the one nearest-rank definition)
from releasectl.providers.base import Health, HealthCheck, Member, MemberStats, Probe, Server
from releasectl.engine.failure import AnalysisResult, FailingMember  # noqa: F401  (re-exported)
from releasectl.engine.model import HealthView, StreakView  # noqa: F401  (re-exported)

RECENT_LATENCIES = 20  # per server, for the release record's samples
PROBE_CONCURRENCY = 16  # probes in flight at once: a pass costs about one probe's time, not one per server


def probe_all(probe: Callable[[Server], Probe], servers: Sequence[Server]) -> list[Probe]:
    """Probe a fleet in parallel (bounded), results in the order of `servers`. A fleet that boots together
    is gated together: one by one, a pass over 50 servers took 50 probes' time, and a slow server held up
    the rest. The first probe runs alone, so a provider that opens its HTTP session lazily opens one."""
    return fan_out(probe, servers, PROBE_CONCURRENCY, first_alone=True)


@dataclass
class Streak:
    ok: int = 0
    bad: int = 0  # consecutive wrong HTTP statuses (the app answered, and said no)
    down: int = 0  # consecutive failures of any kind, connection errors included
    last_at: float = float("-inf")
    last: Probe | None = None
    lb_down: int = 0  # consecutive polls the LB called the member unhealthy (counted without own probes)
    lb_detail: str = ""
    probes: int = 0  # since the runner started (for the record's samples: deltas per version)
    failures: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_LATENCIES))  # latencies of passing probes
    window_probes: int = 0  # since the analysis window opened (names the failing member without LB counters)
    window_failures: int = 0


@dataclass
class HealthTracker:
    """`lb_verdicts`: the provider cannot probe servers itself (its probe relays the LB), so `fall` polls in a
    row of the LB calling a member unhealthy (Octavia ERROR) fail it at once: nothing else ever will."""

    check: HealthCheck
    lb_verdicts: bool = False
    streaks: dict[str, Streak] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # of passing probes, for analysis p95
    probes: int = 0
    failures: int = 0
    sources: set[str] = field(default_factory=set)  # what the window's "probes" really were (Probe.source)

    def due(self, server_id: str, now: float) -> bool:
        return now - self.streaks.get(server_id, Streak()).last_at >= self.check.interval

    def record(self, server_id: str, probe: Probe, now: float, member: Member | None = None) -> Streak:
        streak = self.streaks.setdefault(server_id, Streak())
        streak.last = probe
        if probe.status is not None or probe.source != "probe" or streak.last_at != float("-inf"):
            # probes run once per interval from the server's first answer on; until then (its port still
            # closed as it boots) it is due again at the next pass, so the probe that finds it up is not an
            # interval late. A pool-status read (probe: false) is an API call: once per interval always.
            streak.last_at = now
        if self.lb_verdicts and member is not None and member.health is Health.UNHEALTHY:
            streak.lb_down += 1
            streak.lb_detail = member.health_detail or "unhealthy in the load balancer"
        else:
            streak.lb_down = 0
        self.probes += 1
        streak.probes += 1
        streak.window_probes += 1
        self.sources.add(probe.source)
        if probe.passed(self.check.expected_status):
            streak.ok += 1
            streak.bad = streak.down = 0
            if probe.source == "probe":  # a pool-status read has no latency worth a percentile
                self.latencies.append(probe.latency)
                streak.recent.append(probe.latency)
        else:
            self.failures += 1
            streak.failures += 1
            streak.window_failures += 1
            streak.ok = 0
            streak.down += 1
            if probe.status is not None:
                streak.bad += 1
        return streak

    def passing(self, server_id: str) -> bool:
        return self.streaks.get(server_id, Streak()).ok >= self.check.rise

    def failed_at_launch(self, server_id: str) -> bool:
        """The app answers with the wrong status `fall` times in a row (a slow start is not a failure), or,
        without own probes, the LB calls it unhealthy `fall` polls in a row."""
        streak = self.streaks.get(server_id, Streak())
        return max(streak.bad, streak.lb_down) >= self.check.fall

    def failed_in_service(self, server_id: str) -> bool:
        """Once in rotation, any `fall` consecutive failures count, connection errors included."""
        streak = self.streaks.get(server_id, Streak())
        return max(streak.down, streak.lb_down) >= self.check.fall

    def describe(self, server_id: str) -> str:
        streak = self.streaks.get(server_id, Streak())
        if streak.lb_down >= self.check.fall:
            return f"member {streak.lb_detail} for {streak.lb_down} polls in a row"
        last = streak.last
        if last is None:
            return "not probed yet"
        return f"HTTP {last.status}" if last.status is not None else (last.error or "no answer")

    def window(self, server_id: str) -> tuple[int, int]:
        """(failed, all) probes of the server since the analysis window opened."""
        streak = self.streaks.get(server_id, Streak())
        return streak.window_failures, streak.window_probes

    def reset_window(self) -> None:
        self.latencies.clear()
        self.sources.clear()
        self.probes = self.failures = 0
        for streak in self.streaks.values():
            streak.window_probes = streak.window_failures = 0


def snapshot(tracker: HealthTracker) -> HealthView:
    return HealthView(
        rise=tracker.check.rise,
        fall=tracker.check.fall,
        streaks=tuple(
            (sid, StreakView(s.ok, s.bad, s.down, tracker.describe(sid), s.lb_down, s.window_probes, s.window_failures))
            for sid, s in sorted(tracker.streaks.items())
        ),
        latencies=tuple(tracker.latencies),
        probes=tracker.probes,
        failures=tracker.failures,
        sources=frozenset(tracker.sources),
    )


# ---- analysis ------------------------------------------------------------------------------------------

LB_STATS, PROBES, POOL_STATUS = "load balancer stats", "releasectl probes", "pool status reads"


@dataclass(frozen=True)
class Verdict:
    failed: bool
    reason: str
    inconclusive: bool = False  # fewer than min_requests: the policy (extend, fail, pass) decides
    requests: int = 0
    source: str = LB_STATS
    analysis: AnalysisResult | None = None


def analyse(step, stats: Mapping[str, MemberStats], baseline, new: list[Member], old: list[Member], health,
            server_of: Callable[[Member], Server | None] | None = None) -> Verdict:
    """Error rate of the new members over the window (LB counters when the provider has them, else our
    probes, else the pool-status reads that stand in for them with `probe: false`), compared with the old
    members', and p95 latency of our probes. Fewer than `min_requests` is inconclusive, unless the errors
    already seen exceed the limit whatever the rest of `min_requests` would bring."""

    def counts(m: Member) -> tuple[int, int]:
        now, then = stats.get(m.id), baseline.get(m.id)
        if now is None:
            return 0, 0
        then = then or {"requests": 0, "bad": 0}
        return max(0, now.http_5xx + now.errors - int(then["bad"])), max(0, now.requests - int(then["requests"]))

    def rate(members: list[Member]) -> tuple[int, int]:
        per = [counts(m) for m in members]
        return sum(b for b, _ in per), sum(r for _, r in per)

    bad, requests = rate(new)
    old_bad, old_requests = rate(old)
    source = LB_STATS
    per_member = {m.id: counts(m) for m in new}
    if not requests:
        source = POOL_STATUS if "pool status" in health.sources and "probe" not in health.sources else PROBES
        bad, requests = health.failures, health.probes
        per_member = {m.id: _window_counts(health, m) for m in new}
    new_rate = bad / requests if requests else 0.0
    old_rate = old_bad / old_requests if old_requests else None
    old_text = "n/a" if old_rate is None else f"{old_rate * 100:.2f}%"
    summary = f"new error rate {new_rate * 100:.2f}% over {requests} requests ({source}), old {old_text}"
    min_requests = getattr(step, "min_requests", 0)
    worst = _worst(new, per_member, server_of)

    def verdict(failed: bool, result: str, reason: str, p95: float | None = None, inconclusive: bool = False) -> Verdict:
        figures = AnalysisResult(
            result=result, new_error_rate_pct=round(new_rate * 100, 4),
            old_error_rate_pct=None if old_rate is None else round(old_rate * 100, 4), requests=requests, errors=bad,
            source=source, max_error_rate_pct=step.max_error_rate * 100, min_requests=min_requests,
            p95_ms=None if p95 is None else round(p95 * 1000, 1), max_p95_ms=step.max_p95_ms, failing_member=worst,
        )
        return Verdict(failed, reason, inconclusive, requests, source, figures)

    if requests < min_requests:
        if bad / max(min_requests, 1) > step.max_error_rate:  # fails whatever the missing requests bring
            return verdict(True, "failed", f"analysis failed: {summary}: {bad} errors exceed {step.max_error_rate * 100:g}% "
                                           f"of the {min_requests} requests needed")
        return verdict(False, "inconclusive", f"analysis inconclusive: {summary}, fewer than the {min_requests} needed",
                       inconclusive=True)
    if new_rate > step.max_error_rate:
        return verdict(True, "failed", f"analysis failed: {summary} > {step.max_error_rate * 100:g}%")
    p95 = None
    if step.max_p95_ms is not None:
        p95 = percentile(list(health.latencies), 95)
        if p95 is not None and p95 * 1000 > step.max_p95_ms:
            return verdict(True, "failed", f"analysis failed: p95 latency {p95 * 1000:.0f}ms > {step.max_p95_ms:g}ms "
                                           "(releasectl probes)", p95)
        summary += "" if p95 is None else f", p95 {p95 * 1000:.0f}ms (releasectl probes)"
    return verdict(False, "passed", f"analysis passed: {summary}", p95)


def _window_counts(health, member: Member) -> tuple[int, int]:
    """(failed, all) probes of the member's server since the analysis window opened."""
    return health.window(member.server_id or member.id)


def _worst(new: list[Member], per_member: Mapping[str, tuple[int, int]],
           server_of: Callable[[Member], Server | None] | None) -> FailingMember | None:
    """The new member with the highest error rate (then the most errors, then by name), if any erred."""
    erred = [(bad / max(requests, 1), bad, m.name, m) for m in new for bad, requests in [per_member.get(m.id, (0, 0))] if bad]
    if not erred:
        return None
    return FailingMember.of_member(min(erred, key=lambda e: (-e[0], -e[1], e[2]))[3], server_of)
