"""releasectl's own health probes, next to the load balancer's view.

A new member takes traffic only after `rise` consecutive passing probes of ours *and* a HEALTHY verdict
from the LB. Streaks live in memory: a resumed runner simply probes again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from releasectl.loadgen import percentile  # noqa: F401  (re-exported: the one nearest-rank definition)
from releasectl.providers.base import Health, HealthCheck, Member, MemberStats, Probe, Server

RECENT_LATENCIES = 20  # per server, for the release record's samples
PROBE_CONCURRENCY = 16  # probes in flight at once: a pass costs about one probe's time, not one per server


def probe_all(probe: Callable[[Server], Probe], servers: Sequence[Server]) -> list[Probe]:
    """Probe a fleet in parallel (bounded), results in the order of `servers`. A fleet that boots together
    is gated together: one by one, a pass over 50 servers took 50 probes' time, and a slow server held up
    the rest. The first probe runs alone, so a provider that opens its HTTP session lazily opens one."""
    if len(servers) <= 1:
        return [probe(s) for s in servers]
    from concurrent.futures import ThreadPoolExecutor  # here: read-only commands never probe

    first = probe(servers[0])
    with ThreadPoolExecutor(max_workers=min(PROBE_CONCURRENCY, len(servers) - 1)) as pool:
        return [first, *pool.map(probe, servers[1:])]


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
        streak.last_at, streak.last = now, probe
        if self.lb_verdicts and member is not None and member.health is Health.UNHEALTHY:
            streak.lb_down += 1
            streak.lb_detail = member.health_detail or "unhealthy in the load balancer"
        else:
            streak.lb_down = 0
        self.probes += 1
        streak.probes += 1
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
            streak.ok = 0
            streak.down += 1
            if probe.status is not None:
                streak.bad += 1
        return streak

    def passing(self, server_id: str) -> bool:
        return self.streaks.get(server_id, Streak()).ok >= self.check.rise

    def until_gate_probe(self, server_ids: Sequence[str], now: float) -> float:
        """Seconds until the next probe of a server still short of `rise` passing probes is due (0 when one is
        due, or none is short): a health gate cannot pass before then."""
        short = [self.streaks[s] for s in server_ids if s in self.streaks and self.streaks[s].ok < self.check.rise]
        if not short or len(short) < sum(1 for s in server_ids if not self.passing(s)):
            return 0.0  # a server not probed yet is probed at the next look
        return max(0.0, min(s.last_at + self.check.interval for s in short) - now)

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

    def reset_window(self) -> None:
        self.latencies.clear()
        self.sources.clear()
        self.probes = self.failures = 0


@dataclass(frozen=True)
class StreakView:
    ok: int = 0
    bad: int = 0
    down: int = 0
    last: str = "not probed yet"
    lb_down: int = 0


@dataclass(frozen=True)
class HealthView:
    """A frozen copy of the tracker for `decide`: probes are I/O done by the runner; decide only reads this."""

    rise: int = 2
    fall: int = 2
    streaks: tuple[tuple[str, StreakView], ...] = ()
    latencies: tuple[float, ...] = ()
    probes: int = 0
    failures: int = 0
    sources: frozenset[str] = frozenset()

    def _streak(self, server_id: str) -> StreakView:
        return next((s for sid, s in self.streaks if sid == server_id), StreakView())

    def passing(self, server_id: str) -> bool:
        return self._streak(server_id).ok >= self.rise

    def answered(self, server_id: str) -> bool:
        """Our last probe of it passed (one, not `rise`: for a server the LB already vouches for)."""
        return self._streak(server_id).ok >= 1

    def failed_at_launch(self, server_id: str) -> bool:
        streak = self._streak(server_id)
        return max(streak.bad, streak.lb_down) >= self.fall

    def failed_in_service(self, server_id: str) -> bool:
        streak = self._streak(server_id)
        return max(streak.down, streak.lb_down) >= self.fall

    def describe(self, server_id: str) -> str:
        return self._streak(server_id).last


def snapshot(tracker: HealthTracker) -> HealthView:
    return HealthView(
        rise=tracker.check.rise,
        fall=tracker.check.fall,
        streaks=tuple(
            (sid, StreakView(s.ok, s.bad, s.down, tracker.describe(sid), s.lb_down)) for sid, s in sorted(tracker.streaks.items())
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


def analyse(step, stats: Mapping[str, MemberStats], baseline, new: list[Member], old: list[Member], health) -> Verdict:
    """Error rate of the new members over the window (LB counters when the provider has them, else our
    probes, else the pool-status reads that stand in for them with `probe: false`), compared with the old
    members', and p95 latency of our probes. Fewer than `min_requests` is inconclusive, unless the errors
    already seen exceed the limit whatever the rest of `min_requests` would bring."""

    def rate(members: list[Member]) -> tuple[int, int]:
        requests = bad = 0
        for m in members:
            now, then = stats.get(m.id), baseline.get(m.id)
            if now is None:
                continue
            then = then or {"requests": 0, "bad": 0}
            requests += max(0, now.requests - int(then["requests"]))
            bad += max(0, now.http_5xx + now.errors - int(then["bad"]))
        return bad, requests

    bad, requests = rate(new)
    old_bad, old_requests = rate(old)
    source = LB_STATS
    if not requests:
        source = POOL_STATUS if "pool status" in health.sources and "probe" not in health.sources else PROBES
        bad, requests = health.failures, health.probes
    new_rate = bad / requests if requests else 0.0
    old_text = "n/a" if not old_requests else f"{old_bad / old_requests * 100:.2f}%"
    summary = f"new error rate {new_rate * 100:.2f}% over {requests} requests ({source}), old {old_text}"
    min_requests = getattr(step, "min_requests", 0)
    if requests < min_requests:
        if bad / max(min_requests, 1) > step.max_error_rate:  # fails whatever the missing requests bring
            return Verdict(True, f"analysis failed: {summary}: {bad} errors exceed {step.max_error_rate * 100:g}% "
                                 f"of the {min_requests} requests needed", requests=requests, source=source)
        return Verdict(False, f"analysis inconclusive: {summary}, fewer than the {min_requests} needed",
                       inconclusive=True, requests=requests, source=source)
    if new_rate > step.max_error_rate:
        return Verdict(True, f"analysis failed: {summary} > {step.max_error_rate * 100:g}%", requests=requests, source=source)
    if step.max_p95_ms is not None:
        p95 = percentile(list(health.latencies), 95)
        if p95 is not None and p95 * 1000 > step.max_p95_ms:
            return Verdict(True, f"analysis failed: p95 latency {p95 * 1000:.0f}ms > {step.max_p95_ms:g}ms (releasectl probes)",
                           requests=requests, source=source)
        summary += "" if p95 is None else f", p95 {p95 * 1000:.0f}ms (releasectl probes)"
    return Verdict(False, f"analysis passed: {summary}", requests=requests, source=source)
