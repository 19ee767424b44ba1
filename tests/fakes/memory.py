"""An in-memory provider: the reference behaviour of `releasectl.providers.base.Provider`, with faults on demand.

Like libcloud's dummy driver it is small enough to read in one sitting, and the contract suite
(tests/contract/) runs the same tests against it as against `local` and the OpenStack simulator, so it
cannot drift from them. Time comes from a fake clock (tests/fakes/clock.py): servers boot and members
pass their health checks (rise/fall, every `health.interval`) as the clock advances, never in real time.

One `MemoryCloud` is the world: images, servers, pools, records and locks of every app and environment.
Each `MemoryProvider` is one CLI run's view of it, scoped to an app and environment as the real ones are;
a new provider on the same cloud is a new runner (after a crash, on another machine).

Faults, all deterministic (nothing random, nothing timed by the wall clock):

    kill_server(id)            the process is gone: STOPPED (or ERROR), probes refused, LB checks fail
    fail_starts(app, version)  servers of that version are created in ERROR with a fault (start failure)
    never_healthy(app, ver)    servers of that version run but answer 500 on every probe and check
    kill_lb(pool)              lb_state DOWN, no member reachable; ensure_pool restarts it, members kept
    error_lb(pool)             lb_state ERROR: pool writes and ensure_pool fail until repair_lb
    vanish_image(id)           the image is deleted under us
    conflict_next(n)           the next n writes (servers, members, images) answer Conflict (a 409)
    crash_next_call(...)       the runner dies in its next call, before or after the call took effect
    add_foreign_member(pool)   another app's server and member in the same pool (never ours to touch)
    set_quota(**limits)        the project's limits (instances, cores, ram_mb, ports, members); usage counted
    fail_next_recipe(output)   the next builder recipe fails with that output
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from releasectl.errors import Conflict, LockHeld, NotFound, ProviderError, RecipeFailed, ResourceFailure, UsageError
from releasectl.providers.base import (
    AdminState,
    Capabilities,
    Health,
    HealthCheck,
    Image,
    ImageStatus,
    Label,
    LBState,
    LBStatus,
    Lease,
    Member,
    MemberStats,
    Builder,
    BuilderSpec,
    BuilderStatus,
    Probe,
    Provider,
    ProviderContext,
    Quota,
    Role,
    Server,
    ServerSpec,
    ServerStatus,
    describe_owner,
    format_utc,
)

from .clock import FakeClock

if TYPE_CHECKING:
    from releasectl.engine.context import EngineContext

MAX_WEIGHT = 256
BOOT_DELAY = 1.0  # seconds of fake time from create to ACTIVE
SERVER_SIZE = {"instances": 1, "cores": 1, "ram_mb": 512, "ports": 1, "members": 1}  # one server of any app


class Crash(BaseException):
    """The runner died (kill -9) in the middle of a provider call. A BaseException, so nothing catches it."""


@dataclass
class _Server:
    id: str
    name: str
    image_id: str
    address: str
    port: int
    created_at: float
    boot_at: float
    labels: dict[str, str]  # releasectl labels without prefix: app, env, version, role, release, ...
    status: ServerStatus = ServerStatus.BUILDING
    fault: str | None = None
    healthy: bool = True  # whether the app answers its health check with the expected status

    def view(self) -> Server:
        role = self.labels.get(Label.ROLE)
        return Server(
            id=self.id,
            name=self.name,
            app=self.labels.get(Label.APP, ""),
            version=self.labels.get(Label.VERSION, ""),
            env=self.labels.get(Label.ENV, ""),
            role=Role(role) if role in Role._value2member_map_ else None,
            release_id=self.labels.get(Label.RELEASE, ""),
            status=self.status,
            address=self.address,
            port=self.port,
            image_id=self.image_id,
            created_at=self.created_at,
            labels=dict(self.labels),
            fault=self.fault,
        )

    @property
    def answers(self) -> bool:
        return self.status is ServerStatus.ACTIVE and self.healthy


@dataclass
class _Member:
    id: str
    name: str
    address: str
    port: int
    server_id: str | None
    version: str | None
    app: str | None
    env: str | None
    weight: int = 0
    admin: AdminState = AdminState.MAINT
    health: Health = Health.UNKNOWN
    ok: int = 0  # consecutive passing checks
    bad: int = 0  # consecutive failing checks
    requests: int = 0
    errors: int = 0

    def view(self) -> Member:
        return Member(id=self.id, name=self.name, address=self.address, port=self.port, weight=self.weight,
                      admin=self.admin, health=self.health, sessions=0, server_id=self.server_id,
                      version=self.version, app=self.app, env=self.env)


@dataclass
class _Pool:
    name: str
    health: HealthCheck
    port: int
    status: LBStatus = LBStatus.UP
    detail: str = ""
    members: dict[str, _Member] = field(default_factory=dict)
    next_check: float = 0.0


class MemoryCloud:
    """The shared world. Fault methods change it directly; providers see the change on their next call."""

    def __init__(self, clock: FakeClock | None = None, *, boot_delay: float = BOOT_DELAY) -> None:
        self.clock = clock or FakeClock()
        self.boot_delay = boot_delay
        self.lock = threading.RLock()
        self.images: dict[str, Image] = {}
        self.servers: dict[str, _Server] = {}
        self.pools: dict[str, _Pool] = {}
        self.records: dict[tuple[str, str], dict[str, str]] = {}
        self.leases: dict[tuple[str, str], Lease] = {}
        self.failing_starts: dict[tuple[str, str], str] = {}
        self.unhealthy_versions: set[tuple[str, str]] = set()
        self.erroring_versions: set[tuple[str, str]] = set()  # healthy, but their traffic gets 5xx
        self.conflicts = 0
        self.quota_limits: dict[str, int] = {}
        self.builders: dict[str, Builder] = {}  # by app
        self.recipe_failure: str | None = None
        self.crash: str | None = None  # "before" or "after": the next call dies
        self.calls = 0
        self._ids = itertools.count(1)
        self._addresses = itertools.count(1)

    def __deepcopy__(self, memo: dict) -> "MemoryCloud":
        """A snapshot of the whole world (its clock included), for tests that start many runs from one state."""
        clone = MemoryCloud.__new__(MemoryCloud)
        for name, value in self.__dict__.items():
            if name == "lock":
                clone.lock = threading.RLock()
            elif name == "clock":
                clone.clock = FakeClock(self.clock._start)
                clone.clock.advance(self.clock.time() - self.clock._start)
            else:
                setattr(clone, name, copy.deepcopy(value, memo))
        return clone

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    # ---- faults ----------------------------------------------------------------------------------------

    def kill_server(self, server_id: str, status: ServerStatus = ServerStatus.STOPPED, fault: str = "process exited") -> None:
        with self.lock:
            server = self.servers[server_id]
            server.status, server.fault = status, fault

    def fail_starts(self, app: str, version: str, fault: str = "start command missing") -> None:
        self.failing_starts[(app, version)] = fault

    def never_healthy(self, app: str, version: str) -> None:
        self.unhealthy_versions.add((app, version))

    def serve_errors(self, app: str, version: str) -> None:
        """Every request to this version fails while its health checks pass: only an analysis catches it."""
        self.erroring_versions.add((app, version))

    def kill_lb(self, pool: str) -> None:
        with self.lock:
            self.pools[pool].status, self.pools[pool].detail = LBStatus.DOWN, "the load balancer process is gone"

    def error_lb(self, pool: str) -> None:
        with self.lock:
            self.pools[pool].status, self.pools[pool].detail = LBStatus.ERROR, "provisioning_status ERROR"

    def repair_lb(self, pool: str) -> None:
        """An operator's failover: the LB is UP again with its members."""
        with self.lock:
            self.pools[pool].status, self.pools[pool].detail = LBStatus.UP, ""

    def vanish_image(self, image_id: str) -> None:
        with self.lock:
            self.images.pop(image_id, None)

    def set_quota(self, **limits: int) -> None:
        self.quota_limits.update(limits)

    def fail_next_recipe(self, output: str = "apt-get: unable to locate package") -> None:
        self.recipe_failure = output

    def conflict_next(self, n: int) -> None:
        self.conflicts = n

    def crash_next_call(self, *, after_effect: bool = False) -> None:
        self.crash = "after" if after_effect else "before"

    def add_foreign_member(self, pool: str, *, app: str | None = "other", env: str | None = "production",
                           weight: int = 100) -> Member:
        """A healthy, weighted member of someone else's server in `pool` (app None: not releasectl's at all)."""
        with self.lock:
            now = self.clock.time()
            sid = self.new_id("srv")
            labels = {Label.APP: app, Label.ENV: env or "", Label.VERSION: "9.9.9", Label.ROLE: Role.STABLE.value} if app else {}
            server = _Server(sid, f"{app or 'static'}-{sid}", "", self._address(), 8000, now, now, labels, ServerStatus.ACTIVE)
            self.servers[sid] = server
            member = _Member(self.new_id("m"), server.name, server.address, server.port, sid, None, app, env,
                             weight=weight, admin=AdminState.READY, health=Health.HEALTHY, ok=99)
            self.pools[pool].members[member.id] = member
            return member.view()

    # ---- time passes ------------------------------------------------------------------------------------

    def _address(self) -> str:
        n = next(self._addresses)
        return f"127.0.{2 + n // 250}.{1 + n % 250}"

    def settle(self) -> None:
        """Bring the world up to the clock: finished boots, and every health check due since the last look."""
        now = self.clock.time()
        for server in self.servers.values():
            if server.status is ServerStatus.BUILDING and now >= server.boot_at:
                server.status = ServerStatus.ACTIVE
        for pool in self.pools.values():
            if pool.status is LBStatus.DOWN or pool.status is LBStatus.ABSENT:
                pool.next_check = now  # a dead LB checks nothing; it resumes checking when restarted
                continue
            interval = max(pool.health.interval, 1e-3)
            due = int((now - pool.next_check) / interval) + 1 if now >= pool.next_check else 0
            for _ in range(min(due, pool.health.rise + pool.health.fall + 1)):
                for member in pool.members.values():
                    self._check(pool, member)
            if due:
                pool.next_check += due * interval

    def _check(self, pool: _Pool, member: _Member) -> None:
        server = self.servers.get(member.server_id or "")
        passed = server is not None and server.answers
        if passed:
            member.ok, member.bad = member.ok + 1, 0
            if member.ok >= pool.health.rise:
                member.health = Health.HEALTHY
        else:
            member.ok, member.bad = 0, member.bad + 1
            if member.bad >= pool.health.fall:
                member.health = Health.UNHEALTHY
        if member.weight > 0 and member.admin is AdminState.READY:  # a trickle of traffic for member_stats
            member.requests += 1
            member.errors += 0 if passed and (member.app, member.version) not in self.erroring_versions else 1


def _api(*, write: bool = False) -> Callable:
    """Every provider call: the crash and Conflict faults, the clock's effects, one lock for the cloud."""

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def call(self: "MemoryProvider", *args, **kwargs):
            cloud = self.cloud
            with cloud.lock:
                if self.dead:
                    raise Crash(f"runner already dead: {method.__name__}")
                cloud.calls += 1
                crash, cloud.crash = cloud.crash, None
                if crash == "before":
                    self._die()
                if write and cloud.conflicts > 0:
                    cloud.conflicts -= 1
                    raise Conflict(f"{method.__name__}: busy (injected 409), try again")
                cloud.settle()
                result = method(self, *args, **kwargs)
                if crash == "after":
                    self._die()
                return result

        return call

    return decorate


class MemoryProvider(Provider):
    """One runner's view of a MemoryCloud. Options: `pool` (default "<app>-<env>"), shared between apps."""

    name = "memory"
    capabilities = Capabilities(max_weight=MAX_WEIGHT, member_sessions=True, member_stats=True)

    def __init__(self, ctx: ProviderContext, cloud: MemoryCloud) -> None:
        super().__init__(ctx)
        self.cloud = cloud
        self.pool_name = str(ctx.options.get("pool") or f"{ctx.app}-{ctx.env}")
        self.dead = False
        self._tokens: set[str] = set()

    def _die(self) -> None:
        """kill -9: this runner makes no more calls, and the lock it holds belongs to a dead process."""
        self.dead = True
        key = (self.ctx.app, self.ctx.env)
        lease = self.cloud.leases.get(key)
        if lease is not None and lease.token in self._tokens:
            self.cloud.leases[key] = replace(lease, dead_reason=f"its process {lease.owner.get('pid', '?')} is gone")
        raise Crash("the runner was killed")

    def _now(self) -> float:
        return self.cloud.clock.time()

    # ---- images -----------------------------------------------------------------------------------------

    @_api()
    def list_images(self) -> list[Image]:
        return [i for i in self.cloud.images.values() if i.app == self.ctx.app]

    def _image(self, image_id: str) -> Image | None:
        image = self.cloud.images.get(image_id)
        return image if image is not None and image.app == self.ctx.app else None

    @_api()
    def get_image(self, image_id: str) -> Image | None:
        return self._image(image_id)

    @_api()
    def bake_image(self, version: str, name: str, labels: Mapping[str, str]) -> Image:
        for existing in self.cloud.images.values():
            if existing.app == self.ctx.app and existing.version == version and existing.status is not ImageStatus.FAILED:
                raise Conflict(f"an image of {self.ctx.app} {version} already exists ({existing.id})")
        image_id = self.cloud.new_id("img")
        image = Image(
            id=image_id, name=name, app=self.ctx.app, version=version, status=ImageStatus.ACTIVE,
            created_at=self._now(), size=1024, checksum=hashlib.sha256(image_id.encode()).hexdigest(),
            source="memory builder", labels={**labels, Label.APP: self.ctx.app, Label.VERSION: version},
        )
        self.cloud.images[image_id] = image
        return image

    @_api(write=True)
    def update_image(self, image_id: str, *, labels: Mapping[str, str | None] | None = None,
                     protected: bool | None = None) -> Image:
        image = self._image(image_id)
        if image is None:
            raise NotFound(f"image {image_id} does not exist")
        merged = {k: v for k, v in {**image.labels, **(labels or {})}.items() if v is not None}
        image = replace(image, labels=merged, protected=image.protected if protected is None else protected)
        self.cloud.images[image_id] = image
        return image

    @_api()
    def delete_image(self, image_id: str) -> None:
        if self._image(image_id) is not None:
            del self.cloud.images[image_id]

    # ---- servers ----------------------------------------------------------------------------------------

    def _mine(self, server: _Server) -> bool:
        return server.labels.get(Label.APP) == self.ctx.app and server.labels.get(Label.ENV) == self.ctx.env

    @_api()
    def list_servers(self) -> list[Server]:
        return [s.view() for s in self.cloud.servers.values() if self._mine(s)]

    @_api()
    def get_server(self, server_id: str) -> Server | None:
        server = self.cloud.servers.get(server_id)
        return server.view() if server is not None and self._mine(server) else None

    @_api(write=True)
    def create_server(self, spec: ServerSpec) -> Server:
        image = self.cloud.images.get(spec.image_id)
        if image is None or image.app != spec.app:
            raise NotFound(f"image {spec.image_id} does not exist", hint="bake the version again")
        for s in self.cloud.servers.values():  # an ambiguous earlier create: adopt it, never duplicate
            if s.name == spec.name and self._mine(s):
                return s.view()
        now = self._now()
        labels = {k: str(v) for k, v in spec.labels.items() if v is not None}
        labels.update({Label.APP: spec.app, Label.VERSION: spec.version, Label.ENV: spec.env,
                       Label.ROLE: Role(spec.role).value, Label.RELEASE: spec.release_id})
        port = int(image.labels.get(Label.PORT, self.ctx.app_port))
        server = _Server(self.cloud.new_id("srv"), spec.name, spec.image_id, self.cloud._address(), port, now,
                         now + self.cloud.boot_delay, labels,
                         healthy=(spec.app, spec.version) not in self.cloud.unhealthy_versions)
        failure = self.cloud.failing_starts.get((spec.app, spec.version))
        if failure is not None:
            server.status, server.fault = ServerStatus.ERROR, failure
        self.cloud.servers[server.id] = server
        return server.view()

    @_api(write=True)
    def update_server_labels(self, server_id: str, labels: Mapping[str, str | None]) -> Server:
        server = self.cloud.servers.get(server_id)
        if server is None or not self._mine(server):
            raise NotFound(f"server {server_id} does not exist")
        for key, value in labels.items():
            if value is None:
                server.labels.pop(key, None)
            else:
                server.labels[key] = str(value)
        return server.view()

    @_api(write=True)
    def delete_server(self, server_id: str) -> None:
        server = self.cloud.servers.get(server_id)
        if server is not None and self._mine(server):
            del self.cloud.servers[server_id]

    @_api()
    def probe(self, server: Server, path: str, timeout: float) -> Probe:
        real = self.cloud.servers.get(server.id)
        if real is None or real.status is not ServerStatus.ACTIVE:
            return Probe(status=None, latency=0.001, error="connection refused")
        if not real.healthy:
            return Probe(status=500, latency=0.002, body="unhealthy")
        version = real.labels.get(Label.VERSION, "")
        return Probe(status=self.ctx.health.expected_status, latency=0.002, body=f'{{"version": "{version}"}}')

    # ---- the pool ---------------------------------------------------------------------------------------

    def _pool(self) -> _Pool | None:
        pool = self.cloud.pools.get(self.pool_name)
        return None if pool is None or pool.status is LBStatus.ABSENT else pool

    def _writable(self) -> _Pool:
        pool = self._pool()
        if pool is None or pool.status is LBStatus.DOWN:
            raise ProviderError(f"no load balancer runs for {self.ctx.app}/{self.ctx.env}",
                                hint="ensure_pool starts it")
        if pool.status is LBStatus.ERROR:
            raise ResourceFailure(f"the load balancer of {self.pool_name} is in ERROR", hint="fail it over")
        return pool

    @_api()
    def ensure_pool(self) -> None:
        pool = self.cloud.pools.get(self.pool_name)
        if pool is None:
            self.cloud.pools[self.pool_name] = _Pool(self.pool_name, self.ctx.health, 8080, next_check=self._now())
        elif pool.status is LBStatus.ERROR:
            raise ResourceFailure(f"the load balancer of {self.pool_name} is in ERROR", hint="fail it over")
        elif pool.status in (LBStatus.DOWN, LBStatus.ABSENT):
            pool.status, pool.detail = LBStatus.UP, ""  # restarted from its saved state: members and weights kept

    @_api()
    def lb_state(self) -> LBState:
        pool = self.cloud.pools.get(self.pool_name)
        if pool is None:
            return LBState(LBStatus.ABSENT, "no load balancer yet")
        return LBState(pool.status, pool.detail)

    @_api()
    def pool_endpoint(self) -> str | None:
        pool = self._pool()
        return None if pool is None or pool.status is LBStatus.DOWN else f"http://127.0.0.1:{pool.port}"

    @_api()
    def list_members(self) -> list[Member]:
        pool = self._pool()
        if pool is None or pool.status is LBStatus.DOWN:
            return []
        return [m.view() for m in pool.members.values()]

    @_api(write=True)
    def add_member(self, server: Server) -> Member:
        pool = self._writable()
        if not server.address or not server.port:
            raise Conflict(f"server {server.id} has no address yet")
        for member in pool.members.values():
            if (member.address, member.port) == (server.address, server.port):
                return member.view()
        member = _Member(self.cloud.new_id("m"), server.name, server.address, server.port, server.id,
                         server.version, self.ctx.app, self.ctx.env)
        pool.members[member.id] = member
        return member.view()

    @_api(write=True)
    def set_weights(self, weights: Mapping[str, int]) -> None:
        if not weights:
            return
        pool = self._writable()
        for member_id, weight in weights.items():
            if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_WEIGHT:
                raise UsageError(f"weight {weight!r} for member {member_id} is outside 0..{MAX_WEIGHT}")
            member = pool.members.get(member_id)
            if member is None:
                raise NotFound(f"no pool member {member_id}")
            if weight > 0 and member.admin is AdminState.MAINT and member.health is not Health.HEALTHY:
                raise Conflict(f"member {member_id} has not passed its health checks; it stays out of rotation")
        for member_id, weight in weights.items():
            member = pool.members[member_id]
            member.weight = weight
            if weight > 0:
                member.admin = AdminState.READY
            elif member.admin is AdminState.READY:
                member.admin = AdminState.DRAIN

    @_api(write=True)
    def remove_member(self, member_id: str) -> None:
        pool = self._pool()
        if pool is not None and pool.status is LBStatus.ERROR:
            raise ResourceFailure(f"the load balancer of {self.pool_name} is in ERROR", hint="fail it over")
        if pool is not None:
            pool.members.pop(member_id, None)

    @_api()
    def member_stats(self) -> Mapping[str, MemberStats]:
        pool = self._pool()
        if pool is None or pool.status is LBStatus.DOWN:
            return {}
        return {m.id: MemberStats(m.id, m.requests, 0, m.errors, 2.0) for m in pool.members.values()}

    @_api()
    def destroy_pool(self) -> None:
        """Stop an LB we own; a pool shared with members of others is the operator's and stays."""
        pool = self.cloud.pools.get(self.pool_name)
        if pool is not None and all(m.app == self.ctx.app and m.env == self.ctx.env for m in pool.members.values()):
            pool.status, pool.detail = LBStatus.ABSENT, "destroyed"
            pool.members.clear()

    # ---- records ----------------------------------------------------------------------------------------

    def _records(self) -> dict[str, str]:
        return self.cloud.records.setdefault((self.ctx.app, self.ctx.env), {})

    @_api()
    def read_record(self, key: str) -> str | None:
        return self._records().get(key)

    @_api()
    def write_record(self, key: str, data: str) -> None:
        self._records()[key] = data

    @_api()
    def list_records(self, prefix: str) -> list[str]:
        return sorted(k for k in self._records() if k.startswith(prefix))

    @_api()
    def create_record(self, key: str, data: str) -> bool:
        records = self._records()
        if key in records:
            return False
        records[key] = data
        return True

    @_api()
    def delete_record(self, key: str) -> None:
        self._records().pop(key, None)

    # ---- the lock ---------------------------------------------------------------------------------------

    def _key(self) -> tuple[str, str]:
        return (self.ctx.app, self.ctx.env)

    def _dead_reason(self, lease: Lease) -> str | None:
        if lease.dead_reason:
            return lease.dead_reason
        return None if lease.expires_at > self._now() else f"its lease expired at {format_utc(lease.expires_at)}"

    @_api()
    def acquire_lock(self, owner: Mapping[str, str], ttl: float) -> Lease:
        now = self._now()
        new_owner = {str(k): str(v) for k, v in owner.items() if k != "took_over"}
        current = self.cloud.leases.get(self._key())
        if current is not None:
            reason = self._dead_reason(current)
            if reason is None:
                raise LockHeld(
                    f"{current.key} is locked by {describe_owner(current.owner)} since {format_utc(current.acquired_at)}; "
                    f"its lease expires at {format_utc(current.expires_at)} (in {max(0, round(current.expires_at - now))}s)",
                    hint="wait for it to finish, or run `releasectl unlock` if that run is gone for good",
                )
            new_owner["took_over"] = f"{describe_owner(current.owner)}: {reason}"
        lease = Lease(key=f"{self.ctx.app}/{self.ctx.env}", token=self.cloud.new_id("token"), owner=new_owner,
                      acquired_at=now, expires_at=now + ttl)
        self.cloud.leases[self._key()] = lease
        self._tokens.add(lease.token)
        return lease

    @_api()
    def renew_lock(self, lease: Lease, ttl: float) -> Lease:
        current = self.cloud.leases.get(self._key())
        if current is None or current.token != lease.token:
            who = describe_owner(current.owner) if current is not None else "nobody"
            raise LockHeld(f"the lock of {lease.key} was broken or taken over; it is now held by {who}")
        renewed = replace(current, expires_at=self._now() + ttl)
        self.cloud.leases[self._key()] = renewed
        return renewed

    @_api()
    def release_lock(self, lease: Lease) -> None:
        current = self.cloud.leases.get(self._key())
        if current is not None and current.token == lease.token:
            del self.cloud.leases[self._key()]

    @_api()
    def read_lock(self) -> Lease | None:
        current = self.cloud.leases.get(self._key())
        return None if current is None else replace(current, dead_reason=self._dead_reason(current))

    @_api()
    def break_lock(self) -> None:
        self.cloud.leases.pop(self._key(), None)

    # ---- quota --------------------------------------------------------------------------------------------

    @_api()
    def quota(self) -> Quota:
        count = len(self.cloud.servers) + len(self.cloud.builders)
        used = {resource: amount * count for resource, amount in SERVER_SIZE.items()}
        used["members"] = sum(len(p.members) for p in self.cloud.pools.values())
        return Quota(limits=dict(self.cloud.quota_limits), used=used, per_server=dict(SERVER_SIZE))

    # ---- the builder from code ----------------------------------------------------------------------------

    @_api(write=True)
    def builder_up(self, spec: BuilderSpec) -> Builder:
        if self.ctx.app in self.cloud.builders:
            raise Conflict(f"the builder of {self.ctx.app} is up already")
        if spec.source_image_id is not None and self._image(spec.source_image_id) is None:
            raise NotFound(f"image {spec.source_image_id} does not exist")
        failure, self.cloud.recipe_failure = (self.cloud.recipe_failure if spec.recipe else None), None
        exits = [line.strip() for line in (spec.recipe.text if spec.recipe else "").splitlines()]
        failure = failure or next((f"{line}: the recipe failed" for line in exits if re.fullmatch(r"exit [1-9]\d*", line)), None)
        builder = Builder(
            id=self.cloud.new_id("builder"), name=f"{self.ctx.app}-builder",
            status=BuilderStatus.FAILED if failure else BuilderStatus.READY,
            source_image_id=spec.source_image_id or "", recipe_sha256=spec.recipe.sha256 if spec.recipe else "",
            created_at=self._now(), detail=failure or "",
        )
        self.cloud.builders[self.ctx.app] = builder
        if failure:
            raise RecipeFailed(f"the recipe {spec.recipe.name} failed on the builder: {failure}")
        return builder

    @_api()
    def get_builder(self) -> Builder | None:
        return self.cloud.builders.get(self.ctx.app)

    @_api(write=True)
    def builder_down(self) -> bool:
        return self.cloud.builders.pop(self.ctx.app, None) is not None

    @_api()  # a no-op without a builder: never where a Conflict fault strikes
    def quiesce_builder(self) -> bool:
        builder = self.cloud.builders.get(self.ctx.app)
        if builder is None or builder.status is not BuilderStatus.READY:
            return False
        self.cloud.builders[self.ctx.app] = replace(builder, status=BuilderStatus.STOPPED)
        return True

    @_api()
    def resume_builder(self) -> bool:
        builder = self.cloud.builders.get(self.ctx.app)
        if builder is None or builder.status is not BuilderStatus.STOPPED:
            return False
        self.cloud.builders[self.ctx.app] = replace(builder, status=BuilderStatus.READY)
        return True


def memory_engine(tmp_path: Path, check: HealthCheck, *, provider_cls: type[MemoryProvider] | None = None,
                  emit=None) -> tuple[EngineContext, MemoryProvider, MemoryCloud]:
    """An engine context on a fresh memory cloud with a fake clock (demo/production, count 2, a pool made):
    what the engine tests drive releases on in process."""
    from releasectl.engine.context import EngineContext

    cloud = MemoryCloud(FakeClock())
    pctx = ProviderContext(app="demo", env="production", config_dir=tmp_path, state_dir=tmp_path, health=check,
                           app_port=8000, options={"pool": "pool"})
    provider = (provider_cls or MemoryProvider)(pctx, cloud)
    provider.ensure_pool()
    extra = {} if emit is None else {"emit": emit}
    ctx = EngineContext(provider=provider, app="demo", env="production", image_name="{app}-{version}", count=2,
                        health=check, clock=cloud.clock, actor={"user": "test"}, **extra)
    return ctx, provider, cloud
