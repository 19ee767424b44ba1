"""The OpenStack provider: Keystone v3, Nova, Glance, Neutron (read-only), Octavia and Swift over `requests`.

Modules, one job each:

    credentials.py   clouds.yaml + secure.yaml + OS_* + the keyring -> Credentials (secrets masked, TLS rules)
    auth.py          Keystone token + catalog, cached 0600 between runs, refreshed on 401 or near expiry, and
                     the catalog again when an endpoint seems to have moved
    http.py          the one Session: timeouts, bounded retries, Retry-After, error mapping, request log;
                     ServiceClient (endpoint, relocation, the one pagination loop) and create_then_find
    status.py        Nova/Glance/Octavia statuses -> releasectl's enums (tables), and the one status waiter
    values.py        labels from metadata, timestamps, the 255-byte rule
    nova.py, glance.py, neutron.py, octavia.py, swift.py    the REST calls of each service
    images.py        bake (snapshot), list, label, delete images    servers.py  servers of this app and env
    builder.py       the builder from code: one server per app, booted with the recipe as user data
    pool.py          the Octavia pool: LB state, monitor, members (ownership tags), batch weights
    records.py       release records (create-only too) and the lock, in Swift
    env.py           `env plan/up/down`: routes each environment resource to network.py (Neutron writes),
                     keypairs.py, lb_build.py (Octavia LB, listener, pool, monitor) and dns.py (Designate)
    quota.py         the project's quota (Nova limits, Neutron and Octavia quotas), read-only

Options (`openstack:` in releasectl.yaml), all optional until the operation that needs them:

    cloud, region, interface   which clouds.yaml entry, region and endpoint interface (default public)
    builder                    server (name or id) that `bake` snapshots, while no builder from code is up
    base_image                 image (name or id) the builder from code boots from with `--from base`
    flavor, network            what servers boot with (name or id); key_name, security_groups, user_data
    pool                       the operator's Octavia pool (name or id); create_monitor (default false)
    cacert, insecure           TLS: a CA bundle (relative to releasectl.yaml), or no verification
    boot_timeout 600 s, snapshot_timeout 1800 s, lb_timeout 300 s   bounded waits
    (drains)                   Octavia cannot count per-member sessions, so drains are timed by the
                               engine: the pipeline's retire.drain_timeout and rollout.drain_timeout
    lock_container             Swift container of the records and the lock (default "releasectl")
    probe                      whether releasectl GETs servers directly (default true); when false,
                               a probe reports the load balancer's view of the member instead

Nothing touches the network until a method needs it, so constructing the provider is cheap.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import requests

from releasectl.errors import ConfigError, ProviderError, ReleasectlError
from releasectl.providers._http_probe import http_get_probe
from releasectl.providers.base import (
    Builder,
    BuilderSpec,
    Capabilities,
    EnvChange,
    EnvKind,
    EnvResource,
    EnvSpec,
    Health,
    Image,
    LBState,
    LBStatus,
    Lease,
    Member,
    MemberStats,
    Probe,
    Provider,
    ProviderContext,
    Quota,
    Server,
    ServerSpec,
)
from releasectl.wait import REAL_CLOCK

from .auth import Auth
from .builder import BuilderServer
from .credentials import Credentials, load_credentials
from .dns import Designate, DnsResources
from .env import KINDS as ENV_KINDS
from .env import Environment
from .glance import Glance
from .http import RetryPolicy, Timeouts, Transport
from .images import Images
from .keypairs import Keypairs
from .lb_build import LoadBalancerBuilder
from .network import NetworkResources
from .neutron import Neutron
from .nova import Nova
from .octavia import Octavia
from .pool import Pool, to_member
from .quota import read_quota
from .records import LockStore, RecordStore
from .servers import Servers
from .status import Poll
from .swift import ObjectStore

__all__ = ["OpenStackProvider"]

log = logging.getLogger("releasectl.providers.openstack")

DEFAULTS: dict[str, Any] = {
    "cloud": None,
    "region": None,
    "interface": None,
    "builder": None,
    "base_image": None,
    "flavor": None,
    "network": None,
    "pool": None,
    "key_name": None,
    "security_groups": [],
    "user_data": None,
    "create_monitor": False,
    "cacert": None,
    "insecure": False,
    "boot_timeout": 600.0,
    "snapshot_timeout": 1800.0,
    "lb_timeout": 300.0,
    "lock_container": "releasectl",
    "probe": True,
    "os_cloud": None,  # the --os-cloud option (beats OS_CLOUD and openstack.cloud), not a releasectl.yaml key
    "scope_region": None,  # one region of an environment's `regions:` (not a releasectl.yaml key): pinned
    "record_scope": None,  # records and lock under <app>/<env>/<record_scope>/ (regions/<name>, or waves)
}
TIMEOUTS = ("boot_timeout", "snapshot_timeout", "lb_timeout")


def _options(raw: Mapping[str, Any]) -> dict[str, Any]:
    opts = {**DEFAULTS, **{k: v for k, v in raw.items() if v is not None}}
    for key in TIMEOUTS:
        try:
            opts[key] = float(opts[key])
        except (TypeError, ValueError):
            raise ConfigError(f"openstack.{key} must be a duration, got {opts[key]!r}") from None
        if opts[key] <= 0:
            raise ConfigError(f"openstack.{key} must be positive")
    groups = opts["security_groups"]
    if isinstance(groups, str):
        groups = [groups]
    opts["security_groups"] = [str(g) for g in groups]
    opts["lock_container"] = str(opts["lock_container"] or "releasectl")
    if "/" in opts["lock_container"]:
        raise ConfigError("openstack.lock_container must not contain '/'")
    return opts


POOL_STATUS = "pool status"  # Probe.source of a pool read standing in for a probe (probe: false)


class OpenStackProvider(Provider):
    """Composes the modules above and maps the interface onto them; one line per method where it can."""

    name = "openstack"
    capabilities = Capabilities(member_sessions=False, member_stats=False)

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        self.options = _options(ctx.options)
        if not self.options["probe"]:  # probe() relays Octavia's verdict: the engine counts its ERROR polls
            self.capabilities = dataclasses.replace(self.capabilities, own_probes=False)
        self.clock = REAL_CLOCK
        self.poll = Poll(interval=1.0, max_interval=5.0, clock=self.clock)
        self.env = None  # a mapping replacing os.environ for credentials (tests)

    # ---- wiring (lazy: no I/O until needed) ------------------------------------------------------------

    @functools.cached_property
    def creds(self) -> Credentials:
        o = self.options
        env = self.env
        if o["scope_region"]:  # a wave's region is the config's, whatever OS_REGION_NAME says
            env = {k: v for k, v in (os.environ if env is None else env).items() if k != "OS_REGION_NAME"}
        return load_credentials(
            o["cloud"], os_cloud=o["os_cloud"], region=o["scope_region"] or o["region"], interface=o["interface"],
            cacert=o["cacert"], insecure=o["insecure"], config_dir=Path(self.ctx.config_dir), env=env,
        )

    @property
    def _record_scope(self) -> str:
        """`<app>/<env>`, and below it `regions/<region>` (or `waves`) in a multi-region environment."""
        scope = f"{self.ctx.app}/{self.ctx.env}"
        return f"{scope}/{self.options['record_scope']}" if self.options["record_scope"] else scope

    @functools.cached_property
    def transport(self) -> Transport:
        creds = self.creds
        return Transport(
            verify=creds.verify,
            timeouts=Timeouts(read=creds.api_timeout or 60.0),
            policy=RetryPolicy(),
            verbose=self.ctx.verbose,
            clock=self.clock,
            user_agent=f"releasectl/{_version()} python-requests/{requests.__version__}",
        )

    @functools.cached_property
    def auth(self) -> Auth:
        return Auth(self.creds, self.transport, Path(self.ctx.state_dir) / "openstack" / "tokens")

    def _client(self, cls: type, service_type: str, **kwargs: Any) -> Any:
        return cls(self.transport, lambda: self.auth.endpoint(service_type), self.auth, self.auth.refresh_catalog, **kwargs)

    @functools.cached_property
    def nova(self) -> Nova:
        return self._client(Nova, "compute")

    @functools.cached_property
    def glance(self) -> Glance:
        return self._client(Glance, "image")

    @functools.cached_property
    def neutron(self) -> Neutron:
        return self._client(Neutron, "network")

    @functools.cached_property
    def octavia(self) -> Octavia:
        return self._client(Octavia, "load-balancer")

    @functools.cached_property
    def objects(self) -> ObjectStore:
        def endpoint() -> str:
            url = self.auth.endpoint("object-store", required=False)
            if url is None:
                raise ProviderError(
                    f"cloud {self.creds.cloud!r} has no object-store (Swift) endpoint: releasectl keeps its release "
                    "records and the release lock there",
                    hint="ask the operator for Swift (or Ceph RGW's Swift API), or set object_store_endpoint_override "
                    "in clouds.yaml",
                )
            return url

        return ObjectStore(self.transport, endpoint, self.auth, self.auth.refresh_catalog, container=self.options["lock_container"])

    @functools.cached_property
    def images(self) -> Images:
        o = self.options
        return Images(self.nova, self.glance, app=self.ctx.app, builder=o["builder"], timeout=o["snapshot_timeout"], poll=self.poll)

    @functools.cached_property
    def servers(self) -> Servers:
        return Servers(
            self.nova, self.glance, self.neutron, self.ctx, self.options, poll=self.poll,
            pause=lambda attempt: self.clock.sleep(self.transport.policy.backoff(attempt)),
        )

    @functools.cached_property
    def builder_server(self) -> BuilderServer:
        return BuilderServer(self.nova, self.glance, self.neutron, self.servers, self.ctx, self.options, poll=self.poll)

    @functools.cached_property
    def pool(self) -> Pool:
        ref = self.options["pool"]
        if not ref:
            raise ConfigError("openstack.pool is not set: releasectl needs the Octavia pool of this environment")
        return Pool(
            self.octavia, str(ref), app=self.ctx.app, env=self.ctx.env, health=self.ctx.health,
            create_monitor=bool(self.options["create_monitor"]), timeout=self.options["lb_timeout"], poll=self.poll,
        )

    @functools.cached_property
    def records(self) -> RecordStore:
        return RecordStore(self.objects, f"{self._record_scope}/records/")

    @functools.cached_property
    def lock(self) -> LockStore:
        return LockStore(self.objects, f"{self._record_scope}/lock/", self._record_scope)

    # ---- images -----------------------------------------------------------------------------------------

    def list_images(self) -> list[Image]:
        return self.images.list()

    def get_image(self, image_id: str) -> Image | None:
        return self.images.get(image_id)

    def bake_image(self, version: str, name: str, labels: Mapping[str, str]) -> Image:
        return self.images.bake(version, name, labels, builder=self.builder_server.find())

    def update_image(
        self, image_id: str, *, labels: Mapping[str, str | None] | None = None, protected: bool | None = None
    ) -> Image:
        return self.images.update(image_id, labels=labels, protected=protected)

    def delete_image(self, image_id: str) -> None:
        self.images.delete(image_id)

    # ---- servers ----------------------------------------------------------------------------------------

    def list_servers(self) -> list[Server]:
        return self.servers.list()

    def get_server(self, server_id: str) -> Server | None:
        return self.servers.get(server_id)

    def create_server(self, spec: ServerSpec) -> Server:
        return self.servers.create(spec)

    def create_servers(self, specs: Sequence[ServerSpec]) -> list[Server]:
        return self.servers.create_many(list(specs))

    def update_server_labels(self, server_id: str, labels: Mapping[str, str | None]) -> Server:
        return self.servers.update_labels(server_id, labels)

    def update_servers_labels(self, server_ids: Sequence[str], labels: Mapping[str, str | None]) -> None:
        self.servers.update_labels_many(list(server_ids), labels)

    def delete_server(self, server_id: str) -> None:
        self.servers.delete(server_id)

    def delete_servers(self, server_ids: Sequence[str]) -> None:
        self.servers.delete_many(list(server_ids))

    @functools.cached_property
    def _probe_session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # servers sit on private addresses: no proxy, and never our token
        return session

    def probe(self, server: Server, path: str, timeout: float) -> Probe:
        if not self.options["probe"]:
            return self._lb_probe(server)
        if not server.address:
            return Probe(status=None, latency=0.0, error="the server has no address yet")
        return http_get_probe(self._probe_session, server.address, server.port or self.ctx.app_port, path, timeout)

    def _lb_probe(self, server: Server) -> Probe:
        """probe: false: the runner cannot reach the servers, so report what Octavia's monitor sees."""
        try:
            member = next((m for m in self.list_members() if m.address == server.address and m.port == server.port), None)
        except ReleasectlError as exc:
            return Probe(status=None, latency=0.0, error=f"could not read the pool: {exc}", source=POOL_STATUS)
        if member is None:
            return Probe(status=None, latency=0.0, error="not a pool member yet (probe: false)", source=POOL_STATUS)
        if member.health is Health.HEALTHY:
            return Probe(status=self.ctx.health.expected_status, latency=0.0, body="load balancer: member healthy", source=POOL_STATUS)
        return Probe(status=None, latency=0.0, error=f"load balancer reports the member {member.health_detail or member.health.value} (probe: false)",
                     source=POOL_STATUS)

    # ---- the pool ---------------------------------------------------------------------------------------

    def ensure_pool(self) -> None:
        self.pool.ensure()

    def pool_endpoint(self) -> str | None:
        if not self.options["pool"]:
            return None
        return self.pool.endpoint()

    def lb_state(self) -> LBState:
        if not self.options["pool"]:
            return LBState(LBStatus.ABSENT, "openstack.pool is not set")
        return self.pool.state()

    def list_members(self) -> list[Member]:
        if not self.options["pool"]:
            return []
        return [to_member(m) for m in self.pool.look()]

    def _subnet(self, server: Server) -> str | None:
        if not server.address:
            raise ProviderError(f"server {server.name} has no address on network {self.options['network'] or '(any)'} yet")
        if not self.options["network"]:
            return None
        try:
            return self.neutron.subnet_for(str(self.options["network"]), server.address)
        except ReleasectlError as exc:
            log.debug("no subnet for %s: %s", server.address, exc)
            return None

    def add_member(self, server: Server) -> Member:
        subnet = self._subnet(server)
        port = server.port or self.ctx.app_port
        return to_member(self.pool.add(str(server.address), port, server.name, subnet))

    def add_members(self, servers: Sequence[Server]) -> list[Member]:
        """The whole fleet in one batch PUT (one LB update instead of one per server)."""
        wanted = [(str(s.address), s.port or self.ctx.app_port, s.name, self._subnet(s)) for s in servers]
        return [to_member(m) for m in self.pool.add_many(wanted)] if wanted else []

    def set_weights(self, weights: Mapping[str, int]) -> None:
        self.pool.set_weights(weights, self.capabilities.max_weight)

    def remove_member(self, member_id: str) -> None:
        self.pool.remove(member_id)

    def remove_members(self, member_ids: Sequence[str]) -> None:
        if member_ids:
            self.pool.remove_many(list(member_ids))

    def member_stats(self) -> Mapping[str, MemberStats]:
        return {}  # Octavia has no per-member counters

    def destroy_pool(self) -> None:
        """The pool belongs to the operator: `releasectl down` leaves it (empty) in place."""

    # ---- environment resources (`env plan/up/down`) -------------------------------------------------------

    @functools.cached_property
    def environment(self) -> Environment:
        app, env = self.ctx.app, self.ctx.env
        # environment writes settle in seconds on a quiet cloud: poll from 0.2 s, backing off to the usual 5 s
        poll = Poll(interval=0.2, max_interval=self.poll.max_interval, clock=self.clock)
        dns = None
        if self.auth.endpoint("dns", required=False) is not None:
            dns = DnsResources(self._client(Designate, "dns"), app, env, timeout=self.options["lb_timeout"], poll=poll)
        return Environment(NetworkResources(self.neutron, app, env), Keypairs(self.nova),
                           LoadBalancerBuilder(self.octavia, app, env, timeout=self.options["lb_timeout"], poll=poll),
                           dns, f"{app}-{env}")

    def env_kinds(self) -> frozenset[EnvKind]:
        return ENV_KINDS

    def env_observe(self, spec: EnvSpec) -> list[EnvResource]:
        return self.environment.observe(spec)

    def env_apply(self, change: EnvChange, known: Mapping[str, EnvResource]) -> EnvResource | None:
        return self.environment.apply(change, known)
    # ---- the builder from code ---------------------------------------------------------------------------

    def builder_up(self, spec: BuilderSpec) -> Builder:
        return self.builder_server.up(spec)

    def get_builder(self) -> Builder | None:
        return self.builder_server.get()

    def builder_down(self) -> bool:
        return self.builder_server.down()

    def quiesce_builder(self) -> bool:
        return self.builder_server.quiesce(self.images._builder)

    def resume_builder(self) -> bool:
        return self.builder_server.resume()

    # ---- quota ------------------------------------------------------------------------------------------

    def quota(self) -> Quota:
        ref = self.options["flavor"]
        return read_quota(
            self.nova, self.neutron, self.octavia, str(self.auth.token().project_id or ""),
            flavor=lambda: self.nova.flavor(str(ref)) if ref else None,
            has_service=lambda service: self.auth.endpoint(service, required=False) is not None,
        )

    # ---- records and the lock ----------------------------------------------------------------------------

    def read_record(self, key: str) -> str | None:
        return self.records.read(key)

    def write_record(self, key: str, data: str) -> None:
        self.records.write(key, data)

    def list_records(self, prefix: str) -> list[str]:
        return self.records.list(prefix)

    def create_record(self, key: str, data: str) -> bool:
        return self.records.create(key, data)

    def delete_record(self, key: str) -> None:
        self.records.delete(key)

    def acquire_lock(self, owner: Mapping[str, str], ttl: float) -> Lease:
        return self.lock.acquire(owner, ttl)

    def renew_lock(self, lease: Lease, ttl: float) -> Lease:
        return self.lock.renew(lease, ttl)

    def release_lock(self, lease: Lease) -> None:
        self.lock.release(lease)

    def read_lock(self) -> Lease | None:
        return self.lock.read()

    def break_lock(self) -> None:
        self.lock.break_()

    def close(self) -> None:
        if "transport" in self.__dict__:
            self.transport.close()
        if "_probe_session" in self.__dict__:
            self._probe_session.close()


def _version() -> str:
    try:
        from releasectl import __version__

        return __version__
    except ImportError:
        return "0"
