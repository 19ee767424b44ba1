"""Quota preflight: the pure arithmetic (tables) and the refusal of a release that cannot fit (memory provider)."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasectl.engine.context import EngineContext
from releasectl.engine.images import bake
from releasectl.engine.model import Launch, Phase, Pipeline, Retire, SetWeight
from releasectl.engine.quota import check, needs, peak_new_servers, preflight
from releasectl.engine.release import rollout
from releasectl.errors import QuotaExceeded
from releasectl.providers.base import UNLIMITED, HealthCheck, ProviderContext, Quota
from tests.fakes.clock import FakeClock
from tests.fakes.memory import MemoryCloud, MemoryProvider

SERVER = {"instances": 1, "cores": 2, "ram_mb": 2048, "ports": 1, "members": 1}
BLUE_GREEN = Pipeline("blue-green", (Launch(), SetWeight(100), Retire()))
CANARY_ONE = Pipeline("canary-one", (Launch(1), SetWeight(10), Launch(), SetWeight(100), Retire()))
CANARY_SMALL = Pipeline("canary-small", (Launch(1), SetWeight(10), Launch(2), SetWeight(100), Retire()))


@pytest.mark.parametrize(
    "pipeline, count, peak",
    [
        (BLUE_GREEN, 4, 4),  # a full second fleet
        (CANARY_ONE, 4, 4),  # launch 1, then all: the largest step is the whole fleet
        (CANARY_SMALL, 4, 2),  # launch targets are cumulative: the largest is the peak
        (Pipeline("odd", (Launch(9), SetWeight(100))), 3, 3),  # never more than the fleet
        (Pipeline("none", (SetWeight(100),)), 3, 3),  # no launch step: the fleet
    ],
)
def test_peak_new_servers(pipeline, count, peak) -> None:
    assert peak_new_servers(pipeline, count) == peak


@pytest.mark.parametrize(
    "servers, extra, expected",
    [
        (0, None, {}),
        (3, None, {"instances": 3, "cores": 6, "ram_mb": 6144, "ports": 3, "members": 3}),
        (1, {"ports": 1, "load_balancers": 1}, {"instances": 1, "cores": 2, "ram_mb": 2048, "ports": 2, "members": 1,
                                                "load_balancers": 1}),
        (0, {"security_groups": 1, "floatingips": 0}, {"security_groups": 1}),
    ],
)
def test_needs(servers, extra, expected) -> None:
    assert needs(Quota(per_server=SERVER), servers, extra) == expected


@pytest.mark.parametrize(
    "limits, used, needed, short",
    [
        ({"instances": 10}, {"instances": 4}, {"instances": 6}, []),  # exactly fits
        ({"instances": 10}, {"instances": 5}, {"instances": 6}, [("instances", 6, 5, 10)]),
        ({"instances": UNLIMITED}, {"instances": 500}, {"instances": 6}, []),
        ({}, {"instances": 500}, {"instances": 6}, []),  # unknown limit: not checked
        ({"cores": 8, "ram_mb": 100_000}, {"cores": 4, "ram_mb": 0}, {"cores": 6, "ram_mb": 6144}, [("cores", 6, 4, 8)]),
        ({"members": 3}, {}, {"members": 4}, [("members", 4, 0, 3)]),  # nothing used yet
    ],
)
def test_check_names_what_does_not_fit(limits, used, needed, short) -> None:
    rows = check(Quota(limits=limits, used=used, per_server=SERVER), needed)
    assert [(r.resource, r.needed, r.used, r.limit) for r in rows if not r.fits] == short
    assert {r.resource for r in rows} == set(needed) & set(limits)


def _ctx(cloud: MemoryCloud, tmp_path: Path, count: int = 3) -> EngineContext:
    health = HealthCheck(path="/healthz", expected_status=200, interval=1.0, timeout=1.0, rise=2, fall=2)
    pctx = ProviderContext(app="demo", env="production", config_dir=tmp_path, state_dir=tmp_path / "state",
                           health=health, app_port=8000, options={"pool": "demo-pool"})
    return EngineContext(provider=MemoryProvider(pctx, cloud), app="demo", env="production", image_name="{app}-{version}",
                         count=count, health=health, clock=cloud.clock, actor={"host": "t", "user": "u", "pid": "1"})


def test_a_blue_green_that_does_not_fit_is_refused_with_the_numbers_and_nothing_is_created(tmp_path) -> None:
    cloud = MemoryCloud(FakeClock())
    ctx = _ctx(cloud, tmp_path)
    bake(ctx, "1.0.0")
    assert rollout(ctx, "1.0.0", BLUE_GREEN).phase is Phase.SUCCEEDED  # 3 servers of 1.0.0 serve
    bake(ctx, "1.1.0")
    cloud.set_quota(instances=5, cores=100)  # 3 used + 3 new > 5
    servers, members = set(cloud.servers), {m for p in cloud.pools.values() for m in p.members}
    records = dict(cloud.records[("demo", "production")])
    with pytest.raises(QuotaExceeded) as refused:
        rollout(ctx, "1.1.0", BLUE_GREEN)
    assert refused.value.rows == [("instances", 3, 3, 5)]
    assert "instances: needed 3, used 3, limit 5" in refused.value.message
    assert set(cloud.servers) == servers and {m for p in cloud.pools.values() for m in p.members} == members
    assert cloud.records[("demo", "production")] == records and cloud.leases == {}  # no record, lock given back
    cloud.set_quota(instances=6)
    assert rollout(ctx, "1.1.0", BLUE_GREEN).phase is Phase.SUCCEEDED  # it fits exactly


def test_preflight_counts_extra_resources_for_env_up(tmp_path) -> None:
    cloud = MemoryCloud(FakeClock())
    ctx = _ctx(cloud, tmp_path)
    cloud.set_quota(members=0)
    assert preflight(ctx.provider, what="env up", extra={"security_groups": 1}) == []  # no limit known for it
    with pytest.raises(QuotaExceeded) as refused:
        preflight(ctx.provider, what="builder up", servers=0, extra={"members": 1})
    assert refused.value.rows == [("members", 1, 0, 0)]
