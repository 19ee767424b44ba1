"""pytest fixtures for the simulator. Import them into a conftest.py or a test module:

    from tests.openstack_sim.fixtures import openstack_sim, openstack_sim_factory  # noqa: F401

Every simulator a fixture starts is stopped at teardown, app processes included. ``FAST`` holds
small transition delays so tests poll for well under a second.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from .simulator import Simulator

FAST: dict[str, Any] = {
    "build_delay": 0.1,
    "delete_delay": 0.05,
    "snapshot_delay": 0.2,
    "lb_delay": 0.1,
    "dns_delay": 0.1,
    "monitor_delay": 0.1,
}


@pytest.fixture
def openstack_sim_factory() -> Iterator[Callable[..., Simulator]]:
    """``make(**options)`` starts a simulator on a free loopback port with ``FAST`` delays."""
    sims: list[Simulator] = []

    def make(**options: Any) -> Simulator:
        sim = Simulator(**{**FAST, **options})
        sims.append(sim)
        return sim.start()

    yield make
    for sim in sims:
        sim.stop()


@pytest.fixture
def openstack_sim(openstack_sim_factory: Callable[..., Simulator]) -> Simulator:
    """A started simulator with fast delays and no app processes."""
    return openstack_sim_factory()


@pytest.fixture
def openstack_sim_apps(openstack_sim_factory: Callable[..., Simulator]) -> Simulator:
    """A started simulator whose ACTIVE servers run real HTTP app processes."""
    return openstack_sim_factory(serve_apps=True)


@pytest.fixture
def openstack_sim_bare(openstack_sim_factory: Callable[..., Simulator]) -> Simulator:
    """A started ``bare`` simulator: an empty project (base image, flavor, external network)."""
    return openstack_sim_factory(bare=True)


@pytest.fixture
def openstack_sim_env(openstack_sim: Simulator) -> dict[str, str]:
    """``OS_*`` variables (password auth) pointing at ``openstack_sim``."""
    return openstack_sim.os_environ()
