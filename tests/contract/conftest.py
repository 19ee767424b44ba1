"""One `subject` fixture, parametrised over every provider the contract holds for.

    memory           tests/fakes/memory.py on a fake clock (fast)
    local            real HAProxy and processes on loopback (slow; tests/providers/local/conftest.py's Factory)
    openstack-sim    the openstack provider over HTTP against the simulator with real app processes (slow)
    openstack-real   the openstack provider against the real services of tests/real_services (slow; skipped
                     unless configured, failed instead when RELEASECTL_REQUIRE_REAL_SERVICES=1)

A `Subject` wraps the provider with what the tests need beyond the interface: a second runner on the same
cloud, time passing (the fake clock advances, real providers are polled), and a foreign pool member where the
provider can have one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import pytest

from releasectl.providers.base import HealthCheck, Label, Provider, ProviderContext, Role, Server, ServerSpec, ServerStatus
from releasectl.wait import wait_for
from tests.fakes.clock import FakeClock
from tests.fakes.memory import MemoryCloud, MemoryProvider
from tests.openstack_sim.fixtures import openstack_sim, openstack_sim_factory  # noqa: F401
from tests.providers.local.conftest import factory  # noqa: F401
from tests.providers.openstack.conftest import make_provider, write_clouds  # noqa: F401

T = TypeVar("T")
APP = "demo"
HEALTH = HealthCheck(path="/healthz", expected_status=200, interval=0.2, timeout=1.0, rise=1, fall=2)


@dataclass
class Subject:
    """A provider under contract, plus the few things a test needs that the interface does not give."""

    kind: str
    provider: Provider
    make: Callable[..., Provider]  # make(env=..., app=...): another runner of the same cloud
    env: str
    clock: FakeClock | None = None  # memory only: time passes when the tests poll
    add_foreign: Callable[[], str] | None = None  # adds a member that is not ours; returns its id

    def wait(self, check: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
        """Poll `check` until it returns something; on the memory provider each poll advances the fake clock."""
        if self.clock is None:
            return wait_for(check, timeout=timeout, interval=0.05, max_interval=0.25, what=what)
        for _ in range(int(timeout / 0.1)):
            found = check()
            if found is not None and found is not False:
                return found
            self.clock.advance(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def pass_time(self, until: float) -> None:
        """Let the wall clock pass `until` (an epoch time): a lease's expiry."""
        if self.clock is not None:
            self.clock.advance(max(0.0, until - self.clock.time()) + 0.01)
        else:
            import time

            self.wait(lambda: time.time() > until, f"the clock to pass {until}")

    def image(self, version: str = "1.0.0", **labels: str):
        """The image of `version`, baked once."""
        found = next((i for i in self.provider.list_images() if i.version == version), None)
        return found or self.provider.bake_image(version, f"{APP}-{version}", {Label.PORT: "8000", **labels})

    def spec(self, version: str = "1.0.0", name: str | None = None, **labels: str) -> ServerSpec:
        return ServerSpec(name=name or f"{APP}-{version}-{len(self.provider.list_servers())}", image_id=self.image(version).id,
                          app=APP, version=version, env=self.env, role=Role.CANDIDATE, release_id="rel-1", labels=labels)

    def boot(self, version: str = "1.0.0", name: str | None = None) -> Server:
        """A server of `version`, ACTIVE with an address."""
        created = self.provider.create_server(self.spec(version, name))
        return self.wait(lambda: (s := self.provider.get_server(created.id)) is not None
                         and s.status is ServerStatus.ACTIVE and s.address and s, f"server {created.id} to boot", 30)


def _memory(tmp_path: Path) -> Subject:
    cloud = MemoryCloud(FakeClock())

    def make(env: str = "test", app: str = APP) -> Provider:
        ctx = ProviderContext(app=app, env=env, config_dir=tmp_path, state_dir=tmp_path / "state", health=HEALTH,
                              app_port=8000, options={"pool": "contract-pool"})
        return MemoryProvider(ctx, cloud)

    def foreign() -> str:
        provider.ensure_pool()
        return cloud.add_foreign_member("contract-pool", app=None, env=None).id

    provider = make()
    return Subject("memory", provider, make, "test", clock=cloud.clock, add_foreign=foreign)


def _local(request: pytest.FixtureRequest) -> Subject:
    local_factory = request.getfixturevalue("factory")

    def make(env: str = "test", app: str = APP) -> Provider:
        return local_factory(env=env, app=app, health=HEALTH)

    return Subject("local", make(), make, "test")  # the local LB owns every member: nothing foreign to add


def _openstack_sim(request: pytest.FixtureRequest, tmp_path: Path) -> Subject:
    sim = request.getfixturevalue("openstack_sim_factory")(serve_apps=True)
    build = request.getfixturevalue("make_provider")
    clouds = write_clouds(sim, tmp_path / "clouds-apps.yaml")
    runners = iter(range(1000))

    def make(env: str = "production", app: str = APP) -> Provider:
        return build(sim=sim, clouds=clouds, env=env, app=app, state=f"state-{next(runners)}")

    provider = make()

    def foreign() -> str:
        provider.ensure_pool()
        pool = provider.pool
        provider.octavia.call("POST", f"/pools/{pool.id}/members",
                              json={"member": {"address": "127.0.9.9", "protocol_port": 9999, "weight": 1, "name": "static"}})
        pool.wait_active()
        return next(m.id for m in provider.list_members() if m.address == "127.0.9.9")

    return Subject("openstack-sim", provider, make, "production", add_foreign=foreign)


def _openstack_real(tmp_path: Path) -> Subject:
    required = os.environ.get("RELEASECTL_REQUIRE_REAL_SERVICES") == "1"
    try:
        from tests.real_services import make_provider as make_real
    except ImportError as exc:
        if required:
            pytest.fail(f"real services are required but tests/real_services is missing: {exc}")
        pytest.skip("tests/real_services is not on this branch")
    runners = iter(range(1000))
    first: list[Provider] = []  # every later runner shares the first one's pool and Swift container

    def make(env: str = "production", app: str = APP) -> Provider:
        provider = make_real(tmp_path / f"real-{next(runners)}", app, env, share_with=first[0] if first else None)
        if provider is None:
            if required:
                pytest.fail("real services are required (RELEASECTL_REQUIRE_REAL_SERVICES=1) but not configured")
            pytest.skip("real services are not configured (RELEASECTL_REAL_SERVICES_ENV)")
        first[:1] = first or [provider]
        return provider

    return Subject("openstack-real", make(), make, "production")


SLOW = pytest.mark.slow


@pytest.fixture(params=["memory", pytest.param("local", marks=SLOW), pytest.param("openstack-sim", marks=SLOW),
                        pytest.param("openstack-real", marks=SLOW)])
def subject(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    if request.param == "memory":
        yield _memory(tmp_path)
        return
    if request.param.startswith("openstack"):
        for key in list(os.environ):  # no OS_* variable, clouds.yaml or keyring of the machine leaks in
            if key.startswith("OS_"):
                monkeypatch.delenv(key)
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    if request.param == "local":
        subject = _local(request)
    elif request.param == "openstack-sim":
        subject = _openstack_sim(request, tmp_path)
    else:
        subject = _openstack_real(tmp_path)
    yield subject
    if request.param == "openstack-real":  # the real services outlive the test: leave nothing of ours behind
        for server in subject.provider.list_servers():
            subject.provider.delete_server(server.id)
        for image in subject.provider.list_images():
            subject.provider.delete_image(image.id)
