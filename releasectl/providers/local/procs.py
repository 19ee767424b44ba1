"""Detached processes identified by (pid, start time, boot id), so a reused PID is never signalled.

Every process releasectl starts locally (app servers and HAProxy) goes through `spawn`, and every stop
through `terminate`. A process started by this Python process is kept in `_CHILDREN` so it can be reaped
(no zombies) and its exit code reported; one started by an earlier CLI run is reparented to init and only
known by its recorded PID and start time.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from releasectl.errors import ResourceFailure, WaitTimeout
from releasectl.logs import Logger
from releasectl.wait import wait_for

if TYPE_CHECKING:
    import subprocess

log = Logger("releasectl.providers.local")

_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
_EXIT_CODES: dict[int, int] = {}


@dataclass(frozen=True)
class ProcId:
    """What identifies one process across CLI runs."""

    pid: int
    start: int  # clock ticks since boot, field 22 of /proc/<pid>/stat
    boot: str  # /proc/sys/kernel/random/boot_id


@functools.lru_cache(maxsize=1)
def boot_id() -> str:
    """This boot's id (read once: it cannot change while this process runs)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) from /proc/<pid>/stat, or None when there is no such process. Raw os calls:
    every pass of a release checks each server's process (Path.read_text took 4x as long)."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    try:
        raw = os.read(fd, 4096)
    except ProcessLookupError:  # it exited between open and read
        return None
    finally:
        os.close(fd)
    # comm (field 2) is in parentheses and may contain spaces or ')': split after the last ')'
    rest = raw[raw.rindex(b")") + 2 :].split()
    return rest[0].decode(), int(rest[19])  # field 3 = state, field 22 = starttime


def start_time(pid: int) -> int | None:
    st = _stat(pid)
    return None if st is None else st[1]


def reap(pid: int) -> None:
    """Collect the exit status if `pid` is a child of this process (never blocks)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            _EXIT_CODES[pid] = child.returncode
            del _CHILDREN[pid]
        return
    with contextlib.suppress(ChildProcessError, OSError):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            _EXIT_CODES[pid] = os.waitstatus_to_exitcode(status)


def exit_code(pid: int) -> int | None:
    """The exit code of a child of this process that has been reaped, when known."""
    return _EXIT_CODES.get(pid)


def is_alive(proc: ProcId) -> bool:
    """True while that very process runs (same PID, same start time, same boot); zombies count as dead."""
    if proc.boot and proc.boot != boot_id():
        return False
    st = _stat(proc.pid)
    if st is None or st[1] != proc.start:
        return False
    if st[0] in ("Z", "X"):
        reap(proc.pid)
        return False
    return True


def is_stopped(proc: ProcId) -> bool:
    """True when that very process is alive but stopped (SIGSTOP, or traced): it runs nothing."""
    st = _stat(proc.pid)
    return is_alive(proc) and st is not None and st[0] in ("T", "t")


def kill(proc: ProcId, *, what: str) -> None:
    """SIGKILL at once (a stopped or hung process never handles SIGTERM) and return once it is gone."""
    _signal(proc, signal.SIGKILL)
    try:
        wait_for(lambda: not is_alive(proc), timeout=5.0, interval=0.01, max_interval=0.1,
                 what=f"{what} (pid {proc.pid}) to exit after SIGKILL")
    except WaitTimeout as exc:
        raise ResourceFailure(f"{what} (pid {proc.pid}) survived SIGKILL") from exc
    reap(proc.pid)


def pid_is_running(pid: int) -> bool:
    """A weaker check for a PID recorded by someone else (a lock holder): any live process with that PID."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def spawn(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log_path: Path) -> ProcId:
    """Start `argv` detached: its own session, stdin from /dev/null, stdout+stderr appended to log_path.

    It outlives the CLI process that started it. Raises ResourceFailure when it cannot be executed.
    """
    import subprocess  # here: read-only commands start nothing

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as logf:
        try:
            child = subprocess.Popen(  # noqa: S603 - argv from the user's own config
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise ResourceFailure(f"cannot start {argv[0]!r} in {cwd}: {exc}") from exc
    _CHILDREN[child.pid] = child
    st = start_time(child.pid)
    if st is None:  # gone already and reaped by someone: record something that never matches again
        st = -1
    return ProcId(child.pid, st, boot_id())


def _signal(proc: ProcId, sig: int) -> None:
    """Signal the process, and its process group when it leads one (we start each in its own session,
    so a wrapper's children go too). Only after checking that the PID is still that very process."""
    if not is_alive(proc):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        try:
            leads_group = os.getpgid(proc.pid) == proc.pid
        except ProcessLookupError:
            return
        if leads_group:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)


def terminate(proc: ProcId, *, timeout: float, what: str) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL; return once the process is gone. Idempotent."""
    terminate_all([(proc, what)], timeout=timeout)


def terminate_all(stops: Sequence[tuple[ProcId, str]], *, timeout: float) -> None:
    """`terminate` for several processes at once: SIGTERM to each, one wait for all of them (a fleet takes as
    long as its slowest process, not the sum), SIGKILL to those left after `timeout`. `stops` pairs each
    process with what it is, for the log."""
    alive = [(proc, what) for proc, what in stops if is_alive(proc)]
    for proc, _ in alive:
        _signal(proc, signal.SIGTERM)
    if alive:
        names = alive[0][1] if len(alive) == 1 else f"{len(alive)} processes"
        try:
            wait_for(lambda: not any(is_alive(proc) for proc, _ in alive), timeout=max(timeout, 0.1), interval=0.02,
                     max_interval=0.05, what=f"{names} to exit after SIGTERM")
        except WaitTimeout:
            for proc, what in alive:
                if is_alive(proc):
                    log.warning("%s (pid %d) ignored SIGTERM for %gs; sending SIGKILL", what, proc.pid, timeout)
                    kill(proc, what=what)
    for proc, _ in stops:
        reap(proc.pid)


def find_by_cwd(folder: Path) -> list[ProcId]:
    """Processes whose working directory is inside `folder` (for a server whose PID was never recorded)."""
    folder_str = str(folder.resolve())
    inside = folder_str.rstrip("/") + "/"
    found = []
    for name in os.listdir("/proc"):  # strings, not Paths: `status` runs this scan (the doctor's) every time
        if not name.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{name}/cwd")
        except OSError:
            continue
        if cwd == folder_str or cwd.startswith(inside):
            st = start_time(int(name))
            if st is not None:
                found.append(ProcId(int(name), st, boot_id()))
    return found


def tail(path: Path, lines: int = 20, max_chars: int = 2000) -> str:
    """The last lines of a log file ('' when missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode(errors="replace")
    except OSError:
        return ""
    text = "\n".join(data.rstrip("\n").splitlines()[-lines:])
    return text[-max_chars:]
