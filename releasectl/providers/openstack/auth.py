"""Keystone v3: one token and its service catalog for every call of a run, cached between runs.

- Password auth always sends a project scope (without one Keystone may return an unscoped token with no
  catalog); an application credential sends none (the credential fixes project and roles).
- The token is cached in `<state_dir>/openstack/tokens/<hash>.json`, mode 0600 in a 0700 folder, keyed by
  the auth URL, the user (or application credential) and the project. It is used until it has less than
  `MIN_TOKEN_LIFE` seconds left, like keystoneauth (a quarter of its lifetime for tokens shorter than 8 min). The file holds the token and the catalog, never the
  password or secret.
- A 401 from a service makes the Transport call `token(refresh=True)`: the cache entry is dropped and a new
  token issued, once per call.
- The catalog is cached with the token, so an endpoint that moved would be used until the token expires. A
  service client that cannot reach its endpoint, or gets a 404 while the endpoint's root is gone too, calls
  `refresh_catalog()` (a new token, at most once per CATALOG_REFRESH_EVERY seconds) and replays at the new URL.
- Keystone refusing the credentials (400, 401, 403, 404 on authentication) is a CredentialsError (exit 2):
  a wrong password or an unknown application credential is not resumable.
- Endpoints come from the catalog by service type, interface and region. With no region configured and
  endpoints in several regions, releasectl refuses to guess.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasectl.errors import AuthError, ConfigError, CredentialsError, ProviderError

from .credentials import APP_CREDENTIAL, Credentials, load_credentials
from .http import Transport, request_id

log = logging.getLogger("releasectl.providers.openstack.auth")

MIN_TOKEN_LIFE = 120.0  # seconds: re-authenticate when a token has less left
CATALOG_REFRESH_EVERY = 10.0  # seconds: a service that keeps failing does not cost a token per call
NO_EXPIRY = float("inf")


def parse_expiry(value: Any) -> float:
    """Keystone's `expires_at` (ISO 8601 UTC, e.g. 2015-11-07T02:58:43.578887Z; null = never)."""
    if value in (None, ""):
        return NO_EXPIRY
    text = str(value).strip().replace("Z", "+00:00")
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


@dataclass
class Token:
    value: str = field(repr=False)
    expires_at: float
    catalog: list[dict[str, Any]]
    project_id: str | None
    user_id: str | None
    issued_at: float = 0.0  # local clock when Keystone issued it

    def __repr__(self) -> str:
        return f"Token(value='***', expires_at={self.expires_at!r}, project_id={self.project_id!r})"

    def fresh(self, now: float) -> bool:
        """Usable for a while yet: more than MIN_TOKEN_LIFE left (a quarter of the lifetime for short-lived
        tokens, so a cloud issuing 100 s tokens does not get a new token request before every call)."""
        lifetime = self.expires_at - self.issued_at if self.issued_at else MIN_TOKEN_LIFE * 4
        return self.expires_at - now > min(MIN_TOKEN_LIFE, lifetime / 4)


class Auth:
    """Issues, caches and refreshes the token; resolves service endpoints."""

    def __init__(self, creds: Credentials, transport: Transport, cache_dir: Path | None) -> None:
        self.creds = creds
        self.transport = transport
        self.cache_dir = cache_dir
        self._token: Token | None = None
        self._lock = threading.Lock()
        self.issued = 0  # tokens issued by Keystone in this process (for tests and -v)
        self._catalog_at: float | None = None  # monotonic time of the last refresh_catalog

    # ---- the token ------------------------------------------------------------------------------------

    def __call__(self, refresh: bool = False) -> str:
        """The token-source interface the Transport calls: a valid token, a new one when `refresh`."""
        return self.token(refresh=refresh).value

    def token(self, refresh: bool = False) -> Token:
        with self._lock:
            now = time.time()
            if refresh:
                self._token = None
                self._drop_cache()
            if self._token is not None and self._token.fresh(now):
                return self._token
            if not refresh:
                cached = self._read_cache(now)
                if cached is not None:
                    self._token = cached
                    return cached
            self._token = self._issue()
            self._write_cache(self._token)
            return self._token

    def refresh_catalog(self) -> bool:
        """A new token and with it a fresh catalog, because an endpoint seems to have moved. False when one
        was fetched less than CATALOG_REFRESH_EVERY seconds ago (that one is used)."""
        now = time.monotonic()
        if self._catalog_at is not None and now - self._catalog_at < CATALOG_REFRESH_EVERY:
            return False
        self._catalog_at = now
        log.info("refreshing the service catalog of cloud %r", self.creds.cloud)
        self.token(refresh=True)
        return True

    def cache_key(self) -> str:
        c = self.creds
        if c.auth_type == APP_CREDENTIAL:
            user, project = f"appcred:{c.application_credential_id or c.application_credential_name}", ""
        else:
            domain = c.user_domain_id or c.user_domain_name or ""
            user = c.user_id or f"{c.username}@{domain}"
            project = c.project_id or f"{c.project_name}@{c.project_domain_id or c.project_domain_name or ''}"
        return "\n".join((c.identity_url, user, project))

    def cache_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256(self.cache_key().encode()).hexdigest()[:32]
        return self.cache_dir / f"{digest}.json"

    def _read_cache(self, now: float) -> Token | None:
        path = self.cache_path()
        if path is None:
            return None
        try:
            st = path.stat()
            if st.st_mode & 0o077:
                log.warning("ignoring the token cache %s: its mode is %o, not 0600", path, st.st_mode & 0o777)
                return None
            data = json.loads(path.read_text())
            if data.get("key") != self.cache_key():
                return None
            token = Token(
                value=data["token"],
                expires_at=float(data["expires_at"]) if data.get("expires_at") is not None else NO_EXPIRY,
                catalog=list(data["catalog"]),
                project_id=data.get("project_id"),
                user_id=data.get("user_id"),
                issued_at=float(data.get("issued_at") or 0.0),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return token if token.fresh(now) else None

    def _write_cache(self, token: Token) -> None:
        path = self.cache_path()
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(path.parent, 0o700)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(
                    {
                        "key": self.cache_key(),
                        "token": token.value,
                        "expires_at": None if token.expires_at == NO_EXPIRY else token.expires_at,
                        "catalog": token.catalog,
                        "project_id": token.project_id,
                        "user_id": token.user_id,
                        "issued_at": token.issued_at,
                    },
                    fh,
                )
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not cache the token under %s: %s", path.parent, exc.strerror)

    def _drop_cache(self) -> None:
        path = self.cache_path()
        if path is not None:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not remove the token cache %s: %s", path, exc.strerror)

    def auth_body(self) -> dict[str, Any]:
        c = self.creds
        if c.auth_type == APP_CREDENTIAL:
            cred: dict[str, Any] = {"secret": c.application_credential_secret}
            if c.application_credential_id:
                cred["id"] = c.application_credential_id
            else:
                cred["name"] = c.application_credential_name
                cred["user"] = self._user()
            return {"auth": {"identity": {"methods": ["application_credential"], "application_credential": cred}}}
        user = self._user()
        user["password"] = c.password
        if c.project_id:
            project: dict[str, Any] = {"id": c.project_id}
        else:
            project = {"name": c.project_name, "domain": _domain(c.project_domain_id, c.project_domain_name)}
        return {
            "auth": {
                "identity": {"methods": ["password"], "password": {"user": user}},
                "scope": {"project": project},
            }
        }

    def _user(self) -> dict[str, Any]:
        c = self.creds
        if c.user_id:
            return {"id": c.user_id}
        return {"name": c.username, "domain": _domain(c.user_domain_id, c.user_domain_name)}

    def _issue(self) -> Token:
        c = self.creds
        url = c.identity_url + "/auth/tokens"
        resp = self.transport.request("identity", "POST", url, json=self.auth_body(), idempotent=True, allow=(400, 401, 403, 404))
        if resp.status_code in (400, 401, 403, 404):
            from .http import error_message

            rid = request_id(resp)
            raise CredentialsError(
                f"Keystone at {c.identity_url} refused the credentials of cloud {c.cloud!r} "
                f"({c.user_label}, from {c.secret_source or c.source}): HTTP {resp.status_code}: {error_message(resp)}"
                + (f" (request id {rid})" if rid else ""),
                hint=f"check clouds.yaml ({c.source}), or store a new secret with `releasectl login --cloud {c.cloud}`",
            )
        value = resp.headers.get("X-Subject-Token")
        try:
            body = resp.json()["token"]
        except (ValueError, KeyError, TypeError):
            body = None
        if not value or not isinstance(body, dict):
            raise AuthError(f"Keystone at {c.identity_url} answered without a token (HTTP {resp.status_code})")
        catalog = body.get("catalog")
        if not catalog:
            raise CredentialsError(
                f"Keystone issued a token without a service catalog for cloud {c.cloud!r}",
                hint="the token is not project-scoped: check the project in clouds.yaml",
            )
        self.issued += 1
        try:
            expires = parse_expiry(body.get("expires_at"))
        except ValueError:
            expires = time.time() + 3600
        return Token(
            value=value,
            expires_at=expires,
            catalog=catalog,
            project_id=(body.get("project") or {}).get("id"),
            user_id=(body.get("user") or {}).get("id"),
            issued_at=time.time(),
        )

    # ---- the catalog ----------------------------------------------------------------------------------

    def endpoint(self, service_type: str, *, required: bool = True) -> str | None:
        """The URL of a service for the configured interface and region."""
        override = self.creds.endpoint_overrides.get(service_type)
        if override:
            return override.rstrip("/")
        catalog = self.token().catalog
        interface = self.creds.interface
        region = self.creds.region
        entries = [e for e in catalog if e.get("type") == service_type]
        endpoints = [ep for e in entries for ep in e.get("endpoints", []) if ep.get("interface") == interface]
        if not endpoints:
            if not required:
                return None
            have = sorted({str(e.get("type")) for e in catalog})
            raise ProviderError(
                f"the service catalog of cloud {self.creds.cloud!r} has no {interface} {service_type} endpoint "
                f"(it lists: {', '.join(have)})",
                hint=f"set openstack.interface, or {service_type.replace('-', '_')}_endpoint_override in clouds.yaml",
            )

        def region_of(ep: dict[str, Any]) -> str:
            return str(ep.get("region_id") or ep.get("region") or "")

        regions = sorted({region_of(ep) for ep in endpoints})
        if region:
            matching = [ep for ep in endpoints if region_of(ep) == region]
            if not matching:
                if not required:
                    return None
                raise ConfigError(
                    f"cloud {self.creds.cloud!r} has no {service_type} endpoint in region {region!r} "
                    f"(regions: {', '.join(regions)})",
                    hint="fix openstack.region (or region_name in clouds.yaml)",
                )
            endpoints = matching
        elif len(regions) > 1:
            raise ConfigError(
                f"the catalog of cloud {self.creds.cloud!r} offers {service_type} in several regions "
                f"({', '.join(regions)}) and no region is set",
                hint="set openstack.region in releasectl.yaml (or region_name in clouds.yaml)",
            )
        return str(endpoints[0]["url"]).rstrip("/")


def _domain(domain_id: str | None, domain_name: str | None) -> dict[str, str]:
    if domain_id:
        return {"id": domain_id}
    if domain_name:
        return {"name": domain_name}
    return {"id": "default"}


def verify_secret(cloud: str | None, kind: str, secret: str) -> str:
    """Authenticate once with `secret` before `releasectl login` stores it, so a mistyped one never reaches the
    keyring: Keystone refusing it is a CredentialsError (exit 2), an unreachable Keystone a ProviderError
    (exit 5); either way nothing is stored. Returns the cloud's name. No token is cached."""
    creds = load_credentials(os_cloud=cloud, secret=secret)  # `login --cloud` names the cloud as --os-cloud does
    wanted = "application_credential_secret" if creds.auth_type == APP_CREDENTIAL else "password"
    if kind != wanted:
        flag = " --application-credential" if wanted != "password" else ""
        raise CredentialsError(
            f"cloud {creds.cloud!r} authenticates with a{'n' if wanted[0] == 'a' else ''} {wanted.replace('_', ' ')}, "
            f"not a{'n' if kind[0] == 'a' else ''} {kind.replace('_', ' ')}",
            hint=f"run `releasectl login --cloud {creds.cloud}{flag}`",
        )
    Auth(creds, Transport(verify=creds.verify), None).token()
    return creds.cloud
