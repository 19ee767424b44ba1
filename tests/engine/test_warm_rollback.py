"""A rollback to a warm fleet moves the traffic in its first action, when the LB vouches for that fleet.

In-process, with the memory provider and a fake clock: 1.0.0 is released, then 1.1.0 with a pipeline that
keeps 1.0.0 warm (drained, weight 0). The rollback's provider writes are recorded in order. Then the pure
decision, table-style: only a rollback whose warm servers the LB all reports healthy swaps first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from releasectl.engine.actions import RelabelServers, SetWeights
from releasectl.engine.context import EngineContext
from releasectl.engine.decide import decide
from releasectl.engine.model import Launch, Phase, Pipeline, ReleaseKind, Retire, SetWeight
from releasectl.engine.images import bake
from releasectl.engine.invariants import check
from releasectl.engine.release import abort, rollback, rollout
from releasectl.errors import ReleaseFailed
from releasectl.providers.base import AdminState, Health, HealthCheck, Label, ProviderContext, Role
from tests.engine import test_decide as td
from tests.fakes.clock import FakeClock
from tests.fakes.memory import Crash, MemoryCloud, MemoryProvider

APP, ENV = "shop", "production"
HEALTH = HealthCheck(path="/healthz", expected_status=200, interval=1.0, timeout=1.0, rise=2, fall=2)

FIRST = Pipeline(name="first", steps=(Launch(), SetWeight(percent=100.0), Retire(drain_timeout=0.0)))
KEEP_WARM = Pipeline(name="keep-warm", steps=(Launch(), SetWeight(percent=100.0), Retire(drain_timeout=0.0, keep_previous=600.0)))
WRITES = ("set_weights", "update_server_labels", "add_member", "remove_member", "create_server", "delete_server")


def recorded(name: str, call, writes: list):
    """`call`, noting (name, args) in `writes` first: the order of the pool and server writes."""

    def write(*args):
        writes.append((name, args))
        return call(*args)

    return write


def context(cloud: MemoryCloud, writes: list | None = None) -> EngineContext:
    provider = MemoryProvider(ProviderContext(app=APP, env=ENV, config_dir=Path("/nonexistent"), state_dir=Path("/nonexistent"),
                                              health=HEALTH, app_port=8000), cloud)
    if writes is not None:
        for name in WRITES:
            setattr(provider, name, recorded(name, getattr(provider, name), writes))
    return EngineContext(provider=provider, app=APP, env=ENV, image_name="{app}-{version}", count=2, health=HEALTH,
                         clock=cloud.clock, actor={"host": "test", "user": "warm", "pid": "1"}, drain_timeout=0.0)


@pytest.fixture
def warm_cloud() -> MemoryCloud:
    """1.1.0 live on two servers, 1.0.0 warm on two (weight 0, healthy in the LB)."""
    cloud = MemoryCloud(FakeClock())
    ctx = context(cloud)
    ctx.provider.ensure_pool()
    bake(ctx, "1.0.0")
    bake(ctx, "1.1.0")
    assert rollout(ctx, "1.0.0", FIRST).phase is Phase.SUCCEEDED
    assert rollout(ctx, "1.1.0", KEEP_WARM).phase is Phase.SUCCEEDED
    return cloud


def weights_by_version(ctx: EngineContext) -> dict[str, set[int]]:
    servers = {s.id: s for s in ctx.provider.list_servers()}
    out: dict[str, set[int]] = {}
    for m in ctx.provider.list_members():
        out.setdefault(servers[m.server_id].version, set()).add(m.weight)
    return out


def test_a_warm_fleet_the_lb_reports_healthy_gets_the_traffic_in_the_first_action(warm_cloud):
    writes: list = []
    ctx = context(warm_cloud, writes)
    warm = {s.id for s in ctx.provider.list_servers() if s.role is Role.PREVIOUS}
    assert len(warm) == 2 and weights_by_version(ctx) == {"1.0.0": {0}, "1.1.0": {100}}
    rel = rollback(ctx)
    assert rel.phase is Phase.SUCCEEDED and rel.version == "1.0.0"
    name, (weights,) = writes[0]
    warm_members = {m.id for m in ctx.provider.list_members() if m.server_id in warm}
    assert name == "set_weights" and {mid for mid, w in weights.items() if w > 0} == warm_members
    assert len(weights) == 4 and sorted(weights.values()) == [0, 0, 100, 100]  # one change: no gap (I1)
    assert [n for n, _ in writes].count("set_weights") == 1  # the SetWeight step found it done
    assert weights_by_version(ctx) == {"1.0.0": {100}}  # 1.1.0 retired


def test_a_warm_fleet_the_lb_reports_down_is_not_given_traffic_first(warm_cloud):
    writes: list = []
    ctx = context(warm_cloud, writes)
    for server in warm_cloud.servers.values():  # 1.0.0's app now fails its checks (and our probes)
        server.healthy = server.labels.get(Label.VERSION) != "1.0.0"
    warm_cloud.clock.sleep(HEALTH.interval * (HEALTH.fall + 1))
    assert {m.health.value for m in ctx.provider.list_members() if m.weight == 0} == {"unhealthy"}
    with pytest.raises(ReleaseFailed):
        rollback(ctx)  # adopted, gated, failed: the rollback is rolled back
    assert writes[0][0] == "update_server_labels"  # adopting it is the first move, not the traffic
    assert all(w == 0 for name, (weights, *_) in writes if name == "set_weights" for w in weights.values())
    assert weights_by_version(ctx) == {"1.1.0": {100}}  # 1.1.0 served throughout, the broken 1.0.0 is gone


# ---- the pure decision ---------------------------------------------------------------------------------

ROLLBACK_STEPS = (Launch(), SetWeight(percent=100.0), Retire(drain_timeout=30.0))
LIVE = [td.server(1, "1.1.0", Role.STABLE, "r-110"), td.server(2, "1.1.0", Role.STABLE, "r-110")]
WARM = [td.server(3, "1.0.0", Role.PREVIOUS, "r-100"), td.server(4, "1.0.0", Role.PREVIOUS, "r-100")]


def first_move(kind: ReleaseKind, warm_health: tuple[Health, Health], steps=ROLLBACK_STEPS):
    observed = td.obs(LIVE + WARM, [td.member(s, 100) for s in LIVE] +
                      [td.member(s, 0, health, admin=AdminState.DRAIN) for s, health in zip(WARM, warm_health)])
    rel = td.release(*steps, kind=kind, version="1.0.0", previous_version="1.1.0")
    return observed, decide(observed, rel, td.NOW)


def test_the_swap_is_one_weight_change_that_keeps_a_member_serving():
    observed, decision = first_move(ReleaseKind.ROLLBACK, (Health.HEALTHY, Health.HEALTHY))
    assert isinstance(decision.action, SetWeights)
    assert dict(decision.action.weights) == {"ms1": 0, "ms2": 0, "ms3": 100, "ms4": 100}
    assert check(observed, decision.action, app="shop", env="production") is None  # I1 and I2 hold


@pytest.mark.parametrize("kind, health", [
    (ReleaseKind.ROLLBACK, (Health.HEALTHY, Health.UNKNOWN)),  # one still rising: adopted and gated
    (ReleaseKind.ROLLBACK, (Health.UNHEALTHY, Health.HEALTHY)),
    (ReleaseKind.ROLLOUT, (Health.HEALTHY, Health.HEALTHY)),  # a rollout adopting a warm fleet follows its pipeline
], ids=["rising", "down", "rollout"])
def test_no_swap_unless_a_rollback_and_the_lb_vouches_for_every_warm_server(kind, health):
    _, decision = first_move(kind, health)
    assert isinstance(decision.action, RelabelServers)


def test_undoing_a_rollback_cut_short_right_after_its_swap_drains_the_warm_fleet_again(warm_cloud):
    """The runner dies just after the weight change (before adopting the warm fleet): an abort puts all
    traffic back on 1.1.0 and the warm 1.0.0 back at weight 0, still warm, not half of the traffic each."""
    ctx = context(warm_cloud)
    set_weights = ctx.provider.set_weights

    def then_die(weights):
        set_weights(weights)
        raise Crash("killed after the weight change")

    ctx.provider.set_weights = then_die
    with pytest.raises(Crash):
        rollback(ctx)
    ctx = context(warm_cloud)
    assert weights_by_version(ctx) == {"1.0.0": {100}, "1.1.0": {0}}
    warm_cloud.leases.clear()  # the dead runner's lease (a real one expires, or is taken over)
    abort(ctx)
    assert weights_by_version(ctx) == {"1.0.0": {0}, "1.1.0": {100}}
    assert {s.role for s in ctx.provider.list_servers() if s.version == "1.0.0"} == {Role.PREVIOUS}
