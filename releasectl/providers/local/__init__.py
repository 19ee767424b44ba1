"""The local provider: releasectl's embedded default, with no cloud.

Images are tar.gz snapshots of a builder folder, servers are processes on loopback, and the pool is one
HAProxy per app and environment driven through its runtime API. It is the reference implementation of
`releasectl.providers.base`.

Everything lives under `ctx.state_dir`:

    images/                      shared by every environment of the app (images.py)
    envs/<env>/servers/          one folder per server (servers.py)
    envs/<env>/lb/               HAProxy's config, state, pid and socket (pool.py)
    envs/<env>/records/          durable records (records.py)
    envs/<env>/lock.json         the release lock's owner record (records.py)

Options (`local:` in releasectl.yaml): builder (default "app", relative to the config folder),
start_command (default ["{python}", "app.py"]; {python} is this interpreter, {port} the server's port),
lb_port (8080), lb_bind (127.0.0.1), stop_timeout (10 s), haproxy ("haproxy"), drain_timeout (30 s).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from releasectl.errors import ConfigError
from releasectl.providers.base import (
    Capabilities,
    LBStatus,
    LBState,
    Lease,
    Member,
    Provider,
    ProviderContext,
    Server,
    StateIssue,
)

from .files import encode_name
from .haproxy import bind_address
from .images import ImageStore
from .pool import MAX_WEIGHT, Pool
from .records import LockStore, RecordStore
from .servers import ServerStore

if TYPE_CHECKING:  # the env and builder types: imported by the methods that make them (start-up of `status`)
    from releasectl.providers.base import (Builder, BuilderSpec, EnvChange, EnvKind, EnvResource, EnvSpec, Image,
                                           MemberStats, Probe, ServerSpec)

    from .builder import LocalBuilder

__all__ = ["LocalProvider"]

DEFAULTS: dict[str, Any] = {
    "builder": "app",
    "start_command": ["{python}", "app.py"],
    "lb_port": 8080,
    "lb_bind": "127.0.0.1",
    "stop_timeout": 10.0,
    "haproxy": "haproxy",
    "drain_timeout": 30.0,
}


def _options(raw: Mapping[str, Any]) -> dict[str, Any]:
    opts = {**DEFAULTS, **{k: v for k, v in raw.items() if v is not None}}
    cmd = opts["start_command"]
    if isinstance(cmd, str):
        import shlex  # here: a command given as a list (as `init` writes it) is not split

        cmd = shlex.split(cmd)
    if not isinstance(cmd, (list, tuple)) or not cmd or not all(isinstance(a, str) for a in cmd):
        raise ConfigError("local.start_command must be a non-empty list of strings")
    opts["start_command"] = list(cmd)
    try:
        opts["lb_port"] = int(opts["lb_port"])
        opts["stop_timeout"] = float(opts["stop_timeout"])
        opts["drain_timeout"] = float(opts["drain_timeout"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"local: {exc}") from exc
    if not 0 < opts["lb_port"] < 65536:
        raise ConfigError(f"local.lb_port {opts['lb_port']} is not a TCP port")
    opts["lb_bind"] = str(opts["lb_bind"])
    bind_address(opts["lb_bind"], opts["lb_port"])  # it goes into haproxy.cfg: an IP address, nothing else
    return opts


class LocalProvider(Provider):
    name = "local"
    capabilities = Capabilities(max_weight=MAX_WEIGHT, member_sessions=True, member_stats=True)

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        opts = _options(ctx.options)
        self.options = opts
        state = Path(ctx.state_dir)
        self.env_dir = state / "envs" / encode_name(ctx.env)
        self.builder = (Path(ctx.config_dir) / str(opts["builder"])).resolve()
        self.images = ImageStore(state / "images", ctx.app, exclude=state)
        self.servers = ServerStore(
            self.env_dir / "servers",
            app=ctx.app,
            env=ctx.env,
            images=self.images,
            start_command=opts["start_command"],
            stop_timeout=opts["stop_timeout"],
            avoid_ports={opts["lb_port"]},
        )
        self.pool = Pool(
            self.env_dir / "lb",
            app=ctx.app,
            env=ctx.env,
            health=ctx.health,
            bind=str(opts["lb_bind"]),
            port=opts["lb_port"],
            haproxy_bin=str(opts["haproxy"]),
            stop_timeout=opts["stop_timeout"],
            drain_timeout=opts["drain_timeout"],
            servers=self.servers.list,
        )
        self.records = RecordStore(self.env_dir / "records")
        self.lock = LockStore(self.env_dir, f"{ctx.app}/{ctx.env}")

    @functools.cached_property
    def from_code(self) -> LocalBuilder:
        """The builder from code (bake, builder up/down), made on first use: its module is not on `status`'s path."""
        from .builder import LocalBuilder

        state = Path(self.ctx.state_dir)
        return LocalBuilder(state / "builder", base=self.builder, unpack=self.images.unpack, exclude=state)

    # ---- images -------------------------------------------------------------------------------------

    def list_images(self) -> list[Image]:
        return self.images.list()

    def get_image(self, image_id: str) -> Image | None:
        return self.images.get(image_id)

    def bake_image(self, version: str, name: str, labels: Mapping[str, str]) -> Image:
        made = self.from_code.get()  # a builder from code, while it is up, is what bake snapshots
        return self.images.bake(self.from_code.tree if made is not None else self.builder, version, name, labels)

    def update_image(
        self, image_id: str, *, labels: Mapping[str, str | None] | None = None, protected: bool | None = None
    ) -> Image:
        return self.images.update(image_id, labels=labels, protected=protected)

    def delete_image(self, image_id: str) -> None:
        self.images.delete(image_id)

    def verify_image(self, image_id: str) -> Image:
        """Local only: re-hash the archive now. Returns it ACTIVE or raises ResourceFailure (NotFound)."""
        return self.images.verify(image_id)

    # ---- servers ------------------------------------------------------------------------------------

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

    def delete_server(self, server_id: str) -> None:
        self.servers.delete(server_id)

    def delete_servers(self, server_ids: Sequence[str]) -> None:
        self.servers.delete_many(list(server_ids))

    def probe(self, server: Server, path: str, timeout: float) -> Probe:
        return self.servers.probe(server, path, timeout)

    def server_log_path(self, server_id: str) -> Path:
        """Local only: the file that holds the server process's stdout and stderr."""
        return self.servers.log_path(server_id)

    # ---- pool ---------------------------------------------------------------------------------------

    def ensure_pool(self) -> None:
        self.pool.ensure()

    def pool_endpoint(self) -> str | None:
        return self.pool.endpoint()

    def list_members(self) -> list[Member]:
        return self.pool.members()

    def add_member(self, server: Server) -> Member:
        return self.pool.add(server)

    def add_members(self, servers: Sequence[Server]) -> list[Member]:
        return self.pool.add_many(list(servers)) if servers else []

    def set_weights(self, weights: Mapping[str, int]) -> None:
        self.pool.set_weights(weights)

    def remove_member(self, member_id: str) -> None:
        self.pool.remove(member_id)

    def remove_members(self, member_ids: Sequence[str]) -> None:
        if member_ids:
            self.pool.remove_many(list(member_ids))

    def member_stats(self) -> Mapping[str, MemberStats]:
        return self.pool.stats()

    def lb_state(self) -> LBState:
        return self.pool.state()

    def destroy_pool(self) -> None:
        self.pool.destroy()

    def lb_log_path(self) -> Path:
        """Local only: HAProxy's log (start-up errors, state changes)."""
        return self.pool.log_path

    # ---- environment (`env plan/up/down`): the state folders and the HAProxy load balancer -----------------

    ENV_FOLDERS = ("servers", "records", "lb")

    def env_kinds(self) -> frozenset[EnvKind]:
        from releasectl.providers.base import EnvKind

        return frozenset({EnvKind.FOLDER, EnvKind.LOADBALANCER})

    def env_observe(self, spec: EnvSpec) -> list[EnvResource]:
        from releasectl.providers.base import EnvKind, EnvResource

        name = f"{self.ctx.app}-{self.ctx.env}"
        out = []
        if all((self.env_dir / sub).is_dir() for sub in self.ENV_FOLDERS):
            out.append(EnvResource(EnvKind.FOLDER, name, id=str(self.env_dir)))
        if self.lb_state().status is LBStatus.UP:  # a stopped HAProxy counts as missing: `up` starts it again
            out.append(EnvResource(EnvKind.LOADBALANCER, name, id=str(self.env_dir / "lb"),
                                   attrs={"address": self.pool_endpoint() or ""}))
        return out

    def env_apply(self, change: EnvChange, known: Mapping[str, EnvResource]) -> EnvResource | None:
        from releasectl.providers.base import EnvAction, EnvKind, EnvResource

        r = change.resource
        if change.action is EnvAction.DELETE:
            if r.kind is EnvKind.LOADBALANCER:
                self.destroy_pool()
            else:  # only empty folders go: records are the environment's history
                for sub in self.ENV_FOLDERS:
                    folder = self.env_dir / sub
                    if folder.is_dir() and not any(folder.iterdir()):
                        folder.rmdir()
            return None
        if r.kind is EnvKind.FOLDER:
            for sub in self.ENV_FOLDERS:
                (self.env_dir / sub).mkdir(parents=True, exist_ok=True)
            return EnvResource(EnvKind.FOLDER, r.name, id=str(self.env_dir))
        self.ensure_pool()
        return EnvResource(EnvKind.LOADBALANCER, r.name, id=str(self.env_dir / "lb"), attrs={"address": self.pool_endpoint() or ""})

    # ---- records and the lock -----------------------------------------------------------------------

    def read_record(self, key: str) -> str | None:
        return self.records.read(key)

    def write_record(self, key: str, data: str) -> None:
        self.records.write(key, data)

    def list_records(self, prefix: str) -> list[str]:
        return self.records.list(prefix)

    def quarantine_record(self, key: str) -> str | None:
        return self.records.quarantine(key, self.env_dir / "quarantine")

    # ---- doctor -------------------------------------------------------------------------------------

    def check_state(self) -> list[StateIssue]:
        from . import doctor

        return doctor.check(self)

    def fix_state(self, issue: StateIssue) -> str:
        from . import doctor

        return doctor.fix(self, issue)

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

    # ---- the builder from code: a folder ----------------------------------------------------------------

    def builder_up(self, spec: BuilderSpec) -> Builder:
        return self.from_code.up(spec)

    def get_builder(self) -> Builder | None:
        return self.from_code.get()

    def builder_down(self) -> bool:
        return self.from_code.down()
