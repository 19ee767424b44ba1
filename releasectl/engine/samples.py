"""Samples of a release's traffic for the record, one per poll of the runner, for `releasectl report`.

Each sample holds, per version: the requested and achieved share of traffic, the request rate, the error
rate and latency, each labelled by where it came from (load-balancer counters, releasectl's own probes, or
the pool-status reads that stand in for probes with `probe: false`). The runner takes a sample from what
its pass observed anyway (no extra reads but the LB's counters), buffers it, and appends the buffer to the
record with the next write that happens anyway (see Runner._write): sampling never causes a write.

One sample, compact (a record holds up to 2,000 of them, and a local state file at most 1 MiB); a figure
the provider does not give is left out rather than null:

    {"at": 1765000000.123, "step": 2, "phase": "progressing", "traffic": "load balancer stats",
     "versions": {"1.1.0": {"req": 20.0, "ach": 20.0, "n": 2, "ok": 2, "rps": 41.5, "err": 0.012,
                            "err_src": "releasectl probes", "p95": 12.3, "avg": 4.0}}}

req/ach: requested and achieved share of traffic in % (weights read from the pool); n/ok: members and
healthy members; rps and err (a fraction): from the LB's counters (`traffic`), else err from our probes
(`err_src`); p95: ms, over releasectl's last probes of the version's servers; avg: ms, the LB's average.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from releasectl.engine.health import LB_STATS, POOL_STATUS, PROBES, HealthTracker, percentile
from releasectl.engine.model import Phase, Release, SetWeight
from releasectl.engine.observe import Observed
from releasectl.providers.base import Health, MemberStats

MAX_SAMPLES = 2000  # past this, every other older sample is dropped (the newest is always kept)
MAX_BYTES = 256 * 1024  # and past this much compact JSON: the record must stay far below a state file's 1 MiB


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
            figures: dict[str, Any] = {
                "ach": round(100.0 * v["weight"] / total_weight, 2) if total_weight else 0.0,
                "n": v["members"],
                "ok": v["healthy"],
            }
            if version == rel.version:
                figures["req"] = requested_new
            elif version == rel.previous_version:
                figures["req"] = 100.0 - requested_new
            if lb_counted and elapsed:
                figures["rps"] = round(v["requests"] / elapsed, 2)
                if v["requests"]:
                    figures["err"] = round(v["errors"] / v["requests"], 5)
            if "err" not in figures and v["probes"] > 0 and v["weight"] > 0:  # a booting server's refusals are no traffic errors
                figures["err"] = round(v["probe_failures"] / v["probes"], 5)
                figures["err_src"] = probe_source
            p95 = percentile(list(v["latencies"]), 95)
            if p95 is not None:
                figures["p95"] = round(p95 * 1000, 2)
            if v["avg_ms"]:
                figures["avg"] = round(sum(v["avg_ms"]) / len(v["avg_ms"]), 2)
            out[version] = figures
        self._stats, self._at = dict(stats), now
        return {
            "at": round(now, 3),
            "step": rel.step_index,
            "phase": rel.phase.value,
            "traffic": LB_STATS if stats else probe_source,
            "versions": out,
        }


def _size(sample: dict[str, Any]) -> int:
    return len(json.dumps(sample, separators=(",", ":"))) + 4  # as Release.to_json writes it, one per line


@dataclass
class Kept:
    """The record's samples and their sizes (each measured once), bounded in count and in bytes: past
    either bound, every other older sample goes (the span stays whole, at a coarser grain; the newest
    sample is always kept)."""

    items: list[dict[str, Any]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    limit: int = MAX_SAMPLES
    max_bytes: int = MAX_BYTES

    @classmethod
    def of(cls, items: list[dict[str, Any]], **bounds: int) -> "Kept":
        return cls(list(items), [_size(s) for s in items], **bounds)

    def extend(self, new: list[dict[str, Any]]) -> "Kept":
        self.items += new
        self.sizes += [_size(s) for s in new]
        while len(self.items) > 1 and (len(self.items) > self.limit or sum(self.sizes) > self.max_bytes):
            self.items = self.items[:-1][::2] + self.items[-1:]
            self.sizes = self.sizes[:-1][::2] + self.sizes[-1:]
        return self


def append(samples: list[dict[str, Any]], new: list[dict[str, Any]], limit: int = MAX_SAMPLES,
           max_bytes: int = MAX_BYTES) -> list[dict[str, Any]]:
    """`samples` with `new` added, bounded as Kept bounds them."""
    return Kept.of(samples, limit=limit, max_bytes=max_bytes).extend(new).items
