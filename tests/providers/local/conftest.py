"""Fixtures for the local provider: real HAProxy, real processes, real HTTP, all on loopback.

Every test gets a `factory` that builds LocalProviders on a private state folder. Its finalizer stops what
the test started (the pool, then every server, by PID), and then checks that no process whose command line
or working folder points into the test's tmp_path is left: a leftover is killed by PID and fails the test.
"""

from __future__ import annotations

from tests.helpers import free_port, stop_leftovers

import shutil
from pathlib import Path
from typing import Any

import pytest

from releasectl.providers.base import HealthCheck, ProviderContext, Role, Server, ServerSpec
from releasectl.providers.local import LocalProvider
from releasectl.wait import wait_for

TEMPLATE_APP = Path(__file__).resolve().parents[3] / "releasectl" / "templates" / "app"
FAST_HEALTH = HealthCheck(path="/healthz", expected_status=200, interval=0.1, timeout=1.0, rise=2, fall=1)




_ROOTS: list[Path] = []  # every tmp_path a factory used in this session


@pytest.fixture(scope="session", autouse=True)
def no_process_left_at_the_end():
    """The final check: after the last local-provider test, nothing any of them started still runs."""
    yield
    left = stop_leftovers(*_ROOTS)
    assert not left, f"processes left behind by the local provider tests: {left}"


class Factory:
    """Builds providers for one test and cleans up after it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.project = tmp_path / "proj"
        self.builder = self.project / "app"
        shutil.copytree(TEMPLATE_APP, self.builder, ignore=shutil.ignore_patterns("__pycache__"))
        self.lb_port = free_port()
        self.providers: list[LocalProvider] = []
        _ROOTS.append(tmp_path)

    def __call__(
        self,
        *,
        env: str = "test",
        app: str = "demo",
        health: HealthCheck = FAST_HEALTH,
        state_dir: Path | None = None,
        **options: Any,
    ) -> LocalProvider:
        opts = {"lb_port": self.lb_port, "stop_timeout": 3.0, **options}
        ctx = ProviderContext(
            app=app,
            env=env,
            config_dir=self.project,
            state_dir=state_dir or (self.project / ".releasectl"),
            health=health,
            app_port=8000,
            options=opts,
        )
        provider = LocalProvider(ctx)
        self.providers.append(provider)
        return provider

    def cleanup(self) -> None:
        for provider in reversed(self.providers):
            try:
                provider.destroy_pool()
            finally:
                for server in provider.list_servers():
                    provider.delete_server(server.id)
                provider.close()


@pytest.fixture
def factory(tmp_path: Path):
    f = Factory(tmp_path)
    try:
        yield f
    finally:
        try:
            f.cleanup()
        finally:
            left = stop_leftovers(tmp_path)  # so one failure does not leak into the next test
            assert not left, f"processes left behind: {left}"


@pytest.fixture
def provider(factory: Factory) -> LocalProvider:
    return factory()


def spec(version: str, image_id: str, name: str | None = None, env: str = "test", role: Role = Role.CANDIDATE,
         **labels: str) -> ServerSpec:
    return ServerSpec(
        name=name or f"demo-{version}-a",
        image_id=image_id,
        app="demo",
        version=version,
        env=env,
        role=role,
        release_id="rel-1",
        labels=labels,
    )


def start_server(provider: LocalProvider, version: str, *, name: str | None = None) -> Server:
    """Bake (if needed) and start one server of `version`; return it once it answers /healthz."""
    image = next((i for i in provider.list_images() if i.version == version), None)
    if image is None:
        image = provider.bake_image(version, f"demo-{version}", {})
    server = provider.create_server(spec(version, image.id, name=name))
    wait_for(lambda: provider.probe(server, "/", 1.0).status == 200, timeout=15, interval=0.05,
             what=f"server {server.id} to answer")
    return provider.get_server(server.id)


def wait_health(provider: LocalProvider, member_id: str, health, timeout: float = 10.0):
    def check():
        m = next((m for m in provider.list_members() if m.id == member_id), None)
        return m if m is not None and m.health is health else None

    return wait_for(check, timeout=timeout, interval=0.05, max_interval=0.2, what=f"{member_id} to be {health}")


