"""Keystone v3: version discovery, token issue/validate/revoke, the service catalog.

Supports password auth (user and project by name or id, with domains) and application-credential
auth (by id, or by name plus user). Tokens live in the store with an expiry, so a test can let one
run out (short ``token_ttl``) or invalidate all of them at once (the ``expire_tokens`` fault).
"""

from __future__ import annotations

import datetime
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from .server import ApiError, Request, Response, Service, Unauthorized, empty_response, json_response, keystone_error
from .state import hex_id, iso

DOMAIN = {"id": "default", "name": "Default"}
KEYSTONE_VERSION = "v3.14"
VERSION_UPDATED = "2020-04-07T00:00:00Z"

# (catalog type, service name, path below the simulator root; {project_id} is the token's project)
CATALOG = [
    ("identity", "keystone", "/v3"),
    ("compute", "nova", "/compute/v2.1"),
    ("image", "glance", "/image"),
    ("load-balancer", "octavia", "/load-balancer"),
    ("network", "neutron", "/networking"),
    ("dns", "designate", "/dns"),
    ("object-store", "swift", "/object-store/v1/AUTH_{project_id}"),  # left out when options.object_store is off
]


@dataclass
class Token:
    id: str
    user_id: str
    project_id: str
    methods: list[str]
    issued_at: float
    expires_at: float
    audit_id: str
    app_cred: dict | None = None
    roles: list[dict] = field(default_factory=list)


class Identity(Service):
    name = "identity"
    prefix = ""

    def __init__(self, ctx: Any) -> None:
        opts = ctx.options
        self.user = {"id": hex_id(), "name": opts.username, "domain": dict(DOMAIN), "password": opts.password}
        self.project = {"id": hex_id(), "name": opts.project, "domain": dict(DOMAIN)}
        self.roles = [{"id": hex_id(), "name": "member"}, {"id": hex_id(), "name": "reader"}]
        primary = getattr(ctx, "primary", None)
        if primary is not None:  # another region of one cloud: the same user, project and roles
            self.user, self.project, self.roles = primary.keystone.user, primary.keystone.project, primary.keystone.roles
        self.app_cred = {
            "id": hex_id(),
            "name": opts.app_cred_name,
            "secret": secrets.token_urlsafe(24),
            "user_id": self.user["id"],
            "project_id": self.project["id"],
        }
        self.service_ids = {stype: hex_id() for stype, _, _ in CATALOG}
        self.endpoint_ids = {(stype, iface): hex_id() for stype, _, _ in CATALOG
                             for iface in ("public", "internal", "admin")}
        external = getattr(opts, "external_keystone", "")
        self.external = ExternalKeystone(external) if external else None
        super().__init__(ctx)

    def register(self) -> None:
        self.add("GET", "/", self.versions, auth=False)
        self.add("GET", "/v3", self.version, auth=False)
        self.add("POST", "/v3/auth/tokens", self.issue, auth=False)
        self.add("GET", "/v3/auth/tokens", self.validate_subject)
        self.add("DELETE", "/v3/auth/tokens", self.revoke)
        self.add("GET", "/v3/auth/catalog", self.get_catalog)

    # ----- errors -----
    def render_error(self, req: Request, err: ApiError) -> Response:
        titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                  405: "Method Not Allowed", 409: "Conflict", 500: "Internal Server Error",
                  503: "Service Unavailable"}
        return keystone_error(err.status, titles.get(err.status, "Error"), err.message)

    # ----- discovery -----
    def _version_doc(self) -> dict:
        return {
            "id": KEYSTONE_VERSION,
            "status": "stable",
            "updated": VERSION_UPDATED,
            "links": [{"rel": "self", "href": f"{self.ctx.url}/v3/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
        }

    def versions(self, req: Request) -> Response:
        return json_response(300, {"versions": {"values": [self._version_doc()]}})

    def version(self, req: Request) -> Response:
        return json_response(200, {"version": self._version_doc()})

    # ----- catalog -----
    def catalog(self) -> list[dict]:
        region = self.ctx.options.region
        entries = []
        for stype, sname, path in CATALOG:
            if stype == "object-store" and not getattr(self.ctx.options, "object_store", True):
                continue
            url = self.ctx.url + path.format(project_id=self.project["id"])
            endpoints = [
                {"id": self.endpoint_ids[(stype, iface)], "interface": iface, "region_id": region, "region": region,
                 "url": url}
                for iface in ("public", "internal", "admin")
            ]
            for peer in getattr(self.ctx, "peers", []):  # the other regions (not identity: one Keystone)
                if stype == "identity" or (stype == "object-store" and not peer.options.object_store):
                    continue
                endpoints += [
                    {"id": peer.keystone.endpoint_ids[(stype, iface)], "interface": iface, "region_id": peer.options.region,
                     "region": peer.options.region, "url": peer.url + path.format(project_id=self.project["id"])}
                    for iface in ("public", "internal", "admin")
                ]
            entries.append({"type": stype, "name": sname, "id": self.service_ids[stype], "endpoints": endpoints})
        return entries

    def get_catalog(self, req: Request) -> Response:
        return json_response(200, {"catalog": self.catalog(), "links": {"self": f"{self.ctx.url}/v3/auth/catalog"}})

    # ----- token issue -----
    def issue(self, req: Request) -> Response:
        body = req.json()
        auth = body.get("auth") if isinstance(body, dict) else None
        if not isinstance(auth, dict) or not isinstance(auth.get("identity"), dict):
            raise ApiError(400, "Expecting to find identity in auth. The server could not comply with the "
                                "request since it is either malformed or otherwise incorrect.")
        identity = auth["identity"]
        methods = identity.get("methods")
        if not isinstance(methods, list) or not methods:
            raise ApiError(400, "Expecting to find methods in identity.")
        scope = auth.get("scope")
        app_cred = None
        if "application_credential" in methods:
            if scope:
                raise Unauthorized("Application credentials cannot request a scope.")
            app_cred = self._check_app_cred(identity.get("application_credential"))
            project_id = app_cred["project_id"]
        elif "password" in methods:
            self._check_password(identity.get("password"))
            project_id = self._scope_project(scope)
        elif "token" in methods:
            tok = (identity.get("token") or {}).get("id")
            if not tok or self.lookup(tok) is None:
                raise Unauthorized("Could not find token.")
            project_id = self._scope_project(scope)
        else:
            raise Unauthorized("Attempted to authenticate with an unsupported method.")
        now = time.time()
        token = Token(
            id=secrets.token_urlsafe(32),
            user_id=self.user["id"],
            project_id=project_id,
            methods=[m for m in methods if m in ("password", "application_credential", "token")],
            issued_at=now,
            expires_at=now + self.ctx.options.token_ttl,
            audit_id=secrets.token_urlsafe(16)[:22],
            app_cred=app_cred,
            roles=[dict(r) for r in self.roles],
        )
        with self.ctx.store.lock:
            self.ctx.store.tokens[token.id] = token
        return json_response(201, {"token": self.token_body(token)}, {"X-Subject-Token": token.id})

    def _resolve_domain(self, domain: Any) -> bool:
        if not isinstance(domain, dict):
            return False
        return domain.get("id") == DOMAIN["id"] or domain.get("name") == DOMAIN["name"]

    def _check_user(self, user: Any) -> None:
        if not isinstance(user, dict):
            raise ApiError(400, "Expecting to find user in password.")
        if "id" in user:
            ok = user["id"] == self.user["id"]
        else:
            ok = user.get("name") == self.user["name"] and self._resolve_domain(user.get("domain"))
        if not ok:
            raise Unauthorized()

    def _check_password(self, password: Any) -> None:
        if not isinstance(password, dict):
            raise ApiError(400, "Expecting to find password in identity.")
        user = password.get("user")
        self._check_user(user)
        if user.get("password") != self.user["password"]:
            raise Unauthorized()

    def _check_app_cred(self, cred: Any) -> dict:
        if not isinstance(cred, dict) or "secret" not in cred:
            raise ApiError(400, "Expecting to find secret in application_credential.")
        if "id" in cred:
            if cred["id"] != self.app_cred["id"]:  # real Keystone: an unknown id is a 404, not a 401
                raise ApiError(404, f"Could not find Application Credential: {cred['id']}.")
            ok = True
        elif "name" in cred:
            self._check_user(cred.get("user"))
            ok = cred["name"] == self.app_cred["name"]
        else:
            raise ApiError(400, "Expecting to find id or name in application_credential.")
        if not ok or cred["secret"] != self.app_cred["secret"]:
            raise Unauthorized()
        return self.app_cred

    def _scope_project(self, scope: Any) -> str:
        if scope in (None, {}):
            return self.project["id"]  # the user's default project
        if not isinstance(scope, dict) or not isinstance(scope.get("project"), dict):
            raise Unauthorized("The simulator only supports project scope.")
        project = scope["project"]
        if "id" in project:
            ok = project["id"] == self.project["id"]
        else:
            ok = project.get("name") == self.project["name"] and self._resolve_domain(project.get("domain"))
        if not ok:
            raise Unauthorized(f"User {self.user['id']} has no access to project {project}")
        return self.project["id"]

    def token_body(self, token: Token) -> dict:
        user = {k: v for k, v in self.user.items() if k != "password"}
        user["password_expires_at"] = None
        body = {
            "methods": token.methods,
            "user": user,
            "audit_ids": [token.audit_id],
            "expires_at": iso(token.expires_at, micro=True),
            "issued_at": iso(token.issued_at, micro=True),
            "project": dict(self.project),
            "is_domain": False,
            "roles": token.roles,
            "catalog": self.catalog(),
        }
        if token.app_cred:
            body["application_credential"] = {"id": token.app_cred["id"], "name": token.app_cred["name"],
                                              "restricted": True}
        return body

    # ----- token checks, used by every service -----
    def lookup(self, token_id: str) -> Token | None:
        with self.ctx.store.lock:
            token = self.ctx.store.tokens.get(token_id)
            if token is not None and time.time() >= token.expires_at:
                del self.ctx.store.tokens[token_id]
                token = None
            return token

    def authenticate(self, req: Request) -> Token:
        token_id = req.header("X-Auth-Token").strip()
        primary = getattr(self.ctx, "primary", None)
        if primary is not None:  # another region: the first region's Keystone issued the token
            return primary.keystone.authenticate(req)
        if self.external is not None:  # option external_keystone: only a real Keystone's tokens count
            return self.external.validate(token_id)
        token = self.lookup(token_id) if token_id else None
        if token is None:
            raise Unauthorized()
        return token

    def expire_all(self) -> int:
        """Invalidate every issued token (the ``expire_tokens`` fault)."""
        with self.ctx.store.lock:
            n = len(self.ctx.store.tokens)
            self.ctx.store.tokens.clear()
        if self.external is not None:
            n += self.external.expire_all()
        return n

    def validate_subject(self, req: Request) -> Response:
        token = self.lookup(req.header("X-Subject-Token").strip())
        if token is None:
            raise ApiError(404, "Failed to validate token")
        return json_response(200, {"token": self.token_body(token)}, {"X-Subject-Token": token.id})

    def revoke(self, req: Request) -> Response:
        subject = req.header("X-Subject-Token").strip()
        with self.ctx.store.lock:
            if self.ctx.store.tokens.pop(subject, None) is None:
                raise ApiError(404, "Failed to validate token")
        return empty_response(204)


class ExternalKeystone:
    """Validates service tokens against a real Keystone (option ``external_keystone``), as keystonemiddleware
    does: ``GET /v3/auth/tokens`` with the token as both ``X-Auth-Token`` and ``X-Subject-Token`` (Keystone
    lets a token validate itself). A valid token is cached until its ``expires_at``, so a revocation in
    Keystone is not seen before then; the ``expire_tokens`` fault still invalidates every cached token.
    A token Keystone refuses is a 401; Keystone unreachable or failing is a 503."""

    MAX_CACHE = 1000

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        url = url.rstrip("/")
        self.url = url if url.endswith("/v3") else url + "/v3"
        self.timeout = timeout
        self.lock = threading.Lock()
        self.cache: dict[str, Token] = {}
        self.revoked: set[str] = set()
        self.validations = 0  # calls made to the real Keystone

    def validate(self, token_id: str) -> Token:
        if not token_id:
            raise Unauthorized()
        now = time.time()
        with self.lock:
            if token_id in self.revoked:
                raise Unauthorized()
            token = self.cache.get(token_id)
            if token is not None and now < token.expires_at:
                return token
        token = self._fetch(token_id)
        with self.lock:
            if len(self.cache) >= self.MAX_CACHE:
                for key in [k for k, t in self.cache.items() if t.expires_at <= now]:
                    del self.cache[key]
            if len(self.cache) < self.MAX_CACHE:
                self.cache[token_id] = token
        return token

    def _fetch(self, token_id: str) -> Token:
        req = urllib.request.Request(f"{self.url}/auth/tokens", method="GET", headers={
            "X-Auth-Token": token_id, "X-Subject-Token": token_id, "Accept": "application/json"})
        with self.lock:
            self.validations += 1
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = json.loads(resp.read())["token"]
        except urllib.error.HTTPError as err:
            err.close()
            if err.code in (401, 403, 404):
                raise Unauthorized() from None
            raise ApiError(503, f"The identity service answered HTTP {err.code} to a token validation.") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ApiError(503, f"The identity service could not validate the token: {type(exc).__name__}.") from None
        expires = body.get("expires_at")
        try:
            expires_at = (datetime.datetime.fromisoformat(str(expires).replace("Z", "+00:00")).timestamp()
                          if expires else float("inf"))
        except ValueError:
            expires_at = time.time() + 60
        issued = body.get("issued_at")
        try:
            issued_at = datetime.datetime.fromisoformat(str(issued).replace("Z", "+00:00")).timestamp()
        except ValueError:
            issued_at = time.time()
        if time.time() >= expires_at:
            raise Unauthorized()
        return Token(
            id=token_id, user_id=(body.get("user") or {}).get("id", ""),
            project_id=(body.get("project") or {}).get("id", ""), methods=list(body.get("methods") or []),
            issued_at=issued_at, expires_at=expires_at, audit_id=(body.get("audit_ids") or [""])[0],
            app_cred=body.get("application_credential"), roles=list(body.get("roles") or []),
        )

    def expire_all(self) -> int:
        with self.lock:
            n = len(self.cache)
            self.revoked.update(self.cache)
            self.cache.clear()
            return n
