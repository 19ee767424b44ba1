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
import socketserver
import sys
import threading
import time

# http.server is not used: with what it imports (email, http.client, html, mimetypes...) it doubled the
# CPU a boot costs, and a fleet of 20 boots at once. The app needs only GET, keep-alive and a clean stop.
HERE = os.path.dirname(os.path.abspath(__file__))
FAIL_FLAG = os.path.join(HERE, "FAIL_HEALTH")
VERSION = os.environ.get("RELEASECTL_VERSION", "dev")
LOG_REQUESTS = os.environ.get("APP_LOG_REQUESTS", "").lower() in ("1", "true", "yes", "on")
GRACE_SECONDS = 10.0
MAX_LINE = 65536
MAX_HEADERS = 100
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error", 501: "Not Implemented"}

_inflight = 0
_inflight_cond = threading.Condition()
_stopping = threading.Event()


class Handler(socketserver.StreamRequestHandler):
    """HTTP/1.0 and 1.1 GET with keep-alive; a request is in flight from its request line to its reply."""

    disable_nagle_algorithm = True  # TCP_NODELAY: without it keep-alive costs ~40 ms per request
    timeout = 120  # drop idle keep-alive connections eventually (longer than any LB idle pool)

    def handle(self) -> None:
        global _inflight
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line:
                return  # the client closed
            if line in (b"\r\n", b"\n"):
                continue  # a stray blank line between requests (RFC 9112 2.2)
            with _inflight_cond:
                _inflight += 1
            try:
                keep_alive = self.handle_request(line)
            finally:
                with _inflight_cond:
                    _inflight -= 1
                    _inflight_cond.notify_all()
            if not keep_alive:
                return

    def handle_request(self, line: bytes) -> bool:
        """Read one request's headers (and discard its body), reply; whether the connection stays open."""
        parts = line.decode("latin-1").split()
        if len(line) > MAX_LINE or len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return self.reply(400, "bad request\n", close=True)
        method, target, version = parts
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            raw = self.rfile.readline(MAX_LINE + 1)
            if raw in (b"\r\n", b"\n"):
                break
            if not raw or len(raw) > MAX_LINE or b":" not in raw:
                return self.reply(400, "bad request\n", close=True)
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            return self.reply(400, "too many headers\n", close=True)
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        if "transfer-encoding" in headers:
            return self.reply(400, "chunked bodies are not supported\n", close=True)
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            return self.reply(400, "bad content-length\n", close=True)
        if length > 0:
            self.rfile.read(length)
        self.log(f"{method} {target} {version}")
        if method != "GET":
            return self.reply(501, "not implemented\n", close=True)
        path = target.split("?", 1)[0]
        if path == "/":
            return self.reply(200, f"{VERSION}\n", close=not keep_alive)
        if path == "/healthz":
            # checked on every request: that is how a demo bakes a broken version
            if os.path.exists(FAIL_FLAG):
                return self.reply(500, "unhealthy\n", close=not keep_alive)
            return self.reply(200, "ok\n", close=not keep_alive)
        return self.reply(404, "not found\n", close=not keep_alive)

    def reply(self, status: int, text: str, *, close: bool) -> bool:
        close = close or _stopping.is_set()  # a stopping app ends each connection after its reply
        body = text.encode()
        head = (
            f"HTTP/1.1 {status} {REASONS[status]}\r\n"
            "Server: releasectl-sample\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            + ("Connection: close\r\n" if close else "")
            + "\r\n"
        )
        self.wfile.write(head.encode("latin-1") + body)
        return not close

    def log(self, request: str) -> None:
        if LOG_REQUESTS:
            print(f"{self.client_address[0]} - {request}", file=sys.stderr, flush=True)


class Server(socketserver.ThreadingTCPServer):
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
