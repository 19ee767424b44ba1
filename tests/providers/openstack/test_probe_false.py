"""`probe: false` on the simulator (real app processes, Octavia health-checking them over HTTP): a broken
build whose members Octavia reports ERROR is rolled back within fall x interval + one poll of the first ERROR
the engine saw, not at the progress deadline; `stage` refuses up front. Slow by folder."""

from __future__ import annotations

import time

import pytest

from releasectl.engine.context import EngineContext
from releasectl.engine.images import bake
from releasectl.engine.model import Phase
from releasectl.engine.release import rollout
from releasectl.engine.stage import stage
from releasectl.errors import ConfigError, ReleaseFailed
from releasectl.providers.base import Health, HealthCheck

from .conftest import write_clouds
from .test_engine_on_sim import CANARY, FIRST

CHECK = HealthCheck(path="/healthz", expected_status=200, interval=0.5, timeout=1.0, rise=2, fall=3)
DEADLINE = 120.0  # the progress deadline: the failure must come long before it


@pytest.fixture
def apps_cloud(openstack_sim_factory):
    return openstack_sim_factory(serve_apps=True)


def context(provider, events: list) -> EngineContext:
    return EngineContext(provider=provider, app="demo", env="production", image_name="{app}-{version}", count=2,
                         health=CHECK, progress_deadline=DEADLINE, actor={"host": "test", "user": "t", "pid": "1"},
                         emit=lambda event: events.append((time.monotonic(), event.kind, event.message)))


def test_octavia_error_rolls_a_broken_build_back_within_fall_polls(apps_cloud, make_provider, tmp_path) -> None:
    sim = apps_cloud
    provider = make_provider(sim=sim, clouds=write_clouds(sim, tmp_path / "apps.yaml"), probe=False)
    assert provider.capabilities.own_probes is False
    events: list = []
    ctx = context(provider, events)
    bake(ctx, "1.1.0")
    assert rollout(ctx, "1.1.0", FIRST).phase is Phase.SUCCEEDED
    sim.set_builder_fail_health(True)
    bake(ctx, "1.2.0")
    sim.set_builder_fail_health(False)

    first_error: list[float] = []  # when the engine first read ERROR for a 1.2.0 member (wall clock)
    list_members = provider.list_members

    def watched():
        members = list_members()
        if not first_error and any(m.health is Health.UNHEALTHY and "-1.2.0-" in m.name for m in members):
            first_error.append(time.monotonic())
        return members

    provider.list_members = watched
    started = time.monotonic()
    with pytest.raises(ReleaseFailed) as err:
        rollout(ctx, "1.2.0", CANARY)
    assert first_error, "Octavia never reported the broken members ERROR"
    rollback_at = next(t for t, kind, _ in events if kind == "rollback" and t >= started)
    poll = min(CHECK.interval, 1.0)
    bound = CHECK.fall * CHECK.interval + poll
    assert rollback_at - first_error[0] <= 2 * bound + 2.0, (rollback_at - first_error[0], bound)
    assert rollback_at - started < DEADLINE / 4
    reason = str(err.value)
    assert "ERROR in Octavia" in reason and f"for {CHECK.fall} polls in a row" in reason, reason
    assert {s.version for s in provider.list_servers()} == {"1.1.0"}
    assert all(m.weight > 0 for m in provider.list_members())


def test_stage_with_probe_false_is_refused_up_front(apps_cloud, make_provider, tmp_path) -> None:
    sim = apps_cloud
    provider = make_provider(sim=sim, clouds=write_clouds(sim, tmp_path / "apps.yaml"), probe=False)
    events: list = []
    ctx = context(provider, events)
    bake(ctx, "1.1.0")
    servers_before = provider.list_servers()
    with pytest.raises(ConfigError, match="probe: false") as err:
        stage(ctx, "1.1.0")
    assert "rollout" in (err.value.hint or "")
    assert provider.list_servers() == servers_before  # nothing booted
