"""releasectl against a real Keystone: PyPI `keystone` on sqlite, started by `bash .ci/keystone`.

The simulator (tests/openstack_sim) serves compute, image, load-balancer, network and object-store, and
trusts the real Keystone's tokens (option `external_keystone`: it validates each token with
`GET /v3/auth/tokens`). Its endpoints are registered in the real Keystone's catalog for every test, so the
real CLI authenticates with real Fernet tokens and finds every service through the real catalog. Each
test runs `init --provider openstack`, bake -> rollout -> bake 1.1.0 -> rollout -> rollback, once with
password auth and once with an application credential.

Without `.ci-keystone/env` (or KEYSTONE_URL) the tests skip, so a developer without Keystone still gets a
green run; with RELEASECTL_REQUIRE_KEYSTONE=1 (CI) every skip is a failure instead.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import yaml

from tests.conftest import CliRun, run_cli
from tests.openstack_sim import Simulator
from tests.openstack_sim.fixtures import FAST
from tests.real_services.cloud import read_env_file

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = Path(os.environ.get("RELEASECTL_KEYSTONE_ENV") or ROOT / ".ci-keystone" / "env")
REQUIRED = ("KEYSTONE_URL", "KEYSTONE_ADMIN_PASSWORD", "KEYSTONE_PASSWORD", "KEYSTONE_PROJECT_ID",
            "KEYSTONE_APP_CRED_ID", "KEYSTONE_APP_CRED_SECRET")
REGION = "RegionOne"
CLOUD = "realks"

PIPELINES = {
    "first.yaml": """\
name: first
steps:
  - launch: {}
  - weight: {percent: 100, hold: 500ms}
  - retire: {drain_timeout: 500ms}
""",
    "canary.yaml": """\
name: canary
steps:
  - launch: {}
  - weight: {percent: 50, hold: 1s}
  - weight: {percent: 100, hold: 500ms}
  - retire: {drain_timeout: 500ms, keep_previous: 10m}
""",
}

pytestmark = pytest.mark.slow


def _unavailable(reason: str) -> None:
    if os.environ.get("RELEASECTL_REQUIRE_KEYSTONE") == "1":
        pytest.fail(f"RELEASECTL_REQUIRE_KEYSTONE=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def keystone() -> dict[str, str]:
    """The real Keystone's URL and credentials: `.ci-keystone/env`, overridden by KEYSTONE_* variables."""
    values = read_env_file(ENV_FILE) if ENV_FILE.is_file() else {}
    values.update({k: v for k, v in os.environ.items() if k.startswith("KEYSTONE_")})
    if not values.get("KEYSTONE_URL"):
        _unavailable(f"no real Keystone: {ENV_FILE} is missing and KEYSTONE_URL is not set (run `bash .ci/keystone`)")
    missing = [k for k in REQUIRED if not values.get(k)]
    if missing:
        pytest.fail(f"the real Keystone's settings lack {', '.join(missing)} ({ENV_FILE})", pytrace=False)
    values["KEYSTONE_URL"] = values["KEYSTONE_URL"].rstrip("/").removesuffix("/v3")
    try:
        resp = requests.get(values["KEYSTONE_URL"] + "/v3", timeout=5)
        ok = resp.status_code == 200
    except requests.RequestException:
        ok = False
    if not ok:
        _unavailable(f"the real Keystone at {values['KEYSTONE_URL']} does not answer GET /v3 "
                     f"(stale {ENV_FILE}? run `bash .ci/keystone`)")
    return values


# ---- the real Keystone's admin API ---------------------------------------------------------------------------


class KeystoneAdmin:
    def __init__(self, ks: dict[str, str]) -> None:
        self.v3 = ks["KEYSTONE_URL"] + "/v3"
        resp = requests.post(f"{self.v3}/auth/tokens", timeout=30, json={"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": ks.get("KEYSTONE_ADMIN_USERNAME", "admin"), "domain": {"id": "default"},
                "password": ks["KEYSTONE_ADMIN_PASSWORD"]}}},
            "scope": {"project": {"name": ks.get("KEYSTONE_ADMIN_PROJECT", "admin"), "domain": {"id": "default"}}}}})
        assert resp.status_code == 201, f"admin token: HTTP {resp.status_code} {resp.text[:300]}"
        self.headers = {"X-Auth-Token": resp.headers["X-Subject-Token"]}

    def call(self, method: str, path: str, ok: tuple[int, ...] = (200, 201, 204), **kw: Any) -> Any:
        resp = requests.request(method, self.v3 + path, headers=self.headers, timeout=30, **kw)
        assert resp.status_code in ok, f"{method} {path}: HTTP {resp.status_code} {resp.text[:300]}"
        return resp.json() if resp.content else None

    def service_id(self, stype: str, name: str) -> str:
        found = self.call("GET", "/services", params={"type": stype})["services"]
        if found:
            return found[0]["id"]
        return self.call("POST", "/services", json={"service": {"type": stype, "name": name, "enabled": True}})["service"]["id"]

    def replace_endpoints(self, stype: str, name: str, url: str) -> str:
        """Delete every endpoint of the service type (stale ones from earlier runs), then add ours."""
        sid = self.service_id(stype, name)
        for ep in self.call("GET", "/endpoints", params={"service_id": sid})["endpoints"]:
            self.call("DELETE", f"/endpoints/{ep['id']}", ok=(204, 404))
        return self.call("POST", "/endpoints", json={"endpoint": {
            "service_id": sid, "interface": "public", "region_id": REGION, "url": url, "enabled": True}})["endpoint"]["id"]


@pytest.fixture
def real_cloud(keystone: dict[str, str]) -> Iterator[dict[str, Any]]:
    """A simulator trusting the real Keystone, its endpoints in the real catalog (public, RegionOne)."""
    sim = Simulator(serve_apps=True, external_keystone=keystone["KEYSTONE_URL"], **FAST).start()
    created: list[str] = []
    try:
        # Swift answers a request without a token with 401; a simulator without Swift has no such path (404)
        probe = requests.get(f"{sim.url}/object-store/v1/AUTH_probe", timeout=5)
        assert probe.status_code != 404, "the simulator serves no object-store (Swift): releasectl keeps its records there"
        admin = KeystoneAdmin(keystone)
        endpoints = [
            ("compute", "nova", f"{sim.url}/compute/v2.1"),
            ("image", "glance", f"{sim.url}/image"),
            ("load-balancer", "octavia", f"{sim.url}/load-balancer"),
            ("network", "neutron", f"{sim.url}/networking"),
            ("object-store", "swift", f"{sim.url}/object-store/v1/AUTH_{keystone['KEYSTONE_PROJECT_ID']}"),
        ]
        for stype, name, url in endpoints:
            created.append(admin.replace_endpoints(stype, name, url))
        yield {"sim": sim, "keystone": keystone}
    finally:
        for ep in created:  # the catalog must not point at a stopped simulator
            try:
                admin.call("DELETE", f"/endpoints/{ep}", ok=(204, 404))
            except (AssertionError, requests.RequestException):
                pass
        sim.stop()


# ---- the workspace and the CLI -------------------------------------------------------------------------------


def _clouds_yaml(ks: dict[str, str], auth_type: str) -> dict[str, Any]:
    if auth_type == "password":
        auth = {"auth_url": ks["KEYSTONE_URL"] + "/v3", "username": ks.get("KEYSTONE_USERNAME", "demo"),
                "password": ks["KEYSTONE_PASSWORD"], "user_domain_name": "Default",
                "project_name": ks.get("KEYSTONE_PROJECT_NAME", "demo"), "project_domain_name": "Default"}
    else:
        auth = {"auth_url": ks["KEYSTONE_URL"] + "/v3", "application_credential_id": ks["KEYSTONE_APP_CRED_ID"],
                "application_credential_secret": ks["KEYSTONE_APP_CRED_SECRET"]}
    return {"clouds": {CLOUD: {"auth": auth, "auth_type": auth_type, "region_name": REGION,
                               "interface": "public", "identity_api_version": 3}}}


class Workspace:
    def __init__(self, root: Path, env: dict[str, str], secrets: list[str]) -> None:
        self.path = root / "shop"
        self.env = env
        self.secrets = secrets
        self.runs: list[tuple[tuple[str, ...], CliRun]] = []

    def cli(self, *args: str) -> CliRun:
        started = time.monotonic()
        result = run_cli(*args, cwd=self.path, env=self.env, timeout=300)
        self.runs.append((args, result))
        print(f"releasectl {' '.join(args)}: exit {result.code} in {time.monotonic() - started:.1f}s")
        return result

    def ok(self, *args: str) -> CliRun:
        result = self.cli(*args)
        assert result.code == 0, f"releasectl {' '.join(args)} exited {result.code}:\n{result.stderr[-4000:]}"
        return result

    def status(self) -> dict[str, Any]:
        return self.ok("status", "--output", "json").json()

    @property
    def state_dir(self) -> Path:
        return self.path / ".releasectl"


def make_workspace(tmp_path: Path, ks: dict[str, str], auth_type: str, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    for key in list(os.environ):
        if key.startswith("OS_"):
            monkeypatch.delenv(key)
    clouds = tmp_path / "config" / "clouds.yaml"  # outside the workspace and its state dir
    clouds.parent.mkdir()
    clouds.write_text(yaml.safe_dump(_clouds_yaml(ks, auth_type)))
    clouds.chmod(0o600)
    env = {
        "OS_CLIENT_CONFIG_FILE": str(clouds),
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    secrets = [ks["KEYSTONE_PASSWORD"], ks["KEYSTONE_APP_CRED_SECRET"], ks["KEYSTONE_ADMIN_PASSWORD"]]
    ws = Workspace(tmp_path, env, secrets)
    result = run_cli("init", str(ws.path), "--provider", "openstack", "--cloud", CLOUD, cwd=tmp_path, env=env)
    ws.runs.append((("init",), result))
    assert result.code == 0, result.stderr
    config = ws.path / "releasectl.yaml"
    text = config.read_text()
    for old, new in (("interval: 5s", "interval: 200ms"), ("timeout: 3s", "timeout: 1s"), ("rise: 2", "rise: 1"),
                     ("progress_deadline: 15m", "progress_deadline: 2m"),
                     # one server per fleet: a rollback drains each old server for a fixed 30 s (Octavia
                     # cannot count sessions; the rollback pipeline's drain is not configurable)
                     ("count: 2", "count: 1")):
        assert old in text, f"the scaffold changed: {old!r} is gone"
        text = text.replace(old, new)
    config.write_text(text)
    for name, body in PIPELINES.items():
        (ws.path / name).write_text(body)
    return ws


def serving_versions(sim: Simulator) -> set[str]:
    """What the pool's in-rotation members answer on GET / (the app processes report their version)."""
    state = sim.state()
    versions = set()
    for member in state["members"]:
        if member["weight"] > 0 and member["admin_state_up"]:
            resp = requests.get(f"http://{member['address']}:{member['protocol_port']}/", timeout=5)
            versions.add(resp.json()["version"])
    return versions


def release_cycle(ws: Workspace, sim: Simulator) -> None:
    ws.ok("bake", "1.0.0")
    ws.ok("rollout", "1.0.0", "--pipeline", "first.yaml")
    status = ws.status()
    assert status["live_version"] == "1.0.0", status
    assert serving_versions(sim) == {"1.0.0"}

    ws.ok("bake", "1.1.0")
    ws.ok("rollout", "1.1.0", "--pipeline", "canary.yaml")
    status = ws.status()
    assert status["live_version"] == "1.1.0", status
    assert serving_versions(sim) == {"1.1.0"}

    ws.ok("rollback")
    status = ws.status()
    assert status["live_version"] == "1.0.0", status
    assert serving_versions(sim) == {"1.0.0"}


def assert_real_tokens_only(ws: Workspace, sim: Simulator) -> None:
    # every service call carried a real Keystone token: the simulator validated them there, and its own
    # Keystone issued none
    assert sim.ctx.keystone.external.validations > 0
    assert sim.request_count("identity", "POST", "/v3/auth/tokens") == 0
    assert sim.request_count("object-store") > 0, "releasectl kept no record or lock in the simulator's Swift"
    assert not sim.state()["tokens"]
    caches = sorted((ws.state_dir / "openstack" / "tokens").glob("*.json"))
    assert caches, f"no token cache under {ws.state_dir / 'openstack' / 'tokens'}"
    for path in caches:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} has mode {stat.S_IMODE(path.stat().st_mode):o}"
        token = json.loads(path.read_text())["token"]
        assert token.startswith("gAAAAA"), "the cached token is not a Keystone Fernet token"
    assert stat.S_IMODE(caches[0].parent.stat().st_mode) == 0o700


def assert_no_secret_leaked(ws: Workspace) -> None:
    for args, run in ws.runs:
        for secret in ws.secrets:
            assert secret not in run.stdout, f"a secret is in the stdout of releasectl {' '.join(args)}"
            assert secret not in run.stderr, f"a secret is in the stderr of releasectl {' '.join(args)}"
    files = [p for p in ws.state_dir.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for secret in ws.secrets:
            assert secret.encode() not in data, f"a secret is in {path}"


@pytest.mark.parametrize("auth_type", ["password", "v3applicationcredential"])
def test_bake_rollout_rollback_with_real_keystone_tokens(real_cloud, auth_type, tmp_path, monkeypatch) -> None:
    sim: Simulator = real_cloud["sim"]
    ws = make_workspace(tmp_path, real_cloud["keystone"], auth_type, monkeypatch)
    started = time.monotonic()
    release_cycle(ws, sim)  # the simulator's stop() at teardown ends every app process
    assert_real_tokens_only(ws, sim)
    assert_no_secret_leaked(ws)
    assert time.monotonic() - started < 240


# ---- the simulator's external_keystone mode, without a real Keystone -----------------------------------------


def test_simulator_trusts_only_the_external_keystones_tokens() -> None:
    """A second simulator plays the external Keystone: runs everywhere, so the token check is always tested."""
    with Simulator(**FAST) as issuer, Simulator(external_keystone=issuer.url + "/v3/", **FAST) as sim:
        def token(of: Simulator) -> str:
            resp = requests.post(f"{of.auth_url}/auth/tokens", timeout=5, json={"auth": {"identity": {
                "methods": ["application_credential"], "application_credential": {
                    "id": of.app_credential_id, "secret": of.app_credential_secret}}}})
            assert resp.status_code == 201
            return resp.headers["X-Subject-Token"]

        def servers(tok: str) -> int:
            return requests.get(f"{sim.url}/compute/v2.1/servers", headers={"X-Auth-Token": tok}, timeout=5).status_code

        external = sim.ctx.keystone.external
        good = token(issuer)
        assert servers(good) == 200 and servers(good) == 200
        assert external.validations == 1  # cached until expires_at
        assert external.cache[good].project_id == issuer.project_id
        assert servers("not-a-token") == 401 and servers("") == 401
        assert servers(token(sim)) == 401  # the simulator's own Keystone no longer counts
        assert sim.set_faults(expire_tokens=True)["expired_tokens"] >= 1
        assert servers(good) == 401
        later = token(issuer)
        issuer.stop()
        assert servers(later) == 503  # Keystone unreachable: keystonemiddleware's answer
    with pytest.raises(ValueError, match="loopback"):
        Simulator(external_keystone="http://192.0.2.1:5000/v3")
