"""Finding releasectl's own processes when the file that records them is damaged or gone.

A server's process runs in `servers/<id>/app/` with RELEASECTL_SERVER_ID=<id>, RELEASECTL_APP and
RELEASECTL_ENV in its environment; HAProxy runs in `lb/` with `-f <that lb>/haproxy.cfg`. Ownership is
decided from those (working folder, environment, command line) and the process is then held by PID and
start time like any other: never by a name pattern, never a process of someone else.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from releasectl.errors import DamagedState
from releasectl.logs import Logger
from releasectl.providers.base import Label, Server, ServerStatus

from . import procs

log = Logger("releasectl.providers.local")

ADDRESS = "127.0.0.1"
MISSING_RECORD_GRACE = 5.0  # a server folder this young may be mid-create: its record is not missing yet


def process_environ(pid: int) -> dict[str, str]:
    """The environment a process started with ({} when it is not ours to read)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    out = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            out[key.decode(errors="replace")] = value.decode(errors="replace")
    return out


def process_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def server_processes(folder: Path, server_id: str, app: str, env: str) -> list[procs.ProcId]:
    """Live processes of server `server_id`: working folder inside its folder and its tags in their
    environment."""
    found = []
    for proc in procs.find_by_cwd(folder):
        environ = process_environ(proc.pid)
        if (
            environ.get("RELEASECTL_SERVER_ID") == server_id
            and environ.get("RELEASECTL_APP") == app
            and environ.get("RELEASECTL_ENV") == env
            and procs.is_alive(proc)
        ):
            found.append(proc)
    return sorted(found, key=lambda proc: (not _leads_group(proc.pid), proc.pid))  # the started one first


def _leads_group(pid: int) -> bool:
    """Each server process is started in its own session: the one releasectl started leads its group."""
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def orphan_server_processes(root: Path, app: str, env: str, known_ids: set[str]) -> list[tuple[str, procs.ProcId]]:
    """(server id, process) of this environment's app processes whose server releasectl no longer has a
    folder for (a process of a known server, its children included, is that server's business)."""
    out = []
    if not root.is_dir():
        return out
    for proc in procs.find_by_cwd(root):
        environ = process_environ(proc.pid)
        sid = environ.get("RELEASECTL_SERVER_ID", "")
        if (
            environ.get("RELEASECTL_APP") == app
            and environ.get("RELEASECTL_ENV") == env
            and sid.startswith("srv-")
            and sid not in known_ids
            and not (root / sid).exists()
        ):
            out.append((sid, proc))
    return out


def missing_record(folder: Path) -> DamagedState | None:
    """A server folder past its create grace without server.json is damaged (the record was lost)."""
    try:
        age = time.time() - folder.stat().st_mtime
    except OSError:
        return None
    if age < MISSING_RECORD_GRACE:
        return None
    return DamagedState(str(folder / "server.json"), "is missing")


def damaged_server(folder: Path, server_id: str, app: str, env: str, damage: DamagedState) -> Server:
    """The Server a damaged server.json stands for, rebuilt from its live process when there is one: its
    version and port from the process environment. Marked with the DAMAGED label and never a role, so the
    engine neither routes to it nor counts it as a fleet."""
    running = server_processes(folder, server_id, app, env)
    environ = process_environ(running[0].pid) if running else {}
    port_text = environ.get("PORT", "")
    port = int(port_text) if port_text.isdigit() and 0 < int(port_text) < 65536 else None
    return Server(
        id=server_id,
        name=server_id,
        app=app,
        version=environ.get("RELEASECTL_VERSION", ""),
        env=env,
        role=None,
        release_id="",
        status=ServerStatus.ERROR,
        address=ADDRESS if port else None,
        port=port,
        labels={Label.DAMAGED: damage.what},
        fault=damage.what + (f"; its process {running[0].pid} still runs" if running else "; no process runs"),
    )


def stop_server_processes(folder: Path, server_id: str, app: str, env: str, timeout: float) -> list[int]:
    """Stop every process of that server (by PID and start time). Returns their PIDs."""
    stopped = []
    for proc in server_processes(folder, server_id, app, env):
        procs.terminate(proc, timeout=timeout, what=f"server {server_id} (damaged record)")
        stopped.append(proc.pid)
    return stopped


def haproxy_process(lb_root: Path, cfg_path: Path) -> procs.ProcId | None:
    """The HAProxy that runs this pool's config: working folder lb_root and `-f <cfg_path>` on its command
    line (what `Pool._start` spawns)."""
    cfg = str(cfg_path.resolve())
    lb_root = lb_root.resolve()
    if not lb_root.is_dir():  # no process works in a folder that is not there: skip the /proc scan
        return None
    for proc in procs.find_by_cwd(lb_root):
        try:
            cwd = Path(os.readlink(f"/proc/{proc.pid}/cwd"))
        except OSError:
            continue
        argv = process_cmdline(proc.pid)
        if cwd == lb_root and "-f" in argv and cfg in argv and procs.is_alive(proc):
            return proc
    return None
