"""Create the test identity in a freshly bootstrapped Keystone and write the env file the tests read.

Run by `.ci/keystone`; standard library only:

    python keystone_users.py KEYSTONE_URL ADMIN_PASSWORD ENV_FILE

Creates (or reuses) project `demo`, user `demo` with a new random password and the `member` role on
`demo`, and a new application credential of that user, then writes ENV_FILE (mode 0600) as KEY=VALUE
lines. Every HTTP call has a timeout; nothing is retried forever.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.error
import urllib.request
from typing import Any

DOMAIN = "default"
REGION = "RegionOne"


def call(url: str, method: str = "GET", body: Any = None, token: str | None = None) -> tuple[int, dict, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, dict(resp.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = raw.decode(errors="replace")
        return err.code, dict(err.headers), doc


def need(status: int, doc: Any, what: str, ok: tuple[int, ...] = (200, 201, 204)) -> Any:
    if status not in ok:
        raise SystemExit(f"keystone_users: {what} failed: HTTP {status}: {doc}")
    return doc


def password_token(v3: str, user: str, password: str, project: str) -> tuple[str, dict]:
    status, headers, doc = call(f"{v3}/auth/tokens", "POST", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": DOMAIN}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": DOMAIN}}}}})
    need(status, doc, f"password token for {user}")
    return headers["X-Subject-Token"], doc["token"]


def find_one(v3: str, token: str, collection: str, name: str) -> dict | None:
    status, _, doc = call(f"{v3}/{collection}?name={name}", token=token)
    items = need(status, doc, f"list {collection}")[collection]
    return items[0] if items else None


def write_env_file(path: str, values: dict[str, str], header: str) -> None:
    """KEY=VALUE lines, mode 0600 from the start, replaced atomically (also used by real_services_catalog.py)."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"# {header}\n")
        for key, value in values.items():
            fh.write(f"{key}={value}\n")
    os.replace(tmp, path)


def main() -> int:
    url, admin_password, env_file = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    v3 = url + "/v3"
    admin, _ = password_token(v3, "admin", admin_password, "admin")

    project = find_one(v3, admin, "projects", "demo")
    if project is None:
        status, _, doc = call(f"{v3}/projects", "POST", {"project": {
            "name": "demo", "domain_id": DOMAIN, "description": "releasectl integration tests"}}, admin)
        project = need(status, doc, "create project demo")["project"]

    password = secrets.token_urlsafe(18)
    user = find_one(v3, admin, "users", "demo")
    if user is None:
        status, _, doc = call(f"{v3}/users", "POST", {"user": {
            "name": "demo", "domain_id": DOMAIN, "password": password, "default_project_id": project["id"]}}, admin)
        user = need(status, doc, "create user demo")["user"]
    else:
        status, _, doc = call(f"{v3}/users/{user['id']}", "PATCH", {"user": {"password": password}}, admin)
        need(status, doc, "reset the password of demo")

    role = find_one(v3, admin, "roles", "member")
    if role is None:
        raise SystemExit("keystone_users: bootstrap made no `member` role")
    status, _, doc = call(f"{v3}/projects/{project['id']}/users/{user['id']}/roles/{role['id']}", "PUT", None, admin)
    need(status, doc, "grant member on demo")

    demo, _ = password_token(v3, "demo", password, "demo")
    cred_name = f"releasectl-ci-{secrets.token_hex(4)}"
    status, _, doc = call(f"{v3}/users/{user['id']}/application_credentials", "POST", {"application_credential": {
        "name": cred_name, "roles": [{"name": "member"}],
        "description": "releasectl integration tests"}}, demo)
    cred = need(status, doc, "create the application credential")["application_credential"]

    values = {
        "KEYSTONE_URL": url,
        "KEYSTONE_AUTH_URL": v3,
        "KEYSTONE_REGION": REGION,
        "KEYSTONE_ADMIN_USERNAME": "admin",
        "KEYSTONE_ADMIN_PASSWORD": admin_password,
        "KEYSTONE_ADMIN_PROJECT": "admin",
        "KEYSTONE_USERNAME": "demo",
        "KEYSTONE_PASSWORD": password,
        "KEYSTONE_USER_ID": user["id"],
        "KEYSTONE_USER_DOMAIN_NAME": "Default",
        "KEYSTONE_PROJECT_NAME": "demo",
        "KEYSTONE_PROJECT_ID": project["id"],
        "KEYSTONE_PROJECT_DOMAIN_NAME": "Default",
        "KEYSTONE_APP_CRED_ID": cred["id"],
        "KEYSTONE_APP_CRED_NAME": cred_name,
        "KEYSTONE_APP_CRED_SECRET": cred["secret"],
    }
    write_env_file(env_file, values, "written by .ci/keystone: a real Keystone for tests/integration/test_real_keystone.py")
    print(f"keystone_users: project demo {project['id']}, user demo {user['id']}, "
          f"application credential {cred['id']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
