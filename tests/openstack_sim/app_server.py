"""The application a simulated server runs when the simulator has ``serve_apps`` on.

Run as a script (standard library only, no package imports) by ``apps.py`` with the Python that
runs the simulator. ``/`` answers 200 with the release version from the boot image, ``/healthz``
answers 200, or 500 when the image was made to fail health checks. The process exits by itself
if its parent (the simulator) dies, so a crashed test run leaves no listener behind.

HTTP/1.1 with keep-alive over ``socketserver``, not ``http.server`` and ``argparse``: their imports
cost ~100 ms of CPU per process, and a release of 50 servers starts 50 of them at once.
"""

import json
import os
import socket
import socketserver
import sys
import threading
import time

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error", 501: "Not Implemented"}
FLAGS = {"--fail-health"}
MAX_LINE = 65536


def parse_args(argv: list[str]) -> dict:
    """`--name value` options and the `--fail-health` flag (what apps.py passes)."""
    args = {"name": "", "version": "", "fail_health": False, "parent_pid": 0, "fd": -1, "files_json": "{}"}
    i = 0
    while i < len(argv):
        key = argv[i]
        if key in FLAGS:
            args[key[2:].replace("-", "_")] = True
            i += 1
            continue
        if not key.startswith("--") or i + 1 >= len(argv):
            sys.exit(f"app_server: bad argument {key!r}")
        args[key[2:].replace("-", "_")] = argv[i + 1]
        i += 2
    for key in ("port", "parent_pid", "fd"):
        args[key] = int(args[key])
    if "host" not in args or "server_id" not in args:
        sys.exit("app_server: --host, --port and --server-id are required")
    return args


def main() -> None:
    args = parse_args(sys.argv[1:])
    try:
        files = json.loads(args["files_json"])
    except ValueError:
        files = {}
    fail_health = args["fail_health"]
    identity = {"version": args["version"], "server_id": args["server_id"], "name": args["name"],
                "address": args["host"], "port": args["port"]}
    extra = f"X-Sim-Server-Id: {args['server_id']}\r\nX-Releasectl-Version: {args['version']}\r\n"

    def answer(path: str) -> tuple[int, bytes, str]:
        if path == "/healthz":
            return (500, b"unhealthy\n", "text/plain") if fail_health else (200, b"ok\n", "text/plain")
        if path.startswith("/files/") and path[len("/files/"):] in files:
            return 200, str(files[path[len("/files/"):]]).encode(), "text/plain"
        if path == "/":
            return 200, json.dumps(identity).encode() + b"\n", "application/json"
        return 404, b"not found\n", "text/plain"

    class Handler(socketserver.StreamRequestHandler):
        disable_nagle_algorithm = True
        timeout = 60  # an idle keep-alive connection is closed after this many seconds

        def handle(self) -> None:
            try:
                while self.one_request():  # bounded by the client: one loop per request on the connection
                    pass
            except (OSError, ValueError):
                pass

        def one_request(self) -> bool:
            line = self.rfile.readline(MAX_LINE)
            while line in (b"\r\n", b"\n"):
                line = self.rfile.readline(MAX_LINE)
            if not line:
                return False
            parts = line.decode("latin-1").split()
            headers = {}
            for _ in range(100):  # at most 100 header lines
                raw = self.rfile.readline(MAX_LINE)
                if raw in (b"\r\n", b"\n", b""):
                    break
                key, _, value = raw.decode("latin-1").partition(":")
                headers[key.strip().lower()] = value.strip()
            if len(parts) != 3:
                self.send(400, b"bad request\n", "text/plain", "GET", close=True)
                return False
            method, target, version = parts
            length = int(headers.get("content-length") or 0)
            if length > 0:
                self.rfile.read(length)
            conn = headers.get("connection", "").lower()
            close = conn == "close" or (version == "HTTP/1.0" and conn != "keep-alive")
            if method not in ("GET", "HEAD"):
                self.send(501, b"not implemented\n", "text/plain", method, close)
            else:
                self.send(*answer(target.split("?", 1)[0]), method, close)
            return not close

        def send(self, status: int, body: bytes, ctype: str, method: str, close: bool) -> None:
            head = (f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\nContent-Type: {ctype}\r\n"
                    f"Content-Length: {len(body)}\r\n{extra}" + ("Connection: close\r\n" if close else "") + "\r\n")
            self.wfile.write(head.encode("latin-1") + (b"" if method == "HEAD" else body))

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    if args["fd"] >= 0:
        # The simulator reserved host:port by binding this socket; listen on it (no bind race).
        server = Server((args["host"], args["port"]), Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = socket.socket(fileno=args["fd"])
        server.server_address = server.socket.getsockname()
        server.server_activate()
    else:
        server = Server((args["host"], args["port"]), Handler)

    def watch_parent() -> None:
        # Bounded by the parent's lifetime: exit as soon as the simulator process is gone.
        while os.getppid() == args["parent_pid"]:
            time.sleep(0.5)
        os._exit(0)

    if args["parent_pid"]:
        threading.Thread(target=watch_parent, daemon=True).start()
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
