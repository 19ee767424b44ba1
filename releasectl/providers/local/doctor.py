"""The local provider's side of `releasectl doctor`: its state files and the processes they record.

check() is read-only and lists every damaged or inconsistent piece with what fix() would do; fix() does it.
Unreadable files are never deleted, only moved aside into a quarantine folder, and a process is only
stopped after its ownership (folder and tags, or folder and command line) and start time are checked.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

from releasectl.errors import DamagedState, NotFound
from releasectl.providers.base import LABEL_PREFIX, Label, Role, StateIssue

from . import procs, recovery
from .files import flocked, quarantine, read_json, write_json
from .haproxy import RuntimeAPI
from .pool import LB_SCHEMA, read_members
from .servers import RECORD

if TYPE_CHECKING:
    from . import LocalProvider

def vault(p: "LocalProvider") -> Path:
    return p.env_dir / "quarantine"


def check(p: "LocalProvider") -> list[StateIssue]:
    issues: list[StateIssue] = []
    issues += _check_lock(p)
    issues += _check_lb(p)
    issues += _check_servers(p)
    issues += _check_images(p)
    return issues


def _check_lock(p: "LocalProvider") -> list[StateIssue]:
    damage = p.lock.damage()
    if damage is None:
        return []
    return [StateIssue("lock", str(p.lock.path), damage.what, "move lock.json aside (a damaged lock holds nothing)")]


def _lb_damage(p: "LocalProvider") -> tuple[dict | None, DamagedState | None]:
    try:
        return read_json(p.pool.info_path, LB_SCHEMA), None
    except DamagedState as exc:
        return None, exc


def _check_lb(p: "LocalProvider") -> list[StateIssue]:
    issues = []
    info, damage = _lb_damage(p)
    running = recovery.haproxy_process(p.pool.root, p.pool.cfg_path)
    path = str(p.pool.info_path)
    recorded = None
    if info is not None:
        recorded = procs.ProcId(int(info["pid"]), int(info.get("pid_start") or -1), str(info.get("boot_id") or ""))
    if damage is not None:
        if running is not None:
            issues.append(StateIssue("lb-adopt", path, damage.what,
                                     f"rewrite lb.json for its running HAProxy (pid {running.pid}) and rebuild "
                                     "members.json and haproxy.cfg from it"))
        else:
            issues.append(StateIssue("lb-quarantine", path, damage.what, "move lb.json aside (no HAProxy of it runs)"))
    elif running is not None and (recorded is None or not procs.is_alive(recorded)):
        issues.append(StateIssue("lb-adopt", path, f"HAProxy pid {running.pid} runs this pool but lb.json does not record it",
                                 "rewrite lb.json for it and rebuild members.json and haproxy.cfg from it"))
    elif running is not None and recorded is not None and running != recorded:
        issues.append(StateIssue(f"lb-stop:{running.pid}:{running.start}", f"pid {running.pid}",
                                 f"a second HAProxy runs this pool's config besides pid {recorded.pid}",
                                 f"stop pid {running.pid}"))
    try:
        read_members(p.pool.members_path)
    except DamagedState as exc:
        if running is not None:
            issues.append(StateIssue("lb-members", str(p.pool.members_path), exc.what,
                                     "rebuild members.json and haproxy.cfg from the running HAProxy"))
        else:
            issues.append(StateIssue("lb-members", str(p.pool.members_path), exc.what,
                                     "move members.json aside (the next rollout re-adds its members)"))
    return issues


def _check_servers(p: "LocalProvider") -> list[StateIssue]:
    issues = []
    serving = {(m.address, m.port): m for m in p.list_members() if m.weight > 0}
    known = {str(rec["id"]) for rec in p.servers._records()}
    for server in p.servers.damaged():
        folder = p.servers.root / server.id
        running = recovery.server_processes(folder, server.id, p.ctx.app, p.ctx.env)
        known.add(server.id)
        problem = server.labels[Label.DAMAGED]
        path = str(folder / RECORD)
        if running and (server.address, server.port) in serving:
            issues.append(StateIssue(f"server-adopt:{server.id}", path, problem,
                                     f"re-adopt it: rewrite server.json from its process (pid {running[0].pid}, "
                                     f"{server.version} on port {server.port}, serving) as a stable server"))
        elif running:
            issues.append(StateIssue(f"server-stop:{server.id}", path, problem,
                                     f"stop its process (pid {', '.join(str(r.pid) for r in running)}), take it out of "
                                     "the pool, move the record aside and remove its folder"))
        else:
            issues.append(StateIssue(f"server-remove:{server.id}", path, problem,
                                     "no process runs: move the record aside and remove its folder"))
    for folder in sorted(p.servers.root.iterdir()) if p.servers.root.is_dir() else []:
        if (
            folder.name.startswith("srv-") and folder.is_dir() and folder.name not in known
            and not (folder / RECORD).exists() and recovery.missing_record(folder) is not None
        ):
            issues.append(StateIssue(f"server-remove:{folder.name}", str(folder),
                                     "has no server.json and no process: left by an interrupted create or delete",
                                     "remove the folder"))
    for sid, proc in recovery.orphan_server_processes(p.servers.root, p.ctx.app, p.ctx.env, known):
        issues.append(StateIssue(f"proc-stop:{proc.pid}:{proc.start}", f"pid {proc.pid}",
                                 f"an app process of server {sid} runs without a server record",
                                 f"stop pid {proc.pid} (and its member, if it has one)"))
    return issues


def _check_images(p: "LocalProvider") -> list[StateIssue]:
    return [
        StateIssue(f"image:{image_id}", damage.path, damage.what, f"move image {image_id} aside")
        for image_id, damage in p.images.damaged()
    ]


# ---- fixes ----------------------------------------------------------------------------------------------


def fix(p: "LocalProvider", issue: StateIssue) -> str:
    kind, _, arg = issue.key.partition(":")
    if kind == "lock":
        if p.lock.damage() is None:
            return "lock.json is sound again"
        return f"moved lock.json to {quarantine(p.lock.path, vault(p))}"
    if kind == "lb-quarantine":
        return f"moved lb.json to {quarantine(p.pool.info_path, vault(p))}"
    if kind == "lb-adopt":
        return _adopt_lb(p)
    if kind == "lb-stop":
        pid, start = (int(x) for x in arg.split(":"))
        procs.terminate(procs.ProcId(pid, start, procs.boot_id()), timeout=p.pool.stop_timeout, what="stray HAProxy")
        return f"stopped pid {pid}"
    if kind == "lb-members":
        if p.pool.running() is not None:
            return _rebuild_lb_config(p)
        return f"moved members.json to {quarantine(p.pool.members_path, vault(p))}"
    if kind == "server-adopt":
        return _adopt_server(p, arg)
    if kind in ("server-stop", "server-remove"):
        return _remove_server(p, arg)
    if kind == "proc-stop":
        return _stop_orphan(p, *(int(x) for x in arg.split(":")))
    if kind == "image":
        return f"moved image {arg} to {p.images.quarantine(arg, p.images.root.parent / 'quarantine')}"
    raise NotFound(f"doctor does not know how to fix {issue.key!r}")


def _rebuild_lb_config(p: "LocalProvider") -> str:
    info = p.pool.running()
    if info is None:
        return "no HAProxy runs: nothing to rebuild"
    with flocked(p.pool.lock_path):
        p.pool._persist(RuntimeAPI(str(info["socket"])))
    return "rebuilt members.json and haproxy.cfg from the running HAProxy"


def _adopt_lb(p: "LocalProvider") -> str:
    info = p.pool.recovered_info()
    if info is None:
        return "its HAProxy is gone: nothing to adopt"
    info.pop("recovered", None)
    info["started_at"] = time.time()
    with contextlib.suppress(DamagedState):
        if p.pool.info_path.exists():
            quarantine(p.pool.info_path, vault(p))
    write_json(p.pool.info_path, info)
    rebuilt = _rebuild_lb_config(p)
    return f"wrote lb.json for HAProxy pid {info['pid']}; {rebuilt}"


def _member_of(p: "LocalProvider", address: str | None, port: int | None):
    for m in p.list_members():
        if m.address == address and m.port == port:
            return m
    return None


def _adopt_server(p: "LocalProvider", server_id: str) -> str:
    server = p.servers.get(server_id)
    if server is None:
        return f"server {server_id} is gone"
    folder = p.servers.root / server_id
    running = recovery.server_processes(folder, server_id, p.ctx.app, p.ctx.env)
    if not running or not server.port:
        return _remove_server(p, server_id)
    proc = running[0]
    images = [i for i in p.images.list() if i.version == server.version and Label.DAMAGED not in i.labels]
    record_path = folder / RECORD
    if record_path.exists():
        moved = quarantine(record_path, vault(p))
    else:
        moved = None
    labels = {
        f"{LABEL_PREFIX}{Label.APP}": p.ctx.app,
        f"{LABEL_PREFIX}{Label.VERSION}": server.version,
        f"{LABEL_PREFIX}{Label.ENV}": p.ctx.env,
        f"{LABEL_PREFIX}{Label.ROLE}": Role.STABLE.value,
        f"{LABEL_PREFIX}{Label.RELEASE}": "",
    }
    rec = {
        "format": 1, "id": server_id, "name": server_id, "app": p.ctx.app, "version": server.version,
        "env": p.ctx.env, "role": Role.STABLE.value, "release": "", "labels": labels, "pid": proc.pid,
        "pid_start": proc.start, "boot_id": proc.boot, "port": server.port,
        "image_id": images[0].id if images else "", "created_at": time.time(), "adopted_by": "doctor",
    }
    write_json(record_path, rec)
    return f"re-adopted server {server_id} (pid {proc.pid}, {server.version}) as stable" + (f"; old record in {moved}" if moved else "")


def _remove_server(p: "LocalProvider", server_id: str) -> str:
    import shutil  # here: `status` runs the check, never a fix

    folder = p.servers.root / server_id
    server = p.servers.get(server_id)
    done = []
    if server is not None:
        member = _member_of(p, server.address, server.port)
        if member is not None:
            p.set_weights({member.id: 0})
            p.remove_member(member.id)
            done.append(f"removed member {member.id}")
    stopped = recovery.stop_server_processes(folder, server_id, p.ctx.app, p.ctx.env, p.servers.stop_timeout)
    if stopped:
        done.append(f"stopped pid {', '.join(map(str, stopped))}")
    record = folder / RECORD
    if record.exists():
        done.append(f"moved its record to {quarantine(record, vault(p))}")
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
        done.append(f"removed {folder.name}")
    return "; ".join(done) or "nothing left to do"


def _stop_orphan(p: "LocalProvider", pid: int, start: int) -> str:
    proc = procs.ProcId(pid, start, procs.boot_id())
    if not procs.is_alive(proc):
        return f"pid {pid} is gone already"
    port_text = recovery.process_environ(pid).get("PORT", "")
    done = []
    if port_text.isdigit():
        member = _member_of(p, recovery.ADDRESS, int(port_text))
        if member is not None:
            p.set_weights({member.id: 0})
            p.remove_member(member.id)
            done.append(f"removed member {member.id}")
    procs.terminate(proc, timeout=p.servers.stop_timeout, what=f"orphaned app process {pid}")
    done.append(f"stopped pid {pid}")
    return "; ".join(done)
