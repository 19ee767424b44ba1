"""A small Swift (object-store) double on loopback HTTP, for the openstack provider's records and lock.

The simulator in tests/openstack_sim has no object store yet, so these tests run this double beside it
and point the provider at it with `object_store_endpoint_override` in clouds.yaml. It checks tokens
against the simulator's Keystone (`GET /v3/auth/tokens`, as keystonemiddleware does) and implements what
releasectl uses, with Swift's semantics:

- `PUT /v1/AUTH_<project>/<container>` creates a container (201, or 202 if it exists);
- `PUT .../<container>/<object>` stores an object whole (201); with `If-None-Match: *` only if the name is
  free, else 412; `If-Match: <etag>` only if the current etag matches, else 412; 404 without a container;
- `GET`/`HEAD` an object (404 if missing), `DELETE` (204, 404 if missing); names are reused after DELETE;
- `GET .../<container>?format=json&prefix=&marker=&limit=` lists names in byte order, paged.

A request counter (`counts`) lets tests assert how many calls a lock operation made, and
`lose_put_answers` stores the next PUTs but answers 503, as a proxy that lost the backend's answer.
"""

from __future__ import annotations

import collections
import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests


class SwiftDouble:
    def __init__(self, keystone_url: str, project_id: str, page_limit: int = 10000) -> None:
        self.keystone_url = keystone_url.rstrip("/")
        self.account = f"AUTH_{project_id}"
        self.page_limit = page_limit
        self.lock = threading.Lock()
        self.containers: dict[str, dict[str, tuple[bytes, str, str]]] = {}  # name -> {object: (data, etag, type)}
        self.counts: collections.Counter[str] = collections.Counter()
        self._valid: dict[str, float] = {}
        self.lose_put_answers = 0  # the next N object PUTs are stored, but answered 503 (a lost answer)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> "SwiftDouble":
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms a call
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = double.handle(self.command, self.path, self.headers, body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("X-Trans-Id", f"tx{time.time_ns():x}")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD" and payload:
                    self.wfile.write(payload)

            do_GET = do_PUT = do_DELETE = do_HEAD = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1/{self.account}"

    # ---- requests -----------------------------------------------------------------------------------------

    def _token_ok(self, token: str) -> bool:
        if not token:
            return False
        if self._valid.get(token, 0) > time.monotonic():
            return True
        resp = requests.get(f"{self.keystone_url}/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token}, timeout=5)
        if resp.status_code == 200:
            self._valid[token] = time.monotonic() + 2.0
            return True
        return False

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(target)
        parts = [unquote(p) for p in split.path.split("/", 4)[1:]]  # v1, account, container, object
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        with self.lock:
            self.counts[f"{method} {'object' if len(parts) > 3 else 'container'}"] += 1
        if len(parts) < 3 or parts[0] != "v1" or parts[1] != self.account or not parts[2]:
            return 404, {"Content-Type": "text/plain"}, b"Not Found"
        if not self._token_ok(headers.get("X-Auth-Token", "")):
            return 401, {"Content-Type": "text/html"}, b"<html><h1>Unauthorized</h1><p>This server could not verify that you are authorized.</p></html>"
        container = parts[2]
        name = parts[3] if len(parts) > 3 else ""
        with self.lock:
            if not name:
                return self._container(method, container, query)
            return self._object(method, container, name, headers, body)

    def _container(self, method: str, container: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if method == "PUT":
            existed = container in self.containers
            self.containers.setdefault(container, {})
            return (202 if existed else 201), {}, b""
        objects = self.containers.get(container)
        if objects is None:
            return 404, {"Content-Type": "text/plain"}, b"Not Found"
        if method in ("GET", "HEAD"):
            prefix, marker = query.get("prefix", ""), query.get("marker", "")
            limit = min(int(query.get("limit") or self.page_limit), self.page_limit)
            names = sorted(n for n in objects if n.startswith(prefix) and n > marker)[:limit]
            listing = [{"name": n, "bytes": len(objects[n][0]), "hash": objects[n][1], "content_type": objects[n][2]} for n in names]
            return 200, {"Content-Type": "application/json"}, json.dumps(listing).encode()
        if method == "DELETE":
            if objects:
                return 409, {"Content-Type": "text/plain"}, b"Conflict: container not empty"
            del self.containers[container]
            return 204, {}, b""
        return 405, {}, b""

    def _object(self, method: str, container: str, name: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        objects = self.containers.get(container)
        if objects is None:
            return 404, {"Content-Type": "text/plain"}, b"Not Found"
        current = objects.get(name)
        if method == "PUT":
            if_none = headers.get("If-None-Match")
            if if_none is not None:
                if if_none.strip() != "*":
                    return 400, {"Content-Type": "text/plain"}, b"If-None-Match only supports *"
                if current is not None:
                    return 412, {"Content-Type": "text/plain"}, b"Precondition Failed"
            if_match = headers.get("If-Match")
            if if_match is not None and (current is None or if_match.strip('"') != current[1]):
                return 412, {"Content-Type": "text/plain"}, b"Precondition Failed"
            etag = hashlib.md5(body).hexdigest()  # noqa: S324 - Swift's etag
            objects[name] = (body, etag, headers.get("Content-Type", "application/octet-stream"))
            if self.lose_put_answers > 0:
                self.lose_put_answers -= 1
                return 503, {"Content-Type": "text/plain"}, b"Service Unavailable"
            return 201, {"Etag": etag}, b""
        if current is None:
            return 404, {"Content-Type": "text/plain"}, b"Not Found"
        if method in ("GET", "HEAD"):
            return 200, {"Etag": current[1], "Content-Type": current[2]}, current[0]
        if method == "DELETE":
            del objects[name]
            return 204, {}, b""
        return 405, {}, b""

    def names(self, container: str = "releasectl") -> list[str]:
        with self.lock:
            return sorted(self.containers.get(container, {}))
