"""The in-memory provider's faults and health model do what tests/fakes/memory.py says (the contract suite
covers the interface itself)."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasectl.errors import Conflict, NotFound, ProviderError, ResourceFailure
from releasectl.providers.base import Health, HealthCheck, LBStatus, ProviderContext, Role, ServerSpec, ServerStatus
from tests.fakes.clock import FakeClock
from tests.fakes.memory import Crash, MemoryCloud, MemoryProvider

HEALTH = HealthCheck(interval=1.0, rise=2, fall=3)
OWNER = {"host": "h", "user": "u", "pid": "42"}


@pytest.fixture
def cloud() -> MemoryCloud:
    return MemoryCloud(FakeClock())


def runner(cloud: MemoryCloud, app: str = "demo") -> MemoryProvider:
    ctx = ProviderContext(app=app, env="prod", config_dir=Path("."), state_dir=Path("."), health=HEALTH, app_port=8000)
    return MemoryProvider(ctx, cloud)


def boot(provider: MemoryProvider, version: str = "1.0.0", name: str = "a"):
    image = next((i for i in provider.list_images() if i.version == version), None) or provider.bake_image(version, version, {})
    server = provider.create_server(ServerSpec(name=name, image_id=image.id, app="demo", version=version, env="prod",
                                               role=Role.CANDIDATE, release_id="r"))
    provider.cloud.clock.advance(1.0)
    return provider.get_server(server.id)


def health_of(provider: MemoryProvider, member_id: str) -> Health:
    return next(m.health for m in provider.list_members() if m.id == member_id)


def test_members_rise_and_fall_with_their_server_on_the_fake_clock(cloud) -> None:
    p = runner(cloud)
    p.ensure_pool()
    server = boot(p)
    assert server.status is ServerStatus.ACTIVE and p.probe(server, "/healthz", 1).status == 200
    member = p.add_member(server)
    assert member.health is Health.UNKNOWN
    seen = []
    for _ in range(2):  # checks every `interval` seconds; `rise` passes make it healthy
        cloud.clock.advance(1.0)
        seen.append(health_of(p, member.id))
    assert seen == [Health.UNKNOWN, Health.HEALTHY]
    cloud.kill_server(server.id)
    assert p.get_server(server.id).status is ServerStatus.STOPPED and p.probe(server, "/", 1).status is None
    seen = []
    for _ in range(3):  # `fall` failures make it unhealthy
        cloud.clock.advance(1.0)
        seen.append(health_of(p, member.id))
    assert seen == [Health.HEALTHY, Health.HEALTHY, Health.UNHEALTHY]


def test_start_failure_and_never_healthy(cloud) -> None:
    p = runner(cloud)
    p.ensure_pool()
    cloud.fail_starts("demo", "2.0.0")
    cloud.never_healthy("demo", "3.0.0")
    broken = boot(p, "2.0.0", "b")
    assert broken.status is ServerStatus.ERROR and broken.fault == "start command missing"
    sick = boot(p, "3.0.0", "s")
    assert sick.status is ServerStatus.ACTIVE and p.probe(sick, "/healthz", 1).status == 500
    member = p.add_member(sick)
    cloud.clock.advance(10)
    assert health_of(p, member.id) is Health.UNHEALTHY
    with pytest.raises(Conflict):  # never into rotation before its checks pass
        p.set_weights({member.id: 10})


def test_a_dead_lb_keeps_its_members_and_weights_until_ensure_pool_restarts_it(cloud) -> None:
    p = runner(cloud)
    p.ensure_pool()
    server = boot(p)
    member = p.add_member(server)
    cloud.clock.advance(2)
    p.set_weights({member.id: 50})
    cloud.kill_lb(p.pool_name)
    assert p.lb_state().status is LBStatus.DOWN and p.list_members() == [] and p.pool_endpoint() is None
    with pytest.raises(ProviderError):
        p.set_weights({member.id: 60})
    p.ensure_pool()
    assert p.lb_state().status is LBStatus.UP
    assert [(m.id, m.weight) for m in p.list_members()] == [(member.id, 50)]


def test_an_lb_in_error_refuses_writes_until_failed_over(cloud) -> None:
    p = runner(cloud)
    p.ensure_pool()
    member = p.add_member(boot(p))
    cloud.error_lb(p.pool_name)
    assert p.lb_state().status is LBStatus.ERROR and [m.id for m in p.list_members()] == [member.id]
    with pytest.raises(ResourceFailure):
        p.ensure_pool()
    with pytest.raises(ResourceFailure):
        p.remove_member(member.id)
    cloud.repair_lb(p.pool_name)
    p.remove_member(member.id)
    assert p.list_members() == []


def test_a_vanished_image_cannot_boot(cloud) -> None:
    p = runner(cloud)
    image = p.bake_image("1.0.0", "one", {})
    cloud.vanish_image(image.id)
    assert p.get_image(image.id) is None and p.list_images() == []
    with pytest.raises(NotFound):
        p.create_server(ServerSpec(name="a", image_id=image.id, app="demo", version="1.0.0", env="prod",
                                   role=Role.CANDIDATE, release_id="r"))


def test_conflicts_hit_writes_only(cloud) -> None:
    p = runner(cloud)
    server = boot(p)
    cloud.conflict_next(2)
    assert p.get_server(server.id) is not None and p.list_servers()  # reads pass
    for _ in range(2):
        with pytest.raises(Conflict):
            p.update_server_labels(server.id, {"x": "1"})
    assert p.update_server_labels(server.id, {"x": "1"}).labels["x"] == "1"


@pytest.mark.parametrize("after_effect", [False, True])
def test_a_crash_kills_the_runner_and_its_lock_is_taken_over(cloud, after_effect) -> None:
    p = runner(cloud)
    p.acquire_lock(OWNER, 600)
    cloud.crash_next_call(after_effect=after_effect)
    with pytest.raises(Crash):
        p.write_record("current", "x")
    assert (p.read_record.__wrapped__(p, "current") == "x") is after_effect
    with pytest.raises(Crash):
        p.list_servers()  # a dead runner makes no more calls
    lease = runner(cloud).acquire_lock({**OWNER, "pid": "43"}, 60)
    assert "pid 42" in lease.owner["took_over"] and "gone" in lease.owner["took_over"]


def test_a_foreign_member_is_healthy_weighted_and_not_ours(cloud) -> None:
    p = runner(cloud)
    p.ensure_pool()
    foreign = cloud.add_foreign_member(p.pool_name, app="other", env="prod")
    assert (foreign.weight, foreign.health) == (100, Health.HEALTHY) and not foreign.owned_by("demo", "prod")
    assert foreign.owned_by("other", "prod") and p.list_servers() == []
