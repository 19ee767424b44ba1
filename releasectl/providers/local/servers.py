"""Servers as processes on loopback: one folder per server under `<state_dir>/envs/<env>/servers/`.

    servers/srv-5d2e8f01a9b3/
        server.json   id, name, app, version, env, role, release, labels, pid, pid_start, boot_id, port,
                      image_id, created_at (written atomically, read by any later CLI run)
        app/          the image, unpacked; the start command runs here
        server.log    the process's stdout and stderr

Status: BUILDING until the process is recorded, ACTIVE while it runs, STOPPED (with the log tail as `fault`)
once it has exited, ERROR (with the reason as `fault`) when it could not start at all. A process is only ever signalled after its PID and start time are checked.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from releasectl.fanout import fan_out
from releasectl.errors import Conflict, DamagedState, NotFound, ProviderError, ResourceFailure
from releasectl.logs import Logger
from releasectl.providers.base import (
    LABEL_PREFIX,
    Label,
    Role,
    Server,
    ServerStatus,
)

from . import procs, recovery
from .files import flocked, read_json, write_json
from .images import ImageStore

if TYPE_CHECKING:  # imported where made: `status` makes neither (providers/base_extra.py)
    from releasectl.providers.base import Probe, ServerSpec

log = Logger("releasectl.providers.local")

ADDRESS = "127.0.0.1"
RECORD = "server.json"
LOG = "server.log"
BUILD_GRACE = 60.0  # a record without a PID older than this was interrupted mid-create
FLEET_CONCURRENCY = 8  # servers started (or marked for deletion) at once when a fleet is launched (or retired)
SERVER_SCHEMA = {
    "id": (str,),
    "app": (str,),
    "env": (str,),
    "name": (str, None),
    "version": (str, None),
    "role": (str, None),
    "release": (str, None),
    "labels": (dict, None),
    "pid": (int, None),
    "pid_start": (int, None),
    "boot_id": (str, None),
    "port": (int, None),
    "image_id": (str, None),
    "created_at": (int, float, None),
    "creator": (dict, None),
    "deleting": (bool, None),
}


def free_port(avoid: set[int]) -> int:
    import socket  # here and below: `status` neither starts, names nor removes a server

    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((ADDRESS, 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port
    raise ResourceFailure("could not find a free loopback port")


class ServerStore:
    def __init__(
        self,
        root: Path,
        *,
        app: str,
        env: str,
        images: ImageStore,
        start_command: Sequence[str],
        stop_timeout: float,
        avoid_ports: set[int] | None = None,
    ) -> None:
        self.root = root
        self.app = app
        self.env = env
        self.images = images
        self.start_command = list(start_command)
        self.stop_timeout = stop_timeout
        self.avoid_ports = set(avoid_ports or ())

    # ---- records ------------------------------------------------------------------------------------

    def _record_path(self, server_id: str) -> Path:
        return self.root / server_id / RECORD

    def _read(self, server_id: str) -> dict | None:
        if not server_id.startswith("srv-") or "/" in server_id or server_id in (".", ".."):
            return None
        try:
            rec = self._load(server_id)
        except DamagedState as exc:
            log.info("server %s: %s", server_id, exc)
            return None
        if rec is None or rec.get("app") != self.app or rec.get("env") != self.env:
            return None
        return rec

    def _load(self, server_id: str) -> dict | None:
        """server.json through the one state reader; DamagedState when it is unreadable or inconsistent."""
        path = self._record_path(server_id)
        rec = read_json(path, SERVER_SCHEMA)
        if rec is None:
            return None
        if rec["id"] != server_id:
            raise DamagedState(str(path), f"names server {rec['id'][:40]!r}, not {server_id}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in (rec.get("labels") or {}).items()):
            raise DamagedState(str(path), "has a label that is not a string")
        return rec

    def damage(self, server_id: str) -> DamagedState | None:
        """What is wrong with that server's folder: an unreadable or missing server.json, or None."""
        folder = self.root / server_id
        if not server_id.startswith("srv-") or not folder.is_dir():
            return None
        try:
            rec = self._load(server_id)
        except DamagedState as exc:
            return exc
        if rec is not None:
            return None
        # no record: damage only while a process of it runs; an empty leftover of an interrupted create or
        # delete is not a server (doctor removes it)
        missing = recovery.missing_record(folder)
        if missing is None or not recovery.server_processes(folder, server_id, self.app, self.env):
            return None
        return missing

    def damaged(self) -> list[Server]:
        """Servers of this environment whose record is damaged, rebuilt from their processes."""
        if not self.root.is_dir():
            return []
        out = []
        for entry in sorted(self.root.iterdir()):
            damage = self.damage(entry.name) if entry.is_dir() else None
            if damage is not None:
                out.append(recovery.damaged_server(entry, entry.name, self.app, self.env, damage))
        return out

    def _records(self) -> list[dict]:
        if not self.root.is_dir():
            return []
        out = []
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and not entry.name.startswith("."):
                rec = self._read(entry.name)
                if rec is not None:
                    out.append(rec)
        return out

    @staticmethod
    def _proc(rec: dict) -> procs.ProcId | None:
        if rec.get("pid") is None:
            return None
        return procs.ProcId(int(rec["pid"]), int(rec.get("pid_start", -1)), str(rec.get("boot_id", "")))

    @staticmethod
    def _creator_alive(rec: dict) -> bool:
        """Whether the CLI run that is creating this server may still finish: same boot, PID still its own.
        A record without a creator (older format) gets the benefit of the doubt for BUILD_GRACE."""
        creator = rec.get("creator")
        if not isinstance(creator, dict) or creator.get("pid") is None:
            return True
        proc = procs.ProcId(int(creator["pid"]), int(creator.get("start") or -1), str(creator.get("boot", "")))
        return procs.is_alive(proc)

    def log_path(self, server_id: str) -> Path:
        return self.root / server_id / LOG

    def _to_server(self, rec: dict) -> Server:
        labels = {k[len(LABEL_PREFIX) :]: v for k, v in rec.get("labels", {}).items() if k.startswith(LABEL_PREFIX)}
        role_value = labels.get(Label.ROLE, rec.get("role"))
        role = Role(role_value) if role_value in Role._value2member_map_ else None
        proc = self._proc(rec)
        fault = None
        if proc is None and rec.get("start_error"):
            status, fault = ServerStatus.ERROR, f"could not start: {rec['start_error']}"
        elif proc is None:
            if time.time() - float(rec.get("created_at", 0)) < BUILD_GRACE and self._creator_alive(rec):
                status = ServerStatus.BUILDING
            else:
                status, fault = ServerStatus.ERROR, "its creation was interrupted before the process started"
        elif procs.is_alive(proc):
            status = ServerStatus.DELETING if rec.get("deleting") else ServerStatus.ACTIVE
        else:
            status = ServerStatus.STOPPED
            code = procs.exit_code(proc.pid)
            head = f"process {proc.pid} exited" + (f" with code {code}" if code is not None else "")
            last = procs.tail(self.log_path(rec["id"]))
            fault = f"{head}; last log lines:\n{last}" if last else head
        return Server(
            id=rec["id"],
            name=rec.get("name", ""),
            app=rec["app"],
            version=labels.get(Label.VERSION, rec.get("version", "")),
            env=rec["env"],
            role=role,
            release_id=labels.get(Label.RELEASE, rec.get("release", "")),
            status=status,
            address=ADDRESS,
            port=rec.get("port"),
            image_id=rec.get("image_id", ""),
            created_at=float(rec.get("created_at", 0.0)),
            labels=labels,
            fault=fault,
        )

    # ---- the interface ------------------------------------------------------------------------------

    def list(self) -> list[Server]:
        """The servers, then the damaged ones (`damaged()`), from one read of each record: every pass of a
        release lists them, often twice (the pool's members name their servers)."""
        if not self.root.is_dir():
            return []
        good, damaged = [], []
        for entry in sorted(self.root.iterdir()):
            if not entry.is_dir() or not entry.name.startswith("srv-"):
                continue
            try:
                rec = self._load(entry.name)
            except DamagedState as exc:
                log.info("server %s: %s", entry.name, exc)
                damaged.append(recovery.damaged_server(entry, entry.name, self.app, self.env, exc))
                continue
            if rec is None:
                missing = self.damage(entry.name)
                if missing is not None:
                    damaged.append(recovery.damaged_server(entry, entry.name, self.app, self.env, missing))
            elif rec.get("app") == self.app and rec.get("env") == self.env:
                good.append(self._to_server(rec))
        return good + damaged

    def get(self, server_id: str) -> Server | None:
        rec = self._read(server_id)
        if rec is None:
            damage = self.damage(server_id)
            if damage is not None:
                return recovery.damaged_server(self.root / server_id, server_id, self.app, self.env, damage)
        return None if rec is None else self._to_server(rec)

    def create(self, spec: ServerSpec) -> Server:
        return self.create_many([spec])[0]

    def create_many(self, specs: Sequence[ServerSpec]) -> list[Server]:
        """Create a fleet: names looked up, images verified, ports chosen and BUILDING records written under
        one lock, then every server unpacked and started in parallel (the records' fsyncs and the forks
        overlap; one by one, 20 servers took 0.95 s). A name that exists already is returned, not duplicated."""
        for spec in specs:
            if spec.app != self.app or spec.env != self.env:
                raise ProviderError(
                    f"server spec for {spec.app}/{spec.env} given to the provider of {self.app}/{self.env}"
                )
        self.root.mkdir(parents=True, exist_ok=True)
        out: dict[int, Server] = {}
        todo: list[tuple[int, ServerSpec, dict]] = []
        with flocked(self.root / ".create.lock"):  # name lookup + record creation, one CLI run at a time
            records = self._records()
            by_name = {rec.get("name"): rec for rec in records}
            used = {int(r["port"]) for r in records if r.get("port")} | self.avoid_ports
            verified: set[str] = set()
            for i, spec in enumerate(specs):
                rec = by_name.get(spec.name)
                if rec is not None:
                    log.info("server %s already exists as %s; not creating a duplicate", spec.name, rec["id"])
                    out[i] = self._to_server(rec)
                    continue
                if spec.image_id not in verified:
                    # a missing or tampered image raises here, before any record: the image is at fault
                    self.images.verify(spec.image_id)
                    verified.add(spec.image_id)
                rec = self._new_record(spec, free_port(used))
                used.add(rec["port"])
                by_name[spec.name] = rec
                todo.append((i, spec, rec))
            fan_out(self._write_building, [rec for _, _, rec in todo], FLEET_CONCURRENCY)
        started = fan_out(lambda job: self._start(job[1], job[2]), todo, FLEET_CONCURRENCY)
        out.update({i: server for (i, _, _), server in zip(todo, started)})
        return [out[i] for i in range(len(specs))]

    def _new_record(self, spec: ServerSpec, port: int) -> dict:
        import secrets

        labels = {f"{LABEL_PREFIX}{k}": str(v) for k, v in spec.labels.items() if v is not None}
        labels.update(
            {
                f"{LABEL_PREFIX}{Label.APP}": spec.app,
                f"{LABEL_PREFIX}{Label.VERSION}": spec.version,
                f"{LABEL_PREFIX}{Label.ENV}": spec.env,
                f"{LABEL_PREFIX}{Label.ROLE}": Role(spec.role).value,
                f"{LABEL_PREFIX}{Label.RELEASE}": spec.release_id,
            }
        )
        creator = os.getpid()
        return {
            "creator": {"pid": creator, "start": procs.start_time(creator), "boot": procs.boot_id()},
            "format": 1,
            "id": f"srv-{secrets.token_hex(6)}",
            "name": spec.name,
            "app": spec.app,
            "version": spec.version,
            "env": spec.env,
            "role": Role(spec.role).value,
            "release": spec.release_id,
            "labels": labels,
            "pid": None,
            "pid_start": None,
            "boot_id": procs.boot_id(),
            "port": port,
            "image_id": spec.image_id,
            "created_at": time.time(),
        }

    def _write_building(self, rec: dict) -> None:
        sdir = self.root / rec["id"]
        sdir.mkdir()
        write_json(sdir / RECORD, rec)  # BUILDING; a crash from here on leaves a visible ERROR record

    def _start(self, spec: ServerSpec, rec: dict) -> Server:
        """Unpack the image into the server's folder and start its process; record the PID."""
        import shutil

        server_id, port = rec["id"], rec["port"]
        sdir = self.root / server_id
        try:
            self.images.unpack(spec.image_id, sdir / "app")
            argv = [a.replace("{python}", sys.executable).replace("{port}", str(port)) for a in self.start_command]
            env = dict(os.environ)
            env.setdefault("PYTHONUNBUFFERED", "1")
            env.update(
                {
                    "PORT": str(port),
                    "RELEASECTL_VERSION": spec.version,
                    "RELEASECTL_APP": spec.app,
                    "RELEASECTL_ENV": spec.env,
                    "RELEASECTL_SERVER_ID": server_id,
                }
            )
            proc = procs.spawn(argv, cwd=sdir / "app", env=env, log_path=sdir / LOG)
        except ResourceFailure as exc:
            # the server cannot start (unpack error, start command missing): like Nova, report it as a
            # server in ERROR with the reason as its fault, for the engine to fail the release on
            rec["start_error"] = str(exc)
            write_json(sdir / RECORD, rec)
            log.warning("server %s could not start: %s", server_id, exc)
            return self._to_server(rec)
        except BaseException:
            shutil.rmtree(sdir, ignore_errors=True)  # nothing was started: leave no record behind
            raise
        rec.update({"pid": proc.pid, "pid_start": proc.start, "boot_id": proc.boot})
        write_json(sdir / RECORD, rec)
        log.info("started server %s (%s %s) pid %d on %s:%d", server_id, spec.app, spec.version, proc.pid,
                 ADDRESS, port)
        return self._to_server(rec)

    def update_labels(self, server_id: str, labels: Mapping[str, str | None]) -> Server:
        with flocked(self.root / ".create.lock"):
            rec = self._read(server_id)
            if rec is None:
                raise NotFound(f"server {server_id} does not exist in {self.app}/{self.env}")
            stored = dict(rec.get("labels", {}))
            for key, value in labels.items():
                if value is None:
                    stored.pop(f"{LABEL_PREFIX}{key}", None)
                else:
                    stored[f"{LABEL_PREFIX}{key}"] = str(value)
            rec["labels"] = stored
            for key, field in ((Label.VERSION, "version"), (Label.ROLE, "role"), (Label.RELEASE, "release")):
                if key in labels:
                    rec[field] = labels[key] if labels[key] is not None else ""
            write_json(self._record_path(server_id), rec)
        return self._to_server(rec)

    def delete_many(self, server_ids: list[str]) -> None:
        """Stop several servers at once: every process is signalled, then all are waited for together (the
        fleet takes as long as its slowest process, not the sum), then their folders go. A server still
        being created is left alone and its Conflict raised once the others are gone."""
        import shutil

        def look(server_id: str) -> list[tuple[procs.ProcId, str]] | Conflict | None:
            try:
                return self._processes_to_stop(server_id)
            except Conflict as exc:
                return exc

        stops: list[tuple[procs.ProcId, str]] = []
        doomed: list[str] = []
        refused: list[Conflict] = []
        for server_id, found in zip(server_ids, fan_out(look, server_ids, FLEET_CONCURRENCY)):  # the marks' fsyncs overlap
            if isinstance(found, Conflict):
                refused.append(found)
            elif found is not None:
                stops += found
                doomed.append(server_id)
        procs.terminate_all(stops, timeout=self.stop_timeout)
        for server_id in doomed:
            shutil.rmtree(self.root / server_id, ignore_errors=True)
            log.info("deleted server %s", server_id)
        if refused:
            raise refused[0]

    def delete(self, server_id: str) -> None:
        self.delete_many([server_id])

    def _processes_to_stop(self, server_id: str) -> list[tuple[procs.ProcId, str]] | None:
        """The processes of a server about to be deleted, marked `deleting` in its record; None when there is
        no such server (a damaged one is stopped and removed here, found by its folder and tags)."""
        import shutil

        rec = self._read(server_id)
        if rec is None:
            if self.damage(server_id) is not None:
                recovery.stop_server_processes(self.root / server_id, server_id, self.app, self.env, self.stop_timeout)
                shutil.rmtree(self.root / server_id, ignore_errors=True)
                log.info("deleted server %s (its record was damaged)", server_id)
            return None
        proc = self._proc(rec)
        if (
            proc is None
            and not rec.get("start_error")
            and time.time() - float(rec.get("created_at", 0)) < BUILD_GRACE
            and self._creator_alive(rec)
        ):
            raise Conflict(f"server {server_id} is still being created; try again in a moment")
        if proc is None:  # interrupted create: a process may have started without being recorded
            return [(orphan, f"unrecorded process of {server_id}") for orphan in procs.find_by_cwd(self.root / server_id)]
        if not rec.get("deleting"):
            rec["deleting"] = True
            with contextlib.suppress(OSError):
                write_json(self._record_path(server_id), rec)
        return [(proc, f"server {server_id}")]

    def probe(self, server: Server, path: str, timeout: float) -> Probe:
        from releasectl.providers.base import Probe

        if not server.address or not server.port:
            return Probe(status=None, latency=0.0, error=f"server {server.id} has no address yet")
        from releasectl.providers._http_probe import loopback_get_probe

        return loopback_get_probe(server.address, server.port, path, timeout)
