"""The engine drives the openstack provider end to end: bake, a first release, a canary, a failed canary
rolled back. The simulator runs real app processes and health-checks members over HTTP."""

from __future__ import annotations

import pytest

from releasectl.engine import records
from releasectl.engine.context import EngineContext
from releasectl.engine.images import bake
from releasectl.engine.model import Launch, Phase, Pipeline, Retire, SetWeight
from releasectl.engine.release import rollout
from releasectl.engine.weights import FULL_WEIGHT
from releasectl.errors import ReleaseFailed
from releasectl.providers.base import HealthCheck, ImageOutcome, Role

from .conftest import write_clouds

HEALTH = HealthCheck(path="/healthz", expected_status=200, interval=0.1, timeout=1.0, rise=2, fall=2)
FIRST = Pipeline(name="first", steps=(Launch(), SetWeight(percent=100.0), Retire(drain_timeout=0.2)))
CANARY = Pipeline(name="canary", steps=(Launch(), SetWeight(percent=50.0, hold=0.3), SetWeight(percent=100.0), Retire(drain_timeout=0.2)))


def context(provider, events: list[str]) -> EngineContext:
    return EngineContext(provider=provider, app="demo", env="production", image_name="{app}-{version}", count=2,
                         health=HEALTH, progress_deadline=60.0, actor={"host": "test", "user": "t", "pid": "1"},
                         emit=lambda event: events.append(f"{event.kind}: {event.message}"))


@pytest.fixture
def apps_cloud(openstack_sim_factory):
    return openstack_sim_factory(serve_apps=True)


def test_first_release_then_a_canary(apps_cloud, make_provider, tmp_path) -> None:
    sim = apps_cloud
    provider = make_provider(sim=sim, clouds=write_clouds(sim, tmp_path / "apps.yaml"))
    events: list[str] = []
    ctx = context(provider, events)

    bake(ctx, "1.0.0")
    first = rollout(ctx, "1.0.0", FIRST)
    assert first.phase is Phase.SUCCEEDED
    members = provider.list_members()
    assert len(members) == 2 and {m.weight for m in members} == {FULL_WEIGHT}

    bake(ctx, "1.1.0")
    canary = rollout(ctx, "1.1.0", CANARY)
    assert canary.phase is Phase.SUCCEEDED
    servers = provider.list_servers()
    assert {s.version for s in servers} == {"1.1.0"} and {s.role for s in servers} == {Role.STABLE}
    live = {m.address for m in provider.list_members() if m.weight > 0}
    assert live == {s.address for s in servers} and len(provider.list_members()) == 2
    assert records.load_current(provider).version == "1.1.0"
    assert [r.version for r in records.load_history(provider)] == ["1.1.0", "1.0.0"]
    assert any("setting weights for 50%" in e for e in events)
    assert provider.read_lock() is None  # released at the end of each command


@pytest.mark.slow
def test_a_failing_canary_is_rolled_back(apps_cloud, make_provider, tmp_path) -> None:
    """Slow (about 20 s): Octavia cannot count a member's sessions, so the engine drains each new member for
    its fixed rollback drain time (10 s) before removing it."""
    sim = apps_cloud
    provider = make_provider(sim=sim, clouds=write_clouds(sim, tmp_path / "apps.yaml"))
    events: list[str] = []
    ctx = context(provider, events)
    bake(ctx, "1.1.0")
    rollout(ctx, "1.1.0", FIRST)
    sim.set_builder_fail_health(True)
    bake(ctx, "1.2.0")
    sim.set_builder_fail_health(False)
    with pytest.raises(ReleaseFailed, match="health check failed") as err:
        rollout(ctx, "1.2.0", CANARY)
    assert err.value.hint == "traffic is back on 1.1.0"
    assert {s.version for s in provider.list_servers()} == {"1.1.0"}
    assert len(provider.list_members()) == 2 and all(m.weight > 0 for m in provider.list_members())
    failed = next(i for i in provider.list_images() if i.version == "1.2.0")
    assert failed.outcome is ImageOutcome.FAILED
