"""Swift (object-store) v1: accounts, containers and objects, as releasectl's records and lock use them.

The catalog lists it at ``<url>/object-store/v1/AUTH_<project_id>``. A token may use the account of
its own project only (403 otherwise), as Swift's keystoneauth middleware decides.

Faithful where a lock built on Swift depends on it:

- an object ``PUT`` stores the whole object at once (201 with its MD5 ``Etag``); a request ``Etag``
  that does not match the body is a 422; a PUT without ``Content-Length`` (or chunked) is a 411;
- ``If-None-Match: *`` on PUT creates the object only if the name is free, else 412 (any other
  ``If-None-Match`` value is a 400); ``If-Match: <etag>`` (or ``*``) only if the current object
  matches, else 412;
- ``GET``/``HEAD`` answer 404 for a missing object, honour ``If-Match`` (412) and ``If-None-Match``
  (304); ``DELETE`` answers 204, or 404 when missing; a deleted name can be written again;
- container ``PUT`` answers 201, or 202 if it exists; ``DELETE`` of a non-empty container is a 409;
  an object write into a missing container is a 404;
- listings (``format=json`` or ``Accept: application/json``, else plain text, 204 when empty) are
  in byte order and take ``prefix``, ``delimiter``, ``marker``, ``end_marker``, ``limit`` and
  ``reverse``; a ``limit`` above the listing limit (``object_store_listing_limit``, Swift's 10000)
  is a 412, as Swift answers;
- errors are Swift's small HTML pages (plain text for 400s), and every answer carries
  ``X-Trans-Id`` (also as ``X-Openstack-Request-Id``).

The ``lose_put_answers`` fault stores the next N object PUTs but answers them 503, as a proxy that
lost the object server's answer.
"""

from __future__ import annotations

import hashlib
import html
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Callable
from urllib.parse import unquote

from .server import ApiError, Request, Response, Route, Service, _compile, empty_response, json_response

RESELLER_PREFIX = "AUTH_"
MAX_OBJECT_NAME = 1024
MAX_CONTAINER_NAME = 256
MAX_META_VALUE = 256

# Swift's swob bodies: title and explanation per status.
PAGES = {
    304: ("Not Modified", ""),
    400: ("Bad Request", "The server could not comply with the request since it is either malformed or "
                         "otherwise incorrect."),
    401: ("Unauthorized", "This server could not verify that you are authorized to access the document you "
                          "requested."),
    403: ("Forbidden", "Access was denied to this resource."),
    404: ("Not Found", "The resource could not be found."),
    405: ("Method Not Allowed", "The method is not allowed for this resource."),
    409: ("Conflict", "There was a conflict when trying to complete your request."),
    411: ("Length Required", "Length Required."),
    412: ("Precondition Failed", "A precondition for this request was not met."),
    422: ("Unprocessable Entity", "Unable to process the contained instructions"),
    500: ("Internal Error", "The server has either erred or is incapable of performing the requested "
                            "operation."),
    503: ("Service Unavailable", "The server is currently unavailable. Please try again at a later time."),
}


def _http_date(ts: float) -> str:
    return formatdate(int(ts) + (1 if ts % 1 else 0), usegmt=True)  # Swift rounds Last-Modified up


def _listing_time(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}"


def _x_timestamp(ts: float) -> str:
    return f"{ts:016.5f}"


def trans_id() -> str:
    return f"tx{uuid.uuid4().hex[:21]}-{int(time.time()):010x}"


@dataclass
class SwiftObject:
    name: str
    data: bytes
    etag: str
    content_type: str
    timestamp: float
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Container:
    name: str
    created: float
    objects: dict[str, SwiftObject] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def bytes_used(self) -> int:
        return sum(len(o.data) for o in self.objects.values())


def _meta(req: Request, kind: str) -> dict[str, str]:
    """``X-<Kind>-Meta-*`` request headers, lower-cased names; an empty value removes the key."""
    prefix = f"x-{kind}-meta-"
    out = {}
    for key, value in req.headers.items():
        if key.lower().startswith(prefix) and len(key) > len(prefix):
            if len(value) > MAX_META_VALUE:
                raise ApiError(400, f"Metadata value longer than {MAX_META_VALUE}: {key}", plain=True)
            out[key[len(prefix):].lower()] = value
    return out


def _meta_headers(kind: str, meta: dict[str, str]) -> dict[str, str]:
    return {f"X-{kind.title()}-Meta-{k.title()}": v for k, v in meta.items()}


def _etags(value: str) -> list[str]:
    return [v.strip().strip('"') for v in value.split(",") if v.strip()]


class ObjectStorage(Service):
    name = "object-store"
    prefix = "/object-store"

    # Route levels of /v1/<account>[/<container>[/<object>]]; object names may contain "/".
    TEMPLATES = {"account": "/v1/{account}", "container": "/v1/{account}/{container}",
                 "object": "/v1/{account}/{container}/{object}"}

    def __init__(self, ctx: Any) -> None:
        self._levels: dict[tuple[str, str], Route] = {}
        super().__init__(ctx)

    def register(self) -> None:
        self.add("GET", "/info", self.info, auth=False)
        self.add("GET", "/healthcheck", self.healthcheck, auth=False)
        for method, handler in (("GET", self.account_listing),):
            self._level("account", method, handler)
        for method, handler in (("PUT", self.put_container), ("GET", self.container_listing),
                                ("POST", self.post_container), ("DELETE", self.delete_container)):
            self._level("container", method, handler)
        for method, handler in (("PUT", self.put_object), ("GET", self.get_object), ("POST", self.post_object),
                                ("DELETE", self.delete_object)):
            self._level("object", method, handler)

    def _level(self, level: str, method: str, handler: Callable[..., Response]) -> None:
        template = self.TEMPLATES[level]
        self._levels[(level, method)] = Route(method, template, handler, True, _compile(template))

    @property
    def listing_limit(self) -> int:
        return int(getattr(self.ctx.options, "object_store_listing_limit", 10000))

    def endpoint_path(self) -> str:
        """The catalog path of this project's account."""
        return f"{self.prefix}/v1/{RESELLER_PREFIX}{self.ctx.keystone.project['id']}"

    # ----- routing: object names contain "/", so split the path by hand -----
    def resolve(self, req: Request) -> tuple[Route, list[str]]:
        req.request_id = trans_id()
        path = req.sub_path
        if not path.startswith("/v1/"):
            return super().resolve(req)
        account, _, rest = path[len("/v1/"):].partition("/")
        container, _, obj = rest.partition("/")
        level = "object" if obj else "container" if container else "account"
        req.template = self.TEMPLATES[level]
        method = "GET" if req.method == "HEAD" else req.method
        route = self._levels.get((level, method))
        if route is None:
            allowed = sorted({m for (lvl, m) in self._levels if lvl == level} | {"HEAD"})
            raise ApiError(405, f"{req.method} is not allowed on an {level}", headers={"Allow": ", ".join(allowed)})
        args = [unquote(account)] + ([unquote(container)] if container else []) + ([unquote(obj)] if obj else [])
        return route, args

    def finish(self, req: Request, resp: Response) -> None:
        if resp.status == 401 and "json" in resp.headers.get("Content-Type", ""):
            # the dispatcher's token check answers in Keystone's format; Swift's proxy renders its own page
            page = self.render_error(req, ApiError(401, ""))
            resp.body, resp.headers["Content-Type"] = page.body, page.headers["Content-Type"]
        resp.headers["X-Trans-Id"] = req.request_id
        resp.headers["X-Openstack-Request-Id"] = req.request_id

    def render_error(self, req: Request, err: ApiError) -> Response:
        if err.extra.get("plain"):
            return Response(err.status, err.message.encode(), {"Content-Type": "text/plain"})
        title, explanation = PAGES.get(err.status, ("Error", err.message))
        page = f"<html><h1>{html.escape(title)}</h1><p>{html.escape(explanation)}</p></html>"
        return Response(err.status, page.encode(), {"Content-Type": "text/html; charset=UTF-8"})

    # ----- discovery -----
    def info(self, req: Request) -> Response:
        return json_response(200, {
            "swift": {"version": "2.33.0", "max_object_name_length": MAX_OBJECT_NAME,
                      "max_container_name_length": MAX_CONTAINER_NAME,
                      "container_listing_limit": self.listing_limit, "account_listing_limit": self.listing_limit,
                      "max_meta_value_length": MAX_META_VALUE, "strict_cors_mode": True,
                      "policies": [{"name": "Policy-0", "default": True}]},
        })

    def healthcheck(self, req: Request) -> Response:
        return Response(200, b"OK", {"Content-Type": "text/plain"})

    # ----- accounts -----
    def _account(self, req: Request, account: str) -> dict[str, Container]:
        """The containers of ``account``, if the token may use it (Swift creates accounts on first use)."""
        project = getattr(req.token, "project_id", None)
        if not account.startswith(RESELLER_PREFIX) or account != f"{RESELLER_PREFIX}{project}":
            raise ApiError(403, "")
        with self.ctx.store.lock:
            return self.ctx.store.swift_accounts.setdefault(account, {})

    def _container(self, req: Request, account: str, name: str) -> Container:
        containers = self._account(req, account)
        container = containers.get(name)
        if container is None:
            raise ApiError(404, "")
        return container

    def _limit(self, req: Request) -> int:
        raw = req.arg("limit")
        if raw in (None, ""):
            return self.listing_limit
        try:
            limit = int(raw)
        except ValueError:
            limit = -1
        if limit < 0:
            raise ApiError(412, "Value of limit must be a positive integer", plain=True)
        if limit > self.listing_limit:
            raise ApiError(412, f"Maximum limit is {self.listing_limit}", plain=True)
        return limit

    def _listing(self, req: Request, entries: dict[str, dict], headers: dict[str, str]) -> Response:
        """Swift's listing rules over ``entries`` (name -> JSON item), in byte (code point) order."""
        prefix, delimiter = req.arg("prefix", "") or "", req.arg("delimiter", "") or ""
        marker, end_marker = req.arg("marker", "") or "", req.arg("end_marker", "") or ""
        reverse = (req.arg("reverse", "") or "").lower() in ("1", "true", "yes", "on")
        limit = self._limit(req)
        if len(delimiter) > 1:
            raise ApiError(412, "Bad delimiter", plain=True)
        out: list[dict] = []
        for name in sorted(entries, reverse=reverse):
            if len(out) >= limit:
                break
            if not name.startswith(prefix):
                continue
            if marker and (name <= marker if not reverse else name >= marker):
                continue
            if end_marker and (name >= end_marker if not reverse else name <= end_marker):
                continue
            if delimiter:
                cut = name.find(delimiter, len(prefix))
                if cut >= 0:
                    subdir = name[:cut + 1]
                    if not out or out[-1].get("subdir") != subdir:
                        if not (marker and subdir == marker):
                            out.append({"subdir": subdir})
                    continue
            out.append(entries[name])
        wants_json = (req.arg("format", "") or "").lower() == "json" or (
            not req.arg("format") and "application/json" in req.header("Accept").lower())
        if wants_json:
            return json_response(200, out, {**headers, "Content-Type": "application/json; charset=utf-8"})
        if not out:
            return empty_response(204, {**headers, "Content-Type": "text/plain; charset=utf-8"})
        text = "".join(f"{e.get('name', e.get('subdir'))}\n" for e in out)
        return Response(200, text.encode(), {**headers, "Content-Type": "text/plain; charset=utf-8"})

    def account_listing(self, req: Request, account: str) -> Response:
        with self.ctx.store.lock:
            containers = self._account(req, account)
            entries = {c.name: {"name": c.name, "count": len(c.objects), "bytes": c.bytes_used,
                                "last_modified": _listing_time(c.created)} for c in containers.values()}
            headers = {"X-Account-Container-Count": str(len(containers)),
                       "X-Account-Object-Count": str(sum(len(c.objects) for c in containers.values())),
                       "X-Account-Bytes-Used": str(sum(c.bytes_used for c in containers.values())),
                       "X-Timestamp": _x_timestamp(min((c.created for c in containers.values()), default=time.time()))}
            if req.method == "HEAD":
                return empty_response(204, headers)
            return self._listing(req, entries, headers)

    # ----- containers -----
    def put_container(self, req: Request, account: str, name: str) -> Response:
        if len(name.encode()) > MAX_CONTAINER_NAME:
            raise ApiError(400, f"Container name length of {len(name.encode())} longer than {MAX_CONTAINER_NAME}",
                           plain=True)
        meta = _meta(req, "container")
        with self.ctx.store.lock:
            containers = self._account(req, account)
            existed = name in containers
            container = containers.setdefault(name, Container(name=name, created=time.time()))
            container.metadata.update(meta)
            container.metadata = {k: v for k, v in container.metadata.items() if v}
        return empty_response(202 if existed else 201, {"Content-Type": "text/html; charset=UTF-8"})

    def post_container(self, req: Request, account: str, name: str) -> Response:
        meta = _meta(req, "container")
        with self.ctx.store.lock:
            container = self._container(req, account, name)
            container.metadata.update(meta)
            container.metadata = {k: v for k, v in container.metadata.items() if v}
        return empty_response(204, {"Content-Type": "text/html; charset=UTF-8"})

    def container_listing(self, req: Request, account: str, name: str) -> Response:
        with self.ctx.store.lock:
            container = self._container(req, account, name)
            headers = {"X-Container-Object-Count": str(len(container.objects)),
                       "X-Container-Bytes-Used": str(container.bytes_used),
                       "X-Timestamp": _x_timestamp(container.created), "X-Storage-Policy": "Policy-0",
                       **_meta_headers("container", container.metadata)}
            if req.method == "HEAD":
                return empty_response(204, headers)
            entries = {o.name: {"name": o.name, "hash": o.etag, "bytes": len(o.data), "content_type": o.content_type,
                                "last_modified": _listing_time(o.timestamp)} for o in container.objects.values()}
            return self._listing(req, entries, headers)

    def delete_container(self, req: Request, account: str, name: str) -> Response:
        with self.ctx.store.lock:
            containers = self._account(req, account)
            container = containers.get(name)
            if container is None:
                raise ApiError(404, "")
            if container.objects:
                raise ApiError(409, "")
            del containers[name]
        return empty_response(204, {"Content-Type": "text/html; charset=UTF-8"})

    # ----- objects -----
    @staticmethod
    def _object_headers(obj: SwiftObject) -> dict[str, str]:
        return {"Content-Type": obj.content_type, "Etag": obj.etag, "Last-Modified": _http_date(obj.timestamp),
                "X-Timestamp": _x_timestamp(obj.timestamp), "Accept-Ranges": "bytes",
                **_meta_headers("object", obj.metadata)}

    def put_object(self, req: Request, account: str, container_name: str, name: str) -> Response:
        if len(name.encode()) > MAX_OBJECT_NAME:
            raise ApiError(400, f"Object name length of {len(name.encode())} longer than {MAX_OBJECT_NAME}", plain=True)
        chunked = req.header("Transfer-Encoding").lower() == "chunked"
        if not chunked and req.header("Content-Length") == "":
            raise ApiError(411, "")
        if_none = req.headers.get("If-None-Match")
        if if_none is not None and if_none.strip() != "*":
            raise ApiError(400, "If-None-Match only supports *", plain=True)
        etag = hashlib.md5(req.body).hexdigest()  # noqa: S324 - Swift's etag is the MD5 of the body
        sent = req.headers.get("Etag")
        if sent is not None and sent.strip().strip('"').lower() != etag:
            raise ApiError(422, "")
        meta = {k: v for k, v in _meta(req, "object").items() if v}
        content_type = req.header("Content-Type") or "application/octet-stream"
        with self.ctx.store.lock:
            container = self._container(req, account, container_name)
            current = container.objects.get(name)
            if if_none is not None and current is not None:
                raise ApiError(412, "")
            if_match = req.headers.get("If-Match")
            if if_match is not None and (current is None or not ({"*", current.etag} & set(_etags(if_match)))):
                raise ApiError(412, "")
            now = time.time()
            if current is not None and now <= current.timestamp:
                now = current.timestamp + 0.00001  # Swift timestamps only move forward
            container.objects[name] = SwiftObject(name=name, data=req.body, etag=etag, content_type=content_type,
                                                  timestamp=now, metadata=meta)
        if self.ctx.faults.take_count("lose_put_answers"):
            raise ApiError(503, "")  # stored, but the answer is lost
        return empty_response(201, {"Etag": etag, "Last-Modified": _http_date(now),
                                    "Content-Type": "text/html; charset=UTF-8"})

    def get_object(self, req: Request, account: str, container_name: str, name: str) -> Response:
        with self.ctx.store.lock:
            obj = self._container(req, account, container_name).objects.get(name)
            if obj is None:
                raise ApiError(404, "")
            if_match = req.headers.get("If-Match")
            if if_match is not None and not ({"*", obj.etag} & set(_etags(if_match))):
                raise ApiError(412, "")
            if_none = req.headers.get("If-None-Match")
            if if_none is not None and {"*", obj.etag} & set(_etags(if_none)):
                return empty_response(304, {"Etag": obj.etag, "Last-Modified": _http_date(obj.timestamp)})
            return Response(200, obj.data, self._object_headers(obj))

    def post_object(self, req: Request, account: str, container_name: str, name: str) -> Response:
        meta = {k: v for k, v in _meta(req, "object").items() if v}
        with self.ctx.store.lock:
            obj = self._container(req, account, container_name).objects.get(name)
            if obj is None:
                raise ApiError(404, "")
            obj.metadata = meta  # a POST replaces all user metadata
            if req.header("Content-Type"):
                obj.content_type = req.header("Content-Type")
        return empty_response(202, {"Content-Type": "text/html; charset=UTF-8"})

    def delete_object(self, req: Request, account: str, container_name: str, name: str) -> Response:
        with self.ctx.store.lock:
            container = self._container(req, account, container_name)
            if container.objects.pop(name, None) is None:
                raise ApiError(404, "")
        return empty_response(204, {"Content-Type": "text/html; charset=UTF-8"})

    # ----- the simulator's view -----
    def describe(self) -> tuple[list[dict], list[dict]]:
        """(containers, objects) of every account, for ``/_sim/state``; call with the store lock held."""
        containers, objects = [], []
        for account, table in sorted(self.ctx.store.swift_accounts.items()):
            for container in sorted(table.values(), key=lambda c: c.name):
                containers.append({"account": account, "name": container.name, "object_count": len(container.objects),
                                   "bytes": container.bytes_used})
                for obj in sorted(container.objects.values(), key=lambda o: o.name):
                    try:
                        text: str | None = obj.data.decode("utf-8")
                    except UnicodeDecodeError:
                        text = None
                    objects.append({"account": account, "container": container.name, "name": obj.name,
                                    "bytes": len(obj.data), "etag": obj.etag, "content_type": obj.content_type,
                                    "last_modified": _listing_time(obj.timestamp), "data": text})
        return containers, objects

