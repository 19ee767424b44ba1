"""The provider interface: images, servers, the load-balancer pool, durable records and the lock.

This is the only thing the engine knows about a cloud. Every provider implements all of it; nothing here
does I/O. Values crossing the interface are frozen dataclasses of plain data (no driver back-references,
no `extra` grab-bag); each provider maps its own statuses onto the enums below with a table.

A provider instance is scoped to one app and one environment (`ProviderContext`): its pool is that
environment's pool, and `list_servers` returns only servers tagged with that app and environment.

Labels: providers store releasectl's labels on servers and images as string key/value metadata with the
prefix `releasectl_` (Nova metadata, Glance properties, the local manifest). The engine sees the keys
without the prefix. The well-known keys are in `Label`.
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:  # loaded on first use: see __getattr__ at the end
    from releasectl.providers.base_env import Builder, BuilderSpec, EnvChange, EnvKind, EnvResource, EnvSpec, Quota
    from releasectl.providers.base_extra import Image, MemberStats, Probe, ServerSpec

LABEL_PREFIX = "releasectl_"


class Label:
    """Well-known label keys (stored with LABEL_PREFIX by providers)."""

    APP = "app"
    VERSION = "version"
    ENV = "env"
    ROLE = "role"  # servers: Role values
    RELEASE = "release"  # servers: id of the release that launched or adopted them
    RETIRE_AFTER = "retire_after"  # servers: epoch seconds after which a warm previous fleet is retired
    SOURCE = "source"  # images: where the snapshot came from
    CREATED_BY = "created_by"  # images: releasectl version that baked it
    OUTCOME = "outcome"  # images: ImageOutcome value, set by the engine
    PORT = "port"  # images: the app's port (the openstack provider needs it for members)
    DAMAGED = "damaged"  # set by a provider, never stored: the resource's state file is unreadable (why)
    SOURCE_IMAGE = "source_image"  # images: the image (id) the builder was booted from; "base" without one
    RECIPE_SHA256 = "recipe_sha256"  # images: sha256 of the recipe applied to the builder ("" without one)
    BAKED_AT = "baked_at"  # images: epoch seconds of the snapshot
    BUILDER = "builder"  # servers: the app's builder from code (never tagged with an env, so never in a fleet)


class Role(str, enum.Enum):
    """What a server is for. Stored as the `role` label."""

    CANDIDATE = "candidate"  # launched by a release in progress
    STABLE = "stable"  # serving the live version
    PREVIOUS = "previous"  # the last live fleet, kept warm (drained, weight 0) for a fast rollback
    STAGING = "staging"  # launched by `stage`, never in the pool


class ImageOutcome(str, enum.Enum):
    """What happened to a version, recorded on its image. Rollback only ever targets RELEASED."""

    RELEASED = "released"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class ServerStatus(str, enum.Enum):
    BUILDING = "building"
    ACTIVE = "active"
    ERROR = "error"
    STOPPED = "stopped"  # local: the process exited on its own
    DELETING = "deleting"


class ImageStatus(str, enum.Enum):
    PENDING = "pending"  # queued / saving / being written
    ACTIVE = "active"
    FAILED = "failed"  # killed, deleted under us, or failed integrity


class Health(str, enum.Enum):
    """Health of a pool member as the load balancer sees it."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # checks ran and failed (HAProxy DOWN, Octavia ERROR)
    UNKNOWN = "unknown"  # not checked yet, checks disabled, or no monitor


class LBStatus(str, enum.Enum):
    """The load balancer itself, as `lb_state` observes it."""

    UP = "up"  # serving traffic
    DOWN = "down"  # local: the HAProxy process or its admin socket is gone; `ensure_pool` restarts it
    BUSY = "busy"  # cloud: an update is in flight (PENDING_*); writes answer Conflict until it settles
    ERROR = "error"  # cloud: the LB is in ERROR; it needs an operator (a failover), not a retry
    ABSENT = "absent"  # no LB yet (before the first rollout) or after `down`


@dataclass(frozen=True)
class LBState:
    """The load balancer itself, as `lb_state` observes it."""

    status: LBStatus
    detail: str = ""  # the provider's own words: "haproxy pid 4242 is gone", "provisioning_status ERROR"


class AdminState(str, enum.Enum):
    READY = "ready"  # eligible for traffic by weight
    DRAIN = "drain"  # no new load-balanced requests; in-flight ones finish
    MAINT = "maint"  # out of rotation (added, not yet enabled; or on its way out)


@dataclass(frozen=True)
class HealthCheck:
    """The app's health check, used by the LB monitor and by releasectl's own probes."""

    path: str = "/healthz"
    expected_status: int = 200
    interval: float = 1.0
    timeout: float = 2.0
    rise: int = 2
    fall: int = 2


@dataclass(frozen=True)
class ProviderContext:
    """Everything a provider is constructed with. `options` is the provider's validated config section."""

    app: str
    env: str
    config_dir: Path
    state_dir: Path
    health: HealthCheck
    app_port: int
    options: Mapping[str, Any] = field(default_factory=dict)
    verbose: bool = False


@dataclass(frozen=True)
class Server:
    """One server of this app and environment, as the provider lists it."""

    id: str
    name: str
    app: str
    version: str
    env: str
    role: Role | None
    release_id: str
    status: ServerStatus
    address: str | None  # where the app listens (IP); None until known
    port: int | None
    image_id: str = ""
    created_at: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)  # every releasectl label, without prefix
    fault: str | None = None  # the provider's reason for ERROR/STOPPED


@dataclass(frozen=True)
class Member:
    """A load-balancer pool member. `id` is what set_weights/drain/remove take."""

    id: str
    name: str
    address: str
    port: int
    weight: int
    admin: AdminState
    health: Health
    sessions: int | None = None  # current sessions; None when the LB cannot tell (Octavia)
    server_id: str | None = None  # the Server behind it, when the provider can tell
    version: str | None = None
    # Ownership (invariant I3): the app and environment whose tags the member carries (Octavia member
    # `tags`/name prefix; the local LB owns all its members). None: not releasectl's, never touched.
    app: str | None = None
    env: str | None = None
    health_detail: str = ""  # the LB's own word for `health`, for messages (e.g. "ERROR in Octavia")

    def owned_by(self, app: str, env: str) -> bool:
        return self.app == app and self.env == env


@dataclass(frozen=True)
class StateIssue:
    """One damaged or inconsistent piece of a provider's own state, for `releasectl doctor`.

    `key` is what fix_state takes back; `fix` says in one line what fix_state would do."""

    key: str
    path: str  # the file, folder or process concerned
    problem: str
    fix: str


@dataclass(frozen=True)
class Capabilities:
    """What a provider can tell and do, so the engine asks for nothing it cannot have."""

    max_weight: int = 256
    member_sessions: bool = True  # Member.sessions is meaningful, so a drain can wait for 0
    member_stats: bool = True  # member_stats() returns data
    own_probes: bool = True  # False: probe() only relays the LB's verdict (openstack `probe: false`)


@dataclass(frozen=True)
class Lease:
    """A held lock. `token` identifies this holder; renew/release must present it."""

    key: str
    token: str
    owner: Mapping[str, str]  # host, pid, user, ci_job, command
    acquired_at: float
    expires_at: float
    dead_reason: str | None = None  # set by read_lock when the provider knows the holder is gone

    def alive(self, now: float) -> bool:
        """Whether the holder may still be running: its lease is current and nothing says it died."""
        return self.dead_reason is None and self.expires_at > now


def this_host() -> str:
    """This machine's name, as locks and claims record their holder's host and as the dead-holder checks
    compare it (one reading, so the two always agree): the kernel's node name, what socket.gethostname()
    returns, read without importing socket (every command names its actor, `status` included)."""
    import os

    return os.uname().nodename


def describe_owner(owner: Mapping[str, str]) -> str:
    """How every message names a lock holder: 'rollout by alice@ci-7 (pid 4242, CI job CI_JOB_ID=991)'."""
    who = f"{owner.get('command') or 'releasectl'} by {owner.get('user', '?')}@{owner.get('host', '?')} (pid {owner.get('pid', '?')}"
    if owner.get("ci_job"):
        who += f", CI job {owner['ci_job']}"
    return who + ")"


def format_utc(ts: float) -> str:
    """Epoch seconds as '2026-11-25T22:58:03Z' (RFC 3339, releasectl.timefmt), for messages."""
    from releasectl.timefmt import rfc3339

    return rfc3339(ts) or "-"


UNLIMITED = -1
PLACEHOLDER = "CHANGE-ME"  # what `init` writes for a resource it found nothing to choose for (config and providers read it)
RECIPE_DONE = "RELEASECTL-RECIPE-DONE"  # the line a recipe run prints when it finished well
RECIPE_FAILED = "RELEASECTL-RECIPE-FAILED"  # ... and when it failed (followed by its exit status)


class Provider(ABC):
    """One cloud behind one interface. Every method is idempotent where its docstring says so."""

    name: str = "base"
    capabilities: Capabilities = Capabilities()

    def __init__(self, ctx: ProviderContext) -> None:
        self.ctx = ctx

    # ---- images (shared by all environments of the app) --------------------------------------------

    @abstractmethod
    def list_images(self) -> list[Image]:
        """Images of this app that are PENDING or ACTIVE. FAILED ones may be included; any order."""

    @abstractmethod
    def get_image(self, image_id: str) -> Image | None:
        """None when it does not exist."""

    @abstractmethod
    def bake_image(self, version: str, name: str, labels: Mapping[str, str]) -> Image:
        """Snapshot the builder into a new image and return it ACTIVE, or raise.

        Atomic: if this raises or the process dies, no ACTIVE image for the version is left listed, and a
        PENDING leftover is cleaned up by the next bake of that version or by `gc`. It never replaces an
        existing image; the engine deletes first when forcing.
        """

    @abstractmethod
    def update_image(
        self, image_id: str, *, labels: Mapping[str, str | None] | None = None, protected: bool | None = None
    ) -> Image:
        """Set labels (a None value removes the label) and/or the protected flag."""

    @abstractmethod
    def delete_image(self, image_id: str) -> None:
        """Idempotent: a missing image is success. Unprotects first when needed."""

    # ---- servers (this app and environment) ---------------------------------------------------------

    @abstractmethod
    def list_servers(self) -> list[Server]:
        """Servers tagged with this app and environment, found by labels (never by name pattern)."""

    @abstractmethod
    def get_server(self, server_id: str) -> Server | None:
        """None when it is gone."""

    @abstractmethod
    def create_server(self, spec: ServerSpec) -> Server:
        """Start booting. Returns promptly (possibly BUILDING); the engine waits with `wait_for`.

        Never creates a duplicate: on an ambiguous result the provider looks the name up before retrying.
        """

    def create_servers(self, specs: Sequence[ServerSpec]) -> list[Server]:
        """create_server for a whole fleet; a provider may create them in parallel (bounded). Each create keeps
        create_server's no-duplicate rule. This default creates them one by one."""
        return [self.create_server(spec) for spec in specs]

    @abstractmethod
    def update_server_labels(self, server_id: str, labels: Mapping[str, str | None]) -> Server:
        """Merge labels (None removes one)."""

    def update_servers_labels(self, server_ids: Sequence[str], labels: Mapping[str, str | None]) -> None:
        """update_server_labels with the same labels for several servers; a provider may write them in
        parallel (bounded). This default writes them one by one."""
        for server_id in server_ids:
            self.update_server_labels(server_id, labels)

    @abstractmethod
    def delete_server(self, server_id: str) -> None:
        """Stop and delete; return once it is gone. Idempotent. Callers remove its pool member first."""

    @abstractmethod
    def probe(self, server: Server, path: str, timeout: float) -> Probe:
        """One HTTP GET of `path` on the server's app, from the runner. Never raises for HTTP errors."""

    # ---- the load-balancer pool of this environment -------------------------------------------------

    @abstractmethod
    def ensure_pool(self) -> None:
        """Make the pool usable: start the local LB, or check the cloud pool and its health monitor."""

    @abstractmethod
    def pool_endpoint(self) -> str | None:
        """The URL clients use (e.g. http://127.0.0.1:8080), or None when there is no LB yet."""

    @abstractmethod
    def list_members(self) -> list[Member]:
        """Every member of the pool, including ones releasectl did not add. Empty when no LB runs."""

    @abstractmethod
    def add_member(self, server: Server) -> Member:
        """Add the server with weight 0 so it takes no traffic until set_weights raises it.

        Idempotent: a member for the same address and port is adopted. The LB starts health-checking it;
        the provider never puts a member whose checks have not passed into rotation.
        """

    @abstractmethod
    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Apply the weights (member id -> 0..max_weight) in one change, then verify by reading back.

        Members not named keep their weight. Weight 0 means drain: no new requests. A member in MAINT
        that gets a weight above 0 is put into rotation (only if its checks pass).
        """

    @abstractmethod
    def remove_member(self, member_id: str) -> None:
        """Take the member out of the pool for good. Idempotent. Callers drain it first."""

    def add_members(self, servers: Sequence[Server]) -> list[Member]:
        """add_member for a whole fleet in one LB change where the provider can (one Octavia batch PUT, one
        HAProxy runtime session): the same contract per server. This default adds them one by one."""
        return [self.add_member(server) for server in servers]

    def remove_members(self, member_ids: Sequence[str]) -> None:
        """remove_member for several members in one LB change where the provider can. Idempotent."""
        for member_id in member_ids:
            self.remove_member(member_id)

    def delete_servers(self, server_ids: Sequence[str]) -> None:
        """delete_server for several servers; a provider deletes them in parallel (bounded) and waits once."""
        for server_id in server_ids:
            self.delete_server(server_id)

    @abstractmethod
    def member_stats(self) -> Mapping[str, MemberStats]:
        """Cumulative counters by member id; empty when capabilities.member_stats is False."""

    def lb_state(self) -> LBState:
        """Observe the load balancer itself (read-only, cheap, never restarts anything)."""
        raise NotImplementedError(f"{self.name} provider has no lb_state")

    @abstractmethod
    def destroy_pool(self) -> None:
        """For `releasectl down`: stop an LB that releasectl owns (local). No-op for a cloud pool."""

    # ---- durable records: where release state lives, so any runner can resume --------------------

    @abstractmethod
    def read_record(self, key: str) -> str | None:
        """The stored document for key (scoped to this app and environment), or None."""

    @abstractmethod
    def write_record(self, key: str, data: str) -> None:
        """Store the document durably and atomically (a reader sees the old or the new, never half)."""

    @abstractmethod
    def list_records(self, prefix: str) -> list[str]:
        """Keys starting with prefix."""

    def create_record(self, key: str, data: str) -> bool:
        """Create-only write: store the document unless the key exists. True if this call created it.

        Atomic on the provider (O_EXCL under the records folder locally, `If-None-Match: *` on Swift), so
        two writers never both win. Operator intents use it: they are never overwritten, only added."""
        raise NotImplementedError(f"{self.name} provider has no create_record")

    def delete_record(self, key: str) -> None:
        """Remove the document. Idempotent: a missing key is success."""
        raise NotImplementedError(f"{self.name} provider has no delete_record")

    def quarantine_record(self, key: str) -> str | None:
        """Move an unreadable record aside (kept for a person to read, no longer read by releasectl).
        Returns where it went, or None when there was no such record. This default copies it under
        `quarantine/` and deletes the original; a provider with files renames them instead."""
        text = self.read_record(key)
        if text is None:
            return None
        aside = f"quarantine/{format_utc(time.time()).replace(' ', 'T')}-{key}"
        self.write_record(aside, text)
        self.delete_record(key)
        return f"record {aside!r}"

    # ---- environment resources (`env plan/up/down`) ------------------------------------------------------

    def env_kinds(self) -> frozenset[EnvKind]:
        """The kinds of environment resource this provider builds; the engine plans only these."""
        return frozenset()

    def env_observe(self, spec: EnvSpec) -> list[EnvResource]:
        """The environment's resources as they are: those this app and environment own (found by their
        tags, never by name alone where the cloud has tags) and the existing ones `spec` names. Read-only;
        waits (bounded) for resources in a transitional state to settle."""
        raise NotImplementedError(f"{self.name} provider does not build environments")

    def env_apply(self, change: EnvChange, known: Mapping[str, EnvResource]) -> EnvResource | None:
        """Make one change and wait until it has landed; return the resource as now observed (None after a
        DELETE). `known` holds every resource observed or made so far, by key, to resolve references. A
        create whose answer is lost is looked up before it is retried (no duplicates); a delete of something
        already gone is success."""
        raise NotImplementedError(f"{self.name} provider does not build environments")

    # ---- doctor: the provider's own state files --------------------------------------------------------

    def check_state(self) -> list[StateIssue]:
        """Damaged or inconsistent state the provider keeps for itself (files, orphaned processes). Read-only.
        Release records are the engine's to check. A provider without such state has nothing to report."""
        return []

    def fix_state(self, issue: StateIssue) -> str:
        """Do what `issue.fix` says; return what was done. Called under the release lock."""
        raise NotImplementedError(f"{self.name} provider has no state to fix")

    # ---- the lock: one release at a time per app and environment ---------------------------------

    @abstractmethod
    def acquire_lock(self, owner: Mapping[str, str], ttl: float) -> Lease:
        """Take the lock atomically, or raise LockHeld naming the holder and when its lease expires.

        A lease that has expired (or, where the provider can tell, whose holder process is dead) belongs to
        a dead holder: it is taken over in the same atomic step, and the returned Lease's owner records
        `took_over` naming the previous holder."""

    @abstractmethod
    def renew_lock(self, lease: Lease, ttl: float) -> Lease:
        """Extend the lease; raise LockHeld if it was broken or taken over."""

    @abstractmethod
    def release_lock(self, lease: Lease) -> None:
        """Give the lock up. Idempotent; does nothing if another holder has it now."""

    @abstractmethod
    def read_lock(self) -> Lease | None:
        """The current holder, live or expired, or None."""

    @abstractmethod
    def break_lock(self) -> None:
        """Remove whatever lock is there (for `unlock`)."""

    # ---- quota -----------------------------------------------------------------------------------------

    def quota(self) -> Quota:
        """The project's limits and usage (read-only). This default knows no limit: nothing is refused."""
        from releasectl.providers.base_env import Quota

        return Quota()

    # ---- the builder from code (one per app) ---------------------------------------------------------

    def builder_up(self, spec: BuilderSpec) -> Builder:
        """Bring the builder up from spec.source_image_id (or the base) and apply spec.recipe, waiting at most
        spec.timeout for the recipe's RECIPE_DONE. Returns it READY, or raises RecipeFailed (its output's tail)
        or WaitTimeout, leaving the builder for `get_builder` and `builder_down`. The engine refuses while one
        is up; the provider never replaces one."""
        raise NotImplementedError(f"{self.name} provider has no builder from code")

    def get_builder(self) -> Builder | None:
        """The builder brought up by builder_up, or None."""
        return None

    def builder_down(self) -> bool:
        """Remove the builder that builder_up made (and nothing else). Idempotent: False when there was none."""
        return False

    def quiesce_builder(self) -> bool:
        """Stop the builder before a snapshot (Nova os-stop), so its disk is consistent. True if it stopped
        something that resume_builder must start again; False where there is nothing to stop (a folder)."""
        return False

    def resume_builder(self) -> bool:
        """Start the builder that quiesce_builder stopped (also when quiesce_builder failed after its stop went
        out), and wait until it runs again. False when it had stopped nothing."""
        return False

    def close(self) -> None:
        """Release client resources (HTTP sessions). Never stops servers or the LB."""


# The environment, quota and builder types (`env`, `quota`, `bake --from-code`) live in base_env.py, and the image,
# boot, probe and traffic-counter types in base_extra.py, both loaded on first use: creating their dataclasses
# costs every command's start-up, and `status` never makes one. This module stays the one interface:
# `from releasectl.providers.base import EnvSpec` (or Image) works as before.
_LAZY = {
    **dict.fromkeys(("EnvKind", "ENV_ORDER", "EnvSpec", "EnvAction", "EnvResource", "EnvChange", "Quota", "Recipe",
                     "BuilderSpec", "BuilderStatus", "Builder"), "base_env"),
    **dict.fromkeys(("Image", "ServerSpec", "MemberStats", "Probe"), "base_extra"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"releasectl.providers.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
