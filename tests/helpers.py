"""Helpers shared by tests and benchmarks: free loopback ports, processes left under a folder, and a
digest of a folder tree."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
from pathlib import Path


def free_port() -> int:
    """A free loopback port whose neighbour is free too (`releasectl init` gives staging port+1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65534:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of loopback ports")


def processes_under(root: Path) -> list[tuple[int, str]]:
    """Live (non-zombie) processes whose working folder is under root or whose command line mentions it:
    what a test must not leave behind."""
    root_s = str(root.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            if stat[stat.rindex(")") + 2] in "ZX":
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                cwd = ""
        except (OSError, ValueError):
            continue
        if root_s in cmd or cwd == root_s or cwd.startswith(root_s + "/"):
            found.append((int(entry.name), cmd or "?"))
    return found


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file, the target of every link and a marker for every folder below root: equal
    before and after a command proves it created, changed and removed nothing (not even an empty folder
    or a lock file)."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "special"
    return out


def server_process(provider, version: str, index: int = 0):
    """The ProcId of a running server of `version` on a local provider (the index-th by name), to kill -9
    or SIGSTOP it."""
    server = sorted((s for s in provider.list_servers() if s.version == version), key=lambda s: s.name)[index]
    proc = provider.servers._proc(provider.servers._read(server.id))
    if proc is None:
        raise AssertionError(f"server {server.id} has no recorded process")
    return proc


def local_provider(config: Path, env: str | None = None):
    """A LocalProvider over the state a CLI run with this releasectl.yaml (and --env) would use."""
    from releasectl.config import load_settings
    from releasectl.providers.base import ProviderContext
    from releasectl.providers.local import LocalProvider

    s = load_settings(config, env)
    return LocalProvider(ProviderContext(app=s.app, env=s.env, config_dir=s.config_dir, state_dir=s.state_dir,
                                         health=s.health, app_port=s.app_port, options=dict(s.provider_options)))


class WebhookReceiver:
    """A loopback HTTP server in a thread that records every POST (path, headers, body) in arrival order.
    `fail_first` answers the first N requests with 503 (to exercise retries); `hang` never answers (a
    receiver that accepts and then stays silent). Use as a context manager; stops its thread on exit."""

    def __init__(self, *, fail_first: int = 0, hang: bool = False) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.fail_first = fail_first
        self.received = threading.Condition()
        self._release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = min(int(self.headers.get("Content-Length") or 0), 1024 * 1024)
                body = self.rfile.read(length)
                if hang:
                    outer._release.wait(60)
                    return
                with outer.received:
                    failing = outer.fail_first > 0
                    outer.fail_first -= 1 if failing else 0
                    if not failing:
                        outer.requests.append((self.path, dict(self.headers.items()), body))
                    outer.received.notify_all()
                self.send_response(503 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[tuple[str, dict[str, str], bytes]]:
        """The first `count` requests, polling until they arrived (or the timeout: then what came)."""
        with self.received:
            self.received.wait_for(lambda: len(self.requests) >= count, timeout=timeout)
            return list(self.requests)

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
def stop_leftovers(*roots: Path) -> list[tuple[int, str]]:
    """SIGKILL, by PID, every process `processes_under` finds below roots; returns them, so the caller can
    fail the test for the leak after cleaning it up."""
    left = [p for root in roots for p in processes_under(root)]
    for pid, _cmd in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def fast_pipelines(hold: str, drain: str, final_hold: str | None = None) -> dict[str, str]:
    """The tests' pipelines, by file name: the built-in shapes with short holds and drains, so a whole
    release takes seconds. `final_hold` holds 100% (and the gate's steps) before retiring; the local tests
    use holds of 1s, the OpenStack ones 300ms (health checks every 200ms there). The analysis takes any
    number of requests (`min_requests: 0`): most of these canaries run without load."""
    final = f", hold: {final_hold}" if final_hold else ""
    return {
        "canary-fast.yaml": f"""\
name: canary-fast
steps:
  - launch: {{}}
  - weight: {{percent: 10, hold: {hold}}}
  - analyze: {{duration: {hold}, max_error_rate: 1%, min_requests: 0}}
  - weight: {{percent: 50, hold: {hold}}}
  - weight: {{percent: 100{final}}}
  - retire: {{drain_timeout: {drain}}}
""",
        "bluegreen-fast.yaml": f"""\
name: bluegreen-fast
steps:
  - launch: {{}}
  - weight: {{percent: 100, hold: {hold}}}
  - retire: {{drain_timeout: {drain}, keep_previous: 10m}}
""",
        "gate-fast.yaml": f"""\
name: gate-fast
steps:
  - launch: {{}}
  - weight: {{percent: 10{final}}}
  - pause: {{}}
  - weight: {{percent: 100{final}}}
  - retire: {{drain_timeout: {drain}}}
""",
        "first-fast.yaml": f"""\
name: first-fast
steps:
  - launch: {{}}
  - weight: {{percent: 100}}
  - retire: {{drain_timeout: {drain}}}
""",
    }


def png_pixels(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, channels, raw pixel bytes) of an 8-bit RGB or RGBA PNG (what Chromium writes), with
    zlib alone: no image library in the tests' dependencies."""
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    assert header is not None, "no IHDR chunk"
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unsupported PNG: depth {depth}, colour type {colour}"
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    out, prev = bytearray(), bytearray(stride)
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        out += line
        prev = line
    return width, height, channels, bytes(out)
