"""App processes: one real HTTP server per ACTIVE simulated server when ``serve_apps`` is on.

Each process listens on its server's own loopback address and the port from the image property
``releasectl_port``, so load-balancer health checks and release checks make real HTTP calls.
Processes are tracked by PID and stopped by PID (SIGTERM, SIGKILL after a timeout, then reaped).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

APP_SCRIPT = Path(__file__).with_name("app_server.py")


@dataclass
class AppProcess:
    server_id: str
    name: str
    address: str
    port: int
    version: str
    fail_health: bool
    popen: subprocess.Popen
    started_at: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    def describe(self) -> dict[str, Any]:
        return {"pid": self.pid, "server_id": self.server_id, "name": self.name, "address": self.address,
                "port": self.port, "version": self.version, "fail_health": self.fail_health,
                "alive": self.popen.poll() is None, "url": f"http://{self.address}:{self.port}/"}


class AppManager:
    """Starts, probes and stops the app processes; ``stop_all`` leaves nothing running."""

    def __init__(self, stop_timeout: float = 3.0) -> None:
        self.stop_timeout = stop_timeout
        self._procs: dict[str, AppProcess] = {}
        self._lock = threading.Lock()

    def start(self, server_id: str, *, name: str, address: str, port: int, version: str,
              fail_health: bool, sock: socket.socket | None = None,
              files: dict[str, str] | None = None) -> AppProcess:
        """Spawn the app. With ``sock`` (bound to address:port), the app listens on that socket.
        ``files``: what the server's user data wrote, served at ``/files/<path>``.

        The parent's copy of ``sock`` is closed here in every case.
        """
        cmd = [sys.executable, "-I", "-S", str(APP_SCRIPT), "--host", address, "--port", str(port),
               "--server-id", server_id, "--name", name, "--version", version,
               "--parent-pid", str(os.getpid())]
        if files:
            cmd += ["--files-json", json.dumps(files)[:65536]]
        if fail_health:
            cmd.append("--fail-health")
        pass_fds: tuple[int, ...] = ()
        if sock is not None:
            cmd += ["--fd", str(sock.fileno())]
            pass_fds = (sock.fileno(),)
        try:
            popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, close_fds=True, pass_fds=pass_fds)
        finally:
            if sock is not None:
                sock.close()
        proc = AppProcess(server_id, name, address, port, version, fail_health, popen, time.time())
        with self._lock:
            old = self._procs.pop(server_id, None)
            self._procs[server_id] = proc
        if old is not None:
            self._terminate(old)
        return proc

    def get(self, server_id: str) -> AppProcess | None:
        with self._lock:
            return self._procs.get(server_id)

    def probe(self, server_id: str, timeout: float = 0.5) -> str:
        """``ready`` once the app answers as this server, ``dead`` if it exited, else ``starting``."""
        proc = self.get(server_id)
        if proc is None or proc.popen.poll() is not None:
            return "dead"
        conn = http.client.HTTPConnection(proc.address, proc.port, timeout=timeout)
        try:
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            return "ready" if resp.getheader("X-Sim-Server-Id") == server_id else "starting"
        except OSError:
            return "starting"
        finally:
            conn.close()

    def pause(self, server_id: str) -> bool:
        """SIGSTOP, for a server that is SHUTOFF: it keeps its address:port (no other simulator can take it
        meanwhile), and connections to it wait instead of being answered."""
        return self._send(server_id, signal.SIGSTOP)

    def resume(self, server_id: str) -> bool:
        """SIGCONT: the server was started again. False when it has no live process."""
        return self._send(server_id, signal.SIGCONT)

    def _send(self, server_id: str, sig: int) -> bool:
        proc = self.get(server_id)
        if proc is None or proc.popen.poll() is not None:
            return False
        proc.popen.send_signal(sig)
        return True

    def begin_stop(self, server_id: str) -> None:
        """SIGTERM without waiting (a server being deleted): ``stop`` later reaps it, by then long gone, so
        deleting 50 servers does not stop 50 processes one after the other on the scheduler's thread."""
        proc = self.get(server_id)
        if proc is not None and proc.popen.poll() is None:
            proc.popen.terminate()
            proc.popen.send_signal(signal.SIGCONT)  # a paused (SHUTOFF) app handles its SIGTERM once continued

    def stop(self, server_id: str) -> None:
        with self._lock:
            proc = self._procs.pop(server_id, None)
        if proc is not None:
            self._terminate(proc)

    def stop_all(self) -> None:
        with self._lock:
            procs = list(self._procs.values())
            self._procs.clear()
        for proc in procs:  # signal all first, so they shut down in parallel
            if proc.popen.poll() is None:
                proc.popen.terminate()
                proc.popen.send_signal(signal.SIGCONT)
        for proc in procs:
            self._terminate(proc)

    def _terminate(self, proc: AppProcess) -> None:
        popen = proc.popen
        if popen.poll() is None:
            popen.terminate()
            popen.send_signal(signal.SIGCONT)  # a paused (SHUTOFF) app handles its SIGTERM once continued
        try:
            popen.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            try:
                popen.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                print(f"openstack_sim: app process {popen.pid} did not exit after SIGKILL", file=sys.stderr)

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [p.describe() for p in self._procs.values()]

