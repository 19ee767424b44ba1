"""The pool: one HAProxy per app and environment, started detached and owned by releasectl.

    envs/<env>/lb/
        lb.json          pid, pid_start, boot_id, socket, bind, port of the running HAProxy
        haproxy.cfg      rendered from members.json; rewritten after every pool change
        members.json     the members (name, address, port, weight, admin state) as last read back
        server-state     `show servers state` dumped after every change (server-state-file, G6)
        lb.log           HAProxy's stderr
        pool.lock        flock held around every pool change, so two CLI runs never interleave
        admin.sock       the admin socket, or under /tmp/releasectl-<hash>/ when this path is too long

Member ids are HAProxy server names; releasectl names its members after the server id.

Supervision: `state()` says whether the HAProxy recorded in lb.json is UP, DOWN (process gone, its PID
reused, stopped, or its admin socket silent) or ABSENT (never started, or stopped by `down`). `ensure()`,
and every pool change that finds it DOWN, restarts it from haproxy.cfg and the server-state file and
re-asserts members.json (names, addresses, weights, admin states). While it is DOWN, `members()` reports
the members it will come back with (health UNKNOWN, sessions unknown), never an empty pool: an empty pool
would read as "every member left".
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Collection, Mapping

from releasectl.errors import Conflict, DamagedState, NotFound, ProviderError, ResourceFailure, UsageError, WaitTimeout
from releasectl.logs import Logger
from releasectl.providers.base import (
    AdminState,
    Health,
    HealthCheck,
    LBState,
    LBStatus,
    Member,
    Server,
)
from releasectl.wait import wait_for

from . import procs, recovery
from .files import atomic_write, check_fields, flocked, read_json, write_json
from .haproxy import (
    BACKEND,
    LBUnavailable,
    MemberConfig,
    RuntimeAPI,
    add_server_command,
    admin_state,
    checks_running,
    member_health,
    render_config,
)

if TYPE_CHECKING:
    from releasectl.providers.base import MemberStats

log = Logger("releasectl.providers.local")

MAX_WEIGHT = 256
PING_TIMEOUT = 1.0  # an admin socket slower than this to answer `show info` counts as dead
SOCKET_PATH_LIMIT = 90  # HAProxy 2.6 refuses more than 97 bytes (it binds "<path>.<pid>.tmp" first)
MEMBER_SCHEMA = {
    "name": (str,),
    "address": (str,),
    "port": (int,),
    "weight": (int, None),
    "admin": (str, None),
    "checks_running": (bool, None),
    "owned": (bool, None),
}
LB_SCHEMA = {
    "pid": (int,),
    "pid_start": (int, None),
    "boot_id": (str, None),
    "socket": (str,),
    "bind": (str, None),
    "port": (int, None),
    "started_at": (int, float, None),
}
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def read_members(path: Path) -> list[MemberConfig]:
    """members.json through the state reader; DamagedState when it does not hold member entries."""
    data = read_json(path, kind=list) or []
    members = []
    for entry in data:
        if not isinstance(entry, dict):
            raise DamagedState(str(path), f"holds a JSON {type(entry).__name__} where a member belongs")
        check_fields(path, entry, MEMBER_SCHEMA)
        entry = {k: v for k, v in entry.items() if v is not None}  # null is "not given": the defaults apply
        # nothing from this file reaches haproxy.cfg unless it is what releasectl itself writes there
        if not set(entry["name"]) <= _NAME_OK or not entry["name"]:
            raise DamagedState(str(path), f"member name {entry['name'][:40]!r} has characters HAProxy names never have")
        try:
            ipaddress.ip_address(entry["address"])
        except ValueError:
            raise DamagedState(str(path), f"member address {entry['address'][:40]!r} is not an IP address") from None
        if not 0 < entry["port"] < 65536 or not 0 <= entry.get("weight", 0) <= MAX_WEIGHT:
            raise DamagedState(str(path), f"member {entry['name']} has a port or weight out of range")
        if entry.get("admin", AdminState.READY.value) not in AdminState._value2member_map_:
            raise DamagedState(str(path), f"member {entry['name']} has an unknown admin state")
        members.append(MemberConfig.from_json(entry))
    return members


class Pool:
    def __init__(
        self,
        root: Path,
        *,
        app: str,
        env: str,
        health: HealthCheck,
        bind: str,
        port: int,
        haproxy_bin: str,
        stop_timeout: float,
        drain_timeout: float,
        servers: Callable[[], list[Server]],
    ) -> None:
        self.root = root
        self.app = app
        self.env = env
        self.health = health
        self.bind = bind
        self.port = port
        self.haproxy_bin = haproxy_bin
        self.stop_timeout = stop_timeout
        self.drain_timeout = drain_timeout
        self._servers = servers
        self.cfg_path = root / "haproxy.cfg"
        self.members_path = root / "members.json"
        self.state_path = root / "server-state"
        self.info_path = root / "lb.json"
        self.log_path = root / "lb.log"
        self.lock_path = root / "pool.lock"

    # ---- process and socket -----------------------------------------------------------------------

    def socket_path(self) -> str:
        """admin.sock beside the config, or a short path under /tmp when that would be too long."""
        preferred = str(self.root.resolve() / "admin.sock")
        if len(preferred.encode()) <= SOCKET_PATH_LIMIT:
            return preferred
        return str(self._short_socket_dir() / "admin.sock")

    def _short_socket_dir(self) -> Path:
        import hashlib  # here: only a state folder too deep for a socket path needs it

        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:16]
        return Path("/tmp") / f"releasectl-{digest}"

    def _info(self) -> dict | None:
        """lb.json; when it is damaged, what it would say, rebuilt from the HAProxy that runs this pool's
        config (so a damaged lb.json never leaves an LB that nothing can stop)."""
        try:
            info = read_json(self.info_path, LB_SCHEMA)
        except DamagedState as exc:
            info = self.recovered_info()
            log.info("%s; %s", exc, f"found its HAProxy as pid {info['pid']}" if info else "no HAProxy of it runs")
        return info if info and info.get("pid") else None

    def recovered_info(self) -> dict | None:
        """lb.json's content for the HAProxy running this pool's config, found by folder and command line."""
        proc = recovery.haproxy_process(self.root, self.cfg_path)
        if proc is None:
            return None
        return {"pid": proc.pid, "pid_start": proc.start, "boot_id": proc.boot, "socket": self.socket_path(),
                "bind": self.bind, "port": self.port, "recovered": True}

    @staticmethod
    def _proc(info: dict) -> procs.ProcId:
        return procs.ProcId(int(info["pid"]), int(info.get("pid_start", -1)), str(info.get("boot_id", "")))

    def running(self) -> dict | None:
        """lb.json when its HAProxy process is alive, else None."""
        info = self._info()
        if info is not None and procs.is_alive(self._proc(info)):
            return info
        return None

    def _process_down(self, proc: procs.ProcId) -> LBState | None:
        """DOWN when the recorded HAProxy is gone or stopped, from /proc alone; None while it runs."""
        pid = proc.pid
        if not procs.is_alive(proc):
            if procs.pid_is_running(pid):
                return LBState(LBStatus.DOWN, f"haproxy pid {pid} is gone (the PID now belongs to another process)")
            return LBState(LBStatus.DOWN, f"haproxy pid {pid} is gone")
        if procs.is_stopped(proc):
            return LBState(LBStatus.DOWN, f"haproxy pid {pid} is stopped (SIGSTOP)")
        return None

    def _observe(self, info: dict) -> LBState:
        """UP or DOWN for the HAProxy recorded in `info`. Read-only: /proc and one `show info`."""
        proc = self._proc(info)
        pid = info["pid"]
        down = self._process_down(proc)
        if down is not None:
            return down
        if not RuntimeAPI(str(info["socket"])).ping(PING_TIMEOUT):
            # a kill or a SIGSTOP shows in /proc only once the kernel has acted on it: look again after the ping,
            # so the operator reads the cause, not its symptom
            down = self._process_down(proc)
            if down is not None:
                return down
            return LBState(LBStatus.DOWN, f"haproxy pid {pid} runs but its admin socket {info['socket']} does not answer")
        return LBState(LBStatus.UP, f"haproxy pid {pid} on {info.get('bind', self.bind)}:{info.get('port', self.port)}")

    def state(self) -> LBState:
        """The LB's state for `lb_state`: cheap, read-only, never restarts anything."""
        try:
            info = self._info()
        except ProviderError as exc:  # a damaged lb.json: ensure() fails on it too, so it is down
            return LBState(LBStatus.DOWN, exc.message)
        if info is None:
            return LBState(LBStatus.ABSENT, f"no load balancer for {self.app}/{self.env} (none started yet, or "
                                            "stopped by `releasectl down`)")
        return self._observe(info)

    def _api(self, info: dict | None = None) -> RuntimeAPI:
        info = info or self.running()
        if info is None:
            raise ProviderError(
                f"no load balancer runs for {self.app}/{self.env}",
                hint="a rollout starts it (ensure_pool); `releasectl status` shows it",
            )
        return RuntimeAPI(str(info["socket"]))

    def _live_api(self) -> RuntimeAPI:
        """The admin socket for a pool change, restarting a DOWN HAProxy first (the change needs it).
        The caller holds the pool lock. An ABSENT LB is not started here: that is ensure()'s job."""
        info = self._info()
        if info is not None:
            state = self._observe(info)
            if state.status is not LBStatus.UP:
                log.warning("the load balancer of %s/%s is down (%s); restarting it", self.app, self.env, state.detail)
                self._stop_dead(info)
                info = self._start()
        return self._api(info)

    def _members_config(self) -> list[MemberConfig]:
        """members.json; a damaged one is reported and taken as empty (a rollout re-adds its members)."""
        try:
            return read_members(self.members_path)
        except DamagedState as exc:
            log.info("%s; starting from no members", exc)
        return []

    def _render(self, members: list[MemberConfig], socket_path: str) -> str:
        return render_config(
            bind=self.bind,
            port=self.port,
            socket_path=socket_path,
            state_file=str(self.state_path.resolve()),
            health=self.health,
            members=members,
            app=self.app,
            env=self.env,
        )

    # ---- the interface ----------------------------------------------------------------------------

    def endpoint(self) -> str | None:
        """The frontend's URL; also while the LB is DOWN (it comes back on the same address)."""
        info = self._info()
        if info is None:
            return None
        bind = str(info.get("bind", self.bind))
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "*": "127.0.0.1", "": "127.0.0.1"}.get(bind, bind)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{int(info.get('port', self.port))}"

    def ensure(self) -> None:
        """Start the LB, or restart it when it is DOWN or listens where the config no longer says."""
        self.root.mkdir(parents=True, exist_ok=True)
        with flocked(self.lock_path):
            info = self._info()
            if info is not None:
                state = self._observe(info)
                if state.status is LBStatus.UP:
                    if (info.get("bind"), info.get("port")) == (self.bind, self.port):
                        return
                    log.warning("the load balancer of %s/%s listens on %s:%s but the config says %s:%d; "
                                "restarting it", self.app, self.env, info.get("bind"), info.get("port"),
                                self.bind, self.port)
                    self._persist(RuntimeAPI(str(info["socket"])))  # keep the members across the restart
                    procs.terminate(self._proc(info), timeout=self.stop_timeout, what="HAProxy")
                else:
                    log.warning("the load balancer of %s/%s is down (%s); restarting it from its config and "
                                "server state", self.app, self.env, state.detail)
                    self._stop_dead(info)
            self._start()

    def _stop_dead(self, info: dict) -> None:
        """Make sure a DOWN HAProxy is really gone before a new one binds its port: a stopped or silent
        one is killed at once (it serves nothing and would not handle SIGTERM)."""
        proc = self._proc(info)
        if procs.is_alive(proc):
            procs.kill(proc, what="HAProxy")
        else:
            procs.reap(proc.pid)

    def _start(self) -> dict:
        """Start HAProxy from members.json (config lines + the server-state file), wait for its admin
        socket, re-assert every member, and return the new lb.json."""
        members = self._members_config()
        sock = self.socket_path()
        sock_dir = Path(sock).parent
        sock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sock)
        # Members waiting for their health gate are re-added after start (so their checks run in MAINT);
        # everything else comes back from the config lines, weights included.
        in_config = [m for m in members if not m.checks_running or m.admin != AdminState.MAINT.value]
        atomic_write(self.cfg_path, self._render(in_config, sock))
        if self.log_path.exists() and self.log_path.stat().st_size > 1_000_000:
            os.replace(self.log_path, self.log_path.with_suffix(".log.1"))
        with open(self.log_path, "a") as f:
            f.write(f"--- releasectl starting HAProxy at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
        try:
            proc = procs.spawn(
                [self.haproxy_bin, "-db", "-f", str(self.cfg_path.resolve())],
                cwd=self.root,
                env=dict(os.environ),
                log_path=self.log_path,
            )
        except ResourceFailure as exc:
            raise ResourceFailure(
                exc.message, hint="install HAProxy 2.6 or later (apt-get install haproxy), or set local.haproxy"
            ) from exc
        info = {
            "pid": proc.pid,
            "pid_start": proc.start,
            "boot_id": proc.boot,
            "socket": sock,
            "bind": self.bind,
            "port": self.port,
            "started_at": time.time(),
        }
        write_json(self.info_path, info)
        api = RuntimeAPI(sock)

        def ready() -> bool:
            if not procs.is_alive(proc):
                raise ResourceFailure(
                    f"HAProxy for {self.app}/{self.env} exited during start-up:\n{procs.tail(self.log_path, 8)}",
                    hint=f"is port {self.port} on {self.bind} taken? set local.lb_port in releasectl.yaml",
                )
            return api.ping()

        try:
            wait_for(ready, timeout=10.0, interval=0.02, max_interval=0.2, what="HAProxy's admin socket")
        except BaseException:
            procs.terminate(proc, timeout=self.stop_timeout, what="HAProxy")
            with contextlib.suppress(FileNotFoundError):
                self.info_path.unlink()
            raise
        log.info("started HAProxy pid %d on %s:%d (%d members)", proc.pid, self.bind, self.port, len(members))
        self._reconcile(api, members)
        self._persist(api)
        return info

    def _reconcile(self, api: RuntimeAPI, members: list[MemberConfig]) -> None:
        """After a start, make the runtime match members.json exactly (the state file alone cannot bring
        back DRAIN for a server whose previous initial weight was 0, nor running checks in MAINT)."""
        rows = api.servers_state()
        cmds: list[str] = []
        for m in members:
            row = rows.get(m.name)
            if m.admin == AdminState.MAINT.value and m.checks_running:
                if row is None:
                    self._add(api, m.name, m.address, m.port, m.weight)
                continue
            if row is None:
                log.warning("member %s did not come back after the restart", m.name)
                continue
            if int(row["srv_uweight"]) != m.weight:
                cmds.append(f"set server {BACKEND}/{m.name} weight {m.weight}")
            if admin_state(row).value != m.admin:
                cmds.append(f"set server {BACKEND}/{m.name} state {m.admin}")
        errors = api.batch(cmds)
        if errors:
            log.warning("restoring members after an HAProxy start: %s", "; ".join(errors))

    def _persist(self, api: RuntimeAPI, claim: Collection[str] = ()) -> None:
        """G6: rewrite members.json and haproxy.cfg from the runtime, and dump the server state.
        Ownership carries over by name; `claim` are members releasectl just added or adopted."""
        rows = api.servers_state()
        state = api.dump_servers_state()
        owned = {m.name: m.owned for m in self._members_config()}
        members = [MemberConfig.from_state(r, owned=name in claim or owned.get(name, False)) for name, r in rows.items()]
        write_json(self.members_path, [m.to_json() for m in members])
        info = self.running()
        sock = str(info["socket"]) if info else self.socket_path()
        atomic_write(self.cfg_path, self._render(members, sock))
        atomic_write(self.state_path, state)

    def _add(self, api: RuntimeAPI, name: str, address: str, port: int, weight: int) -> None:
        self._add_all(api, [(name, address, port)], weight)

    def _add_all(self, api: RuntimeAPI, members: list[tuple[str, str, int]], weight: int) -> None:
        """`add server` for every (name, address, port), then `enable health` for all: two runtime-API calls
        for a fleet (one pair per member took 0.3 s for 20 under load)."""
        if not members:
            return
        reply = api.call("; ".join(add_server_command(n, a, p, weight, self.health) for n, a, p in members))
        if reply.count("New server registered") != len(members):
            names = ", ".join(f"{n} ({a}:{p})" for n, a, p in members)
            raise ProviderError(f"HAProxy refused to add member(s) {names}: {reply.strip()}")
        errors = api.batch([f"enable health {BACKEND}/{n}" for n, _, _ in members])
        if errors:
            raise ProviderError(f"HAProxy refused to enable checks on member(s): {'; '.join(errors)}")

    def _member_name(self, server: Server) -> str:
        name = "".join(c if c in _NAME_OK else "_" for c in server.id)
        return name or f"m-{server.port}"

    def members(self) -> list[Member]:
        """The pool as HAProxy reports it; [] when ABSENT; while DOWN, the members it will be restarted
        with (from members.json) with health UNKNOWN and sessions unknown."""
        info = self._info()
        if info is None:
            return []
        if self._observe(info).status is not LBStatus.UP:
            return self._last_known()
        api = RuntimeAPI(str(info["socket"]))
        try:
            rows = api.servers_state()
            stats = api.stat()
        except LBUnavailable:
            return self._last_known()  # it died under us
        owned = {m.name: m.owned for m in self._members_config()}
        by_addr = {(s.address, s.port): s for s in self._servers()}
        out = []
        for name, row in rows.items():
            scur = stats.get(name, {}).get("scur", "")
            out.append(
                self._as_member(
                    MemberConfig.from_state(row, owned=owned.get(name, False)),
                    by_addr,
                    health=member_health(row, self.health.rise),
                    sessions=int(scur) if scur.isdigit() else None,
                )
            )
        return out

    def _last_known(self) -> list[Member]:
        by_addr = {(s.address, s.port): s for s in self._servers()}
        return [self._as_member(m, by_addr, health=Health.UNKNOWN, sessions=None) for m in self._members_config()]

    def _as_member(self, m: MemberConfig, by_addr: dict, *, health: Health, sessions: int | None) -> Member:
        """A releasectl Member; ownership (I3): this LB belongs to one app and environment, so every member
        releasectl added carries them, and one added by someone else carries None."""
        server = by_addr.get((m.address, m.port))
        return Member(
            id=m.name,
            name=m.name,
            address=m.address,
            port=m.port,
            weight=m.weight,
            admin=AdminState(m.admin),
            health=health,
            sessions=sessions,
            server_id=server.id if server else None,
            version=server.version if server else None,
            app=self.app if m.owned else None,
            env=self.env if m.owned else None,
        )

    def _member(self, name: str) -> Member:
        for m in self.members():
            if m.id == name:
                return m
        raise ProviderError(f"member {name} vanished from the pool right after the change")

    def add(self, server: Server) -> Member:
        return self.add_many([server])[0]

    def add_many(self, servers: list[Server]) -> list[Member]:
        """Add (or adopt, or re-arm) each server's member in one runtime-API session under one pool lock,
        and persist once."""
        for server in servers:
            if not server.address or not server.port:
                raise Conflict(f"server {server.id} has no address yet; wait for it to be ACTIVE")
        with flocked(self.lock_path):
            api = self._live_api()
            rows = api.servers_state()
            new: list[tuple[str, str, int]] = []
            names = [self._add_one(api, rows, server, new) for server in servers]
            self._add_all(api, new, 0)
            for name, address, port in new:
                log.info("added member %s (%s:%d) in MAINT at weight 0; checks running", name, address, port)
            self._persist(api, claim=set(names))
            by_name = {m.id: m for m in self.members()}
            missing = [n for n in names if n not in by_name]
            if missing:
                raise ProviderError(f"member(s) {', '.join(missing)} vanished from the pool right after the change")
            return [by_name[n] for n in names]

    def _add_one(self, api: RuntimeAPI, rows: dict, server: Server, new: list[tuple[str, str, int]]) -> str:
        """The member name for `server`: an existing member adopted (or re-armed), or a new one appended to
        `new` for the caller to add with the rest."""
        assert server.address and server.port
        for name, row in rows.items():
            if row["srv_addr"] == server.address and int(row["srv_port"]) == server.port:
                if admin_state(row) is AdminState.MAINT and not checks_running(row):
                    # it entered MAINT (an interrupted removal): re-arm it so its checks run again
                    log.info("re-adding member %s so its health checks run again", name)
                    self._delete_servers(api, [name])
                    self._add(api, name, server.address, server.port, 0)
                else:
                    log.info("adopting existing member %s for %s:%d", name, server.address, server.port)
                return name  # it points at releasectl's server: releasectl's now
        name = self._member_name(server)
        if name in rows:
            raise Conflict(
                f"a pool member named {name} already exists for another address "
                f"({rows[name]['srv_addr']}:{rows[name]['srv_port']})"
            )
        new.append((name, server.address, server.port))
        rows[name] = {"srv_addr": server.address, "srv_port": str(server.port)}  # a later duplicate adopts it
        return name

    def set_weights(self, weights: Mapping[str, int]) -> None:
        if not weights:
            return
        for name, w in weights.items():
            if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= MAX_WEIGHT:
                raise UsageError(f"weight {w!r} for member {name} is outside 0..{MAX_WEIGHT}")
        with flocked(self.lock_path):
            api = self._live_api()
            rows = api.servers_state()
            missing = [n for n in weights if n not in rows]
            if missing:
                raise NotFound(f"no pool member {', '.join(missing)} in {self.app}/{self.env}")
            cmds = []
            for name, w in weights.items():
                row = rows[name]
                admin = admin_state(row)
                if w > 0 and admin is AdminState.MAINT:
                    health = member_health(row, self.health.rise)
                    if health is not Health.HEALTHY:
                        raise Conflict(
                            f"member {name} ({row['srv_addr']}:{row['srv_port']}) has not passed its health "
                            f"checks ({health.value}); it stays out of rotation",
                            hint=f"check the app's {self.health.path} and its log",
                        )
            for name, w in weights.items():
                admin = admin_state(rows[name])
                cmds.append(f"set server {BACKEND}/{name} weight {w}")
                if w > 0 and admin is AdminState.MAINT:
                    cmds.append(f"enable server {BACKEND}/{name}")
                elif w > 0 and admin is AdminState.DRAIN:
                    cmds.append(f"set server {BACKEND}/{name} state ready")
            errors = api.batch(cmds)
            after = api.servers_state()
            wrong = []
            for name, w in weights.items():
                row = after.get(name)
                if row is None:
                    wrong.append(f"{name} vanished")
                elif int(row["srv_uweight"]) != w:
                    wrong.append(f"{name} has weight {row['srv_uweight']}, not {w}")
                elif w > 0 and admin_state(row) is not AdminState.READY:
                    wrong.append(f"{name} is {admin_state(row).value}, not ready")
            self._persist(api)
            if wrong or errors:
                raise ProviderError(
                    f"HAProxy did not apply the weights: {'; '.join(wrong + errors)}",
                    hint="run the release again; it resumes from its record",
                )
            log.info("weights applied: %s", ", ".join(f"{n}={w}" for n, w in weights.items()))

    def _delete_servers(self, api: RuntimeAPI, names: list[str]) -> None:
        """maint for all of them in one call, then del each, with the 2.6 retry for idle connections (G4):
        drain -> maint again for those refused, and one wait shared by all of them (a retry per member, one
        after the other, would cost a fleet 0.1 s per member)."""
        api.batch([f"set server {BACKEND}/{name} state maint" for name in names])
        left = list(names)

        def try_del() -> bool | None:
            refused = []
            for name in left:
                reply = api.call(f"del server {BACKEND}/{name}")
                if "Server deleted" in reply or "No such server" in reply:
                    continue
                if "still has connections" not in reply and "maintenance mode" not in reply:
                    raise ProviderError(f"HAProxy refused to delete member {name}: {reply.strip()}")
                refused.append(name)
            left[:] = refused
            if not refused:
                return True
            api.batch([f"set server {BACKEND}/{name} state {state}" for name in refused for state in ("drain", "maint")])
            return None

        wait_for(try_del, timeout=15.0, interval=0.1, max_interval=0.5,
                 what=f"HAProxy to delete member {names[0]}" if len(names) == 1 else f"HAProxy to delete {len(names)} members")

    def remove(self, name: str) -> None:
        self.remove_many([name])

    def remove_many(self, names: list[str]) -> None:
        """Drain them all at once, wait (one wait, bounded by the drain timeout) until none has sessions,
        then delete each, in one runtime-API session under one pool lock; persist once. Idempotent."""
        with flocked(self.lock_path):
            if self._info() is None:  # ABSENT: nothing runs, forget them in the saved state
                members = [m for m in self._members_config() if m.name not in names]
                if self.members_path.exists():
                    write_json(self.members_path, [m.to_json() for m in members])
                return
            api = self._live_api()
            rows = api.servers_state()
            present = [n for n in names if n in rows]
            if not present:
                return
            api.batch([f"set server {BACKEND}/{name} state drain" for name in present])

            def idle() -> bool:
                stats = api.stat()
                return all(stats.get(name, {}).get("scur") in ("0", "", None) for name in present)

            try:
                wait_for(idle, timeout=self.drain_timeout, interval=0.05, max_interval=0.5,
                         what=f"{len(present)} member(s) to finish their sessions")
            except WaitTimeout:
                log.warning("member(s) %s still have sessions after %gs; putting them in MAINT anyway (in-flight "
                            "requests still finish)", ", ".join(present), self.drain_timeout)
            self._delete_servers(api, present)
            self._persist(api)
            log.info("removed member(s) %s (drain, maint, del)", ", ".join(present))

    def stats(self) -> dict[str, MemberStats]:
        from releasectl.providers.base import MemberStats  # here: `status` reads no counters

        info = self._info()
        if info is None or self._observe(info).status is not LBStatus.UP:
            return {}  # no counters while it is down (a restart starts them from 0 anyway)
        try:
            rows = RuntimeAPI(str(info["socket"])).stat()
        except LBUnavailable:
            return {}

        def num(row: dict[str, str], key: str) -> int:
            v = row.get(key, "")
            return int(v) if v.isdigit() else 0

        out = {}
        for name, row in rows.items():
            if row.get("req_tot", "").isdigit():
                requests = int(row["req_tot"])
            else:
                requests = sum(num(row, k) for k in ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx",
                                                     "hrsp_other"))
            rtime = row.get("rtime", "")
            out[name] = MemberStats(
                member_id=name,
                requests=requests,
                http_5xx=num(row, "hrsp_5xx"),
                errors=num(row, "econ") + num(row, "eresp"),
                response_time_ms=float(rtime) if rtime.isdigit() else None,
            )
        return out

    def destroy(self) -> None:
        import shutil

        with flocked(self.lock_path):
            info = self._info()
            if info is not None:
                if self._observe(info).status is LBStatus.UP:
                    procs.terminate(self._proc(info), timeout=self.stop_timeout, what="HAProxy")
                else:
                    self._stop_dead(info)
            for path in (self.info_path, self.state_path, self.members_path, self.cfg_path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            sock = str(info["socket"]) if info else self.socket_path()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(sock)
            short = self._short_socket_dir()
            if Path(sock).parent == short:
                shutil.rmtree(short, ignore_errors=True)
            log.info("stopped the load balancer of %s/%s", self.app, self.env)
