"""Quota preflight: refuse, before anything is created, what the project's quota cannot hold.

The arithmetic is pure (table-tested in the fast tier); `preflight` is the one place that reads the
provider's `quota()` and raises QuotaExceeded (exit 2) naming needed, used and limit of every resource short.
A rollout needs its peak of new servers on top of what runs: a full second fleet for a blue-green, the
largest launch step for a canary (launch targets are cumulative, so the largest one is the peak).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from releasectl.engine.model import Launch, Pipeline
from releasectl.errors import QuotaExceeded
from releasectl.providers.base import UNLIMITED, Provider, Quota


@dataclass(frozen=True)
class QuotaRow:
    resource: str
    needed: int
    used: int
    limit: int  # UNLIMITED (-1): no limit

    @property
    def free(self) -> int | None:
        return None if self.limit == UNLIMITED else max(0, self.limit - self.used)

    @property
    def fits(self) -> bool:
        return self.limit == UNLIMITED or self.used + self.needed <= self.limit


def peak_new_servers(pipeline: Pipeline, count: int) -> int:
    """The most servers a release of `pipeline` adds at once, beside the fleet that serves."""
    targets = [step.count or count for step in pipeline.steps if isinstance(step, Launch)]
    return min(max(targets, default=count), count)


def needs(quota: Quota, servers: int, extra: Mapping[str, int] | None = None) -> dict[str, int]:
    """What `servers` new servers of this environment take (by quota.per_server), plus `extra` resources."""
    total = {resource: amount * servers for resource, amount in quota.per_server.items()} if servers else {}
    for resource, amount in (extra or {}).items():
        total[resource] = total.get(resource, 0) + amount
    return {resource: amount for resource, amount in total.items() if amount > 0}


def check(quota: Quota, needed: Mapping[str, int]) -> list[QuotaRow]:
    """One row per needed resource whose limit is known, in the order needed lists them."""
    return [
        QuotaRow(resource, amount, quota.used.get(resource, 0), quota.limits[resource])
        for resource, amount in needed.items()
        if resource in quota.limits
    ]


def describe(rows: list[QuotaRow]) -> str:
    return "; ".join(f"{r.resource}: needed {r.needed}, used {r.used}, limit {r.limit}" for r in rows)


def preflight(provider: Provider, *, what: str, servers: int = 0, extra: Mapping[str, int] | None = None) -> list[QuotaRow]:
    """Read the quota once and refuse (QuotaExceeded, exit 2) when `servers` new servers plus `extra` do not
    fit. Returns every checked row when they do. For `env up` (extra: load_balancers, security_groups,
    floatingips, ports), `builder up` (one server) and `rollout` (peak_new_servers)."""
    quota = provider.quota()
    rows = check(quota, needs(quota, servers, extra))
    short = [r for r in rows if not r.fits]
    if short:
        raise QuotaExceeded(
            f"{what} does not fit in the project's quota ({describe(short)}); nothing was created",
            [(r.resource, r.needed, r.used, r.limit) for r in short],
            hint="free some (an idle builder: `releasectl builder down`; a warm previous fleet: `releasectl gc`) or ask the cloud's operator for more quota",
        )
    return rows
