"""HTTP layer: parse requests, route them to a service, check the token, apply faults, journal.

Services only see ``Request`` objects and return ``Response`` objects or raise ``ApiError``; each
service renders errors in its own project's format (Nova fault dicts, Glance webob pages, Octavia
WSME faults...), because clients parse those formats and the simulator exists to test clients.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote

from .faults import HOLD_TIMEOUT
from .journal import templatize


class ApiError(Exception):
    """An error answer; the service that raised it decides the body format."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra


class Unauthorized(ApiError):
    """Missing, unknown or expired token. keystonemiddleware answers these before the service runs,
    so the body is in Keystone's format whatever the service."""

    def __init__(self, message: str = "The request you have made requires authentication."):
        super().__init__(401, message)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    return Response(status, json.dumps(obj).encode(), hdrs)


def empty_response(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(status, b"", dict(headers or {}))


def keystone_error(status: int, title: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(status, {"error": {"code": status, "title": title, "message": message}}, headers)


class Request:
    """One parsed request. ``sub_path`` is the path below the service root."""

    def __init__(self, method: str, path: str, query_string: str, headers: Message, body: bytes, base_url: str):
        self.method = method
        self.path = path
        self.sub_path = path
        self.query_string = query_string
        self.query: dict[str, list[str]] = parse_qs(query_string, keep_blank_values=True)
        self.query_items: list[tuple[str, str]] = [
            (k, v) for k, vals in self.query.items() for v in vals
        ]
        self.headers = headers
        self.body = body
        self.base_url = base_url
        self.token: Any = None
        self.microversion: tuple[int, int] | None = None
        self.template: str | None = None
        self.request_id = f"req-{uuid.uuid4()}"

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def header(self, name: str, default: str = "") -> str:
        value = self.headers.get(name)
        return default if value is None else value

    @property
    def content_type(self) -> str:
        return self.header("Content-Type").split(";", 1)[0].strip().lower()

    def json(self) -> Any:
        """The body as JSON; a malformed body is a 400 in the service's format."""
        if not self.body:
            raise ApiError(400, "Malformed request body: the body is empty")
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ApiError(400, f"Malformed request body: {exc}") from None


@dataclass
class Route:
    method: str
    template: str
    handler: Callable[..., Response]
    auth: bool
    regex: re.Pattern


def _compile(template: str) -> re.Pattern:
    parts = re.split(r"(\{[a-z_]+\})", template)
    pattern = "".join("([^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{pattern}$")


class Service:
    """Base of the per-project services: a URL prefix, a route table and an error format."""

    name = ""  # catalog type, also the journal's service label
    prefix = ""  # path prefix below the simulator root

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.routes: list[Route] = []
        self.register()

    def register(self) -> None:
        raise NotImplementedError

    def add(self, method: str, template: str, handler: Callable[..., Response], *, auth: bool = True) -> None:
        """Register a route; first match wins, so add literal paths before ``{id}`` ones."""
        self.routes.append(Route(method, template, handler, auth, _compile(template)))

    def resolve(self, req: Request) -> tuple[Route, list[str]]:
        path = req.sub_path
        methods = set()
        for route in self.routes:
            m = route.regex.match(path)
            if not m:
                continue
            if route.method == req.method or (req.method == "HEAD" and route.method == "GET"):
                req.template = route.template
                return route, [unquote(a) for a in m.groups()]
            methods.add(route.method)
        req.template = templatize(path)
        if methods:
            raise ApiError(405, f"The method {req.method} is not allowed for this resource.",
                           headers={"Allow": ", ".join(sorted(methods))})
        raise ApiError(404, "The resource could not be found.")

    def prepare(self, req: Request) -> None:
        """Hook run before auth and the handler (Nova parses microversions here)."""

    def finish(self, req: Request, resp: Response) -> None:
        """Hook run on every response (request-id and version headers)."""
        resp.headers.setdefault("x-openstack-request-id", req.request_id)

    def render_error(self, req: Request, err: ApiError) -> Response:
        raise NotImplementedError


class Dispatcher:
    """Picks the service by path prefix and runs one request through faults, auth and the handler."""

    def __init__(self, ctx: Any, services: list[Service], fallback: Service, control: Any) -> None:
        self.ctx = ctx
        self.services = sorted(services, key=lambda s: len(s.prefix), reverse=True)
        self.fallback = fallback
        self.control = control

    def _service_for(self, path: str) -> tuple[Service, str]:
        for svc in self.services:
            if svc.prefix and (path == svc.prefix or path.startswith(svc.prefix + "/")):
                return svc, path[len(svc.prefix):] or "/"
        return self.fallback, path or "/"

    def handle(self, method: str, target: str, headers: Message, body: bytes) -> Response:
        path, _, query_string = target.partition("?")
        if path == "/_sim" or path.startswith("/_sim/"):
            return self.control.handle(method, path, query_string, body)
        service, sub_path = self._service_for(path)
        if len(sub_path) > 1 and sub_path.endswith("/"):
            sub_path = sub_path.rstrip("/") or "/"
        req = Request(method, path, query_string, headers, body, self.ctx.url)
        req.sub_path = sub_path
        try:
            resp = self._run(service, req)
            held = self.ctx.faults.hold_answer(service.name, method) if resp.status < 400 else None
            if held is not None:
                held.wait(HOLD_TIMEOUT)
        except Unauthorized as err:
            resp = keystone_error(401, "Unauthorized", err.message,
                                  {"WWW-Authenticate": f'Keystone uri="{self.ctx.url}/v3"'})
        except ApiError as err:
            resp = service.render_error(req, err)
            resp.headers.update(err.headers)
        except Exception:
            print(f"openstack_sim: error serving {method} {target}:", file=sys.stderr)
            traceback.print_exc()
            resp = service.render_error(req, ApiError(500, "Unexpected API Error (simulator bug)."))
        try:
            service.finish(req, resp)
        except Exception:
            traceback.print_exc()
        self.ctx.journal.record(service.name, method, req.template or templatize(sub_path), target, resp.status)
        return resp

    def _run(self, service: Service, req: Request) -> Response:
        route, args = service.resolve(req)
        faults = self.ctx.faults
        delay = faults.latency(service.name)
        if delay:
            time.sleep(delay)
        status = faults.random_error(service.name)
        if status:
            raise ApiError(status, f"Injected fault: HTTP {status} (openstack_sim error_rate).")
        service.prepare(req)
        if route.auth:
            req.token = self.ctx.keystone.authenticate(req)
        return route.handler(req, *args)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openstack-sim/1"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are closed after this many seconds
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid 40 ms delayed-ACK stalls

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.send_error(400, "Bad request body")
            return
        try:
            resp = self.server.dispatcher.handle(self.command, self.path, self.headers, body)  # type: ignore[attr-defined]
        except Exception:
            traceback.print_exc()
            resp = Response(500, b"simulator error\n", {"Content-Type": "text/plain"})
        self.send_response(resp.status)
        for key, value in resp.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD" and resp.body:
            self.wfile.write(resp.body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            for _ in range(100000):  # bounded: a body of at most 100k chunks
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if len(body) < length:
            # the client died mid-body: like Swift (499) and every real service, act on nothing
            raise ConnectionResetError(f"client disconnected after {len(body)} of {length} bytes")
        return body

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)


class SimHTTPServer(ThreadingHTTPServer):
    """Threaded server that can close its keep-alive connections on stop."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], dispatcher: Dispatcher, verbose: bool = False) -> None:
        super().__init__(address, _Handler)
        self.dispatcher = dispatcher
        self.verbose = verbose
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
