"""Glance v2 images: list filters and paging, JSON-patch updates, protection, tags, webob errors.

Faithful in the places clients get wrong: ``next`` links relative to the endpoint root, any
unknown query key is an exact-match custom-property filter, killed and deleted images never list,
PATCH wants ``application/openstack-images-v2.1-json-patch``, and the error body is HTML unless the
client asks for JSON.
"""

from __future__ import annotations

import csv
import hashlib
import html
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .server import ApiError, Request, Response, Service, empty_response, json_response
from .state import iso, new_id, parse_iso

PATCH_CONTENT_TYPE = "application/openstack-images-v2.1-json-patch"
DEFAULT_LIMIT = 25
PROPERTY_QUOTA = 128
TAG_QUOTA = 128
HIDDEN_STATUSES = ("killed", "deleted", "pending_delete")
READ_ONLY = {"id", "status", "checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size",
             "created_at", "updated_at", "file", "schema", "self", "direct_url", "locations", "stores",
             "owner"}
WRITABLE = {"name", "visibility", "protected", "os_hidden", "tags", "min_disk", "min_ram",
            "disk_format", "container_format"}
SORT_KEYS = {"name", "status", "container_format", "disk_format", "size", "id", "created_at",
             "updated_at", "visibility", "owner", "min_disk", "min_ram", "virtual_size", "protected",
             "os_hidden"}
BASE_FILTERS = {"name", "status", "visibility", "owner", "protected", "os_hidden", "tag", "id",
                "size_min", "size_max", "created_at", "updated_at", "container_format", "disk_format",
                "checksum", "os_hash_value", "member_status"}
PAGING_KEYS = {"limit", "marker", "sort_key", "sort_dir", "sort"}
VISIBILITIES = ("public", "private", "shared", "community")

TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 409: "Conflict", 413: "Request Entity Too Large",
          415: "Unsupported Media Type", 500: "Internal Server Error", 502: "Bad Gateway",
          503: "Service Unavailable", 504: "Gateway Timeout"}
EXPLANATIONS = {
    400: "The server could not comply with the request since it is either malformed or otherwise incorrect.",
    403: "Access was denied to this resource.",
    404: "The resource could not be found.",
    405: "The method is not allowed for this resource.",
    409: "There was a conflict when trying to complete your request.",
    413: "The request is larger than the server is willing or able to process.",
    415: "The request media type is not supported by this server.",
    500: "The server has either erred or is incapable of performing the requested operation.",
    503: "The server is currently unavailable. Please try again at a later time.",
}


@dataclass
class Image:
    id: str
    name: str | None
    status: str
    owner: str
    created: float
    updated: float
    seq: int
    visibility: str = "shared"  # Glance's default for a new image (API 2.5+), not "private"
    protected: bool = False
    os_hidden: bool = False
    tags: list[str] = field(default_factory=list)
    size: int | None = None
    virtual_size: int | None = None
    checksum: str | None = None
    os_hash_algo: str | None = None
    os_hash_value: str | None = None
    disk_format: str | None = None
    container_format: str | None = None
    min_disk: int = 0
    min_ram: int = 0
    properties: dict[str, str] = field(default_factory=dict)

    def base(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "status": self.status, "visibility": self.visibility,
            "protected": self.protected, "os_hidden": self.os_hidden, "tags": list(self.tags),
            "owner": self.owner, "size": self.size, "virtual_size": self.virtual_size,
            "checksum": self.checksum, "os_hash_algo": self.os_hash_algo, "os_hash_value": self.os_hash_value,
            "disk_format": self.disk_format, "container_format": self.container_format,
            "min_disk": self.min_disk, "min_ram": self.min_ram,
            "created_at": iso(self.created), "updated_at": iso(self.updated),
        }

    def render(self) -> dict[str, Any]:
        body = self.base()
        body.update({"self": f"/v2/images/{self.id}", "file": f"/v2/images/{self.id}/file",
                     "schema": "/v2/schemas/image"})
        body.update(self.properties)
        return body

    def mark_active(self) -> None:
        """Upload finished: data fields get values, as after a real upload."""
        digest = hashlib.sha512(self.id.encode()).hexdigest()
        self.status = "active"
        self.size = self.size or 21430272
        self.virtual_size = self.virtual_size or 117440512
        self.checksum = hashlib.md5(self.id.encode()).hexdigest()  # noqa: S324 (fake data)
        self.os_hash_algo, self.os_hash_value = "sha512", digest
        self.disk_format = self.disk_format or "qcow2"
        self.container_format = self.container_format or "bare"


def _in_values(value: str) -> list[str]:
    """``in:a,"b,c"`` -> [a, "b,c"]; anything else -> [value]."""
    if value.startswith("in:"):
        return next(csv.reader([value[3:]], skipinitialspace=True), [])
    return [value]


def _bool_arg(name: str, value: str) -> bool:
    if value.lower() in ("true", "1", "yes", "on"):
        return True
    if value.lower() in ("false", "0", "no", "off"):
        return False
    raise ApiError(400, f"Invalid value for {name}: {value!r}. It must be a boolean.")


def _time_filter(name: str, spec: str, actual: float) -> bool:
    op, _, text = spec.partition(":")
    if op not in ("gt", "gte", "lt", "lte", "eq", "neq") or not text:
        op, text = "eq", spec
    try:
        when = float(int(parse_iso(text)))
    except ValueError:
        raise ApiError(400, f"Invalid date for {name}: {spec!r}") from None
    actual = float(int(actual))
    return {"gt": actual > when, "gte": actual >= when, "lt": actual < when, "lte": actual <= when,
            "eq": actual == when, "neq": actual != when}[op]


class ImageService(Service):
    name = "image"
    prefix = "/image"

    def register(self) -> None:
        self.add("GET", "/", self.versions, auth=False)
        self.add("GET", "/versions", self.versions_200, auth=False)
        self.add("GET", "/v2/images", self.list_images)
        self.add("POST", "/v2/images", self.create_image)
        self.add("GET", "/v2/images/{id}", self.show_image)
        self.add("PATCH", "/v2/images/{id}", self.patch_image)
        self.add("DELETE", "/v2/images/{id}", self.delete_image)
        self.add("PUT", "/v2/images/{id}/tags/{tag}", self.add_tag)
        self.add("DELETE", "/v2/images/{id}/tags/{tag}", self.remove_tag)

    # ----- errors: webob picks the body format from Accept -----
    def render_error(self, req: Request, err: ApiError) -> Response:
        status_line = f"{err.status} {TITLES.get(err.status, 'Error')}"
        explanation = EXPLANATIONS.get(err.status, "")
        accept = req.header("Accept").lower()
        if "application/json" in accept and "text/html" not in accept:
            body = {"message": f"{explanation}<br /><br />\n{err.message}\n\n", "code": status_line,
                    "title": TITLES.get(err.status, "Error")}
            return json_response(err.status, body)
        if "text/plain" in accept and "text/html" not in accept and "*/*" not in accept:
            text = f"{status_line}\n\n{explanation}\n\n {err.message}  "
            return Response(err.status, text.encode(), {"Content-Type": "text/plain; charset=UTF-8"})
        page = (f"<html>\n <head>\n  <title>{status_line}</title>\n </head>\n <body>\n  <h1>{status_line}</h1>\n"
                f"  {explanation}<br /><br />\n{html.escape(err.message)}\n\n\n </body>\n</html>")
        return Response(err.status, page.encode(), {"Content-Type": "text/html; charset=UTF-8"})

    # ----- discovery -----
    def _versions(self) -> list[dict]:
        href = f"{self.ctx.url}/image/v2/"
        minors = list(range(17, -1, -1))
        out = []
        for minor in minors:
            status = "CURRENT" if minor == 17 else "SUPPORTED"
            out.append({"id": f"v2.{minor}", "status": status, "links": [{"rel": "self", "href": href}]})
        return out

    def versions(self, req: Request) -> Response:
        return json_response(300, {"versions": self._versions()})

    def versions_200(self, req: Request) -> Response:
        return json_response(200, {"versions": self._versions()})

    # ----- helpers used by Nova -----
    def visible(self, image_id: str) -> Image | None:
        """The image if the API would show it (caller holds the store lock)."""
        img = self.ctx.store.images.get(image_id)
        if img is None or img.status in ("deleted", "pending_delete"):
            return None
        return img

    def add_image(self, *, name: str | None, status: str, properties: dict[str, str] | None = None,
                  **fields: Any) -> Image:
        """Create an image record (caller holds the store lock)."""
        now = self.ctx.now()
        img = Image(id=fields.pop("id", None) or new_id(), name=name, status=status,
                    owner=self.ctx.keystone.project["id"], created=now, updated=now,
                    seq=self.ctx.store.next_seq(), properties=dict(properties or {}), **fields)
        self.ctx.store.images[img.id] = img
        return img

    def _get(self, image_id: str) -> Image:
        img = self.visible(image_id)
        if img is None:
            raise ApiError(404, f"No image found with ID {image_id}")
        return img

    # ----- list -----
    def _matches(self, img: Image, req: Request) -> bool:
        for key, values in req.query.items():
            if key in PAGING_KEYS:
                continue
            for value in values:
                if not self._match_one(img, key, value):
                    return False
        if "visibility" not in req.query and img.visibility == "community":
            return False
        if "os_hidden" not in req.query and img.os_hidden:
            return False
        return True

    def _match_one(self, img: Image, key: str, value: str) -> bool:
        if key in ("name", "status", "id", "container_format", "disk_format", "checksum", "os_hash_value"):
            return str(getattr(img, key)) in _in_values(value) or getattr(img, key) in _in_values(value)
        if key == "tag":
            return value in img.tags
        if key == "visibility":
            if value == "all":
                return True
            if value not in VISIBILITIES:
                raise ApiError(400, f"Invalid visibility value: {value}")
            return img.visibility == value
        if key == "owner":
            return img.owner == value
        if key in ("protected", "os_hidden"):
            return getattr(img, key) == _bool_arg(key, value)
        if key in ("size_min", "size_max"):
            try:
                bound = int(value)
            except ValueError:
                raise ApiError(400, f"Invalid value for {key}: {value}") from None
            if img.size is None:
                return False
            return img.size >= bound if key == "size_min" else img.size <= bound
        if key in ("created_at", "updated_at"):
            return _time_filter(key, value, img.created if key == "created_at" else img.updated)
        if key == "member_status":
            return True
        return img.properties.get(key) == value  # any other key: exact custom-property match

    @staticmethod
    def _sort_spec(req: Request) -> list[tuple[str, str]]:
        if "sort" in req.query:
            if "sort_key" in req.query or "sort_dir" in req.query:
                raise ApiError(400, "The 'sort' argument is not allowed with the 'sort_key' or 'sort_dir' arguments.")
            spec = []
            for part in ",".join(req.args("sort")).split(","):
                key, _, direction = part.strip().partition(":")
                spec.append((key, direction or "desc"))
        else:
            keys = req.args("sort_key") or ["created_at"]
            dirs = req.args("sort_dir") or ["desc"]
            if len(dirs) == 1:
                dirs = dirs * len(keys)
            if len(dirs) != len(keys):
                raise ApiError(400, "Number of sort dirs does not match the number of sort keys")
            spec = list(zip(keys, dirs))
        for key, direction in spec:
            if key not in SORT_KEYS:
                raise ApiError(400, f"Invalid sort key: {key}. It is not a supported sort key.")
            if direction not in ("asc", "desc"):
                raise ApiError(400, f"Invalid sort direction: {direction}")
        if "created_at" not in [k for k, _ in spec]:
            spec.append(("created_at", spec[0][1] if spec else "desc"))
        return spec

    @staticmethod
    def _sorted(images: list[Image], spec: list[tuple[str, str]]) -> list[Image]:
        def keyfn(name: str):
            def key(img: Image) -> tuple:
                if name == "created_at":
                    return (1, img.created, img.seq)
                if name == "updated_at":
                    return (1, img.updated, img.seq)
                value = getattr(img, name)
                return (0,) if value is None else (1, value)
            return key

        out = sorted(images, key=lambda i: i.seq, reverse=True)
        for name, direction in reversed(spec):  # stable sorts, least significant key first
            out.sort(key=keyfn(name), reverse=(direction == "desc"))
        return out

    def list_images(self, req: Request) -> Response:
        limit_arg = req.arg("limit")
        try:
            limit = DEFAULT_LIMIT if limit_arg is None else int(limit_arg)
        except ValueError:
            raise ApiError(400, "limit param must be an integer") from None
        if limit < 0:
            raise ApiError(400, "limit param must be positive")
        limit = min(limit, self.ctx.options.max_limit)
        spec = self._sort_spec(req)
        with self.ctx.store.lock:
            candidates = [i for i in self.ctx.store.images.values() if i.status not in HIDDEN_STATUSES]
            images = self._sorted([i for i in candidates if self._matches(i, req)], spec)
            marker = req.arg("marker")
            if marker:
                ids = [i.id for i in images]
                if marker not in ids:
                    raise ApiError(400, f"Invalid marker. Image {marker} could not be found.")
                images = images[ids.index(marker) + 1:]
            page = images[:limit]
            rendered = [i.render() for i in page]
        params = [(k, v) for k, v in req.query_items if k != "marker"]
        first = "/v2/images" + (f"?{urlencode(params, safe=':,')}" if params else "")
        body: dict[str, Any] = {"images": rendered, "first": first, "schema": "/v2/schemas/images"}
        if page and len(page) == limit:
            body["next"] = "/v2/images?" + urlencode(params + [("marker", page[-1].id)], safe=":,")
        return json_response(200, body)

    # ----- show / create -----
    def show_image(self, req: Request, image_id: str) -> Response:
        with self.ctx.store.lock:
            return json_response(200, self._get(image_id).render())

    def create_image(self, req: Request) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "Image body must be a JSON object")
        props, fields = {}, {}
        for key, value in body.items():
            if key in READ_ONLY - {"id"}:
                raise ApiError(403, f"Attribute '{key}' is read-only.")
            if key.startswith("os_glance"):
                raise ApiError(403, f"Attribute '{key}' is reserved.")
            if key in WRITABLE or key == "id":
                fields[key] = self._check_base(key, value)
            elif not isinstance(value, str):
                raise ApiError(400, f"Invalid value for property {key}: it must be a string")
            else:
                props[key] = value
        with self.ctx.store.lock:
            if fields.get("id") and fields["id"] in self.ctx.store.images:
                raise ApiError(409, f"Image with identifier {fields['id']} already exists!")
            name = fields.pop("name", None)
            img = self.add_image(name=name, status="queued", properties=props, **fields)
            rendered = img.render()
        return json_response(201, rendered, {"Location": f"{self.ctx.url}/image/v2/images/{img.id}"})

    @staticmethod
    def _check_base(key: str, value: Any) -> Any:
        if key in ("protected", "os_hidden"):
            if not isinstance(value, bool):
                raise ApiError(400, f"Invalid type for {key}: it must be a boolean")
        elif key == "visibility":
            if value not in VISIBILITIES:
                raise ApiError(400, f"Invalid visibility value: {value}")
            if value == "public":
                raise ApiError(403, 'You are not authorized to complete publicize_image action.')
        elif key in ("min_disk", "min_ram"):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ApiError(400, f"Invalid value for {key}: it must be a non-negative integer")
        elif key == "tags":
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise ApiError(400, "Invalid tags: must be a list of strings")
            if len(set(value)) > TAG_QUOTA:
                raise ApiError(413, f"Maximum number of tags exceeded ({TAG_QUOTA})")
            value = list(dict.fromkeys(value))
        elif key in ("name", "disk_format", "container_format", "id"):
            if value is not None and not isinstance(value, str):
                raise ApiError(400, f"Invalid type for {key}: it must be a string")
        return value

    # ----- JSON patch -----
    def patch_image(self, req: Request, image_id: str) -> Response:
        if req.content_type != PATCH_CONTENT_TYPE:
            raise ApiError(415, f"Unsupported Content-Type {req.content_type or '(none)'}; "
                                f"use {PATCH_CONTENT_TYPE}")
        ops = req.json()
        if not isinstance(ops, list):
            raise ApiError(400, "Request body must be a JSON array of operation objects.")
        with self.ctx.store.lock:
            img = self._get(image_id)
            base = {k: getattr(img, k) for k in WRITABLE}
            props = dict(img.properties)
            for op in ops:
                self._apply_op(op, base, props)
            if len(props) > PROPERTY_QUOTA:
                raise ApiError(413, f"Maximum number of properties exceeded ({PROPERTY_QUOTA})")
            for key, value in base.items():
                setattr(img, key, value)
            img.properties = props
            img.updated = self.ctx.now()
            return json_response(200, img.render())

    def _apply_op(self, op: Any, base: dict, props: dict) -> None:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError(400, "Operation objects must contain 'op' and 'path'.")
        kind, path = op["op"], op["path"]
        if kind not in ("add", "replace", "remove"):
            raise ApiError(400, f"Invalid operation: `{kind}`. It must be one of add, replace, remove.")
        if not isinstance(path, str) or not path.startswith("/") or path.count("/") != 1 or path == "/":
            raise ApiError(400, f"Invalid JSON pointer for this resource: '{path}'")
        key = path[1:].replace("~1", "/").replace("~0", "~")
        if kind != "remove" and "value" not in op:
            raise ApiError(400, f"Operation '{kind}' requires a 'value'.")
        if key in READ_ONLY:
            raise ApiError(403, f"Attribute '{key}' is read-only.")
        if key.startswith("os_glance"):
            raise ApiError(403, f"Attribute '{key}' is reserved.")
        if key in WRITABLE:
            if kind == "remove":
                raise ApiError(403, f"Attribute '{key}' is reserved.")
            base[key] = self._check_base(key, op["value"])
            return
        if kind in ("replace", "remove") and key not in props:
            raise ApiError(409, f"Property {key} does not exist.")
        if kind == "remove":
            del props[key]
            return
        if not isinstance(op["value"], str):
            raise ApiError(400, f"Invalid value for property {key}: it must be a string")
        props[key] = op["value"]

    # ----- delete and tags -----
    def delete_image(self, req: Request, image_id: str) -> Response:
        with self.ctx.store.lock:
            img = self._get(image_id)
            if img.protected:
                raise ApiError(403, f"Image {image_id} is protected and cannot be deleted.")
            self.delete_record(img)
        return empty_response(204)

    def delete_record(self, img: Image) -> None:
        """Mark an image deleted (caller holds the lock); it then 404s and never lists."""
        img.status = "deleted"
        img.updated = self.ctx.now()

    def add_tag(self, req: Request, image_id: str, tag: str) -> Response:
        if len(tag) > 255:
            raise ApiError(400, "Tag is too long (max 255 characters)")
        with self.ctx.store.lock:
            img = self._get(image_id)
            if tag not in img.tags:
                if len(img.tags) >= TAG_QUOTA:
                    raise ApiError(413, f"Maximum number of tags exceeded ({TAG_QUOTA})")
                img.tags.append(tag)
                img.updated = self.ctx.now()
        return empty_response(204)

    def remove_tag(self, req: Request, image_id: str, tag: str) -> Response:
        with self.ctx.store.lock:
            img = self._get(image_id)
            if tag not in img.tags:
                raise ApiError(404, f"Tag {tag} not found on image {image_id}")
            img.tags.remove(tag)
            img.updated = self.ctx.now()
        return empty_response(204)
