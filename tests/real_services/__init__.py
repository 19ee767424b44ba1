"""Real Octavia, Glance and Swift (started by `bash .ci/real_services`) for any test that wants them.

The hooks other test packages call (import this module lazily; skip when it is absent or returns None, unless
`required()`, then fail):

    load() -> RealServices | None          the env file named by $RELEASECTL_REAL_SERVICES_ENV (None when unset)
    required() -> bool                     $RELEASECTL_REQUIRE_REAL_SERVICES == "1" (CI)
    make_provider(tmp_path, app, env)      an openstack Provider against the real services, Nova and Neutron from
                                           the simulator; None when not configured

Each provider gets a load balancer, listener, pool and HTTP health monitor of its own in the real Octavia
(`/healthz`, delay 1 s) and a Swift container of its own for its records and lock, so tests never see each
other's members or records. Nova and Neutron are one simulator per test process (tests/openstack_sim with
`external_keystone`, app processes on 127.0.1.x), whose snapshots go to the real Glance (nova_glance.py); its
compute and network endpoints, and the real services', are (re)registered in the real catalog by
`ensure_catalog()` before each provider is made, because test_real_keystone.py points them at its own
simulator while it runs. What is made here is removed at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import yaml

from .cloud import Catalog, Octavia, RealPool, RealServices, Session, read_env_file

__all__ = ["RealServices", "load", "required", "make_provider", "simulator", "ensure_catalog", "CLOUD"]

ENV_VAR = "RELEASECTL_REAL_SERVICES_ENV"
REQUIRE_VAR = "RELEASECTL_REQUIRE_REAL_SERVICES"
CLOUD = "real"
HEALTH_PATH = "/healthz"
BUILDER, FLAVOR, NETWORK = "demo-builder", "m1.small", "private"  # the simulator's

_lock = threading.RLock()
_sim: Any = None
_session: Session | None = None
_made: list[tuple[Any, RealPool]] = []


def required() -> bool:
    return os.environ.get(REQUIRE_VAR) == "1"


def load() -> RealServices | None:
    """The real services from the env file `.ci/real_services` wrote; None when $RELEASECTL_REAL_SERVICES_ENV is
    unset or names no file."""
    name = os.environ.get(ENV_VAR)
    if not name:
        return None
    path = Path(name)
    if not path.is_file():
        return None
    return RealServices.from_values(read_env_file(path), path)


def session(rs: RealServices) -> Session:
    """The demo user's session (shared by the helpers of one test process)."""
    global _session
    with _lock:
        if _session is None or _session.rs != rs:
            _session = Session(rs)
        return _session


def simulator(rs: RealServices) -> Any:
    """The one simulator (Nova, Neutron) of this test process, trusting the real Keystone, snapshotting into the
    real Glance; started on first use, stopped at exit."""
    global _sim
    with _lock:
        if _sim is None:
            from tests.openstack_sim import Simulator
            from tests.openstack_sim.fixtures import FAST

            from .nova_glance import attach

            sim = Simulator(serve_apps=True, external_keystone=rs.keystone_url, **FAST)
            attach(sim, session(rs), rs.glance_url)
            _sim = sim.start()
            atexit.register(_cleanup)
        return _sim


def ensure_catalog(rs: RealServices) -> None:
    """Every service the openstack provider needs is in the real catalog: ours, and the simulator's compute and
    network."""
    sim = simulator(rs)
    catalog = Catalog(rs)
    try:
        catalog.ensure({
            "compute": f"{sim.url}/compute/v2.1",
            "network": f"{sim.url}/networking",
            "image": rs.glance_url,
            "load-balancer": rs.octavia_url,
            "object-store": rs.swift_url + "/v1/AUTH_%(tenant_id)s",
        })
    finally:
        catalog.admin.close()


def write_clouds(rs: RealServices, path: Path, auth_type: str = "password") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"clouds": {CLOUD: rs.clouds_entry(auth_type)}}))
    path.chmod(0o600)
    return path


def make_pool(rs: RealServices, prefix: str) -> RealPool:
    """A fresh load balancer, listener, pool and HTTP monitor in the real Octavia, removed at exit."""
    sim = simulator(rs)
    pool = Octavia(session(rs)).make_pool(prefix, sim.subnet_id, HEALTH_PATH)
    with _lock:
        _made.append((None, pool))
    return pool


def make_provider(tmp_path: Path, app: str, env: str, *, share_with: Any = None) -> Any:
    """An OpenStackProvider on the real Keystone, Octavia, Glance and Swift (Nova, Neutron: the simulator), with
    a pool and a Swift container of its own, or those of `share_with` (a second runner on the same cloud, as
    another machine would be: same pool, same records and lock); None when the real services are not
    configured."""
    rs = load()
    if rs is None:
        return None
    from releasectl.providers.base import HealthCheck, ProviderContext
    from releasectl.providers.openstack import OpenStackProvider

    ensure_catalog(rs)
    tag = secrets.token_hex(3)
    if share_with is not None:
        pool = next(pool for provider, pool in _made if provider is share_with)
        container = share_with.ctx.options["lock_container"]
    else:
        pool = make_pool(rs, f"rs-{app}-{env}")
        container = f"releasectl-{tag}"
    clouds = write_clouds(rs, tmp_path / f"real-clouds-{tag}.yaml")
    ctx = ProviderContext(
        app=app, env=env, config_dir=tmp_path, state_dir=tmp_path / f"real-state-{tag}",
        health=HealthCheck(path=HEALTH_PATH, expected_status=200, interval=1.0, timeout=1.0, rise=1, fall=2),
        app_port=8000,
        options={"cloud": CLOUD, "builder": BUILDER, "flavor": FLAVOR, "network": NETWORK, "pool": pool.pool_id,
                 "lock_container": container, "boot_timeout": 60.0, "snapshot_timeout": 60.0,
                 "lb_timeout": 60.0},
    )
    provider = OpenStackProvider(ctx)
    provider.env = {"OS_CLIENT_CONFIG_FILE": str(clouds)}
    provider.poll.interval = 0.1
    provider.poll.max_interval = 0.5
    with _lock:
        _made.append((provider, None if share_with is not None else pool))
    return provider


def _cleanup() -> None:
    """At exit: close the providers, remove the load balancers made here, stop the simulator."""
    global _sim, _session
    with _lock:
        made, _made[:] = list(_made), []
        sim, _sim = _sim, None
    rs = load()
    octavia = Octavia(session(rs)) if rs is not None else None
    for provider, pool in made:
        try:
            if provider is not None:
                provider.close()
            elif octavia is not None:
                octavia.delete_lb(pool.lb_id)
        except Exception:  # best effort at exit: the services are torn down with CI anyway
            pass
    if sim is not None:
        sim.stop()
    if _session is not None:
        _session.close()
        _session = None
