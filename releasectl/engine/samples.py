"""Samples of a release's traffic for the record, one per poll of the runner, for `releasectl report`.

Each sample holds, per version: the requested and achieved share of traffic, the request rate, the error
rate and latency, each labelled by where it came from (load-balancer counters, releasectl's own probes, or
the pool-status reads that stand in for probes with `probe: false`). The runner takes a sample from what
its pass observed anyway (no extra reads but the LB's counters), buffers it, and appends the buffer to the
record with the next write that happens anyway (see Runner._write): sampling never causes a write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from releasectl.engine.health import LB_STATS, POOL_STATUS, PROBES, HealthTracker, percentile
from releasectl.engine.model import Phase, Release, SetWeight
from releasectl.engine.observe import Observed
from releasectl.providers.base import Health, MemberStats

MAX_SAMPLES = 2000  # past this, every other older sample is dropped (the newest is always kept)
LB_AVERAGE = "load balancer average"


def requested_share(rel: Release) -> float:
    """The share of traffic the pipeline asks for the new version at this point of the release."""
    if rel.phase is Phase.ROLLING_BACK or rel.phase in (Phase.FAILED, Phase.ABORTED):
        return 0.0
    steps = rel.pipeline.steps
    if rel.phase is Phase.SUCCEEDED or rel.step_index >= len(steps):
        return 100.0
    weights = [(i, s.percent) for i, s in enumerate(steps) if isinstance(s, SetWeight)]
    if rel.previous_version is None and weights:  # a first release skips to its last weight step
        weights = weights[-1:]
    reached = [p for i, p in weights if i <= rel.step_index]
    return reached[-1] if reached else 0.0


@dataclass
class Sampler:
    """Turns each pass's observation into one sample; keeps the previous counters to make rates."""

    health: HealthTracker
    _stats: Mapping[str, MemberStats] = field(default_factory=dict)
    _probes: dict[str, tuple[int, int]] = field(default_factory=dict)  # server id -> (probes, failures)
    _at: float | None = None

    def take(self, obs: Observed, rel: Release, stats: Mapping[str, MemberStats] | None, now: float) -> dict[str, Any]:
        stats = stats or {}
        elapsed = None if self._at is None else now - self._at
        versions: dict[str, dict[str, Any]] = {}

        def entry(version: str) -> dict[str, Any]:
            return versions.setdefault(version, {"weight": 0, "members": 0, "healthy": 0, "requests": 0, "errors": 0,
                                                 "probes": 0, "probe_failures": 0, "latencies": [], "avg_ms": []})

        total_weight = 0
        for member in obs.members:
            server = obs.server_of(member)
            version = server.version if server is not None else member.version
            if not version:
                continue
            v = entry(version)
            v["members"] += 1
            v["healthy"] += member.health is Health.HEALTHY
            v["weight"] += max(0, member.weight)
            total_weight += max(0, member.weight)
            now_stats, then = stats.get(member.id), self._stats.get(member.id)
            if now_stats is not None and then is not None:
                v["requests"] += max(0, now_stats.requests - then.requests)
                v["errors"] += max(0, now_stats.http_5xx + now_stats.errors - then.http_5xx - then.errors)
            if now_stats is not None and now_stats.response_time_ms is not None:
                v["avg_ms"].append(now_stats.response_time_ms)
        for server in obs.servers:
            streak = self.health.streaks.get(server.id)
            if streak is None or not server.version:
                continue
            v = entry(server.version)
            probes, failures = self._probes.get(server.id, (0, 0))
            v["probes"] += streak.probes - probes
            v["probe_failures"] += streak.failures - failures
            v["latencies"].extend(streak.recent)
            self._probes[server.id] = (streak.probes, streak.failures)
        lb_counted = bool(stats) and elapsed is not None
        probe_source = POOL_STATUS if self.health.sources == {"pool status"} else PROBES
        out: dict[str, Any] = {}
        requested_new = requested_share(rel)
        for version, v in sorted(versions.items()):
            requested = None
            if version == rel.version:
                requested = requested_new
            elif version == rel.previous_version:
                requested = 100.0 - requested_new
            figures: dict[str, Any] = {
                "requested": requested,
                "achieved": round(100.0 * v["weight"] / total_weight, 2) if total_weight else 0.0,
                "members": v["members"],
                "healthy": v["healthy"],
                "rps": None,
                "error_rate": None,
                "p95_ms": None,
                "avg_ms": None,
            }
            if lb_counted and elapsed:
                figures["rps"] = round(v["requests"] / elapsed, 3)
                figures["error_rate"] = round(v["errors"] / v["requests"], 5) if v["requests"] else None
            if figures["error_rate"] is None and v["probes"] > 0 and v["weight"] > 0:  # a booting server's refusals are no traffic errors
                figures["error_rate"] = round(v["probe_failures"] / v["probes"], 5)
                figures["error_source"] = probe_source
            p95 = percentile(list(v["latencies"]), 95)
            figures["p95_ms"] = None if p95 is None else round(p95 * 1000, 2)
            if v["avg_ms"]:
                figures["avg_ms"] = round(sum(v["avg_ms"]) / len(v["avg_ms"]), 2)
            out[version] = figures
        self._stats, self._at = dict(stats), now
        return {
            "at": round(now, 3),
            "step": rel.step_index,
            "phase": rel.phase.value,
            "sources": {
                "weights": "pool",
                "traffic": LB_STATS if stats else probe_source,
                "p95": PROBES,
                "avg": LB_AVERAGE,
            },
            "versions": out,
        }


def append(samples: list[dict[str, Any]], new: list[dict[str, Any]], limit: int = MAX_SAMPLES) -> list[dict[str, Any]]:
    """The record's samples with `new` added, bounded: past `limit`, every other older sample goes."""
    merged = samples + new
    while len(merged) > limit:
        merged = merged[:-1][::2] + merged[-1:]
    return merged
