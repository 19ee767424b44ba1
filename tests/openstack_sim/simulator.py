"""The composition root: options, the shared context, seeding, start/stop and the Python API.

``Simulator`` is what fixtures and ``__main__`` use. Everything it starts (the HTTP server thread,
the scheduler, the health checker, the app processes) is stopped by ``stop()``, which is also
registered with ``atexit`` as a last resort.
"""

from __future__ import annotations

import atexit
import dataclasses
import ipaddress
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from .apps import AppManager
from .control import Control
from .designate import Dns
from .faults import FaultInjector
from .glance import ImageService
from .health import HealthChecker
from .journal import Journal
from .keypairs import Keypairs
from .keystone import DOMAIN, Identity
from .neutron import Networking
from .nova import Compute
from .octavia import LoadBalancing
from .quotas import Quotas
from .quotas import install as install_quotas
from .server import Dispatcher, SimHTTPServer
from .state import Scheduler, Store, iso
from .swift import ObjectStorage


@dataclass
class Options:
    """Every knob of the simulator; delays are seconds of wall-clock time."""

    host: str = "127.0.0.1"
    port: int = 0
    username: str = "demo"
    password: str = "secret"
    project: str = "demo"
    region: str = "RegionOne"
    app_cred_name: str = "releasectl-sim"
    token_ttl: float = 3600.0
    build_delay: float = 1.0  # BUILD -> ACTIVE
    delete_delay: float = 0.5  # task_state deleting -> 404
    snapshot_delay: float = 2.0  # image queued -> saving (half) -> active
    lb_delay: float = 0.5  # PENDING_UPDATE -> ACTIVE after an Octavia write
    dns_delay: float = 0.5  # Designate PENDING -> ACTIVE (or gone)
    bare: bool = False  # an empty project: a base image, a flavor, the external network; no app resources
    monitor_delay: float = 2.0  # delay of the pre-created health monitor
    serve_apps: bool = False  # run a real HTTP app process per ACTIVE server
    app_port: int = 8000  # app port when the image has no releasectl_port property
    app_start_timeout: float = 10.0
    app_stop_timeout: float = 3.0  # SIGTERM -> SIGKILL
    address_prefix: str = "127.0.1"  # servers get <prefix>.1, .2, ...
    base_image_name: str = "ubuntu-22.04"
    nova_max_microversion: str = "2.96"
    max_limit: int = 1000
    max_servers: int = 100
    object_store: bool = True  # Swift in the catalog (off: a cloud without an object store)
    object_store_listing_limit: int = 10000  # Swift's container_listing_limit: a larger ?limit= is a 412
    verbose: bool = False
    external_keystone: str = ""  # URL of a real Keystone: services then accept its tokens (and only those)

    def validate(self) -> None:
        host = "127.0.0.1" if self.host == "localhost" else self.host
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the simulator serves loopback only, not {self.host!r}")
        if not ipaddress.ip_address(f"{self.address_prefix}.1").is_loopback:
            raise ValueError(f"address_prefix must be inside 127.0.0.0/8, not {self.address_prefix!r}")
        if self.external_keystone:
            ext = urlsplit(self.external_keystone)
            if ext.scheme not in ("http", "https") or not ext.hostname:
                raise ValueError(f"external_keystone must be an http(s) URL, not {self.external_keystone!r}")
            if ext.hostname != "localhost" and not ipaddress.ip_address(ext.hostname).is_loopback:
                raise ValueError(f"external_keystone must be on loopback, not {ext.hostname!r}")
        for name in ("token_ttl", "build_delay", "delete_delay", "snapshot_delay", "lb_delay", "monitor_delay",
                     "dns_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


class Context:
    """What every service needs: options, store, clock, scheduler, faults, journal, apps, peers."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.store = Store()
        self.scheduler = Scheduler()
        self.faults = FaultInjector()
        self.journal = Journal()
        self.apps = AppManager(options.app_stop_timeout)
        self.url = f"http://{options.host}:{options.port}"
        self.base_image_id = ""
        self.keystone: Identity = None  # type: ignore[assignment]
        self.neutron: Networking = None  # type: ignore[assignment]
        self.glance: ImageService = None  # type: ignore[assignment]
        self.nova: Compute = None  # type: ignore[assignment]
        self.octavia: LoadBalancing = None  # type: ignore[assignment]
        self.swift: ObjectStorage = None  # type: ignore[assignment]
        self.dns: Dns = None  # type: ignore[assignment]
        self.quotas = Quotas(self)
        self.wake_health: Callable[[], None] = lambda: None  # serve_apps: check new members now (health.py)
        self.primary: Context | None = None  # a second region: the region whose Keystone it trusts
        self.peers: list[Context] = []  # the first region: the other regions listed in its catalog

    @staticmethod
    def now() -> float:
        return time.time()


class Simulator:
    """A stateful OpenStack (Keystone, Nova, Glance, Octavia, Swift, a little Neutron) on loopback HTTP.

    >>> sim = Simulator(port=0, build_delay=0.1); sim.start(); sim.url  # doctest: +SKIP
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, region_of: "Simulator | None" = None,
                 **options: Any) -> None:
        """`region_of`: this simulator is another region of that one: its own Nova, Glance, Octavia, Neutron
        and Swift state on its own port, listed in that one's Keystone catalog under `options.region`, and
        accepting that one's tokens (one Keystone, several regions)."""
        self.options = Options(host=host, port=port, **options)
        self.options.validate()
        ctx = self.ctx = Context(self.options)
        self.regions: list[Simulator] = []
        if region_of is not None:
            if region_of.options.region == self.options.region:
                raise ValueError(f"region {self.options.region!r} is already the first region's name")
            ctx.primary = region_of.ctx
            region_of.ctx.peers.append(ctx)
            region_of.regions.append(self)
        ctx.keystone = Identity(ctx)
        ctx.neutron = Networking(ctx)
        ctx.glance = ImageService(ctx)
        ctx.nova = Compute(ctx)
        ctx.octavia = LoadBalancing(ctx)
        ctx.swift = ObjectStorage(ctx)
        ctx.dns = Dns(ctx)
        install_quotas(ctx, ctx.quotas)
        self._control = Control(self)
        self._dispatcher = Dispatcher(ctx, [ctx.nova, Keypairs(ctx), ctx.glance, ctx.octavia, ctx.neutron, ctx.dns]
                                        + ([ctx.swift] if self.options.object_store else []), ctx.keystone,
                                      self._control)
        self._health = HealthChecker(ctx)
        ctx.wake_health = self._health.wake
        self._httpd: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._started = self._stopped = False
        self._seed()

    def _seed(self) -> None:
        ctx = self.ctx
        with ctx.store.lock:
            ctx.neutron.seed(bare=self.options.bare)
            base = ctx.glance.add_image(name=self.options.base_image_name, status="queued", visibility="public",
                                        protected=True, disk_format="qcow2", container_format="bare",
                                        properties={"os_distro": "ubuntu", "os_version": "22.04",
                                                    "hw_disk_bus": "virtio"})
            base.mark_active()
            ctx.base_image_id = base.id
            if self.options.bare:
                ctx.store.flavors["2"] = {"id": "2", "name": "m1.small", "ram": 2048, "vcpus": 1, "disk": 20}
                return
            ctx.nova.seed()
            ctx.octavia.seed()

    # ----- lifecycle -----
    def start(self) -> "Simulator":
        if self._started:
            return self
        self._started = True
        self._httpd = SimHTTPServer((self.options.host, self.options.port), self._dispatcher, self.options.verbose)
        host, port = self._httpd.server_address[:2]
        self.ctx.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="openstack-sim-http", daemon=True)
        self._thread.start()
        self.ctx.scheduler.start()
        atexit.register(self.stop)
        try:
            if self.options.serve_apps:
                if self.builder_id:  # a bare project has no builder
                    self.ctx.nova.start_builder_app()
                self._health.start()
        except Exception:
            self.stop()
            raise
        return self

    def add_region(self, region: str, **options: Any) -> "Simulator":
        """Another region served from this simulator's Keystone catalog, with this one's delays unless
        given; started when this one is, and stopped with it."""
        inherited = {k: getattr(self.options, k) for k in ("build_delay", "delete_delay", "snapshot_delay", "lb_delay",
                                                           "dns_delay", "monitor_delay", "serve_apps", "app_port",
                                                           "username", "password", "project", "verbose")}
        peer = Simulator(self.options.host, 0, region_of=self, **{**inherited, "region": region, **options})
        return peer.start() if self._started else peer

    def stop(self) -> None:
        """Stop serving and stop every thread and process this simulator started. Idempotent."""
        for peer in self.regions:
            peer.stop()
        if self._stopped or not self._started:
            self._stopped = True
            self.ctx.neutron.pool.release_all()
            return
        self._stopped = True
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.close_connections()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._health.stop()
        self.ctx.scheduler.stop()
        self.ctx.nova.stop_starting()
        self.ctx.apps.stop_all()
        self.ctx.neutron.pool.release_all()
        atexit.unregister(self.stop)

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ----- addresses and credentials -----
    @property
    def url(self) -> str:
        return self.ctx.url

    @property
    def host(self) -> str:
        return self.url.split("//", 1)[1].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def auth_url(self) -> str:
        return f"{self.url}/v3"

    @property
    def username(self) -> str:
        return self.options.username

    @property
    def password(self) -> str:
        return self.options.password

    @property
    def project_name(self) -> str:
        return self.options.project

    @property
    def project_id(self) -> str:
        return self.ctx.keystone.project["id"]

    @property
    def user_id(self) -> str:
        return self.ctx.keystone.user["id"]

    @property
    def region(self) -> str:
        return self.options.region

    @property
    def app_credential_id(self) -> str:
        return self.ctx.keystone.app_cred["id"]

    @property
    def app_credential_secret(self) -> str:
        return self.ctx.keystone.app_cred["secret"]

    @property
    def app_credential_name(self) -> str:
        return self.ctx.keystone.app_cred["name"]

    @property
    def builder_id(self) -> str:
        return self.ctx.nova.builder_id or ""

    @property
    def base_image_id(self) -> str:
        return self.ctx.base_image_id

    @property
    def flavor_id(self) -> str:
        return "2"

    @property
    def network_id(self) -> str:
        return self.ctx.neutron.network_id

    @property
    def subnet_id(self) -> str:
        return self.ctx.neutron.subnet_id

    def _only(self, table: dict) -> str:
        """The first (seeded) resource's id, or "" in a ``bare`` simulator."""
        return next(iter(table), "")

    @property
    def loadbalancer_id(self) -> str:
        return self._only(self.ctx.store.loadbalancers)

    @property
    def listener_id(self) -> str:
        return self._only(self.ctx.store.listeners)

    @property
    def pool_id(self) -> str:
        return self._only(self.ctx.store.pools)

    @property
    def healthmonitor_id(self) -> str | None:
        with self.ctx.store.lock:
            pool = self.ctx.store.pools.get(self.pool_id)
            return pool.healthmonitor_id if pool else None

    @property
    def external_network_id(self) -> str:
        return self.ctx.neutron.external_network_id

    def credentials(self) -> dict[str, Any]:
        return {
            "auth_url": self.auth_url, "username": self.username, "password": self.password,
            "user_id": self.user_id, "user_domain_name": DOMAIN["name"], "project_name": self.project_name,
            "project_id": self.project_id, "project_domain_name": DOMAIN["name"], "region_name": self.region,
            "application_credential": {"id": self.app_credential_id, "secret": self.app_credential_secret,
                                       "name": self.app_credential_name},
        }

    def clouds_yaml(self, cloud: str = "sim", auth_type: str = "password") -> dict[str, Any]:
        """A clouds.yaml document (as a dict) for this simulator; dump it with yaml or json."""
        if auth_type == "password":
            auth = {"auth_url": self.auth_url, "username": self.username, "password": self.password,
                    "user_domain_name": DOMAIN["name"], "project_name": self.project_name,
                    "project_domain_name": DOMAIN["name"]}
        elif auth_type == "v3applicationcredential":
            auth = {"auth_url": self.auth_url, "application_credential_id": self.app_credential_id,
                    "application_credential_secret": self.app_credential_secret}
        else:
            raise ValueError(f"unsupported auth_type {auth_type!r}")
        return {"clouds": {cloud: {"auth": auth, "auth_type": auth_type, "region_name": self.region,
                                   "interface": "public", "identity_api_version": 3}}}

    def os_environ(self, auth_type: str = "password") -> dict[str, str]:
        """``OS_*`` environment variables for the official clients."""
        env = {"OS_AUTH_URL": self.auth_url, "OS_REGION_NAME": self.region, "OS_IDENTITY_API_VERSION": "3",
               "OS_INTERFACE": "public"}
        if auth_type == "password":
            env.update({"OS_AUTH_TYPE": "password", "OS_USERNAME": self.username, "OS_PASSWORD": self.password,
                        "OS_USER_DOMAIN_NAME": DOMAIN["name"], "OS_PROJECT_NAME": self.project_name,
                        "OS_PROJECT_DOMAIN_NAME": DOMAIN["name"]})
        elif auth_type == "v3applicationcredential":
            env.update({"OS_AUTH_TYPE": "v3applicationcredential",
                        "OS_APPLICATION_CREDENTIAL_ID": self.app_credential_id,
                        "OS_APPLICATION_CREDENTIAL_SECRET": self.app_credential_secret})
        else:
            raise ValueError(f"unsupported auth_type {auth_type!r}")
        return env

    # ----- control API (also served under /_sim/) -----
    def requests(self) -> dict[str, Any]:
        """``{"total": n, "counts": {"<service> <METHOD> <template>": n}, "journal": [...]}``."""
        return self.ctx.journal.to_json()

    def request_counts(self) -> dict[str, int]:
        return self.ctx.journal.counts()

    def request_count(self, service: str | None = None, method: str | None = None,
                      template: str | None = None) -> int:
        return self.ctx.journal.count(service, method, template)

    def reset_requests(self) -> None:
        self.ctx.journal.reset()

    def faults(self) -> dict[str, Any]:
        return self.ctx.faults.snapshot()

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change fault injection (see faults.py); ``expire_tokens=True`` invalidates every token now."""
        expired = 0
        if changes.pop("expire_tokens", False):
            expired = self.ctx.keystone.expire_all()
        result = self.ctx.faults.configure(changes)
        result["expired_tokens"] = expired
        return result

    def clear_faults(self) -> dict[str, Any]:
        return self.set_faults(reset=True)

    def builder(self) -> dict[str, Any]:
        return {"server_id": self.builder_id, "fail_health": self.ctx.nova.builder_fail_health}

    def set_quota(self, **limits: int) -> dict[str, int]:
        """Set quota limits (instances, cores, ram_mb, ports, floatingips, security_groups, load_balancers,
        members; -1 unlimited). Returns every limit."""
        return self.ctx.quotas.set(**limits)

    def quota(self) -> dict[str, Any]:
        return {"limits": dict(self.ctx.quotas.limits), "used": self.ctx.quotas.usage()}

    def set_builder_fail_health(self, fail: bool = True) -> None:
        """While on, snapshots of the builder carry ``sim_fail_health=true``: their apps fail /healthz."""
        self.ctx.nova.builder_fail_health = bool(fail)

    def state(self) -> dict[str, Any]:
        """Every live resource and process, plus what looks orphaned."""
        ctx, store = self.ctx, self.ctx.store
        processes = ctx.apps.describe()
        with store.lock:
            servers = [{
                "id": s.id, "name": s.name, "status": s.status, "task_state": s.task_state,
                "vm_state": s.vm_state, "network": s.network, "address": s.address, "app_port": s.app_port,
                "image_id": s.image_id, "flavor_id": s.flavor_id, "metadata": dict(s.metadata),
                "tags": list(s.tags), "fault": s.fault, "created_at": iso(s.created),
            } for s in sorted(store.servers.values(), key=lambda s: s.seq)]
            images = [{
                "id": i.id, "name": i.name, "status": i.status, "protected": i.protected,
                "visibility": i.visibility, "tags": list(i.tags), "properties": dict(i.properties),
                "created_at": iso(i.created),
            } for i in sorted(store.images.values(), key=lambda i: i.seq) if i.status != "deleted"]
            members = []
            for m in sorted(store.members.values(), key=lambda m: m.seq):
                server = ctx.nova.server_by_address(m.address)
                members.append({
                    "id": m.id, "pool_id": m.pool_id, "name": m.name, "address": m.address,
                    "protocol_port": m.protocol_port, "weight": m.weight, "admin_state_up": m.admin_state_up,
                    "backup": m.backup, "provisioning_status": m.provisioning_status,
                    "operating_status": ctx.octavia.member_operating_status(m),
                    "server_id": server.id if server else None, "last_check": m.last_check,
                    "tags": list(m.tags), "subnet_id": m.subnet_id,
                })
            loadbalancers = [{
                "id": lb.id, "name": lb.name, "provisioning_status": lb.provisioning_status,
                "operating_status": ctx.octavia.lb_operating_status(lb), "vip_address": lb.vip_address,
                "vip_port_id": lb.vip_port_id, "vip_network_id": lb.vip_network_id, "tags": list(lb.tags),
            } for lb in store.loadbalancers.values()]
            pools = [{
                "id": p.id, "name": p.name, "loadbalancer_id": p.loadbalancer_id,
                "healthmonitor_id": p.healthmonitor_id, "member_ids": list(p.member_ids),
                "provisioning_status": p.provisioning_status, "lb_algorithm": p.lb_algorithm, "tags": list(p.tags),
            } for p in store.pools.values()]
            server_ids = set(store.servers)
            tokens = len(store.tokens)
            containers, objects = ctx.swift.describe()
            zones, recordsets = ctx.dns.describe()
            ctx.neutron.sync_server_ports()
            neutron = {kind: [dict(v, tags=list(v.get("tags", []))) for v in getattr(store, kind).values()]
                       for kind in ("networks", "subnets", "security_groups", "security_group_rules", "ports",
                                    "floatingips")}
            listeners = [{"id": x.id, "name": x.name, "loadbalancer_id": x.loadbalancer_id, "protocol": x.protocol,
                          "protocol_port": x.protocol_port, "default_pool_id": x.default_pool_id,
                          "provisioning_status": x.provisioning_status, "tags": list(x.tags)}
                         for x in store.listeners.values()]
            healthmonitors = [{"id": h.id, "name": h.name, "pool_id": h.pool_id, "type": h.type,
                               "url_path": h.url_path, "provisioning_status": h.provisioning_status,
                               "tags": list(h.tags)} for h in store.healthmonitors.values()]
            keypairs = [{"name": k["name"], "fingerprint": k["fingerprint"]} for k in store.keypairs.values()]
        return {
            "url": self.url,
            "credentials": self.credentials(),
            "ids": {"builder_server": self.builder_id, "base_image": self.base_image_id, "flavor": self.flavor_id,
                    "network": self.network_id, "subnet": self.subnet_id, "loadbalancer": self.loadbalancer_id,
                    "listener": self.listener_id, "pool": self.pool_id, "healthmonitor": self.healthmonitor_id},
            "servers": servers,
            "images": images,
            "loadbalancers": loadbalancers,
            "pools": pools,
            "members": members,
            "listeners": listeners,
            "healthmonitors": healthmonitors,
            **neutron,
            "keypairs": keypairs,
            "zones": zones,
            "recordsets": recordsets,
            "containers": containers,
            "objects": objects,
            "processes": processes,
            "tokens": tokens,
            "builder": self.builder(),
            "faults": self.faults(),
            "orphans": {
                "processes": [p["pid"] for p in processes if p["server_id"] not in server_ids],
                "members": [m["id"] for m in members if m["server_id"] is None],
            },
            "options": dataclasses.asdict(self.options),
        }
