"""releasectl against the real Octavia, Glance and Swift (and the real Keystone), started by `.ci/real_services`.

Nova and Neutron are the simulator's (tests/real_services: one simulator trusting the real Keystone, its
snapshots uploaded to the real Glance). The CLI runs `bake -> rollout -> bake -> rollout (canary) -> rollback`
on a pool of its own in the real Octavia, whose members the stand-in controller health-checks over HTTP; the
release records and the lock live in the real Swift. Direct checks: Swift's `If-None-Match: *` and listings
(what the lock and the records rest on), and the os_hash_value Glance computes for a baked image.

Without $RELEASECTL_REAL_SERVICES_ENV the tests skip; with RELEASECTL_REQUIRE_REAL_SERVICES=1 (CI, set by
.ci/run) a skip is a failure instead.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

import tests.real_services as real
from tests.integration.test_real_keystone import Workspace, assert_no_secret_leaked, make_workspace
from tests.real_services.cloud import Octavia, RealServices, Session, read_env_file

pytestmark = pytest.mark.slow


def _unavailable(reason: str) -> None:
    if real.required():
        pytest.fail(f"RELEASECTL_REQUIRE_REAL_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def rs() -> RealServices:
    services = real.load()
    if services is None:
        _unavailable(f"no real services: ${real.ENV_VAR} is unset or names no file (run `bash .ci/keystone && "
                     "bash .ci/real_services`)")
    for what, url in (("Keystone", services.auth_url), ("Octavia", services.octavia_url + "/"),
                      ("Glance", services.glance_url + "/"), ("Swift", services.swift_url + "/healthcheck")):
        try:
            status = requests.get(url, timeout=5).status_code
        except requests.RequestException as exc:
            status = str(exc)
        if status not in (200, 300):
            _unavailable(f"the real {what} at {url} does not answer ({status}): stale {services.env_file}?")
    real.ensure_catalog(services)
    return services


@pytest.fixture
def user(rs: RealServices) -> Session:
    return real.session(rs)


# ---- the release cycle through the CLI ------------------------------------------------------------------------


def serving_versions(octavia: Octavia, pool_id: str) -> set[str]:
    """What the in-rotation members answer on GET / (the app processes report their version); each is ONLINE."""
    versions = set()
    for member in octavia.members(pool_id):
        if member["weight"] > 0 and member["admin_state_up"]:
            assert member["operating_status"] == "ONLINE", member
            resp = requests.get(f"http://{member['address']}:{member['protocol_port']}/", timeout=5)
            versions.add(resp.json()["version"])
    return versions


class PoolWatch:
    """Samples the real pool while a command runs (bounded: until stopped, at most `max_seconds`): which versions
    had weight > 0 at the same time, and the fewest members in rotation."""

    def __init__(self, octavia: Octavia, pool_id: str, max_seconds: float = 600.0) -> None:
        self.octavia, self.pool_id, self.max_seconds = octavia, pool_id, max_seconds
        self.version_of: dict[tuple[str, int], str] = {}  # the simulator never reuses an address in a run
        self.together: set[frozenset[str]] = set()
        self.min_in_rotation = 10**9
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pool-watch")

    def __enter__(self) -> "PoolWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _version(self, address: str, port: int) -> str:
        if (address, port) not in self.version_of:
            self.version_of[(address, port)] = requests.get(f"http://{address}:{port}/", timeout=5).json()["version"]
        return self.version_of[(address, port)]

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.wait(0.2) and time.monotonic() < deadline:
            rotation = [(m["address"], m["protocol_port"]) for m in self.octavia.members(self.pool_id)
                        if m["weight"] > 0 and m["admin_state_up"]]
            self.samples += 1
            self.min_in_rotation = min(self.min_in_rotation, len(rotation))
            try:
                self.together.add(frozenset(self._version(a, p) for a, p in rotation))
            except requests.RequestException:
                pass  # a member being retired stops answering: its version was seen before


def point_at_pool(ws: Workspace, app: str, pool_id: str, container: str) -> None:
    """Our own pool and Swift container, and an app name of our own: the real Glance keeps earlier runs' images."""
    config = ws.path / "releasectl.yaml"
    text = config.read_text()
    assert "\napp: demo\n" in text, "the scaffold changed: 'app: demo' is gone"
    # init chose a pool from what the real Octavia has (or wrote the CHANGE-ME placeholder): replace it
    text, found = re.subn(r"(?m)^  pool: .*$", f"  pool: {pool_id}\n  lock_container: {container}", text)
    assert found == 1, "the scaffold changed: no `pool:` line"
    config.write_text(text.replace("\napp: demo\n", f"\napp: {app}\n"))


def test_bake_rollout_canary_rollback_through_the_cli(tmp_path: Path, rs: RealServices, user: Session,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pool = real.make_pool(rs, "cli")
    octavia = Octavia(user)
    container = f"releasectl-cli-{secrets.token_hex(3)}"
    app = f"shop{secrets.token_hex(3)}"
    ws = make_workspace(tmp_path, read_env_file(rs.env_file), "password", monkeypatch)
    ws.secrets = rs.secrets
    point_at_pool(ws, app, pool.pool_id, container)

    ws.ok("bake", "1.0.0")
    ws.ok("rollout", "1.0.0", "--pipeline", "first.yaml")
    assert ws.status()["live_version"] == "1.0.0"
    assert serving_versions(octavia, pool.pool_id) == {"1.0.0"}

    ws.ok("bake", "1.1.0")
    with PoolWatch(octavia, pool.pool_id) as watch:
        ws.ok("rollout", "1.1.0", "--pipeline", "canary.yaml")
    # the canary served both versions from the real pool at once, and the pool was never empty
    assert frozenset({"1.0.0", "1.1.0"}) in watch.together, (watch.samples, watch.together)
    assert watch.samples > 5 and watch.min_in_rotation >= 1, (watch.samples, watch.min_in_rotation)
    assert ws.status()["live_version"] == "1.1.0"
    assert serving_versions(octavia, pool.pool_id) == {"1.1.0"}

    ws.ok("rollback")
    status = ws.status()
    assert status["live_version"] == "1.0.0", status
    assert status["release"] is None and status["lock"] is None, status
    assert serving_versions(octavia, pool.pool_id) == {"1.0.0"}

    releases = ws.ok("history", "--output", "json").json()["releases"]
    assert sorted((r["kind"], r["version"]) for r in releases) == [
        ("rollback", "1.0.0"), ("rollout", "1.0.0"), ("rollout", "1.1.0")], releases

    # the images are the real Glance's, with the hashes it computed from the uploaded snapshot
    images = user.call("GET", f"{rs.glance_url}/v2/images", params={"tag": "releasectl", "releasectl_app": app}).json()["images"]
    baked = {i.get("releasectl_version"): i for i in images if i.get("releasectl_version") in ("1.0.0", "1.1.0")}
    assert set(baked) == {"1.0.0", "1.1.0"}, [i["name"] for i in images]
    for image in baked.values():
        assert image["status"] == "active" and image["os_hash_algo"] == "sha512" and image["os_hash_value"], image

    # the records and the lock's generations are objects in the real Swift
    names = user.call("GET", f"{rs.swift_account_url}/{container}", params={"format": "json"}).json()
    assert any("/records/" in o["name"] for o in names), names
    assert any("/lock/" in o["name"] for o in names), names
    assert_no_secret_leaked(ws)


# ---- direct checks ------------------------------------------------------------------------------------------


def test_swift_if_none_match_and_listings_are_real(rs: RealServices, user: Session) -> None:
    """The two Swift behaviours releasectl's lock and records rest on, on the real Swift."""
    container = f"{rs.swift_account_url}/rs-direct-{secrets.token_hex(3)}"
    user.call("PUT", container, ok=(201, 202))
    first = user.call("PUT", f"{container}/app/env/lock/000000000001", data=b'{"gen": 1}',
                      headers={"If-None-Match": "*", "Content-Type": "application/json"}, ok=None)
    again = user.call("PUT", f"{container}/app/env/lock/000000000001", data=b'{"gen": "other"}',
                      headers={"If-None-Match": "*", "Content-Type": "application/json"}, ok=None)
    assert (first.status_code, again.status_code) == (201, 412)
    assert user.call("GET", f"{container}/app/env/lock/000000000001").content == b'{"gen": 1}'

    for i in range(5):
        user.call("PUT", f"{container}/app/env/records/r{i}", data=b"{}", ok=(201,))
    user.call("PUT", f"{container}/app/other/records/x", data=b"{}", ok=(201,))

    def listing(**params: Any) -> list[str]:
        doc = user.call("GET", container, params={"format": "json", **params}).json()
        return [o.get("name") or o.get("subdir") for o in doc]

    assert listing(prefix="app/env/records/") == [f"app/env/records/r{i}" for i in range(5)]
    assert listing(prefix="app/env/records/", limit=2) == ["app/env/records/r0", "app/env/records/r1"]
    assert listing(prefix="app/env/records/", marker="app/env/records/r1", limit=2) == ["app/env/records/r2", "app/env/records/r3"]
    assert listing(prefix="app/", delimiter="/") == ["app/env/", "app/other/"]
    assert user.call("GET", container, params={"format": "json", "limit": 10001}, ok=None).status_code == 412
    assert user.call("DELETE", container, ok=None).status_code == 409  # not empty


def test_provider_lock_and_records_on_real_swift(tmp_path: Path, rs: RealServices) -> None:
    from releasectl.errors import LockHeld

    first = real.make_provider(tmp_path, "demo", "production")
    other = real.make_provider(tmp_path, "demo", "production")
    assert first is not None and other is not None
    other.options["lock_container"] = first.options["lock_container"]  # a second runner on the same records
    lease = first.acquire_lock({"user": "a"}, 60)
    with pytest.raises(LockHeld):
        other.acquire_lock({"user": "b"}, 60)
    assert other.read_lock() is not None and other.read_lock().token == lease.token
    first.release_lock(lease)
    again = other.acquire_lock({"user": "b"}, 60)
    other.release_lock(again)

    for key in ("releases/r1", "releases/r2", "current"):
        first.write_record(key, json.dumps({"key": key}))
    assert sorted(other.list_records("releases/")) == ["releases/r1", "releases/r2"]
    assert json.loads(other.read_record("current")) == {"key": "current"}


def test_baked_image_carries_glance_hash_of_its_bytes(tmp_path: Path, rs: RealServices, user: Session) -> None:
    provider = real.make_provider(tmp_path, "hashes", "production")
    assert provider is not None
    image = provider.bake_image("2.0.0", f"hashes-2.0.0-{secrets.token_hex(3)}", {})
    try:
        doc = user.call("GET", f"{rs.glance_url}/v2/images/{image.id}").json()
        assert doc["status"] == "active" and doc["os_hash_algo"] == "sha512", doc
        data = user.call("GET", f"{rs.glance_url}/v2/images/{image.id}/file").content
        assert data and doc["os_hash_value"] == hashlib.sha512(data).hexdigest()
        assert doc["size"] == len(data)
    finally:
        provider.delete_image(image.id)
    assert user.call("GET", f"{rs.glance_url}/v2/images/{image.id}", ok=None).status_code == 404
