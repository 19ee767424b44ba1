"""Nova compute v2.1: servers, metadata, tags, createImage and flavors, with microversions.

Faithful where clients trip: the ``name`` filter is an unanchored regex, unknown filters are
ignored, tag filters need 2.26, create is asynchronous (BUILD -> ACTIVE), delete is asynchronous
(task_state ``deleting`` then 404), createImage answers by body or ``Location`` depending on the
microversion and 409s while a task runs. Errors use Nova's ``{"<faultName>": {...}}`` format.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .console import run_user_data
from .neutron import _reserve
from .server import ApiError, Request, Response, Service, empty_response, json_response
from .state import iso, new_id, parse_iso

FAULT_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               405: "badMethod", 409: "conflictingRequest", 413: "overLimit", 415: "badMediaType",
               429: "overLimit", 501: "notImplemented", 503: "serviceUnavailable"}
MIN_VERSION = (2, 1)
SERVER_STATUSES = {"ACTIVE", "BUILD", "DELETED", "ERROR", "HARD_REBOOT", "MIGRATING", "PASSWORD",
                   "PAUSED", "REBOOT", "REBUILD", "RESCUE", "RESIZE", "REVERT_RESIZE", "SHELVED",
                   "SHELVED_OFFLOADED", "SHUTOFF", "SOFT_DELETED", "SUSPENDED", "UNKNOWN", "VERIFY_RESIZE"}
WRITABLE_VM_STATES = ("active", "paused", "suspended", "stopped")
SORT_KEYS = {"created_at": "created", "updated_at": "updated", "display_name": "name", "name": "name",
             "uuid": "id", "vm_state": "vm_state", "task_state": "task_state"}
MAX_TAGS = 50
MAX_METADATA_ITEMS = 128
NON_INHERITABLE = {"cache_in_nova", "bittorrent"}
UNEXPECTED_ERROR = ("Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach "
                    "the Nova API log if possible.\n<class 'oslo_db.exception.DBDeadlock'>")


def parse_version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


@dataclass
class Server:
    id: str
    name: str
    image_id: str
    flavor_id: str
    network: str | None  # network name, the key of ``addresses``
    address: str | None
    app_port: int
    created: float
    updated: float
    seq: int
    metadata: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    key_name: str | None = None
    description: str | None = None
    status: str = "BUILD"
    vm_state: str = "building"
    task_state: str | None = "scheduling"
    power_state: int = 0
    launched_at: float | None = None
    fault: dict | None = None
    user_data: str | None = None  # decoded; "run" at first boot (console.py)
    console: list[str] = field(default_factory=list)  # what os-getConsoleOutput shows
    files: dict[str, str] = field(default_factory=dict)  # what its user data wrote; snapshots carry them
    booted: bool = False  # its user data has "run" (once, at the first boot)


def _check_metadata(meta: Any, what: str = "metadata") -> dict[str, str]:
    if not isinstance(meta, dict):
        raise ApiError(400, f"Invalid input for field/attribute {what}. Value: {meta!r}. It must be an object.")
    for key, value in meta.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 255:
            raise ApiError(400, f"Invalid input for field/attribute {what}. Key {key!r} must be 1 to 255 characters.")
        if not isinstance(value, str) or len(value) > 255:
            raise ApiError(400, f"Invalid input for field/attribute {what}. Value of {key!r} must be a string "
                                "of at most 255 characters.")
    return dict(meta)


def _check_tag(tag: Any) -> str:
    if not isinstance(tag, str) or not 1 <= len(tag) <= 60 or "/" in tag or "," in tag:
        raise ApiError(400, f"Invalid input for field/attribute tags. Value: {tag!r}. Tags are 1 to 60 characters "
                            "without '/' or ','.")
    return tag


APP_STARTERS = 8  # app processes started at once


class Compute(Service):
    name = "compute"
    prefix = "/compute"

    def __init__(self, ctx: Any) -> None:
        self.max_version = parse_version(ctx.options.nova_max_microversion)
        self.builder_id: str | None = None
        self.builder_fail_health = False
        self.image_files: dict[str, dict[str, str]] = {}  # image id -> the files of the server it snapshots
        # app processes start on these threads, outside the store lock: a fork of this (big, threaded)
        # process takes 50-400 ms under load, and 50 of them one by one held up the scheduler and every request
        self._starter = ThreadPoolExecutor(max_workers=APP_STARTERS, thread_name_prefix="openstack-sim-app-start")
        self._starting: set[str] = set()  # servers whose app is being started (caller holds the store lock)
        self._starter_lock = threading.Lock()
        self._stopping = False
        super().__init__(ctx)

    def stop_starting(self) -> None:
        """No app starts after this returns (Simulator.stop, before it stops every app)."""
        with self._starter_lock:
            self._stopping = True
        self._starter.shutdown(wait=True, cancel_futures=True)

    def register(self) -> None:
        v = "/v2.1"
        self.add("GET", "/", self.versions, auth=False)
        self.add("GET", v, self.version, auth=False)
        self.add("POST", f"{v}/servers", self.create_server)
        self.add("GET", f"{v}/servers", self.list_servers)
        self.add("GET", f"{v}/servers/detail", self.list_servers_detail)
        self.add("GET", f"{v}/servers/{{id}}", self.show_server)
        self.add("DELETE", f"{v}/servers/{{id}}", self.delete_server)
        self.add("GET", f"{v}/servers/{{id}}/metadata", self.get_metadata)
        self.add("POST", f"{v}/servers/{{id}}/metadata", self.merge_metadata)
        self.add("PUT", f"{v}/servers/{{id}}/metadata", self.replace_metadata)
        self.add("GET", f"{v}/servers/{{id}}/metadata/{{key}}", self.get_meta_item)
        self.add("PUT", f"{v}/servers/{{id}}/metadata/{{key}}", self.set_meta_item)
        self.add("DELETE", f"{v}/servers/{{id}}/metadata/{{key}}", self.delete_meta_item)
        self.add("GET", f"{v}/servers/{{id}}/tags", self.get_tags)
        self.add("PUT", f"{v}/servers/{{id}}/tags", self.replace_tags)
        self.add("DELETE", f"{v}/servers/{{id}}/tags", self.clear_tags)
        self.add("GET", f"{v}/servers/{{id}}/tags/{{tag}}", self.check_tag)
        self.add("PUT", f"{v}/servers/{{id}}/tags/{{tag}}", self.add_tag)
        self.add("DELETE", f"{v}/servers/{{id}}/tags/{{tag}}", self.delete_tag)
        self.add("POST", f"{v}/servers/{{id}}/action", self.action)
        self.add("GET", f"{v}/limits", lambda req: self.ctx.quotas.nova_limits(req))
        self.add("GET", f"{v}/flavors", self.list_flavors)
        self.add("GET", f"{v}/flavors/detail", self.list_flavors_detail)
        self.add("GET", f"{v}/flavors/{{id}}", self.show_flavor)

    # ----- microversions, headers, errors -----
    def prepare(self, req: Request) -> None:
        value = None
        for part in req.header("OpenStack-API-Version").split(","):
            service, _, version = part.strip().partition(" ")
            if service.lower() == "compute":
                value = version.strip()
                break
        if value is None:
            value = req.header("X-OpenStack-Nova-API-Version").strip() or None
        if value is None:
            req.microversion = MIN_VERSION
            return
        if value.lower() == "latest":
            req.microversion = self.max_version
            return
        if not re.fullmatch(r"[1-9]\d*\.(0|[1-9]\d*)", value):
            raise ApiError(400, f"API Version String {value} is of invalid format. Must be of format "
                                "MajorNum.MinorNum.")
        version = parse_version(value)
        if not MIN_VERSION <= version <= self.max_version:
            raise ApiError(406, f"Version {value} is not supported by the API. Minimum is "
                                f"{MIN_VERSION[0]}.{MIN_VERSION[1]} and maximum is "
                                f"{self.max_version[0]}.{self.max_version[1]}.")
        req.microversion = version

    def finish(self, req: Request, resp: Response) -> None:
        resp.headers["X-Compute-Request-Id"] = req.request_id
        mv = req.microversion
        if mv is not None:
            text = f"{mv[0]}.{mv[1]}"
            resp.headers["OpenStack-API-Version"] = f"compute {text}"
            resp.headers["X-OpenStack-Nova-API-Version"] = text
            resp.headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"
            if mv >= (2, 46):
                resp.headers["X-OpenStack-Request-Id"] = req.request_id

    def render_error(self, req: Request, err: ApiError) -> Response:
        fault = FAULT_NAMES.get(err.status, "computeFault")
        body: dict[str, Any] = {"code": err.status, "message": err.message}
        if err.status in (413, 429) and "retry_after" in err.extra:
            body["retryAfter"] = str(err.extra["retry_after"])
        return json_response(err.status, {fault: body})

    # ----- discovery -----
    def _version_doc(self) -> dict:
        return {
            "id": "v2.1", "status": "CURRENT",
            "version": f"{self.max_version[0]}.{self.max_version[1]}", "min_version": "2.1",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{self.ctx.url}/compute/v2.1/"},
                      {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}],
        }

    def versions(self, req: Request) -> Response:
        return json_response(200, {"versions": [self._version_doc()]})

    def version(self, req: Request) -> Response:
        return json_response(200, {"version": self._version_doc()})

    # ----- seed data and helpers -----
    def seed(self) -> None:
        """Create flavor ``m1.small`` and the ACTIVE ``demo-builder`` server (caller holds the lock)."""
        self.ctx.store.flavors["2"] = {"id": "2", "name": "m1.small", "ram": 2048, "vcpus": 1, "disk": 20}
        image = self.ctx.store.images[self.ctx.base_image_id]
        server = self._new_server("demo-builder", image, "2", "private", {}, [], None, None)
        server.metadata = {"role": "builder"}
        self._to_active(server)
        self.builder_id = server.id

    def _app_port(self, image: Any) -> int:
        try:
            return int(image.properties.get("releasectl_port", self.ctx.options.app_port))
        except (TypeError, ValueError):
            return self.ctx.options.app_port

    def _new_server(self, name: str, image: Any, flavor_id: str, network: str | None, metadata: dict,
                    tags: list, key_name: str | None, description: str | None) -> Server:
        port = self._app_port(image)
        address = None
        if network:
            address = self.ctx.neutron.pool.allocate(port if self.ctx.options.serve_apps else None)
        now = self.ctx.now()
        server = Server(id=new_id(), name=name, image_id=image.id, flavor_id=flavor_id, network=network,
                        address=address, app_port=port, created=now, updated=now,
                        seq=self.ctx.store.next_seq(), metadata=metadata, tags=tags, key_name=key_name,
                        description=description)
        server.files = dict(self.image_files.get(image.id, {}))
        self.ctx.store.servers[server.id] = server
        return server

    def _server(self, server_id: str) -> Server:
        server = self.ctx.store.servers.get(server_id)
        if server is None:
            raise ApiError(404, f"Instance {server_id} could not be found.")
        return server

    def image_props(self, server: Server) -> dict[str, str]:
        image = self.ctx.store.images.get(server.image_id)
        return dict(image.properties) if image is not None else {}

    def fails_health(self, server: Server) -> bool:
        return self.image_props(server).get("sim_fail_health", "").lower() == "true"

    def server_by_address(self, address: str) -> Server | None:
        for server in self.ctx.store.servers.values():
            if server.address == address:
                return server
        return None

    def app_status(self, address: str, port: int, path: str) -> int | None:
        """The HTTP status the server's app would answer, or None if nothing would (caller holds the lock).

        Used for member health when no real app processes run; mirrors ``app_server.py``.
        """
        server = self.server_by_address(address)
        if server is None or server.status != "ACTIVE" or server.task_state == "deleting":
            return None
        if port != server.app_port:
            return None
        if path.split("?", 1)[0] == "/healthz":
            return 500 if self.fails_health(server) else 200
        return 200 if path.split("?", 1)[0] == "/" else 404

    # ----- state transitions -----
    def _to_active(self, server: Server) -> None:
        now = self.ctx.now()
        server.status, server.vm_state, server.task_state, server.power_state = "ACTIVE", "active", None, 1
        server.launched_at = server.launched_at or now
        server.updated = now
        self._boot_console(server)

    def _boot_console(self, server: Server) -> None:
        """At the first boot: cloud-init's lines, then what the user data prints, each at its time (caller
        holds the lock)."""
        if server.booted:
            return
        server.booted = True
        server.console += [f"[    0.000000] Linux version 5.15.0-sim ({server.name})",
                           f"Cloud-init v. 23.1 running 'init' at {iso(self.ctx.now())}. Up 1.00 seconds.",
                           "Cloud-init v. 23.1 running 'modules:final'."]
        run = run_user_data(server.user_data)
        server.files.update(run.files)
        for step in run.steps:
            if step.delay <= 0:
                server.console.append(step.line)
            else:
                self.ctx.scheduler.call_later(step.delay, self._console_line, server.id, step.line)

    def _console_line(self, server_id: str, line: str) -> None:
        with self.ctx.store.lock:
            server = self.ctx.store.servers.get(server_id)
            if server is not None and server.task_state != "deleting":
                server.console.append(line)

    def _to_error(self, server: Server, message: str) -> None:
        now = self.ctx.now()
        server.status, server.vm_state, server.task_state, server.power_state = "ERROR", "error", None, 0
        server.fault = {"code": 500, "message": message, "created": iso(now)}
        server.updated = now

    def _spawning(self, server_id: str, error: str | None = None) -> None:
        """Halfway through the build the guest is booting: its app process starts now (on a starter thread),
        so the server is ACTIVE at ``build_delay`` as promised however slowly this machine spawns processes
        (50 at once take seconds under load, which would otherwise stretch every boot)."""
        with self.ctx.store.lock:
            server = self.ctx.store.servers.get(server_id)
            if server is None or server.status != "BUILD" or server.task_state != "scheduling":
                return
            server.task_state = "spawning"
            if error or not (self.ctx.options.serve_apps and server.address):
                return
            self._starting.add(server_id)
        with self._starter_lock:
            if not self._stopping:
                self._starter.submit(self._start_app, server_id)
                return
        with self.ctx.store.lock:
            self._starting.discard(server_id)

    def _start_app(self, server_id: str) -> None:
        """The user data runs, then the app starts on the server's reserved address:port. The fork runs
        outside the store lock; a server deleted meanwhile has its new app stopped at once."""
        with self.ctx.store.lock:
            server = self.ctx.store.servers.get(server_id)
            if server is None or server.task_state == "deleting" or server.status != "BUILD":
                self._starting.discard(server_id)
                return
            reserved = self.ctx.neutron.pool.take(server.address, server.app_port)
            if reserved is None and self.ctx.apps.get(server.id) is not None:
                self._starting.discard(server_id)
                return  # started already
            self._boot_console(server)  # the user data runs before the app starts, as at a real boot
            spec = dict(name=server.name, address=server.address, port=server.app_port,
                        version=self.image_props(server).get("releasectl_version", ""),
                        fail_health=self.fails_health(server), sock=reserved, files=dict(server.files))
        try:
            self.ctx.apps.start(server_id, **spec)
            failure = None
        except OSError as exc:
            failure = f"openstack_sim could not start the app process: {exc}"
        with self.ctx.store.lock:
            self._starting.discard(server_id)
            server = self.ctx.store.servers.get(server_id)
            gone = server is None or server.task_state == "deleting"
            if failure and not gone and server.status == "BUILD":
                self._to_error(server, failure)
        if gone and not failure:
            self.ctx.apps.stop(server_id)

    def _finish_boot(self, server_id: str, error: str | None) -> None:
        opts = self.ctx.options
        with self.ctx.store.lock:
            server = self.ctx.store.servers.get(server_id)
            if server is None:
                return
            if server.task_state == "deleting" or server.status != "BUILD":
                self.ctx.neutron.pool.release(server.address, server.app_port)
                return
            if error:
                self.ctx.neutron.pool.release(server.address, server.app_port)
                self._to_error(server, error)
                return
            if server.network and not server.address:
                self._to_error(server, f"Build of instance {server_id} aborted: No more IP addresses "
                                       f"available on network {server.network}.")
                return
            if not (opts.serve_apps and server.address):
                self.ctx.neutron.pool.release(server.address, server.app_port)
                self._to_active(server)
                return
            start_now = server_id not in self._starting and self.ctx.apps.get(server_id) is None
            if start_now:  # not started at spawning (the simulator was stopping, or build_delay 0)
                self._starting.add(server_id)
        if start_now:
            self._start_app(server_id)
        self._on_starter(self._await_app, server_id, time.monotonic() + opts.app_start_timeout)

    def _on_starter(self, fn: Any, *args: Any) -> None:
        """Run `fn` on a starter thread (probing 50 apps one by one on the scheduler's thread took 0.4 s)."""
        with self._starter_lock:
            if not self._stopping:
                self._starter.submit(fn, *args)

    def _await_app(self, server_id: str, deadline: float) -> None:
        """Poll (on a starter thread, again via the scheduler, so bounded by ``deadline``) until the app
        answers, then go ACTIVE."""
        with self.ctx.store.lock:
            starting = server_id in self._starting
        state = "starting" if starting else self.ctx.apps.probe(server_id, timeout=0.2)
        failed = False
        with self.ctx.store.lock:
            server = self.ctx.store.servers.get(server_id)
            if server is None or server.task_state == "deleting" or server.status != "BUILD":
                return
            if state == "ready":
                self._to_active(server)
                return
            if state == "dead" or time.monotonic() > deadline:
                self._to_error(server, "openstack_sim: the app process did not start (is "
                                       f"{server.address}:{server.app_port} in use?)")
                failed = True
        if failed:
            self.ctx.apps.stop(server_id)
        else:
            self.ctx.scheduler.call_later(0.02, self._on_starter, self._await_app, server_id, deadline)

    def start_builder_app(self) -> None:
        """Start the pre-created builder's app synchronously (``Simulator.start`` with serve_apps)."""
        opts = self.ctx.options
        with self.ctx.store.lock:
            server = self.ctx.store.servers[self.builder_id]
            props = self.image_props(server)
            self.ctx.apps.start(server.id, name=server.name, address=server.address, port=server.app_port,
                                version=props.get("releasectl_version", ""), fail_health=False,
                                sock=self.ctx.neutron.pool.take(server.address, server.app_port))
        deadline = time.monotonic() + opts.app_start_timeout
        while time.monotonic() < deadline:  # bounded by app_start_timeout
            state = self.ctx.apps.probe(server.id, timeout=0.2)
            if state == "ready":
                return
            if state == "dead":
                break
            time.sleep(0.02)
        raise RuntimeError(f"the builder app did not start on {server.address}:{server.app_port}")

    def _finish_delete(self, server_id: str) -> None:
        self.ctx.apps.stop(server_id)  # by PID; before the server 404s, so "gone" means gone
        with self.ctx.store.lock:
            server = self.ctx.store.servers.pop(server_id, None)
            if server is not None:
                self.ctx.neutron.pool.release(server.address, server.app_port)

    # ----- rendering -----
    def _links(self, kind: str, ident: str) -> list[dict]:
        return [{"rel": "self", "href": f"{self.ctx.url}/compute/v2.1/{kind}/{ident}"},
                {"rel": "bookmark", "href": f"{self.ctx.url}/compute/{kind}/{ident}"}]

    def _flavor_view(self, flavor: dict, mv: tuple[int, int]) -> dict:
        body: dict[str, Any] = {
            "id": flavor["id"], "name": flavor["name"], "ram": flavor["ram"], "vcpus": flavor["vcpus"],
            "disk": flavor["disk"], "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": False,
            "os-flavor-access:is_public": True, "links": self._links("flavors", flavor["id"]),
            "swap": 0 if mv >= (2, 75) else "",
        }
        if mv < (2, 75):
            body["rxtx_factor"] = 1.0
        if mv >= (2, 55):
            body["description"] = None
        if mv >= (2, 61):
            body["extra_specs"] = {}
        return body

    def render_server(self, server: Server, mv: tuple[int, int], detail: bool = True) -> dict:
        if not detail:
            return {"id": server.id, "name": server.name, "links": self._links("servers", server.id)}
        flavor = self.ctx.store.flavors.get(server.flavor_id) or {
            "id": server.flavor_id, "name": "deleted", "ram": 0, "vcpus": 0, "disk": 0}
        if mv >= (2, 47):
            flavor_view = {"vcpus": flavor["vcpus"], "ram": flavor["ram"], "disk": flavor["disk"], "ephemeral": 0,
                           "swap": 0, "original_name": flavor["name"], "extra_specs": {}}
        else:
            flavor_view = {"id": flavor["id"], "links": [{"rel": "bookmark",
                                                          "href": f"{self.ctx.url}/compute/flavors/{flavor['id']}"}]}
        addresses = {}
        if server.address and server.status not in ("BUILD", "ERROR"):
            mac = "fa:16:3e:%02x:%02x:%02x" % tuple(int(x) for x in server.address.split(".")[1:])
            addresses[server.network] = [{"version": 4, "addr": server.address, "OS-EXT-IPS:type": "fixed",
                                          "OS-EXT-IPS-MAC:mac_addr": mac}]
        project = self.ctx.keystone.project["id"]
        body: dict[str, Any] = {
            "id": server.id, "name": server.name, "status": server.status, "tenant_id": project,
            "user_id": self.ctx.keystone.user["id"], "metadata": dict(server.metadata),
            "hostId": "" if server.status == "BUILD" else "5c9f1c4e0a3b2d1f" * 3 + "5c9f1c4e",
            "image": {"id": server.image_id, "links": [{"rel": "bookmark",
                                                        "href": f"{self.ctx.url}/compute/images/{server.image_id}"}]},
            "flavor": flavor_view, "created": iso(server.created), "updated": iso(server.updated),
            "addresses": addresses, "accessIPv4": "", "accessIPv6": "", "links": self._links("servers", server.id),
            "OS-DCF:diskConfig": "MANUAL", "progress": 0, "OS-EXT-AZ:availability_zone": "nova",
            "config_drive": "", "key_name": server.key_name,
            "OS-SRV-USG:launched_at": iso(server.launched_at, micro=True).rstrip("Z") if server.launched_at else None,
            "OS-SRV-USG:terminated_at": None, "OS-EXT-STS:task_state": server.task_state,
            "OS-EXT-STS:vm_state": server.vm_state, "OS-EXT-STS:power_state": server.power_state,
            "os-extended-volumes:volumes_attached": [], "security_groups": [{"name": "default"}],
        }
        if server.fault and server.status in ("ERROR", "DELETED"):
            body["fault"] = dict(server.fault)
        if mv >= (2, 9):
            body["locked"] = False
        if mv >= (2, 19):
            body["description"] = server.description
        if mv >= (2, 26):
            body["tags"] = list(server.tags)
        if mv >= (2, 63):
            body["trusted_image_certificates"] = None
        if mv >= (2, 71):
            body["server_groups"] = []
        if mv >= (2, 73):
            body["locked_reason"] = None
        if mv >= (2, 96):
            body["pinned_availability_zone"] = None
        return body

    # ----- create -----
    def create_server(self, req: Request) -> Response:
        mv = req.microversion
        body = req.json()
        spec = body.get("server") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise ApiError(400, "Invalid input for field/attribute server. 'server' is a required property")
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise ApiError(400, f"Invalid input for field/attribute name. Value: {name!r}.")
        image_ref, flavor_ref = spec.get("imageRef"), spec.get("flavorRef")
        if not isinstance(image_ref, str) or not image_ref:
            raise ApiError(400, "Invalid input for field/attribute imageRef.")
        if not isinstance(flavor_ref, (str, int)) or flavor_ref == "":
            raise ApiError(400, "Invalid input for field/attribute flavorRef.")
        image_id = image_ref.rstrip("/").rsplit("/", 1)[-1]
        flavor_id = str(flavor_ref).rstrip("/").rsplit("/", 1)[-1]
        networks = spec.get("networks")
        if networks is None and mv >= (2, 37):
            raise ApiError(400, "Invalid input for field/attribute server. Value: "
                                f"{spec!r}. 'networks' is a required property")
        metadata = _check_metadata(spec.get("metadata", {}))
        if len(metadata) > MAX_METADATA_ITEMS:
            raise ApiError(403, "Quota exceeded for metadata_items: Requested "
                                f"{len(metadata)}, but already used 0 of {MAX_METADATA_ITEMS} metadata_items")
        tags: list[str] = []
        if "tags" in spec:
            if mv < (2, 52):
                raise ApiError(400, "Invalid input for field/attribute server. Additional properties are not "
                                    "allowed ('tags' was unexpected)")
            if not isinstance(spec["tags"], list) or len(spec["tags"]) > MAX_TAGS:
                raise ApiError(400, "Invalid input for field/attribute tags.")
            tags = list(dict.fromkeys(_check_tag(t) for t in spec["tags"]))
        description = spec.get("description")
        if description is not None and mv < (2, 19):
            raise ApiError(400, "Invalid input for field/attribute server. Additional properties are not "
                                "allowed ('description' was unexpected)")
        for count_key in ("min_count", "max_count"):
            if count_key in spec and int(spec[count_key]) != 1:
                raise ApiError(400, f"openstack_sim supports one server per create ({count_key}=1).")
        user_data = None
        if spec.get("user_data") is not None:
            try:
                raw = base64.b64decode(spec["user_data"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise ApiError(400, "Invalid input for field/attribute user_data. It must be base64.") from None
            if len(spec["user_data"]) > 65535:
                raise ApiError(400, "User data too large. User data must be no larger than 65535 bytes once "
                                    "base64 encoded.")
            user_data = raw.decode("utf-8", errors="replace")
        opts = self.ctx.options
        with self.ctx.store.lock:
            live = [s for s in self.ctx.store.servers.values() if s.task_state != "deleting"]
            if len(live) >= opts.max_servers:
                raise ApiError(403, f"Quota exceeded for instances: Requested 1, but already used {len(live)} "
                                    f"of {opts.max_servers} instances")
            image = self.ctx.glance.visible(image_id)
            if image is None:
                raise ApiError(400, f"Image {image_id} could not be found.")
            if image.status != "active":
                raise ApiError(400, f"Image {image_id} is not active.")
            if flavor_id not in self.ctx.store.flavors:
                raise ApiError(400, "Invalid flavorRef provided.")
            self.ctx.quotas.check_boot(self.ctx.store.flavors[flavor_id])
            network = self._resolve_network(networks)
            server = self._new_server(name, image, flavor_id, network, metadata, tags, spec.get("key_name"),
                                      description)
            server.user_data = user_data
            error = self.ctx.faults.take("next_create_error")
            answer_500 = self.ctx.faults.take("next_create_500")
        self.ctx.scheduler.call_later(opts.build_delay / 2, self._spawning, server.id, error)
        self.ctx.scheduler.call_later(opts.build_delay, self._finish_boot, server.id, error)
        if answer_500:
            raise ApiError(500, UNEXPECTED_ERROR)
        location = f"{self.ctx.url}/compute/v2.1/servers/{server.id}"
        return json_response(202, {"server": {
            "id": server.id, "links": self._links("servers", server.id), "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{"name": "default"}], "adminPass": secrets.token_urlsafe(9),
        }}, {"Location": location})

    def _resolve_network(self, networks: Any) -> str | None:
        default = "private"
        if networks is None or networks == "auto":
            return default
        if networks == "none" or networks == []:
            return None
        if not isinstance(networks, list):
            raise ApiError(400, f"Invalid input for field/attribute networks. Value: {networks!r}.")
        first = None
        for entry in networks:
            if not isinstance(entry, dict):
                raise ApiError(400, f"Invalid input for field/attribute networks. Value: {entry!r}.")
            if "port" in entry:
                raise ApiError(400, f"Port {entry['port']} could not be found.")
            net_id = entry.get("uuid")
            net = self.ctx.neutron.network_by_name_or_id(net_id) if isinstance(net_id, str) else None
            if net is None or net["id"] != net_id:
                raise ApiError(400, f"Network {net_id} could not be found.")
            first = first or net["name"]
        return first

    # ----- list / show / delete -----
    def list_servers(self, req: Request) -> Response:
        return self._list(req, detail=False)

    def list_servers_detail(self, req: Request) -> Response:
        return self._list(req, detail=True)

    def _filter(self, servers: list[Server], req: Request) -> list[Server]:
        mv = req.microversion
        name = req.arg("name")
        if name is not None:
            try:
                rx = re.compile(name)
            except re.error:
                raise ApiError(400, f"Invalid regular expression for name: {name}") from None
            servers = [s for s in servers if rx.search(s.name)]  # unanchored, as Nova does
        status = req.arg("status")
        if status is not None:
            status = status.upper()
            if status not in SERVER_STATUSES:
                if mv >= (2, 38):
                    raise ApiError(400, f"Invalid status value: {status}")
                return []
            servers = [s for s in servers if s.status == status]
        for key, attr in (("image", "image_id"), ("flavor", "flavor_id")):
            value = req.arg(key)
            if value is not None:
                value = value.rstrip("/").rsplit("/", 1)[-1]
                servers = [s for s in servers if getattr(s, attr) == value]
        ip = req.arg("ip")
        if ip is not None:
            try:
                ip_rx = re.compile(ip)
            except re.error:
                raise ApiError(400, f"Invalid regular expression for ip: {ip}") from None
            servers = [s for s in servers if s.address and ip_rx.search(s.address)]
        since = req.arg("changes-since")
        if since is not None:
            try:
                cutoff = parse_iso(since)
            except ValueError:
                raise ApiError(400, f"Invalid changes-since value: {since}") from None
            servers = [s for s in servers if s.updated >= int(cutoff)]
        if mv >= (2, 26):  # older microversions silently ignore tag filters
            def tag_list(key: str) -> list[str] | None:
                value = req.arg(key)
                return None if value is None else [t for t in value.split(",") if t]

            tags, any_tags = tag_list("tags"), tag_list("tags-any")
            not_tags, not_any = tag_list("not-tags"), tag_list("not-tags-any")
            if tags is not None:
                servers = [s for s in servers if all(t in s.tags for t in tags)]
            if any_tags is not None:
                servers = [s for s in servers if any(t in s.tags for t in any_tags)]
            if not_tags is not None:
                servers = [s for s in servers if not all(t in s.tags for t in not_tags)]
            if not_any is not None:
                servers = [s for s in servers if not any(t in s.tags for t in not_any)]
        return servers

    @staticmethod
    def _sort(servers: list[Server], req: Request) -> list[Server]:
        keys = req.args("sort_key") or ["created_at"]
        dirs = req.args("sort_dir") or []
        for key in keys:
            if key not in SORT_KEYS:
                raise ApiError(400, f"Invalid sort_key {key}")
        for direction in dirs:
            if direction not in ("asc", "desc"):
                raise ApiError(400, f"Invalid sort_dir {direction}")
        out = sorted(servers, key=lambda s: s.seq, reverse=True)
        for i in range(len(keys) - 1, -1, -1):  # stable sorts, least significant key first
            attr = SORT_KEYS[keys[i]]
            direction = dirs[i] if i < len(dirs) else "desc"
            out.sort(key=lambda s, a=attr: ((getattr(s, a) is not None), getattr(s, a) or "",
                                           s.seq if a in ("created", "updated") else 0),
                     reverse=(direction == "desc"))
        return out

    def _page(self, items: list[Any], req: Request) -> tuple[list[Any], bool]:
        max_limit = self.ctx.options.max_limit
        limit_arg = req.arg("limit")
        try:
            limit = max_limit if limit_arg is None else int(limit_arg)
        except ValueError:
            raise ApiError(400, "limit param must be an integer") from None
        if limit < 0:
            raise ApiError(400, "limit param must be positive")
        limit = min(limit, max_limit)
        marker = req.arg("marker")
        if marker is not None:
            ids = [i.id for i in items]
            if marker not in ids:
                raise ApiError(400, f"marker [{marker}] not found")
            items = items[ids.index(marker) + 1:]
        page = items[:limit]
        return page, bool(page) and len(page) == limit

    def _list(self, req: Request, detail: bool) -> Response:
        mv = req.microversion
        with self.ctx.store.lock:
            servers = self._sort(self._filter(list(self.ctx.store.servers.values()), req), req)
            page, more = self._page(servers, req)
            rendered = [self.render_server(s, mv, detail) for s in page]
        body: dict[str, Any] = {"servers": rendered}
        if more:
            params = [(k, v) for k, v in req.query_items if k != "marker"] + [("marker", page[-1].id)]
            path = "servers/detail" if detail else "servers"
            body["servers_links"] = [{"rel": "next",
                                      "href": f"{self.ctx.url}/compute/v2.1/{path}?{urlencode(params)}"}]
        return json_response(200, body)

    def show_server(self, req: Request, server_id: str) -> Response:
        with self.ctx.store.lock:
            return json_response(200, {"server": self.render_server(self._server(server_id), req.microversion)})

    def delete_server(self, req: Request, server_id: str) -> Response:
        with self.ctx.store.lock:
            server = self._server(server_id)
            if server.task_state != "deleting":
                server.task_state = "deleting"
                server.updated = self.ctx.now()
                self.ctx.apps.begin_stop(server_id)  # the guest goes down first; the record goes after delete_delay
                self.ctx.scheduler.call_later(self.ctx.options.delete_delay, self._finish_delete, server_id)
        return empty_response(204)

    # ----- metadata -----
    @staticmethod
    def _check_writable(server: Server, action: str) -> None:
        if server.vm_state not in WRITABLE_VM_STATES:
            raise ApiError(409, f"Cannot '{action}' instance {server.id} while it is in vm_state {server.vm_state}")

    def get_metadata(self, req: Request, server_id: str) -> Response:
        with self.ctx.store.lock:
            return json_response(200, {"metadata": dict(self._server(server_id).metadata)})

    def _write_metadata(self, req: Request, server_id: str, replace: bool) -> Response:
        body = req.json()
        if not isinstance(body, dict) or "metadata" not in body:
            raise ApiError(400, "Malformed request body: 'metadata' is a required property")
        meta = _check_metadata(body["metadata"])
        with self.ctx.store.lock:
            server = self._server(server_id)
            self._check_writable(server, "update_instance_metadata")
            new = meta if replace else {**server.metadata, **meta}
            if len(new) > MAX_METADATA_ITEMS:
                raise ApiError(403, f"Quota exceeded for metadata_items: Requested {len(new)}, but already used "
                                    f"0 of {MAX_METADATA_ITEMS} metadata_items")
            server.metadata = dict(new)
            server.updated = self.ctx.now()
            return json_response(200, {"metadata": dict(server.metadata)})

    def merge_metadata(self, req: Request, server_id: str) -> Response:
        return self._write_metadata(req, server_id, replace=False)

    def replace_metadata(self, req: Request, server_id: str) -> Response:
        return self._write_metadata(req, server_id, replace=True)

    def get_meta_item(self, req: Request, server_id: str, key: str) -> Response:
        with self.ctx.store.lock:
            server = self._server(server_id)
            if key not in server.metadata:
                raise ApiError(404, "Metadata item was not found")
            return json_response(200, {"meta": {key: server.metadata[key]}})

    def set_meta_item(self, req: Request, server_id: str, key: str) -> Response:
        body = req.json()
        meta = body.get("meta") if isinstance(body, dict) else None
        meta = _check_metadata(meta, "meta")
        if len(meta) != 1:
            raise ApiError(400, "Request body contains too many items" if meta else "Malformed request body")
        if key not in meta:
            raise ApiError(400, "Request body and URI mismatch")
        with self.ctx.store.lock:
            server = self._server(server_id)
            self._check_writable(server, "update_instance_metadata")
            if key not in server.metadata and len(server.metadata) >= MAX_METADATA_ITEMS:
                raise ApiError(403, "Quota exceeded for metadata_items")
            server.metadata[key] = meta[key]
            server.updated = self.ctx.now()
        return json_response(200, {"meta": meta})

    def delete_meta_item(self, req: Request, server_id: str, key: str) -> Response:
        with self.ctx.store.lock:
            server = self._server(server_id)
            if key not in server.metadata:
                raise ApiError(404, "Metadata item was not found")
            self._check_writable(server, "delete_instance_metadata")
            del server.metadata[key]
            server.updated = self.ctx.now()
        return empty_response(204)

    # ----- tags (microversion 2.26+) -----
    def _tags_server(self, req: Request, server_id: str) -> Server:
        if req.microversion < (2, 26):
            raise ApiError(404, "The resource could not be found.")
        return self._server(server_id)

    def get_tags(self, req: Request, server_id: str) -> Response:
        with self.ctx.store.lock:
            return json_response(200, {"tags": list(self._tags_server(req, server_id).tags)})

    def replace_tags(self, req: Request, server_id: str) -> Response:
        body = req.json()
        tags = body.get("tags") if isinstance(body, dict) else None
        if not isinstance(tags, list):
            raise ApiError(400, "Invalid input for field/attribute tags. 'tags' is a required property")
        tags = list(dict.fromkeys(_check_tag(t) for t in tags))
        if len(tags) > MAX_TAGS:
            raise ApiError(400, f"The number of tags exceeded the per-server limit {MAX_TAGS}")
        with self.ctx.store.lock:
            server = self._tags_server(req, server_id)
            self._check_writable(server, "update tags")
            server.tags = tags
            server.updated = self.ctx.now()
            return json_response(200, {"tags": list(tags)})

    def clear_tags(self, req: Request, server_id: str) -> Response:
        with self.ctx.store.lock:
            server = self._tags_server(req, server_id)
            self._check_writable(server, "delete tags")
            server.tags = []
            server.updated = self.ctx.now()
        return empty_response(204)

    def check_tag(self, req: Request, server_id: str, tag: str) -> Response:
        with self.ctx.store.lock:
            if tag not in self._tags_server(req, server_id).tags:
                raise ApiError(404, f"Tag {tag} was not found on server {server_id}")
        return empty_response(204)

    def add_tag(self, req: Request, server_id: str, tag: str) -> Response:
        _check_tag(tag)
        with self.ctx.store.lock:
            server = self._tags_server(req, server_id)
            self._check_writable(server, "update tag")
            if tag in server.tags:
                return empty_response(204)
            if len(server.tags) >= MAX_TAGS:
                raise ApiError(400, f"The number of tags exceeded the per-server limit {MAX_TAGS}")
            server.tags.append(tag)
            server.updated = self.ctx.now()
        location = f"{self.ctx.url}/compute/v2.1/servers/{server_id}/tags/{tag}"
        return empty_response(201, {"Location": location})

    def delete_tag(self, req: Request, server_id: str, tag: str) -> Response:
        with self.ctx.store.lock:
            server = self._tags_server(req, server_id)
            if tag not in server.tags:
                raise ApiError(404, f"Tag {tag} was not found on server {server_id}")
            self._check_writable(server, "delete tag")
            server.tags.remove(tag)
            server.updated = self.ctx.now()
        return empty_response(204)

    # ----- actions: createImage -----
    def action(self, req: Request, server_id: str) -> Response:
        body = req.json()
        if not isinstance(body, dict) or len(body) != 1:
            raise ApiError(400, "Malformed request body: exactly one action is expected")
        name = next(iter(body))
        if name == "os-stop":
            return self._power(server_id, stop=True)
        if name == "os-start":
            return self._power(server_id, stop=False)
        if name == "os-getConsoleOutput":
            return self._console_output(server_id, body[name])
        if name != "createImage":
            with self.ctx.store.lock:
                self._server(server_id)
            raise ApiError(400, f"There is no such action: {name}")
        return self._create_image(req, server_id, body[name])

    # ----- power and console -----
    def _power(self, server_id: str, *, stop: bool) -> Response:
        """os-stop (ACTIVE -> SHUTOFF, the app process is paused) and os-start (SHUTOFF -> ACTIVE, it goes on)."""
        action, wanted, task = ("stop", "active", "powering-off") if stop else ("start", "stopped", "powering-on")
        with self.ctx.store.lock:
            server = self._server(server_id)
            if server.vm_state != wanted or server.task_state is not None:
                raise ApiError(409, f"Cannot '{action}' instance {server_id} while it is in vm_state "
                                    f"{server.vm_state}" + (f" and task_state {server.task_state}" if server.task_state else ""))
            server.task_state = task
            server.updated = self.ctx.now()
        self.ctx.scheduler.call_later(self.ctx.options.build_delay / 2, self._powered, server_id, stop)
        return empty_response(202)

    def _powered(self, server_id: str, stop: bool) -> None:
        if stop:
            self.ctx.apps.pause(server_id)  # it keeps its address:port while SHUTOFF
        with self.ctx.store.lock:
            server = self.ctx.store.servers.get(server_id)
            if server is None or server.task_state not in ("powering-off", "powering-on"):
                return
            now = self.ctx.now()
            if stop:
                server.status, server.vm_state, server.task_state, server.power_state = "SHUTOFF", "stopped", None, 4
                server.console.append(f"[{now - server.created:12.6f}] reboot: Power down")
                server.updated = now
                return
            if self.ctx.options.serve_apps and server.address and not self.ctx.apps.resume(server_id):
                sock = _reserve(server.address, server.app_port)  # its process died while it was SHUTOFF
                if sock is None:
                    self._to_error(server, f"openstack_sim: {server.address}:{server.app_port} is taken")
                    return
                props = self.image_props(server)
                self.ctx.apps.start(server.id, name=server.name, address=server.address, port=server.app_port,
                                    version=props.get("releasectl_version", ""), fail_health=self.fails_health(server),
                                    sock=sock, files=server.files)
            server.console.append(f"[    0.000000] Linux version 5.15.0-sim ({server.name})")
            self._to_active(server)

    def _console_output(self, server_id: str, spec: Any) -> Response:
        length = spec.get("length") if isinstance(spec, dict) else None
        if length is not None and (not isinstance(length, (int, str)) or not str(length).lstrip("-").isdigit()):
            raise ApiError(400, "Invalid input for field/attribute length.")
        with self.ctx.store.lock:
            server = self._server(server_id)
            if server.vm_state not in ("active", "stopped", "error") and server.status != "ACTIVE":
                raise ApiError(409, f"Instance {server_id} is not ready yet (vm_state {server.vm_state})")
            lines = list(server.console)
        if length is not None and int(length) >= 0:
            lines = lines[-int(length):] if int(length) else []
        return json_response(200, {"output": "\n".join(lines) + ("\n" if lines else "")})

    def _create_image(self, req: Request, server_id: str, spec: Any) -> Response:
        if not isinstance(spec, dict):
            raise ApiError(400, "Invalid input for field/attribute createImage.")
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise ApiError(400, f"Invalid input for field/attribute name. Value: {name!r}.")
        metadata = _check_metadata(spec.get("metadata", {}))
        opts = self.ctx.options
        with self.ctx.store.lock:
            server = self._server(server_id)
            if server.vm_state not in WRITABLE_VM_STATES:
                raise ApiError(409, f"Cannot 'createImage' instance {server_id} while it is in vm_state "
                                    f"{server.vm_state}")
            if server.task_state is not None:
                raise ApiError(409, f"Cannot 'createImage' instance {server_id} while it is in task_state "
                                    f"{server.task_state}")
            image = self._snapshot_record(server, name, metadata)
            self.image_files[image.id] = dict(server.files)
            server.task_state = "image_snapshot"
            server.updated = self.ctx.now()
            vanish = self.ctx.faults.take("next_snapshot_vanish")
        self.ctx.scheduler.call_later(opts.snapshot_delay / 2, self._snapshot_saving, server_id, image.id)
        self.ctx.scheduler.call_later(opts.snapshot_delay, self._snapshot_done, server_id, image.id, vanish)
        if req.microversion >= (2, 45):
            return json_response(202, {"image_id": image.id})
        return empty_response(202, {"Location": f"{self.ctx.url}/image/v2/images/{image.id}"})

    def _snapshot_record(self, server: Server, name: str, metadata: dict[str, str]) -> Any:
        """The Glance record Nova creates before answering: inherited + Nova + createImage properties."""
        base = self.ctx.store.images.get(server.image_id)
        flavor = self.ctx.store.flavors.get(server.flavor_id, {"disk": 0})
        props = {k: v for k, v in (base.properties if base else {}).items()
                 if k not in NON_INHERITABLE and not k.startswith(("img_signature", "os_glance"))}
        keystone = self.ctx.keystone
        props.update({
            "image_type": "snapshot", "instance_uuid": server.id, "user_id": keystone.user["id"],
            "base_image_ref": server.image_id, "owner_project_name": keystone.project["name"],
            "owner_user_name": keystone.user["name"], "boot_roles": "member,reader",
            "image_location": "snapshot", "image_state": "available", "owner_id": keystone.project["id"],
        })
        props.update(metadata)  # createImage metadata becomes top-level properties, overriding inherited ones
        if server.id == self.builder_id and self.builder_fail_health:
            props["sim_fail_health"] = "true"
        return self.ctx.glance.add_image(
            name=name, status="queued", properties=props, visibility="private",
            min_disk=max(base.min_disk if base else 0, flavor["disk"]), min_ram=base.min_ram if base else 0)

    def _snapshot_saving(self, server_id: str, image_id: str) -> None:
        with self.ctx.store.lock:
            image = self.ctx.store.images.get(image_id)
            if image is not None and image.status == "queued":
                image.status = "saving"
                image.updated = self.ctx.now()
            server = self.ctx.store.servers.get(server_id)
            if server is not None and server.task_state == "image_snapshot":
                server.task_state = "image_uploading"

    def _snapshot_done(self, server_id: str, image_id: str, vanish: bool) -> None:
        with self.ctx.store.lock:
            server = self.ctx.store.servers.get(server_id)
            alive = server is not None and server.task_state != "deleting"
            if alive and server.task_state in ("image_snapshot", "image_uploading"):
                server.task_state = None
                server.updated = self.ctx.now()
            image = self.ctx.store.images.get(image_id)
            if image is None or image.status not in ("queued", "saving"):
                return  # deleted by the user meanwhile
            if vanish or not alive:
                self.ctx.glance.delete_record(image)  # Nova deletes a failed snapshot's image
            else:
                image.mark_active()
                image.updated = self.ctx.now()

    # ----- flavors -----
    def list_flavors(self, req: Request) -> Response:
        with self.ctx.store.lock:
            flavors = [{"id": f["id"], "name": f["name"], "links": self._links("flavors", f["id"])}
                       for f in self.ctx.store.flavors.values()]
        if req.microversion >= (2, 55):
            for f in flavors:
                f["description"] = None
        return json_response(200, {"flavors": flavors})

    def list_flavors_detail(self, req: Request) -> Response:
        with self.ctx.store.lock:
            flavors = [self._flavor_view(f, req.microversion) for f in self.ctx.store.flavors.values()]
        return json_response(200, {"flavors": flavors})

    def show_flavor(self, req: Request, flavor_id: str) -> Response:
        with self.ctx.store.lock:
            flavor = self.ctx.store.flavors.get(flavor_id)
            if flavor is None:
                raise ApiError(404, f"Flavor {flavor_id} could not be found.")
            return json_response(200, {"flavor": self._flavor_view(flavor, req.microversion)})
