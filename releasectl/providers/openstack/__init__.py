"""The OpenStack provider: Keystone v3, Nova, Glance, Neutron (read-only), Octavia and Swift over `requests`.

Modules, one job each:

    credentials.py   clouds.yaml + secure.yaml + OS_* + the keyring -> Credentials (secrets masked)
    auth.py          Keystone token + catalog, cached 0600 between runs, refreshed on 401 or near expiry
    http.py          the one Session: timeouts, bounded retries, Retry-After, error mapping, request log
    status.py        Nova/Glance/Octavia statuses -> releasectl's enums (tables)
    nova.py          servers, metadata, createImage, flavors        glance.py   images, JSON-patch, tags
    neutron.py       network by name, subnet of an address          octavia.py  pool, monitor, members, waits
    swift.py         objects and listings                           records.py  release records and the lock

Options (`openstack:` in releasectl.yaml), all optional until the operation that needs them:

    cloud, region, interface   which clouds.yaml entry, region and endpoint interface (default public)
    builder                    server (name or id) that `bake` snapshots
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

import base64
import functools
import logging
import secrets
from pathlib import Path
from typing import Any, Mapping

import requests

from releasectl.providers._http_probe import http_get_probe
from releasectl.errors import ConfigError, Conflict, NotFound, ProviderError, ReleasectlError, ResourceFailure, UsageError
from releasectl.providers.base import (
    LABEL_PREFIX,
    Capabilities,
    Health,
    Image,
    Label,
    Lease,
    Member,
    MemberStats,
    Probe,
    Provider,
    ProviderContext,
    Role,
    Server,
    ServerSpec,
    ServerStatus,
)
from releasectl.wait import REAL_CLOCK, wait_for

from .auth import Auth, parse_expiry
from .credentials import Credentials, load_credentials
from .glance import Glance
from .http import RetryPolicy, Timeouts, Transport, UncertainWrite
from .neutron import Neutron, looks_like_id
from .nova import Nova
from .octavia import Octavia, Poll, Pool
from .records import LockStore, RecordStore
from .status import IMAGE_FAILED, image_status, member_admin, member_health, server_status
from .swift import ObjectStore

__all__ = ["OpenStackProvider"]

log = logging.getLogger("releasectl.providers.openstack")

DEFAULTS: dict[str, Any] = {
    "cloud": None,
    "region": None,
    "interface": None,
    "builder": None,
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
}
TIMEOUTS = ("boot_timeout", "snapshot_timeout", "lb_timeout")
IMAGE_TAG = "releasectl"
CREATE_MARKER = "create"  # label: a random token per create, to recognise our server after an unanswered POST
BAKE_MARKER = "bake"  # label: the same for a snapshot
MAX_CREATE_TRIES = 3
USER_DATA_LIMIT = 65535
P = LABEL_PREFIX


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


def _epoch(value: Any) -> float:
    try:
        return parse_expiry(value) if value else 0.0
    except ValueError:
        return 0.0


def _labels(props: Mapping[str, Any]) -> dict[str, str]:
    return {k[len(P):]: str(v) for k, v in props.items() if isinstance(k, str) and k.startswith(P) and v is not None}


class OpenStackProvider(Provider):
    name = "openstack"
    capabilities = Capabilities(member_sessions=False, member_stats=False)

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        self.options = _options(ctx.options)
        self.poll = Poll(interval=1.0, max_interval=5.0)
        self.clock = REAL_CLOCK
        self.env = None  # a mapping replacing os.environ for credentials (tests)

    # ---- wiring (lazy: no I/O until needed) ------------------------------------------------------------

    @functools.cached_property
    def creds(self) -> Credentials:
        o = self.options
        return load_credentials(
            o["cloud"], region=o["region"], interface=o["interface"], cacert=o["cacert"], insecure=o["insecure"],
            config_dir=Path(self.ctx.config_dir), env=self.env,
        )

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
        return cls(self.transport, lambda: self.auth.endpoint(service_type), self.auth, **kwargs)

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

        return ObjectStore(self.transport, endpoint, self.auth, container=self.options["lock_container"])

    @functools.cached_property
    def pool(self) -> Pool:
        ref = self.options["pool"]
        if not ref:
            raise ConfigError("openstack.pool is not set: releasectl needs the Octavia pool of this environment")
        return Pool(
            self.octavia, str(ref), health=self.ctx.health, create_monitor=bool(self.options["create_monitor"]),
            monitor_name=f"releasectl-{self.ctx.app}-{self.ctx.env}", timeout=self.options["lb_timeout"],
            poll=self.poll, clock=self.clock,
        )

    @functools.cached_property
    def records(self) -> RecordStore:
        return RecordStore(self.objects, f"{self.ctx.app}/{self.ctx.env}/records/")

    @functools.cached_property
    def lock(self) -> LockStore:
        return LockStore(self.objects, f"{self.ctx.app}/{self.ctx.env}/lock/", f"{self.ctx.app}/{self.ctx.env}")

    def _wait(self, check: Any, *, timeout: float, what: str) -> Any:
        return wait_for(check, timeout=timeout, interval=self.poll.interval, max_interval=self.poll.max_interval, what=what, clock=self.clock)

    def _require(self, key: str, why: str) -> str:
        value = self.options.get(key)
        if not value:
            raise ConfigError(f"openstack.{key} is not set: it is needed {why}")
        return str(value)

    # ---- images -----------------------------------------------------------------------------------------

    def _image(self, d: Mapping[str, Any]) -> Image:
        labels = _labels(d)
        checksum = d.get("os_hash_value") if d.get("os_hash_algo") == "sha256" else None
        return Image(
            id=str(d["id"]),
            name=str(d.get("name") or ""),
            app=labels.get(Label.APP, ""),
            version=labels.get(Label.VERSION, ""),
            status=image_status(d.get("status")),
            created_at=_epoch(d.get("created_at")),
            size=d.get("size"),
            checksum=checksum,
            source=labels.get(Label.SOURCE, ""),
            protected=bool(d.get("protected")),
            labels=labels,
        )

    def list_images(self) -> list[Image]:
        found = self.glance.iter_images([(P + Label.APP, self.ctx.app), ("tag", IMAGE_TAG)])
        return [self._image(d) for d in found]

    def get_image(self, image_id: str) -> Image | None:
        d = self.glance.get_image(image_id)
        return None if d is None else self._image(d)

    def _builder(self) -> dict[str, Any]:
        ref = self._require("builder", "to bake images (the server to snapshot)")
        if looks_like_id(ref):
            server = self.nova.get_server(ref)
            if server is not None:
                return server
        named = [s for s in self.nova.find_by_name(ref) if s.get("OS-EXT-STS:task_state") != "deleting"]
        if not named:
            raise ConfigError(f"no builder server {ref!r} in this project", hint="fix openstack.builder (a server name or id)")
        if len(named) > 1:
            raise UsageError(f"several servers are named {ref!r}", hint="set openstack.builder to the server's id")
        return named[0]

    def _builder_idle(self, server_id: str, name: str) -> dict[str, Any]:
        """Wait until the builder has no task running (createImage 409s otherwise)."""

        def check() -> dict[str, Any] | None:
            s = self.nova.get_server(server_id)
            if s is None:
                raise ResourceFailure(f"the builder server {name} ({server_id}) is gone")
            if str(s.get("status")).upper() == "ERROR":
                raise ResourceFailure(f"the builder server {name} is in ERROR: {(s.get('fault') or {}).get('message', 'no reason given')}")
            return s if s.get("OS-EXT-STS:task_state") in (None, "") else None

        return self._wait(check, timeout=self.options["snapshot_timeout"], what=f"builder {name} to finish its current task")

    def _clean_leftovers(self, version: str) -> None:
        """Unfinished snapshots of this version from an interrupted bake, tagged or not."""
        for d in self.glance.iter_images([(P + Label.APP, self.ctx.app), (P + Label.VERSION, version)]):
            leftover = P + BAKE_MARKER in d and (d.get("status") != "active" or IMAGE_TAG not in (d.get("tags") or []))
            if leftover:
                log.info("removing the unfinished image %s (%s) of an interrupted bake", d.get("name"), d["id"])
                self.delete_image(str(d["id"]))

    def bake_image(self, version: str, name: str, labels: Mapping[str, str]) -> Image:
        builder = self._builder()
        builder_id, builder_name = str(builder["id"]), str(builder.get("name"))
        self._clean_leftovers(version)
        marker = secrets.token_hex(8)
        meta = {P + k: str(v) for k, v in labels.items() if v is not None}
        meta.update({
            P + Label.APP: self.ctx.app,
            P + Label.VERSION: version,
            P + Label.SOURCE: f"server {builder_name} ({builder_id})",
            P + BAKE_MARKER: marker,
        })
        _check_meta(meta)
        image_id = None
        for attempt in range(1, MAX_CREATE_TRIES + 1):
            self._builder_idle(builder_id, builder_name)
            try:
                image_id = self.nova.create_image(builder_id, name, meta)
                break
            except Conflict:
                if attempt == MAX_CREATE_TRIES:
                    raise
            except UncertainWrite:
                found = list(self.glance.iter_images([(P + BAKE_MARKER, marker)]))
                if found:
                    image_id = str(found[0]["id"])
                    break
                if attempt == MAX_CREATE_TRIES:
                    raise
        assert image_id is not None
        try:
            self.glance.add_tag(image_id, IMAGE_TAG)
            final = self._wait(
                lambda: self._snapshot_done(image_id, name),
                timeout=self.options["snapshot_timeout"],
                what=f"snapshot {name} to become active",
            )
        except BaseException:
            try:
                self.delete_image(image_id)
            except ReleasectlError as exc:
                log.warning("could not remove the failed snapshot %s: %s", image_id, exc)
            raise
        return self._image(final)

    def _snapshot_done(self, image_id: str, name: str) -> dict[str, Any] | None:
        d = self.glance.get_image(image_id)
        if d is None:
            raise ResourceFailure(
                f"the snapshot {name} ({image_id}) vanished while it was being saved: Nova deletes the image of a "
                "failed snapshot",
                hint="see `openstack server event list` for the builder, and bake again",
            )
        status = str(d.get("status", "")).lower()
        if status == "active":
            return d
        if status in IMAGE_FAILED:
            raise ResourceFailure(f"the snapshot {name} ({image_id}) is {status}", hint="bake again")
        return None

    def update_image(
        self, image_id: str, *, labels: Mapping[str, str | None] | None = None, protected: bool | None = None
    ) -> Image:
        for attempt in range(2):
            d = self.glance.get_image(image_id)
            if d is None:
                raise NotFound(f"image {image_id} does not exist")
            ops: list[dict[str, Any]] = []
            for key, value in (labels or {}).items():
                prop = P + key
                if value is None:
                    if prop in d:
                        ops.append({"op": "remove", "path": "/" + prop})
                else:
                    ops.append({"op": "add", "path": "/" + prop, "value": str(value)})
            if protected is not None and bool(d.get("protected")) != protected:
                ops.append({"op": "replace", "path": "/protected", "value": bool(protected)})
            if not ops:
                return self._image(d)
            try:
                return self._image(self.glance.patch(image_id, ops))
            except Conflict:  # a property we remove vanished meanwhile: read again
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def delete_image(self, image_id: str) -> None:
        d = self.glance.get_image(image_id)
        if d is None:
            return
        if d.get("protected"):
            self.glance.patch(image_id, [{"op": "replace", "path": "/protected", "value": False}])
        self.glance.delete(image_id)

    # ---- servers ----------------------------------------------------------------------------------------

    @functools.cached_property
    def network_name(self) -> str | None:
        ref = self.options["network"]
        if not ref:
            return None
        return str(self.neutron.network(ref)["name"]) if looks_like_id(str(ref)) else str(ref)

    def _address(self, addresses: Mapping[str, Any]) -> str | None:
        if not isinstance(addresses, Mapping):
            return None
        wanted = self.network_name
        entries = list(addresses.get(wanted, [])) if wanted else [e for v in addresses.values() for e in v]
        fixed = [e for e in entries if e.get("OS-EXT-IPS:type", "fixed") == "fixed"]
        for version in (4, 6):
            for e in fixed:
                if int(e.get("version", 4)) == version and e.get("addr"):
                    return str(e["addr"])
        return None

    def _server(self, d: Mapping[str, Any]) -> Server:
        labels = _labels(d.get("metadata") or {})
        role = labels.get(Label.ROLE)
        status = server_status(d.get("status"), d.get("OS-EXT-STS:task_state"))
        fault = (d.get("fault") or {}).get("message") if status in (ServerStatus.ERROR, ServerStatus.STOPPED) else None
        if status is ServerStatus.ERROR and not fault:
            fault = f"Nova status {d.get('status')}"
        try:
            port = int(labels.get(Label.PORT, self.ctx.app_port))
        except ValueError:
            port = self.ctx.app_port
        image = d.get("image")
        return Server(
            id=str(d["id"]),
            name=str(d.get("name", "")),
            app=labels.get(Label.APP, ""),
            version=labels.get(Label.VERSION, ""),
            env=labels.get(Label.ENV, ""),
            role=Role(role) if role in Role._value2member_map_ else None,
            release_id=labels.get(Label.RELEASE, ""),
            status=status,
            address=self._address(d.get("addresses") or {}),
            port=port,
            image_id=str(image.get("id", "")) if isinstance(image, Mapping) else "",
            created_at=_epoch(d.get("created")),
            labels=labels,
            fault=fault,
        )

    def _ours(self, d: Mapping[str, Any]) -> bool:
        meta = d.get("metadata") or {}
        return meta.get(P + Label.APP) == self.ctx.app and meta.get(P + Label.ENV) == self.ctx.env

    def list_servers(self) -> list[Server]:
        return [self._server(d) for d in self.nova.iter_servers() if self._ours(d) and str(d.get("status")).upper() != "DELETED"]

    def get_server(self, server_id: str) -> Server | None:
        d = self.nova.get_server(server_id)
        if d is None or str(d.get("status")).upper() == "DELETED":
            return None
        return self._server(d)

    def _user_data(self) -> str | None:
        path = self.options["user_data"]
        if not path:
            return None
        full = Path(path).expanduser()
        if not full.is_absolute():
            full = Path(self.ctx.config_dir) / full
        try:
            encoded = base64.b64encode(full.read_bytes()).decode()
        except OSError as exc:
            raise ConfigError(f"openstack.user_data: cannot read {full}: {exc.strerror}") from None
        if len(encoded) > USER_DATA_LIMIT:
            raise ConfigError(f"openstack.user_data: {full} is {len(encoded)} bytes in base64; Nova takes {USER_DATA_LIMIT}")
        return encoded

    def create_server(self, spec: ServerSpec) -> Server:
        flavor = self.nova.flavor_id(self._require("flavor", "to launch servers"))
        image = self.glance.get_image(spec.image_id)
        if image is None:
            raise NotFound(f"image {spec.image_id} does not exist", hint="bake the version again")
        port = str(image.get(P + Label.PORT) or self.ctx.app_port)
        marker = secrets.token_hex(8)
        meta = {P + k: str(v) for k, v in spec.labels.items() if v is not None}
        meta.update({
            P + Label.APP: spec.app,
            P + Label.VERSION: spec.version,
            P + Label.ENV: spec.env,
            P + Label.RELEASE: spec.release_id,
            P + Label.ROLE: spec.role.value,
            P + Label.PORT: port,
            P + CREATE_MARKER: marker,
        })
        _check_meta(meta)
        network = self.options["network"]
        body: dict[str, Any] = {
            "name": spec.name,
            "imageRef": spec.image_id,
            "flavorRef": flavor,
            "networks": [{"uuid": str(self.neutron.network(network)["id"])}] if network else "auto",
            "metadata": meta,
        }
        if self.options["key_name"]:
            body["key_name"] = self.options["key_name"]
        if self.options["security_groups"]:
            body["security_groups"] = [{"name": g} for g in self.options["security_groups"]]
        user_data = self._user_data()
        if user_data:
            body["user_data"] = user_data
        server_id = None
        for attempt in range(1, MAX_CREATE_TRIES + 1):
            try:
                server_id = self.nova.create_server(body)
                break
            except UncertainWrite as exc:
                # Nova may have created it although the answer was lost: look before creating again.
                found = [s for s in self.nova.find_by_name(spec.name) if (s.get("metadata") or {}).get(P + CREATE_MARKER) == marker]
                if found:
                    server_id = str(found[0]["id"])
                    log.info("server %s was created although Nova answered: %s", spec.name, exc)
                    break
                if attempt == MAX_CREATE_TRIES:
                    raise
                self.clock.sleep(self.transport.policy.backoff(attempt))
        assert server_id is not None
        d = self.nova.get_server(server_id)
        if d is None:
            raise ProviderError(f"server {spec.name} ({server_id}) vanished right after it was created")
        return self._server(d)

    def _wait_writable(self, server_id: str) -> None:
        """Metadata writes 409 while a server builds: wait for it to leave BUILD (bounded)."""

        def check() -> bool | None:
            d = self.nova.get_server(server_id)
            if d is None:
                raise NotFound(f"server {server_id} does not exist")
            status = str(d.get("status")).upper()
            if status == "ERROR":
                raise ResourceFailure(f"server {d.get('name')} is in ERROR: {(d.get('fault') or {}).get('message', '')}")
            return True if status != "BUILD" else None

        self._wait(check, timeout=self.options["boot_timeout"], what=f"server {server_id} to finish building")

    def update_server_labels(self, server_id: str, labels: Mapping[str, str | None]) -> Server:
        upsert = {P + k: str(v) for k, v in labels.items() if v is not None}
        remove = [P + k for k, v in labels.items() if v is None]
        _check_meta(upsert)
        for attempt in range(2):
            try:
                if upsert:
                    self.nova.set_metadata(server_id, upsert)
                for key in remove:
                    self.nova.delete_metadata(server_id, key)
                break
            except Conflict:
                if attempt:
                    raise
                self._wait_writable(server_id)
        server = self.get_server(server_id)
        if server is None:
            raise NotFound(f"server {server_id} does not exist")
        return server

    def delete_server(self, server_id: str) -> None:
        self.nova.delete_server(server_id)

        def gone() -> bool | None:
            d = self.nova.get_server(server_id)
            return True if d is None or str(d.get("status")).upper() in ("DELETED", "SOFT_DELETED") else None

        self._wait(gone, timeout=self.options["boot_timeout"], what=f"server {server_id} to be deleted")

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
            return Probe(status=None, latency=0.0, error=f"could not read the pool: {exc}")
        if member is None:
            return Probe(status=None, latency=0.0, error="not a pool member yet (probe: false)")
        if member.health is Health.HEALTHY:
            return Probe(status=self.ctx.health.expected_status, latency=0.0, body="load balancer: member healthy")
        return Probe(status=None, latency=0.0, error=f"load balancer reports the member {member.health.value} (probe: false)")

    # ---- the pool ---------------------------------------------------------------------------------------

    def ensure_pool(self) -> None:
        self.pool.ensure()

    def pool_endpoint(self) -> str | None:
        if not self.options["pool"]:
            return None
        return self.pool.endpoint()

    def _member(self, m: Mapping[str, Any]) -> Member:
        weight = int(m.get("weight", 1))
        return Member(
            id=str(m["id"]),
            name=str(m.get("name") or ""),
            address=str(m.get("address")),
            port=int(m.get("protocol_port", 0)),
            weight=weight,
            admin=member_admin(bool(m.get("admin_state_up", True)), weight),
            health=member_health(m.get("operating_status")),
            sessions=None,
        )

    def list_members(self) -> list[Member]:
        if not self.options["pool"]:
            return []
        return [self._member(m) for m in self.pool.members()]

    def add_member(self, server: Server) -> Member:
        if not server.address:
            raise ProviderError(f"server {server.name} has no address on network {self.options['network'] or '(any)'} yet")
        subnet = None
        if self.options["network"]:
            try:
                subnet = self.neutron.subnet_for(str(self.options["network"]), server.address)
            except ReleasectlError as exc:
                log.debug("no subnet for %s: %s", server.address, exc)
        port = server.port or self.ctx.app_port
        return self._member(self.pool.add(server.address, port, server.name, subnet))

    def set_weights(self, weights: Mapping[str, int]) -> None:
        self.pool.set_weights(weights, self.capabilities.max_weight)

    def remove_member(self, member_id: str) -> None:
        self.pool.remove(member_id)

    def member_stats(self) -> Mapping[str, MemberStats]:
        return {}  # Octavia has no per-member counters

    def destroy_pool(self) -> None:
        """The pool belongs to the operator: `releasectl down` leaves it (empty) in place."""

    # ---- records and the lock ----------------------------------------------------------------------------

    def read_record(self, key: str) -> str | None:
        return self.records.read(key)

    def write_record(self, key: str, data: str) -> None:
        self.records.write(key, data)

    def list_records(self, prefix: str) -> list[str]:
        return self.records.list(prefix)

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


def _check_meta(meta: Mapping[str, str]) -> None:
    for key, value in meta.items():
        if len(key.encode()) > 255 or len(value.encode()) > 255:
            raise UsageError(f"label {key[len(P):]!r} is too long for OpenStack metadata (255 bytes for key and value)")


def _version() -> str:
    try:
        from releasectl import __version__

        return __version__
    except ImportError:
        return "0"
