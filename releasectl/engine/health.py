"""releasectl's own health probes, next to the load balancer's view.

A new member takes traffic only after `rise` consecutive passing probes of ours *and* a HEALTHY verdict
from the LB. Streaks live in memory: a resumed runner simply probes again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from releasectl.loadgen import percentile  # noqa: F401  (re-exported: the one nearest-rank definition)
from releasectl.providers.base import HealthCheck, Probe


@dataclass
class Streak:
    ok: int = 0
    bad: int = 0  # consecutive wrong HTTP statuses (the app answered, and said no)
    down: int = 0  # consecutive failures of any kind, connection errors included
    last_at: float = float("-inf")
    last: Probe | None = None


@dataclass
class HealthTracker:
    check: HealthCheck
    streaks: dict[str, Streak] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # of passing probes, for analysis p95
    probes: int = 0
    failures: int = 0

    def due(self, server_id: str, now: float) -> bool:
        return now - self.streaks.get(server_id, Streak()).last_at >= self.check.interval

    def record(self, server_id: str, probe: Probe, now: float) -> Streak:
        streak = self.streaks.setdefault(server_id, Streak())
        streak.last_at, streak.last = now, probe
        self.probes += 1
        if probe.passed(self.check.expected_status):
            streak.ok += 1
            streak.bad = streak.down = 0
            self.latencies.append(probe.latency)
        else:
            self.failures += 1
            streak.ok = 0
            streak.down += 1
            if probe.status is not None:
                streak.bad += 1
        return streak

    def passing(self, server_id: str) -> bool:
        return self.streaks.get(server_id, Streak()).ok >= self.check.rise

    def failed_at_launch(self, server_id: str) -> bool:
        """The app answers with the wrong status `fall` times in a row (a slow start is not a failure)."""
        return self.streaks.get(server_id, Streak()).bad >= self.check.fall

    def failed_in_service(self, server_id: str) -> bool:
        """Once in rotation, any `fall` consecutive failures count, connection errors included."""
        return self.streaks.get(server_id, Streak()).down >= self.check.fall

    def describe(self, server_id: str) -> str:
        last = self.streaks.get(server_id, Streak()).last
        if last is None:
            return "not probed yet"
        return f"HTTP {last.status}" if last.status is not None else (last.error or "no answer")

    def reset_window(self) -> None:
        self.latencies.clear()
        self.probes = self.failures = 0



@dataclass(frozen=True)
class StreakView:
    ok: int = 0
    bad: int = 0
    down: int = 0
    last: str = "not probed yet"


@dataclass(frozen=True)
class HealthView:
    """A frozen copy of the tracker for `decide`: probes are I/O done by the runner; decide only reads this."""

    rise: int = 2
    fall: int = 2
    streaks: tuple[tuple[str, StreakView], ...] = ()
    latencies: tuple[float, ...] = ()
    probes: int = 0
    failures: int = 0

    def _streak(self, server_id: str) -> StreakView:
        return next((s for sid, s in self.streaks if sid == server_id), StreakView())

    def passing(self, server_id: str) -> bool:
        return self._streak(server_id).ok >= self.rise

    def answered(self, server_id: str) -> bool:
        """Our last probe of it passed (one, not `rise`: for a server the LB already vouches for)."""
        return self._streak(server_id).ok >= 1

    def failed_at_launch(self, server_id: str) -> bool:
        return self._streak(server_id).bad >= self.fall

    def failed_in_service(self, server_id: str) -> bool:
        return self._streak(server_id).down >= self.fall

    def describe(self, server_id: str) -> str:
        return self._streak(server_id).last


def snapshot(tracker: HealthTracker) -> HealthView:
    return HealthView(
        rise=tracker.check.rise,
        fall=tracker.check.fall,
        streaks=tuple(
            (sid, StreakView(s.ok, s.bad, s.down, tracker.describe(sid))) for sid, s in sorted(tracker.streaks.items())
        ),
        latencies=tuple(tracker.latencies),
        probes=tracker.probes,
        failures=tracker.failures,
    )
