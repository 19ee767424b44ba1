#!/usr/bin/env python3
"""releasectl's sample app: a tiny HTTP service to try blue-green and canary releases with.

Standard library only. Environment:
  PORT                 port to listen on (default 8000), always on 127.0.0.1 unless HOST says otherwise
  RELEASECTL_VERSION   the version it reports on /
  APP_LOG_REQUESTS=1   log each request to stderr (off by default)

Routes:
  /          200, the version
  /healthz   200, or 500 while a file named FAIL_HEALTH exists next to this script (checked on every
             request; that is how a demo bakes a broken version)
  anything   404

On SIGTERM it stops accepting, lets in-flight requests finish (up to 10 s), then exits.
"""

from __future__ import annotations

import os
import selectors
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAIL_FLAG = HERE / "FAIL_HEALTH"
VERSION = os.environ.get("RELEASECTL_VERSION", "dev")
LOG_REQUESTS = os.environ.get("APP_LOG_REQUESTS", "").lower() in ("1", "true", "yes", "on")
GRACE_SECONDS = 10.0

_inflight = 0
_inflight_cond = threading.Condition()
_stopping = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # TCP_NODELAY: without it keep-alive costs ~40 ms per request
    server_version = "releasectl-sample"
    sys_version = ""
    timeout = 120  # drop idle keep-alive connections eventually (longer than any LB idle pool)
    # Buffered writes: the status line, headers and body leave in one send() when the handler flushes, so a
    # kill -9 can never leave a peer with headers and no body. The LB retries a request whose server sent
    # nothing; once headers have gone to the client it cannot, and the client sees a cut-off reply.
    wbufsize = -1

    def parse_request(self) -> bool:
        # Called once a request line has arrived: from here until its reply is written, it is in flight.
        global _inflight
        with _inflight_cond:
            _inflight += 1
        self._counted = True
        return super().parse_request()

    def handle_one_request(self) -> None:
        global _inflight
        self._counted = False
        try:
            super().handle_one_request()
        finally:
            if self._counted:
                with _inflight_cond:
                    _inflight -= 1
                    _inflight_cond.notify_all()

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._reply(200, f"{VERSION}\n")
        elif path == "/healthz":
            if FAIL_FLAG.exists():
                self._reply(500, "unhealthy\n")
            else:
                self._reply(200, "ok\n")
        else:
            self._reply(404, "not found\n")

    def _reply(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if _stopping.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server signature
        if LOG_REQUESTS:
            super().log_message(format, *args)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Load-balancer health checks close with a reset; a peer that went away is not worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def serve_until_stopped(self, wake_r: int) -> None:
        """serve_forever without its 0.2 s shutdown poll: the loop sleeps in select() until a connection
        arrives or the SIGTERM handler writes to the wake-up pipe, so it stops at once and idles for free."""
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(wake_r, selectors.EVENT_READ)
            while not _stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self and not _stopping.is_set():
                        self._handle_request_noblock()


def main() -> int:
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    server = Server((host, port), Handler)
    wake_r, wake_w = os.pipe()

    def on_term(signum: int, frame: object) -> None:
        _stopping.set()
        os.write(wake_w, b"x")  # wakes serve_until_stopped's select()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    print(f"app {VERSION} listening on http://{host}:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_until_stopped(wake_r)
    finally:
        server.server_close()  # stop accepting
    with _inflight_cond:  # let in-flight requests finish
        _inflight_cond.wait_for(lambda: _inflight == 0, timeout=GRACE_SECONDS)
    print(f"app {VERSION} stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
