"""Fixtures: the OpenStack simulator (tests/openstack_sim) over real HTTP, Swift included, and providers built
from a clouds.yaml written for it, with short polls and retries."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from releasectl.providers.base import HealthCheck, ProviderContext
from releasectl.providers.openstack import OpenStackProvider
from releasectl.providers.openstack.http import RetryPolicy
from tests.openstack_sim import Simulator
from tests.openstack_sim.fixtures import openstack_sim, openstack_sim_factory  # noqa: F401

FAST_POLICY = RetryPolicy(attempts=6, base=0.01, cap=0.05, max_retry_after=1.0)
HEALTH = HealthCheck(path="/healthz", expected_status=200, interval=1.0, timeout=1.0, rise=1, fall=2)
OPTIONS = {
    "cloud": "sim",
    "builder": "demo-builder",
    "flavor": "m1.small",
    "network": "private",
    "pool": "demo-pool",
    "boot_timeout": 10.0,
    "snapshot_timeout": 10.0,
    "lb_timeout": 10.0,
}


@pytest.fixture(autouse=True)
def _no_ambient_openstack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No OS_* variable, clouds.yaml or keyring of the machine leaks into a test."""
    import os

    for key in list(os.environ):
        if key.startswith("OS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.chdir(tmp_path)


class SimSwift:
    """The simulator's Swift as the records and lock tests inspect it: objects by container, request counts
    (``"PUT object"``, ``"GET container"``...) and the ``lose_put_answers`` fault."""

    LEVELS = {"/v1/{account}/{container}/{object}": "object", "/v1/{account}/{container}": "container"}

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    @property
    def containers(self) -> dict[str, dict[str, tuple[bytes, str, str]]]:
        state = self.sim.state()
        out: dict[str, dict[str, tuple[bytes, str, str]]] = {c["name"]: {} for c in state["containers"]}
        for o in state["objects"]:
            out[o["container"]][o["name"]] = ((o["data"] or "").encode(), o["etag"], o["content_type"])
        return out

    def names(self, container: str = "releasectl") -> list[str]:
        return sorted(self.containers.get(container, {}))

    @property
    def counts(self) -> collections.Counter[str]:
        counts: collections.Counter[str] = collections.Counter()
        for key, n in self.sim.request_counts().items():
            service, method, template = key.split(" ", 2)
            if service == "object-store" and template in self.LEVELS:
                counts[f"{method} {self.LEVELS[template]}"] += n
        return counts

    @property
    def lose_put_answers(self) -> int:
        return int(self.sim.faults()["faults"]["lose_put_answers"])

    @lose_put_answers.setter
    def lose_put_answers(self, n: int) -> None:
        self.sim.set_faults(lose_put_answers=n)


@pytest.fixture
def swift(openstack_sim: Simulator) -> SimSwift:  # noqa: F811
    return SimSwift(openstack_sim)


def write_clouds(sim: Simulator, path: Path, *, auth_type: str = "password", **extra: Any) -> Path:
    doc = sim.clouds_yaml("sim", auth_type)
    doc["clouds"]["sim"].update(extra)
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def make_provider(openstack_sim: Simulator, tmp_path: Path) -> Iterator[Callable[..., OpenStackProvider]]:  # noqa: F811
    made: list[OpenStackProvider] = []

    def make(*, env: str = "production", app: str = "demo", state: str = "state", auth_type: str = "password",
             verbose: bool = False, sim: Simulator | None = None, clouds: Path | None = None, **options: Any) -> OpenStackProvider:
        target = sim or openstack_sim
        clouds = clouds or write_clouds(target, tmp_path / f"clouds-{auth_type}.yaml", auth_type=auth_type)
        ctx = ProviderContext(
            app=app, env=env, config_dir=tmp_path, state_dir=tmp_path / state, health=HEALTH, app_port=8000,
            options={**OPTIONS, **options}, verbose=verbose,
        )
        provider = OpenStackProvider(ctx)
        provider.env = {"OS_CLIENT_CONFIG_FILE": str(clouds)}
        provider.poll.interval = 0.02
        provider.poll.max_interval = 0.1
        provider.transport.policy = FAST_POLICY
        made.append(provider)
        return provider

    yield make
    for p in made:
        p.close()


@pytest.fixture
def provider(make_provider: Callable[..., OpenStackProvider]) -> OpenStackProvider:
    return make_provider()
