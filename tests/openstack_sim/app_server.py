"""The application a simulated server runs when the simulator has ``serve_apps`` on.

Run as a script (standard library only, no package imports) by ``apps.py`` with the Python that
runs the simulator. ``/`` answers 200 with the release version from the boot image, ``/healthz``
answers 200, or 500 when the image was made to fail health checks. The process exits by itself
if its parent (the simulator) dies, so a crashed test run leaves no listener behind.
"""

import argparse
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-id", required=True)
    parser.add_argument("--name", default="")
    parser.add_argument("--version", default="")
    parser.add_argument("--fail-health", action="store_true")
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--fd", type=int, default=-1, help="an inherited socket already bound to host:port")
    parser.add_argument("--files-json", default="{}", help="files the server's user data wrote: /files/<path>")
    args = parser.parse_args()
    try:
        files = json.loads(args.files_json)
    except ValueError:
        files = {}

    identity = {"version": args.version, "server_id": args.server_id, "name": args.name,
                "address": args.host, "port": args.port}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                status = 500 if args.fail_health else 200
                body = b"unhealthy\n" if args.fail_health else b"ok\n"
                ctype = "text/plain"
            elif path.startswith("/files/") and path[len("/files/"):] in files:
                status, body, ctype = 200, str(files[path[len("/files/"):]]).encode(), "text/plain"
            elif path == "/":
                status, body, ctype = 200, json.dumps(identity).encode() + b"\n", "application/json"
            else:
                status, body, ctype = 404, b"not found\n", "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Sim-Server-Id", args.server_id)
            self.send_header("X-Releasectl-Version", args.version)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, format, *a):  # noqa: A002 - quiet
            pass

    if args.fd >= 0:
        # The simulator reserved host:port by binding this socket; listen on it (no bind race).
        server = ThreadingHTTPServer((args.host, args.port), Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = socket.socket(fileno=args.fd)
        server.server_address = server.socket.getsockname()
        server.server_activate()
    else:
        server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True

    def watch_parent() -> None:
        # Bounded by the parent's lifetime: exit as soon as the simulator process is gone.
        while os.getppid() == args.parent_pid:
            time.sleep(0.5)
        os._exit(0)

    if args.parent_pid:
        threading.Thread(target=watch_parent, daemon=True).start()
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
