#!/usr/bin/env python3
"""releasectl's sample app: a tiny HTTP service to try blue-green and canary releases with.

Standard library only. Environment:
  PORT                 port to listen on (default 8000), always on 127.0.0.1 unless HOST says otherwise
  RELEASECTL_VERSION   the version it reports on /
  APP_LOG_REQUESTS=1   log each request to stderr (off by default)

Routes (GET; other methods get 501):
  /          200, the version
  /healthz   200, or 500 while a file named FAIL_HEALTH exists next to this script (checked on every
             request; that is how a demo bakes a broken version)
  anything   404

HTTP/1.1 with keep-alive (HTTP/1.0: one request per connection unless it asks for keep-alive). On SIGTERM it
stops accepting, lets in-flight requests finish (up to 10 s), then exits.

It speaks HTTP with socketserver instead of http.server: http.server imports email, html, mimetypes, ssl
and more, which took its start-up from 30 to 50 ms of CPU, and a release boots a whole fleet at once.
"""

from __future__ import annotations

import os
import selectors
import signal
import socketserver
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FAIL_FLAG = os.path.join(HERE, "FAIL_HEALTH")
VERSION = os.environ.get("RELEASECTL_VERSION", "dev")
LOG_REQUESTS = os.environ.get("APP_LOG_REQUESTS", "").lower() in ("1", "true", "yes", "on")
GRACE_SECONDS = 10.0
SERVER_NAME = "releasectl-sample"
MAX_LINE = 65536  # request and header lines, as http.server allows
MAX_HEADERS = 100
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 414: "Request-URI Too Long",
           431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
           505: "HTTP Version Not Supported"}

_inflight = 0
_inflight_cond = threading.Condition()
_stopping = threading.Event()


class BadRequest(Exception):
    """A request we answer with an error status and then close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Handler(socketserver.StreamRequestHandler):
    """One connection: its requests in turn, each answered in one send()."""

    timeout = 120  # drop idle keep-alive connections eventually (longer than any LB idle pool)
    disable_nagle_algorithm = True  # TCP_NODELAY: without it keep-alive costs ~40 ms per request
    # wbufsize 0 (unbuffered): `_send` writes the status line, headers and body with one sendall(), so a
    # kill -9 can never leave a peer with headers and no body. The LB retries a request whose server sent
    # nothing; once headers have gone to the client it cannot, and the client sees a cut-off reply.

    def handle(self) -> None:
        try:
            while self.handle_one_request():
                pass
        except TimeoutError:  # idle (or a request stalled) for `timeout` seconds
            return

    def handle_one_request(self) -> bool:
        """Read one request and answer it; False when the connection is to close."""
        global _inflight
        line = self.rfile.readline(MAX_LINE + 1)
        if not line:
            return False
        with _inflight_cond:  # from its request line until its reply is written, a request is in flight
            _inflight += 1
        try:
            return self._answer(line)
        finally:
            with _inflight_cond:
                _inflight -= 1
                _inflight_cond.notify_all()

    def _answer(self, line: bytes) -> bool:
        self.requestline, self.command, self.http09 = "", "", False
        try:
            if len(line) > MAX_LINE:
                raise BadRequest(414, "Request-URI Too Long")
            self.requestline = str(line, "iso-8859-1").rstrip("\r\n")
            keep_alive = self._parse_request_line()
            if keep_alive is None:  # a blank line
                return False
            headers = self._read_headers()
        except BadRequest as exc:
            return self._send(exc.status, f"{exc.status} {exc}\n", keep_alive=False, error=True)
        connection = headers.get("connection", "").lower()
        if connection == "close":
            keep_alive = False
        elif connection == "keep-alive":
            keep_alive = True
        if self.http09:
            keep_alive = False
        if self.command != "GET":
            return self._send(501, f"501 Unsupported method ({self.command!r})\n", keep_alive=False, error=True)
        path = self.path.split("?", 1)[0]
        if path == "/":
            status, text = 200, f"{VERSION}\n"
        elif path == "/healthz":
            status, text = (500, "unhealthy\n") if os.path.exists(FAIL_FLAG) else (200, "ok\n")
        else:
            status, text = 404, "not found\n"
        return self._send(status, text, keep_alive=keep_alive)

    def _parse_request_line(self) -> bool | None:
        """Method, path and version into self; whether the connection stays open by default (HTTP/1.1), or
        None for a blank line. The same rules as http.server."""
        words = self.requestline.split()
        if not words:
            return None
        keep_alive = False
        if len(words) >= 3:
            version = words[-1]
            numbers = version[5:].split(".") if version.startswith("HTTP/") else []
            if len(numbers) != 2 or not all(n.isdigit() and len(n) <= 10 for n in numbers):
                raise BadRequest(400, f"Bad request version ({version!r})")
            major, minor = int(numbers[0]), int(numbers[1])
            if major >= 2:
                raise BadRequest(505, f"Invalid HTTP version ({version[5:]})")
            keep_alive = (major, minor) >= (1, 1)
        if not 2 <= len(words) <= 3:
            raise BadRequest(400, f"Bad request syntax ({self.requestline!r})")
        self.command, self.path = words[0], words[1]
        if len(words) == 2:  # HTTP/0.9: GET only, a bare body back
            if self.command != "GET":
                raise BadRequest(400, f"Bad HTTP/0.9 request type ({self.command!r})")
            self.http09 = True
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")
        return keep_alive

    def _read_headers(self) -> dict[str, str]:
        """The request's headers up to the blank line, names lower-cased (the first of each name counts)."""
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            line = self.rfile.readline(MAX_LINE + 1)
            if len(line) > MAX_LINE:
                raise BadRequest(431, "Line too long")
            if line in (b"\r\n", b"\n", b""):
                return headers
            name, sep, value = str(line, "iso-8859-1").partition(":")
            if sep:
                headers.setdefault(name.strip().lower(), value.strip())
        raise BadRequest(431, "Too many headers")

    def _send(self, status: int, text: str, *, keep_alive: bool, error: bool = False) -> bool:
        """Write the whole reply at once; whether the connection stays open. An error reply, and every reply
        once the app is stopping, says `Connection: close` and closes."""
        body = text.encode()
        close = error or _stopping.is_set()
        if self.http09:
            reply = body
        else:
            head = [f"HTTP/1.1 {status} {REASONS[status]}", f"Server: {SERVER_NAME}",
                    "Date: " + time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
                    "Content-Type: text/plain; charset=utf-8", f"Content-Length: {len(body)}"]
            if close:
                head.append("Connection: close")
            reply = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (b"" if self.command == "HEAD" else body)
        self.wfile.write(reply)
        if LOG_REQUESTS:
            when = time.strftime("%d/%b/%Y %H:%M:%S")
            print(f'{self.client_address[0]} - - [{when}] "{self.requestline}" {status} -', file=sys.stderr, flush=True)
        return keep_alive and not close


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
