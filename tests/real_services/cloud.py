"""Plain-HTTP access to the real services for test set-up and direct checks (never used by releasectl itself).

`RealServices` is the env file `.ci/real_services` writes; `Session` holds a project-scoped token of one
Keystone user and calls any service with it (a 401 re-authenticates once); `Catalog` keeps the endpoints the
tests need in the real Keystone's catalog; `make_pool` builds a load balancer, listener, pool and HTTP monitor
in the real Octavia and waits for the stand-in controller to make each ACTIVE.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

REGION = "RegionOne"
DOMAIN = "default"
TIMEOUT = 30


@dataclass(frozen=True)
class RealServices:
    """What `.ci/real_services` started, from its KEY=VALUE env file."""

    keystone_url: str  # without /v3
    admin_username: str
    admin_password: str
    admin_project: str
    username: str
    password: str
    project_name: str
    project_id: str
    user_id: str
    app_cred_id: str
    app_cred_secret: str
    octavia_url: str
    glance_url: str
    swift_url: str  # the proxy, without /v1/AUTH_...
    versions: dict[str, str]
    env_file: Path

    @property
    def auth_url(self) -> str:
        return self.keystone_url + "/v3"

    @property
    def swift_account_url(self) -> str:
        return f"{self.swift_url}/v1/AUTH_{self.project_id}"

    @property
    def secrets(self) -> list[str]:
        return [self.admin_password, self.password, self.app_cred_secret]

    @classmethod
    def from_values(cls, values: dict[str, str], env_file: Path) -> "RealServices":
        missing = [k for k in ("KEYSTONE_URL", "KEYSTONE_ADMIN_PASSWORD", "KEYSTONE_PASSWORD", "KEYSTONE_PROJECT_ID",
                               "OCTAVIA_URL", "GLANCE_URL", "SWIFT_URL") if not values.get(k)]
        if missing:
            raise ValueError(f"{env_file} lacks {', '.join(missing)}")
        return cls(
            keystone_url=values["KEYSTONE_URL"].rstrip("/").removesuffix("/v3"),
            admin_username=values.get("KEYSTONE_ADMIN_USERNAME", "admin"),
            admin_password=values["KEYSTONE_ADMIN_PASSWORD"],
            admin_project=values.get("KEYSTONE_ADMIN_PROJECT", "admin"),
            username=values.get("KEYSTONE_USERNAME", "demo"),
            password=values["KEYSTONE_PASSWORD"],
            project_name=values.get("KEYSTONE_PROJECT_NAME", "demo"),
            project_id=values["KEYSTONE_PROJECT_ID"],
            user_id=values.get("KEYSTONE_USER_ID", ""),
            app_cred_id=values.get("KEYSTONE_APP_CRED_ID", ""),
            app_cred_secret=values.get("KEYSTONE_APP_CRED_SECRET", ""),
            octavia_url=values["OCTAVIA_URL"].rstrip("/"),
            glance_url=values["GLANCE_URL"].rstrip("/"),
            swift_url=values["SWIFT_URL"].rstrip("/"),
            versions={k.removesuffix("_VERSION").lower(): v for k, v in values.items() if k.endswith("_VERSION")},
            env_file=env_file,
        )

    def clouds_entry(self, auth_type: str = "password") -> dict[str, Any]:
        """A clouds.yaml entry for the demo user (password or its application credential)."""
        if auth_type == "password":
            auth = {"auth_url": self.auth_url, "username": self.username, "password": self.password,
                    "user_domain_name": "Default", "project_name": self.project_name,
                    "project_domain_name": "Default"}
        else:
            auth = {"auth_url": self.auth_url, "application_credential_id": self.app_cred_id,
                    "application_credential_secret": self.app_cred_secret}
        return {"auth": auth, "auth_type": auth_type, "region_name": REGION, "interface": "public",
                "identity_api_version": 3}


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[key.strip()] = value.strip()
    return values


class Session:
    """A project-scoped password token of one user; `call` re-authenticates once on a 401."""

    def __init__(self, rs: RealServices, *, admin: bool = False) -> None:
        self.rs = rs
        self.user = (rs.admin_username, rs.admin_password, rs.admin_project) if admin else (rs.username, rs.password, rs.project_name)
        self.http = requests.Session()
        self.http.trust_env = False
        self._token: str | None = None
        self._lock = threading.Lock()

    def token(self, refresh: bool = False) -> str:
        with self._lock:
            if self._token is None or refresh:
                name, password, project = self.user
                resp = self.http.post(f"{self.rs.auth_url}/auth/tokens", timeout=TIMEOUT, json={"auth": {
                    "identity": {"methods": ["password"], "password": {"user": {
                        "name": name, "domain": {"id": DOMAIN}, "password": password}}},
                    "scope": {"project": {"name": project, "domain": {"id": DOMAIN}}}}})
                if resp.status_code != 201:
                    raise RuntimeError(f"token for {name}: HTTP {resp.status_code} {resp.text[:300]}")
                self._token = resp.headers["X-Subject-Token"]
            return self._token

    def call(self, method: str, url: str, ok: tuple[int, ...] = (200, 201, 202, 204), **kw: Any) -> requests.Response:
        headers = dict(kw.pop("headers", None) or {})
        for attempt in range(2):
            headers["X-Auth-Token"] = self.token(refresh=attempt > 0)
            resp = self.http.request(method, url, headers=headers, timeout=TIMEOUT, **kw)
            if resp.status_code != 401:
                break
        if ok and resp.status_code not in ok:
            raise AssertionError(f"{method} {url}: HTTP {resp.status_code} {resp.text[:500]}")
        return resp

    def close(self) -> None:
        self.http.close()


class Catalog:
    """The endpoints in the real Keystone's catalog (admin): other tests (test_real_keystone) replace them."""

    SERVICES = {"compute": "nova", "network": "neutron", "image": "glance", "load-balancer": "octavia",
                "object-store": "swift"}

    def __init__(self, rs: RealServices) -> None:
        self.admin = Session(rs, admin=True)
        self.v3 = rs.auth_url

    def ensure(self, urls: dict[str, str]) -> None:
        """Each service type has exactly these public and internal endpoints (stale ones are removed)."""
        for stype, url in urls.items():
            sid = self._service_id(stype)
            found = self.admin.call("GET", f"{self.v3}/endpoints", params={"service_id": sid}).json()["endpoints"]
            wanted = {("public", url), ("internal", url)}
            have = {(ep["interface"], ep["url"]) for ep in found if ep.get("region_id") == REGION}
            if have == wanted and len(found) == len(wanted):
                continue
            for ep in found:
                self.admin.call("DELETE", f"{self.v3}/endpoints/{ep['id']}", ok=(204, 404))
            for interface, _ in sorted(wanted):
                self.admin.call("POST", f"{self.v3}/endpoints", json={"endpoint": {
                    "service_id": sid, "interface": interface, "region_id": REGION, "url": url, "enabled": True}})

    def _service_id(self, stype: str) -> str:
        found = self.admin.call("GET", f"{self.v3}/services", params={"type": stype}).json()["services"]
        if found:
            return found[0]["id"]
        return self.admin.call("POST", f"{self.v3}/services", json={"service": {
            "type": stype, "name": self.SERVICES.get(stype, stype), "enabled": True}}).json()["service"]["id"]


@dataclass(frozen=True)
class RealPool:
    lb_id: str
    listener_id: str
    pool_id: str
    monitor_id: str
    name: str


class Octavia:
    """The real Octavia API as the demo user, for set-up and direct checks."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.base = session.rs.octavia_url + "/v2/lbaas"

    def get(self, kind: str, ident: str) -> dict[str, Any] | None:
        resp = self.s.call("GET", f"{self.base}/{kind}s/{ident}", ok=(200, 404))
        return resp.json()[kind] if resp.status_code == 200 else None

    def members(self, pool_id: str) -> list[dict[str, Any]]:
        return self.s.call("GET", f"{self.base}/pools/{pool_id}/members").json()["members"]

    def create(self, kind: str, body: dict[str, Any], lb_id: str | None = None) -> dict[str, Any]:
        obj = self.s.call("POST", f"{self.base}/{kind}s", json={kind: body}).json()[kind]
        self.wait_active("loadbalancer", lb_id or obj["id"])
        return obj

    def wait_active(self, kind: str, ident: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:  # bounded by the deadline
            obj = self.get(kind, ident)
            status = obj and obj.get("provisioning_status")
            if status == "ACTIVE":
                return obj
            if status == "ERROR" or time.monotonic() > deadline:
                raise AssertionError(f"{kind} {ident} is {status} (the stand-in controller in the Octavia "
                                     "process makes PENDING_* ACTIVE)")
            time.sleep(0.1)

    def make_pool(self, prefix: str, subnet_id: str, health_path: str = "/healthz") -> RealPool:
        name = f"{prefix}-{secrets.token_hex(3)}"
        # the noop network driver takes any VIP: one on loopback, where nothing listens (it forwards nothing)
        vip = f"127.0.250.{secrets.randbelow(254) + 1}"
        lb = self.create("loadbalancer", {"name": f"{name}-lb", "vip_subnet_id": subnet_id, "vip_address": vip})
        listener = self.create("listener", {"name": f"{name}-listener", "loadbalancer_id": lb["id"],
                                            "protocol": "HTTP", "protocol_port": 80}, lb["id"])
        pool = self.create("pool", {"name": name, "listener_id": listener["id"], "protocol": "HTTP",
                                    "lb_algorithm": "ROUND_ROBIN"}, lb["id"])
        monitor = self.create("healthmonitor", {"name": f"{name}-monitor", "pool_id": pool["id"], "type": "HTTP",
                                                "delay": 1, "timeout": 1, "max_retries": 1, "max_retries_down": 1,
                                                "http_method": "GET", "url_path": health_path,
                                                "expected_codes": "200"}, lb["id"])
        return RealPool(lb["id"], listener["id"], pool["id"], monitor["id"], name)

    def delete_lb(self, lb_id: str) -> None:
        self.s.call("DELETE", f"{self.base}/loadbalancers/{lb_id}", params={"cascade": "true"}, ok=(204, 404, 409))
