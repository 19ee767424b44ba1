"""Register the real services in the real Keystone's catalog and write the env file the tests read.

Run by `.ci/real_services`; standard library only (it reuses .ci/keystone_users.py's HTTP helpers):

    python real_services_catalog.py KEYSTONE_ENV ENV_FILE OCTAVIA_URL=... GLANCE_URL=... SWIFT_URL=... [KEY=VALUE...]
    python real_services_catalog.py --remove KEYSTONE_ENV ENV_FILE

Registers (public, internal; RegionOne) load-balancer -> OCTAVIA_URL, image -> GLANCE_URL and object-store ->
SWIFT_URL/v1/AUTH_%(tenant_id)s, replacing earlier endpoints of those services, then writes ENV_FILE (mode
0600): every KEYSTONE_* line of KEYSTONE_ENV plus the given values. compute and network are the simulator's:
tests/real_services registers them when it starts one. --remove deletes the endpoints ENV_FILE lists.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from keystone_users import call, need, password_token, write_env_file  # noqa: E402

REGION = "RegionOne"
INTERFACES = ("public", "internal")
SERVICES = {  # type -> (name, env key of the base URL, path appended)
    "load-balancer": ("octavia", "OCTAVIA_URL", ""),
    "image": ("glance", "GLANCE_URL", ""),
    "object-store": ("swift", "SWIFT_URL", "/v1/AUTH_%(tenant_id)s"),
}


def read_env(path: str) -> dict[str, str]:
    values = {}
    for line in Path(path).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[key.strip()] = value.strip()
    return values


def admin_token(ks: dict[str, str]) -> tuple[str, str]:
    v3 = ks["KEYSTONE_URL"].rstrip("/") + "/v3"
    token, _ = password_token(v3, ks.get("KEYSTONE_ADMIN_USERNAME", "admin"), ks["KEYSTONE_ADMIN_PASSWORD"],
                              ks.get("KEYSTONE_ADMIN_PROJECT", "admin"))
    return v3, token


def service_id(v3: str, token: str, stype: str, name: str) -> str:
    status, _, doc = call(f"{v3}/services?type={stype}", token=token)
    found = need(status, doc, f"list services of type {stype}")["services"]
    if found:
        return found[0]["id"]
    status, _, doc = call(f"{v3}/services", "POST", {"service": {"type": stype, "name": name, "enabled": True}}, token)
    return need(status, doc, f"create service {stype}")["service"]["id"]


def register(ks_env: str, env_file: str, extra: list[str]) -> int:
    ks = read_env(ks_env)
    values = dict(arg.split("=", 1) for arg in extra)
    v3, token = admin_token(ks)
    created = []
    for stype, (name, key, suffix) in SERVICES.items():
        sid = service_id(v3, token, stype, name)
        status, _, doc = call(f"{v3}/endpoints?service_id={sid}", token=token)
        for ep in need(status, doc, f"list endpoints of {stype}")["endpoints"]:
            status, _, doc = call(f"{v3}/endpoints/{ep['id']}", "DELETE", token=token)
            need(status, doc, f"delete a stale {stype} endpoint", ok=(204, 404))
        url = values[key].rstrip("/") + suffix
        for interface in INTERFACES:
            status, _, doc = call(f"{v3}/endpoints", "POST", {"endpoint": {
                "service_id": sid, "interface": interface, "region_id": REGION, "url": url, "enabled": True}}, token)
            created.append(need(status, doc, f"create the {stype} endpoint")["endpoint"]["id"])
    lines = {k: v for k, v in ks.items() if k.startswith("KEYSTONE_")}
    lines.update(values)
    lines["REAL_SERVICES_ENDPOINT_IDS"] = ",".join(created)
    write_env_file(env_file, lines, "written by .ci/real_services: real Octavia, Glance and Swift behind the real Keystone")
    print(f"real_services_catalog: {len(created)} endpoints registered, env file {env_file}", file=sys.stderr)
    return 0


def remove(ks_env: str, env_file: str) -> int:
    ks, values = read_env(ks_env), read_env(env_file)
    v3, token = admin_token(ks)
    for ep in filter(None, values.get("REAL_SERVICES_ENDPOINT_IDS", "").split(",")):
        call(f"{v3}/endpoints/{ep}", "DELETE", token=token)
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--remove":
        sys.exit(remove(sys.argv[2], sys.argv[3]))
    sys.exit(register(sys.argv[1], sys.argv[2], sys.argv[3:]))
