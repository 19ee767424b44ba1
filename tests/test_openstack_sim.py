"""Tests of the OpenStack API simulator (tests/openstack_sim), over real HTTP on loopback.

Each test starts its own simulator on port 0 with small transition delays and polls state changes
with a bounded waiter, never a bare sleep.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from tests.openstack_sim import Simulator
from tests.openstack_sim.fixtures import (  # noqa: F401 - pytest fixtures
    openstack_sim,
    openstack_sim_apps,
    openstack_sim_factory,
)

REPO = Path(__file__).resolve().parents[1]
PATCH_CT = "application/openstack-images-v2.1-json-patch"


# ----------------------------------------------------------------------------- helpers


def wait_for(probe: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02, what: str = "condition") -> Any:
    """Call ``probe`` until it returns something truthy; bounded in time and in attempts."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 1):
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def password_auth(sim: Simulator, **overrides: Any) -> dict:
    user = {"name": sim.username, "domain": {"name": "Default"}, "password": sim.password}
    user.update(overrides.pop("user", {}))
    scope = overrides.pop("scope", {"project": {"name": sim.project_name, "domain": {"name": "Default"}}})
    body: dict = {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}}
    if scope is not None:
        body["auth"]["scope"] = scope
    return body


def issue_token(sim: Simulator) -> str:
    resp = requests.post(f"{sim.auth_url}/auth/tokens", json=password_auth(sim), timeout=5)
    assert resp.status_code == 201, resp.text
    return resp.headers["X-Subject-Token"]


class Cloud:
    """A minimal raw client: one token, the simulator's service roots, JSON by default."""

    ROOTS = {"compute": "/compute/v2.1", "image": "/image", "lb": "/load-balancer/v2", "network": "/networking",
             "swift": "/object-store/v1"}

    def __init__(self, sim: Simulator, token: str | None = None) -> None:
        self.sim = sim
        self.http = requests.Session()
        self.http.headers["Accept"] = "application/json"
        self.token = token or issue_token(sim)
        self.http.headers["X-Auth-Token"] = self.token

    def call(self, service: str, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 10)
        return self.http.request(method, self.sim.url + self.ROOTS[service] + path, **kw)

    def compute(self, method: str, path: str, mv: str | None = "2.96", **kw: Any) -> requests.Response:
        headers = kw.pop("headers", {})
        if mv:
            headers["OpenStack-API-Version"] = f"compute {mv}"
        return self.call("compute", method, path, headers=headers, **kw)

    def image(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.call("image", method, path, **kw)

    def lb(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.call("lb", method, "/lbaas" + path, **kw)

    def swift(self, method: str, path: str = "", **kw: Any) -> requests.Response:
        """A call below this project's Swift account: ``swift("PUT", "/c/o", data=b"x")``."""
        return self.call("swift", method, f"/AUTH_{self.sim.project_id}{path}", **kw)

    # ----- compound helpers -----
    def create_server(self, name: str, image_id: str | None = None, mv: str = "2.96", **extra: Any) -> str:
        body = {"server": {"name": name, "imageRef": image_id or self.sim.base_image_id,
                           "flavorRef": self.sim.flavor_id, "networks": [{"uuid": self.sim.network_id}], **extra}}
        resp = self.compute("POST", "/servers", json=body, mv=mv)
        assert resp.status_code == 202, resp.text
        return resp.json()["server"]["id"]

    def server(self, server_id: str) -> dict:
        resp = self.compute("GET", f"/servers/{server_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()["server"]

    def wait_server(self, server_id: str, status: str = "ACTIVE", timeout: float = 10.0) -> dict:
        def probe() -> dict | None:
            server = self.server(server_id)
            assert server["status"] in ("BUILD", status), server
            return server if server["status"] == status else None
        return wait_for(probe, timeout, what=f"server {server_id} {status}")

    def wait_gone(self, server_id: str, timeout: float = 5.0) -> None:
        wait_for(lambda: self.compute("GET", f"/servers/{server_id}").status_code == 404, timeout,
                 what=f"server {server_id} deleted")

    def wait_image(self, image_id: str, status: str = "active", timeout: float = 5.0) -> dict:
        def probe() -> dict | None:
            resp = self.image("GET", f"/v2/images/{image_id}")
            assert resp.status_code == 200, resp.text
            return resp.json() if resp.json()["status"] == status else None
        return wait_for(probe, timeout, what=f"image {image_id} {status}")

    def snapshot(self, server_id: str, name: str, metadata: dict | None = None) -> str:
        body = {"createImage": {"name": name, "metadata": metadata or {}}}
        resp = self.compute("POST", f"/servers/{server_id}/action", json=body, mv="2.45")
        assert resp.status_code == 202, resp.text
        image_id = resp.json()["image_id"]
        self.wait_image(image_id)
        wait_for(lambda: self.server(server_id)["OS-EXT-STS:task_state"] is None, what="snapshot task done")
        return image_id

    def lb_status(self) -> str:
        return self.lb("GET", f"/loadbalancers/{self.sim.loadbalancer_id}").json()["loadbalancer"]["provisioning_status"]

    def wait_lb_active(self, timeout: float = 5.0) -> None:
        wait_for(lambda: self.lb_status() == "ACTIVE", timeout, what="load balancer ACTIVE")

    def members(self) -> list[dict]:
        resp = self.lb("GET", f"/pools/{self.sim.pool_id}/members")
        assert resp.status_code == 200, resp.text
        return resp.json()["members"]

    def member_status(self, member_id: str) -> str:
        resp = self.lb("GET", f"/pools/{self.sim.pool_id}/members/{member_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()["member"]["operating_status"]

    def add_member(self, address: str, port: int = 8000, **extra: Any) -> str:
        self.wait_lb_active()
        resp = self.lb("POST", f"/pools/{self.sim.pool_id}/members",
                       json={"member": {"address": address, "protocol_port": port, **extra}})
        assert resp.status_code == 201, resp.text
        self.wait_lb_active()
        return resp.json()["member"]["id"]


@pytest.fixture
def cloud(openstack_sim: Simulator) -> Cloud:
    return Cloud(openstack_sim)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ----------------------------------------------------------------------------- Keystone


def test_identity_version_discovery(openstack_sim: Simulator) -> None:
    root = requests.get(openstack_sim.url + "/", timeout=5)
    assert root.status_code == 300
    assert root.json()["versions"]["values"][0]["links"][0]["href"] == openstack_sim.url + "/v3/"
    v3 = requests.get(openstack_sim.auth_url, timeout=5)
    assert v3.status_code == 200 and v3.json()["version"]["status"] == "stable"


def test_password_token_has_catalog_for_every_service(openstack_sim: Simulator) -> None:
    sim = openstack_sim
    for scope in ({"project": {"name": "demo", "domain": {"id": "default"}}}, {"project": {"id": sim.project_id}}):
        resp = requests.post(f"{sim.auth_url}/auth/tokens", json=password_auth(sim, scope=scope), timeout=5)
        assert resp.status_code == 201, resp.text
        assert resp.headers["X-Subject-Token"]
        token = resp.json()["token"]
        assert token["project"]["id"] == sim.project_id and token["user"]["name"] == "demo"
        assert {r["name"] for r in token["roles"]} >= {"member"}
        assert token["expires_at"].endswith("Z")
        urls = {}
        for entry in token["catalog"]:
            assert {e["interface"] for e in entry["endpoints"]} == {"public", "internal", "admin"}
            assert {e["region_id"] for e in entry["endpoints"]} == {"RegionOne"}
            urls[entry["type"]] = entry["endpoints"][0]["url"]
        assert urls == {"identity": sim.url + "/v3", "compute": sim.url + "/compute/v2.1",
                        "image": sim.url + "/image", "load-balancer": sim.url + "/load-balancer",
                        "network": sim.url + "/networking", "dns": sim.url + "/dns",
                        "object-store": f"{sim.url}/object-store/v1/AUTH_{sim.project_id}"}


def test_application_credential_auth_by_id_and_by_name(openstack_sim: Simulator) -> None:
    sim = openstack_sim
    by_id = {"auth": {"identity": {"methods": ["application_credential"], "application_credential": {
        "id": sim.app_credential_id, "secret": sim.app_credential_secret}}}}
    by_name = {"auth": {"identity": {"methods": ["application_credential"], "application_credential": {
        "name": sim.app_credential_name, "secret": sim.app_credential_secret,
        "user": {"name": "demo", "domain": {"name": "Default"}}}}}}
    for body in (by_id, by_name):
        resp = requests.post(f"{sim.auth_url}/auth/tokens", json=body, timeout=5)
        assert resp.status_code == 201, resp.text
        token = resp.json()["token"]
        assert token["methods"] == ["application_credential"]
        assert token["application_credential"]["id"] == sim.app_credential_id
        assert token["project"]["id"] == sim.project_id
    state = requests.get(sim.url + "/_sim/state", timeout=5).json()
    assert state["credentials"]["application_credential"]["secret"] == sim.app_credential_secret


def app_cred_auth(sim: Simulator, secret: str, scope: dict | None = None) -> dict:
    auth: dict = {"identity": {"methods": ["application_credential"], "application_credential": {
        "id": sim.app_credential_id, "secret": secret}}}
    if scope is not None:
        auth["scope"] = scope
    return {"auth": auth}


@pytest.mark.parametrize("case", [
    "wrong_password", "unknown_user", "wrong_secret", "app_cred_with_scope", "unknown_project"])
def test_bad_credentials_get_401_in_keystone_format(openstack_sim: Simulator, case: str) -> None:
    sim = openstack_sim
    body = {
        "wrong_password": lambda: password_auth(sim, user={"password": "nope"}),
        "unknown_user": lambda: password_auth(sim, user={"name": "mallory"}),
        "wrong_secret": lambda: app_cred_auth(sim, "nope"),
        "app_cred_with_scope": lambda: app_cred_auth(sim, sim.app_credential_secret,
                                                     {"project": {"id": sim.project_id}}),
        "unknown_project": lambda: password_auth(sim, scope={"project": {"name": "x", "domain": {"name": "Default"}}}),
    }[case]()
    resp = requests.post(f"{sim.auth_url}/auth/tokens", json=body, timeout=5)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == 401 and resp.json()["error"]["title"] == "Unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Keystone uri=")


def test_services_reject_missing_unknown_and_expired_tokens(openstack_sim_factory: Callable[..., Simulator]) -> None:
    sim = openstack_sim_factory(token_ttl=0.3)
    paths = ["/compute/v2.1/servers", "/image/v2/images", "/load-balancer/v2/lbaas/pools",
             "/networking/v2.0/networks"]
    for headers in ({}, {"X-Auth-Token": "bogus"}):
        for path in paths:
            resp = requests.get(sim.url + path, headers=headers, timeout=5)
            assert resp.status_code == 401, path
            assert resp.json()["error"]["code"] == 401
    token = issue_token(sim)
    assert requests.get(sim.url + paths[0], headers={"X-Auth-Token": token}, timeout=5).status_code == 200
    wait_for(lambda: requests.get(sim.url + paths[0], headers={"X-Auth-Token": token}, timeout=5).status_code == 401,
             timeout=3, what="token expiry")


# ----------------------------------------------------------------------------- Nova


def test_compute_discovery_and_microversion_negotiation(cloud: Cloud) -> None:
    doc = requests.get(cloud.sim.url + "/compute/v2.1", timeout=5)  # no token, like keystoneauth
    assert doc.status_code == 200
    assert (doc.json()["version"]["version"], doc.json()["version"]["min_version"]) == ("2.96", "2.1")
    resp = cloud.compute("GET", "/servers", mv="2.26")
    assert resp.headers["OpenStack-API-Version"] == "compute 2.26"
    assert resp.headers["X-OpenStack-Nova-API-Version"] == "2.26"
    legacy = cloud.compute("GET", "/servers", mv=None, headers={"X-OpenStack-Nova-API-Version": "2.47"})
    assert legacy.headers["OpenStack-API-Version"] == "compute 2.47"
    assert cloud.compute("GET", "/servers", mv=None).headers["OpenStack-API-Version"] == "compute 2.1"
    too_new = cloud.compute("GET", "/servers", mv="2.97")
    assert too_new.status_code == 406 and too_new.json()["computeFault"]["code"] == 406
    assert cloud.compute("GET", "/servers", mv="two").status_code == 400


def test_server_lifecycle_build_active_delete(cloud: Cloud) -> None:
    resp = cloud.compute("POST", "/servers", json={"server": {
        "name": "web-a", "imageRef": cloud.sim.base_image_id, "flavorRef": "2",
        "networks": [{"uuid": cloud.sim.network_id}], "metadata": {"releasectl_color": "green"}}})
    assert resp.status_code == 202
    server_id = resp.json()["server"]["id"]
    assert resp.headers["Location"].endswith(f"/servers/{server_id}")
    first = cloud.server(server_id)
    assert first["status"] == "BUILD" and first["addresses"] == {}
    server = cloud.wait_server(server_id)
    assert server["OS-EXT-STS:task_state"] is None and server["metadata"] == {"releasectl_color": "green"}
    assert server["flavor"]["original_name"] == "m1.small"
    address = server["addresses"]["private"][0]["addr"]
    assert address.startswith("127.0.1.") and address != "127.0.1.1"  # .1 is the builder's
    second = cloud.wait_server(cloud.create_server("web-b"))
    assert second["addresses"]["private"][0]["addr"] != address
    assert cloud.compute("DELETE", f"/servers/{server_id}").status_code == 204
    assert cloud.server(server_id)["OS-EXT-STS:task_state"] == "deleting"
    cloud.wait_gone(server_id)
    assert cloud.compute("DELETE", f"/servers/{server_id}").json()["itemNotFound"]["code"] == 404


def test_name_filter_is_an_unanchored_regex(cloud: Cloud) -> None:
    for name in ("web-1", "web-10", "webx1"):
        cloud.create_server(name)

    def names(query: str) -> set[str]:
        return {s["name"] for s in cloud.compute("GET", f"/servers?{query}").json()["servers"]}

    assert names("name=web.1") == {"web-1", "web-10", "webx1"}  # "." matches anything
    assert names("name=web.1") == {"web-1", "web-10", "webx1"}  # "." matches anything
    assert names("name=%5Eweb-1%24") == {"web-1"}
    assert names("name=web-1&deleted=False&bogus=1") == {"web-1", "web-10"}  # unknown filters ignored


def test_tag_filters_need_microversion_2_26(cloud: Cloud) -> None:
    tagged = cloud.create_server("tagged", tags=["releasectl", "blue"])
    cloud.create_server("plain")
    cloud.wait_server(tagged)

    def names(query: str, mv: str) -> set[str]:
        return {s["name"] for s in cloud.compute("GET", f"/servers/detail?{query}", mv=mv).json()["servers"]}

    assert names("tags=releasectl,blue", "2.26") == {"tagged"}
    assert names("tags-any=blue,green", "2.26") == {"tagged"}
    assert "tagged" not in names("not-tags=releasectl", "2.26")
    assert names("tags=releasectl", "2.25") == {"tagged", "plain", "demo-builder"}


def test_server_list_paging_with_servers_links(cloud: Cloud) -> None:
    for i in range(4):
        cloud.create_server(f"page-{i}")
    seen, url = [], "/servers?limit=2"
    for _ in range(10):  # bounded
        body = cloud.compute("GET", url).json()
        seen += [s["name"] for s in body["servers"]]
        nxt = [link["href"] for link in body.get("servers_links", []) if link["rel"] == "next"]
        if not nxt:
            break
        assert nxt[0].startswith(cloud.sim.url + "/compute/v2.1/servers?")
        url = nxt[0][len(cloud.sim.url + "/compute/v2.1"):]
    assert seen == ["page-3", "page-2", "page-1", "page-0", "demo-builder"]  # newest first
    bad = cloud.compute("GET", "/servers?marker=00000000-0000-0000-0000-000000000000")
    assert bad.status_code == 400 and "badRequest" in bad.json()


def test_metadata_and_tags_endpoints(cloud: Cloud) -> None:
    server_id = cloud.create_server("meta")
    busy = cloud.compute("POST", f"/servers/{server_id}/metadata", json={"metadata": {"a": "1"}})
    assert busy.status_code == 409 and busy.json()["conflictingRequest"]["code"] == 409  # still BUILD
    cloud.wait_server(server_id)
    base = f"/servers/{server_id}"
    assert cloud.compute("POST", f"{base}/metadata", json={"metadata": {"a": "1", "b": "2"}}).json() == {
        "metadata": {"a": "1", "b": "2"}}
    assert cloud.compute("PUT", f"{base}/metadata", json={"metadata": {"c": "3"}}).json() == {"metadata": {"c": "3"}}
    assert cloud.compute("PUT", f"{base}/metadata/d", json={"meta": {"d": "4"}}).json() == {"meta": {"d": "4"}}
    assert cloud.compute("PUT", f"{base}/metadata/d", json={"meta": {"x": "4"}}).status_code == 400
    assert cloud.compute("DELETE", f"{base}/metadata/c").status_code == 204
    assert cloud.compute("GET", f"{base}/metadata").json() == {"metadata": {"d": "4"}}
    assert cloud.compute("DELETE", f"{base}/metadata/c").status_code == 404
    assert cloud.compute("PUT", f"{base}/tags", json={"tags": ["a", "b"]}).json() == {"tags": ["a", "b"]}
    assert cloud.compute("PUT", f"{base}/tags/c").status_code == 201
    assert cloud.compute("PUT", f"{base}/tags/c").status_code == 204
    assert cloud.compute("DELETE", f"{base}/tags/a").status_code == 204
    assert cloud.compute("GET", f"{base}/tags").json() == {"tags": ["b", "c"]}
    assert cloud.compute("GET", f"{base}/tags", mv="2.25").status_code == 404
    assert cloud.compute("PUT", f"{base}/tags/a,b").status_code == 400


@pytest.mark.parametrize("case", ["no_networks", "unknown_image", "unknown_flavor", "tags_before_2_52",
                                  "unknown_network"])
def test_server_create_validation(cloud: Cloud, case: str) -> None:
    server: dict = {"name": "x", "imageRef": cloud.sim.base_image_id, "flavorRef": "2",
                    "networks": [{"uuid": cloud.sim.network_id}]}
    mv = "2.96"
    if case == "no_networks":
        del server["networks"]
    elif case == "unknown_image":
        server["imageRef"] = "00000000-0000-0000-0000-000000000000"
    elif case == "unknown_flavor":
        server["flavorRef"] = "99"
    elif case == "tags_before_2_52":
        server["tags"], mv = ["x"], "2.51"
    elif case == "unknown_network":
        server["networks"] = [{"uuid": "00000000-0000-0000-0000-000000000000"}]
    resp = cloud.compute("POST", "/servers", json={"server": server}, mv=mv)
    assert resp.status_code == 400 and resp.json()["badRequest"]["code"] == 400


def test_create_image_snapshot_flow(cloud: Cloud) -> None:
    builder = cloud.sim.builder_id
    body = {"createImage": {"name": "web-1.4.2", "metadata": {"releasectl_app": "web", "releasectl_version": "1.4.2"}}}
    resp = cloud.compute("POST", f"/servers/{builder}/action", json=body, mv="2.45")
    assert resp.status_code == 202 and "Location" not in resp.headers
    image_id = resp.json()["image_id"]
    statuses = {cloud.image("GET", f"/v2/images/{image_id}").json()["status"]}
    assert statuses <= {"queued", "saving"}
    assert cloud.server(builder)["OS-EXT-STS:task_state"] in ("image_snapshot", "image_uploading")
    again = cloud.compute("POST", f"/servers/{builder}/action", json=body, mv="2.45")
    assert again.status_code == 409 and "task_state" in again.json()["conflictingRequest"]["message"]

    def saw_saving_then_active() -> dict | None:
        image = cloud.image("GET", f"/v2/images/{image_id}").json()
        statuses.add(image["status"])
        return image if image["status"] == "active" else None

    image = wait_for(saw_saving_then_active, what="snapshot active")
    assert statuses == {"queued", "saving", "active"}
    assert image["releasectl_app"] == "web" and image["releasectl_version"] == "1.4.2"  # top-level properties
    assert image["instance_uuid"] == builder and image["image_type"] == "snapshot"
    assert image["os_distro"] == "ubuntu"  # inherited from the base image
    wait_for(lambda: cloud.server(builder)["OS-EXT-STS:task_state"] is None, what="builder idle")
    legacy = cloud.compute("POST", f"/servers/{builder}/action", json={"createImage": {"name": "old"}}, mv="2.44")
    assert legacy.status_code == 202 and not legacy.content
    legacy_id = legacy.headers["Location"].rsplit("/", 1)[1]
    cloud.wait_image(legacy_id)


def test_flavors_and_errors_in_nova_format(cloud: Cloud) -> None:
    flavors = cloud.compute("GET", "/flavors/detail?is_public=None", mv="2.61").json()["flavors"]
    assert [(f["id"], f["name"], f["extra_specs"]) for f in flavors] == [("2", "m1.small", {})]
    missing = cloud.compute("GET", "/servers/not-a-server")
    assert missing.status_code == 404 and missing.json()["itemNotFound"]["message"]
    unknown_action = cloud.compute("POST", f"/servers/{cloud.sim.builder_id}/action", json={"os-reboot": {}})
    assert unknown_action.status_code == 400 and "badRequest" in unknown_action.json()


# ----------------------------------------------------------------------------- Glance


def make_image(cloud: Cloud, name: str, **props: Any) -> str:
    resp = cloud.image("POST", "/v2/images", json={"name": name, **props})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def image_names(cloud: Cloud, query: str = "") -> list[str]:
    resp = cloud.image("GET", f"/v2/images{query}")
    assert resp.status_code == 200, resp.text
    return [i["name"] for i in resp.json()["images"]]


def test_glance_version_list_is_300(openstack_sim: Simulator) -> None:
    resp = requests.get(openstack_sim.url + "/image", timeout=5)
    assert resp.status_code == 300
    current = [v for v in resp.json()["versions"] if v["status"] == "CURRENT"]
    assert current[0]["links"][0]["href"] == openstack_sim.url + "/image/v2/"


def test_image_filters_custom_properties_tags_and_in(cloud: Cloud) -> None:
    a = make_image(cloud, "web-1", releasectl_app="web", releasectl_version="1", tags=["released", "web"])
    b = make_image(cloud, "web-2", releasectl_app="web", releasectl_version="2", tags=["web"])
    make_image(cloud, "db-1", releasectl_app="db", releasectl_version="1")
    assert image_names(cloud, "?releasectl_app=web") == ["web-2", "web-1"]
    assert image_names(cloud, "?releasectl_app=web&releasectl_version=1") == ["web-1"]
    assert image_names(cloud, "?tag=web&tag=released") == ["web-1"]
    assert image_names(cloud, "?name=db-1") == ["db-1"]
    assert image_names(cloud, "?name=web") == []  # exact, not a regex
    assert sorted(image_names(cloud, f"?id=in:{a},{b}")) == ["web-1", "web-2"]
    assert image_names(cloud, "?status=active") == [cloud.sim.options.base_image_name]
    assert image_names(cloud, "?releasectl_app=web&sort=name:asc") == ["web-1", "web-2"]
    assert image_names(cloud, "?releasectl_app=web&sort_key=name&sort_dir=desc") == ["web-2", "web-1"]
    assert cloud.image("GET", "/v2/images?sort_key=bogus").status_code == 400


def test_killed_and_deleted_images_are_hidden(cloud: Cloud) -> None:
    killed = make_image(cloud, "broken")
    gone = make_image(cloud, "gone")
    with cloud.sim.ctx.store.lock:  # Glance only kills an image on a failed upload: set it directly
        cloud.sim.ctx.store.images[killed].status = "killed"
    assert cloud.image("DELETE", f"/v2/images/{gone}").status_code == 204
    assert cloud.image("GET", f"/v2/images/{gone}").status_code == 404
    names = image_names(cloud)
    assert "broken" not in names and "gone" not in names
    assert image_names(cloud, "?status=killed") == []


def test_image_pagination_next_is_relative_to_the_endpoint_root(cloud: Cloud) -> None:
    for i in range(5):
        make_image(cloud, f"img-{i}", releasectl_app="pager")
    seen, path = [], "/v2/images?releasectl_app=pager&limit=2"
    for _ in range(10):  # bounded
        body = cloud.image("GET", path).json()
        seen += [i["name"] for i in body["images"]]
        if "next" not in body:
            break
        assert body["next"].startswith("/v2/images?") and "releasectl_app=pager" in body["next"]
        path = body["next"]
    assert seen == [f"img-{i}" for i in range(4, -1, -1)]
    assert cloud.image("GET", "/v2/images?marker=nope").status_code == 400


def test_image_patch_protect_and_delete(cloud: Cloud) -> None:
    image_id = make_image(cloud, "patch-me", releasectl_status="candidate")
    url = f"/v2/images/{image_id}"
    wrong = cloud.image("PATCH", url, json=[], headers={"Content-Type": "application/json"})
    assert wrong.status_code == 415
    ops = [{"op": "add", "path": "/releasectl_note", "value": "hi"},
           {"op": "replace", "path": "/releasectl_status", "value": "released"},
           {"op": "replace", "path": "/protected", "value": True}]
    resp = cloud.image("PATCH", url, data=json.dumps(ops), headers={"Content-Type": PATCH_CT})
    assert resp.status_code == 200, resp.text
    image = resp.json()
    assert (image["releasectl_note"], image["releasectl_status"], image["protected"]) == ("hi", "released", True)
    for op in ({"op": "replace", "path": "/missing", "value": "x"}, {"op": "remove", "path": "/missing"}):
        conflict = cloud.image("PATCH", url, data=json.dumps([op]), headers={"Content-Type": PATCH_CT})
        assert conflict.status_code == 409
    read_only = cloud.image("PATCH", url, data=json.dumps([{"op": "replace", "path": "/status", "value": "x"}]),
                            headers={"Content-Type": PATCH_CT})
    assert read_only.status_code == 403
    protected = cloud.image("DELETE", url)
    assert protected.status_code == 403 and "protected" in protected.json()["message"]
    unprotect = [{"op": "replace", "path": "/protected", "value": False}, {"op": "remove", "path": "/releasectl_note"}]
    resp = cloud.image("PATCH", url, data=json.dumps(unprotect), headers={"Content-Type": PATCH_CT})
    assert resp.status_code == 200 and "releasectl_note" not in resp.json()
    assert cloud.image("DELETE", url).status_code == 204
    assert cloud.image("GET", url).status_code == 404


def test_image_tags(cloud: Cloud) -> None:
    image_id = make_image(cloud, "tagged")
    assert cloud.image("PUT", f"/v2/images/{image_id}/tags/released").status_code == 204
    assert cloud.image("PUT", f"/v2/images/{image_id}/tags/released").status_code == 204
    assert cloud.image("GET", f"/v2/images/{image_id}").json()["tags"] == ["released"]
    assert cloud.image("DELETE", f"/v2/images/{image_id}/tags/released").status_code == 204
    assert cloud.image("DELETE", f"/v2/images/{image_id}/tags/released").status_code == 404


def test_glance_errors_are_html_unless_json_is_accepted(cloud: Cloud) -> None:
    url = cloud.sim.url + "/image/v2/images/00000000-0000-0000-0000-000000000000"
    as_json = requests.get(url, headers={"X-Auth-Token": cloud.token, "Accept": "application/json"}, timeout=5)
    assert as_json.status_code == 404
    assert as_json.json()["code"] == "404 Not Found" and as_json.json()["title"] == "Not Found"
    as_html = requests.get(url, headers={"X-Auth-Token": cloud.token}, timeout=5)  # Accept: */*
    assert as_html.status_code == 404 and as_html.headers["Content-Type"].startswith("text/html")
    assert "<h1>404 Not Found</h1>" in as_html.text


# ----------------------------------------------------------------------------- Octavia


def test_octavia_seed_under_both_prefixes(cloud: Cloud) -> None:
    sim = cloud.sim
    for prefix in ("/load-balancer/v2", "/load-balancer/v2.0"):
        pools = cloud.http.get(f"{sim.url}{prefix}/lbaas/pools?name=demo-pool", timeout=5).json()["pools"]
        assert [(p["id"], p["lb_algorithm"], p["protocol"]) for p in pools] == [(sim.pool_id, "ROUND_ROBIN", "HTTP")]
    assert cloud.lb("GET", f"/pools?id={sim.pool_id}").json()["pools"][0]["name"] == "demo-pool"
    lb = cloud.lb("GET", f"/loadbalancers/{sim.loadbalancer_id}").json()["loadbalancer"]
    assert lb["name"] == "demo-lb" and lb["listeners"] == [{"id": sim.listener_id}]
    listener = cloud.lb("GET", f"/listeners/{sim.listener_id}").json()["listener"]
    assert listener["default_pool_id"] == sim.pool_id
    monitor = cloud.lb("GET", f"/healthmonitors/{sim.healthmonitor_id}").json()["healthmonitor"]
    assert (monitor["type"], monitor["url_path"]) == ("HTTP", "/healthz")
    tree = cloud.lb("GET", f"/loadbalancers/{sim.loadbalancer_id}/status").json()["statuses"]["loadbalancer"]
    assert tree["listeners"][0]["pools"][0]["healthmonitor"]["id"] == sim.healthmonitor_id
    missing = cloud.lb("GET", "/pools/nope")
    assert missing.status_code == 404 and missing.json()["faultcode"] == "Client"


def test_member_writes_lock_the_load_balancer(cloud: Cloud) -> None:
    pool = f"/pools/{cloud.sim.pool_id}/members"
    created = cloud.lb("POST", pool, json={"member": {"address": "127.0.1.50", "protocol_port": 8000}})
    assert created.status_code == 201
    member = created.json()["member"]
    assert (member["provisioning_status"], member["operating_status"], member["weight"]) == (
        "PENDING_CREATE", "OFFLINE", 1)
    assert cloud.lb_status() == "PENDING_UPDATE"
    busy = cloud.lb("PUT", f"{pool}/{member['id']}", json={"member": {"weight": 5}})
    assert busy.status_code == 409
    assert busy.json() == {"faultcode": "Client", "debuginfo": None, "faultstring":
                           f"Load Balancer {cloud.sim.loadbalancer_id} is immutable and cannot be updated."}
    cloud.wait_lb_active()
    duplicate = cloud.lb("POST", pool, json={"member": {"address": "127.0.1.50", "protocol_port": 8000}})
    assert duplicate.status_code == 409 and "already using ip" in duplicate.json()["faultstring"]
    updated = cloud.lb("PUT", f"{pool}/{member['id']}", json={"member": {"weight": 5, "name": "a"}})
    assert updated.status_code == 200 and updated.json()["member"]["provisioning_status"] == "PENDING_UPDATE"
    cloud.wait_lb_active()
    assert cloud.lb("PUT", f"{pool}/{member['id']}", json={"member": {"address": "1.2.3.4"}}).status_code == 400
    assert cloud.lb("DELETE", f"{pool}/{member['id']}").status_code == 204
    cloud.wait_lb_active()
    assert cloud.lb("GET", f"{pool}/{member['id']}").status_code == 404


def test_batch_member_update_semantics(cloud: Cloud) -> None:
    pool = f"/pools/{cloud.sim.pool_id}/members"
    a = {"address": "127.0.1.60", "protocol_port": 8000}
    b = {"address": "127.0.1.61", "protocol_port": 8000}
    c = {"address": "127.0.1.62", "protocol_port": 8000}

    def batch(members: list[dict], query: str = "") -> requests.Response:
        cloud.wait_lb_active()
        return cloud.lb("PUT", pool + query, json={"members": members})

    assert batch([{**a, "weight": 10, "name": "a"}, {**b, "weight": 20}]).status_code == 202
    assert cloud.lb_status() == "PENDING_UPDATE"
    cloud.wait_lb_active()
    assert {m["address"]: m["weight"] for m in cloud.members()} == {"127.0.1.60": 10, "127.0.1.61": 20}
    assert batch([a]).status_code == 202  # b is absent -> deleted; a's omitted weight resets to 1
    cloud.wait_lb_active()
    members = cloud.members()
    assert [(m["address"], m["weight"], m["name"]) for m in members] == [("127.0.1.60", 1, "a")]
    assert batch([{**c, "weight": 0}], "?additive_only=true").status_code == 202
    cloud.wait_lb_active()
    assert {m["address"]: m["weight"] for m in cloud.members()} == {"127.0.1.60": 1, "127.0.1.62": 0}
    duplicate = batch([a, {**a, "weight": 3}])
    assert duplicate.status_code == 409 and duplicate.json()["faultcode"] == "Client"
    assert batch([]).status_code == 202
    cloud.wait_lb_active()
    assert cloud.members() == []


def test_member_operating_status_follows_server_health(cloud: Cloud) -> None:
    sim = cloud.sim
    healthy = cloud.wait_server(cloud.create_server("healthy"))["addresses"]["private"][0]["addr"]
    sim.set_builder_fail_health(True)
    bad_image = cloud.snapshot(sim.builder_id, "bad")
    sim.set_builder_fail_health(False)
    unhealthy = cloud.wait_server(cloud.create_server("unhealthy", bad_image))["addresses"]["private"][0]["addr"]
    online = cloud.add_member(healthy)
    error = cloud.add_member(unhealthy)
    nobody = cloud.add_member("127.0.1.200")
    wrong_port = cloud.add_member(healthy, port=9999)
    assert cloud.member_status(online) == "ONLINE"
    assert cloud.member_status(error) == "ERROR"
    assert cloud.member_status(nobody) == "ERROR"
    assert cloud.member_status(wrong_port) == "ERROR"
    base = f"/pools/{sim.pool_id}/members/{online}"
    assert cloud.lb("PUT", base, json={"member": {"weight": 0}}).status_code == 200
    cloud.wait_lb_active()
    assert cloud.member_status(online) == "DRAINING"
    assert cloud.lb("PUT", base, json={"member": {"admin_state_up": False}}).status_code == 200
    cloud.wait_lb_active()
    assert cloud.member_status(online) == "OFFLINE"
    pool = cloud.lb("GET", f"/pools/{sim.pool_id}").json()["pool"]
    assert pool["operating_status"] == "DEGRADED"
    assert cloud.lb("DELETE", f"/healthmonitors/{sim.healthmonitor_id}").status_code == 204
    cloud.wait_lb_active()
    assert {m["operating_status"] for m in cloud.members()} == {"NO_MONITOR"}
    hm = {"healthmonitor": {"pool_id": sim.pool_id, "type": "HTTP", "delay": 1, "timeout": 1, "max_retries": 1,
                            "url_path": "/healthz"}}
    created = cloud.lb("POST", "/healthmonitors", json=hm)
    assert created.status_code == 201 and created.json()["healthmonitor"]["provisioning_status"] == "PENDING_CREATE"
    cloud.wait_lb_active()
    assert cloud.lb("POST", "/healthmonitors", json=hm).status_code == 409
    assert cloud.member_status(error) == "ERROR"


def test_weight_0_member_is_offline_until_checked_then_draining(cloud: Cloud) -> None:
    """Octavia reports OFFLINE until the amphora has checked a member, whatever its weight; DRAINING only
    for a weight-0 member whose checks pass."""
    sim = cloud.sim
    address = cloud.wait_server(cloud.create_server("new"))["addresses"]["private"][0]["addr"]
    cloud.wait_lb_active()
    resp = cloud.lb("POST", f"/pools/{sim.pool_id}/members",
                    json={"member": {"address": address, "protocol_port": 8000, "weight": 0}})
    assert resp.status_code == 201 and resp.json()["member"]["operating_status"] == "OFFLINE"
    member = resp.json()["member"]["id"]
    assert cloud.member_status(member) == "OFFLINE"  # PENDING_CREATE: not checked yet
    cloud.wait_lb_active()
    assert cloud.member_status(member) == "DRAINING"


def test_weight_0_member_over_real_checks_goes_offline_then_draining(openstack_sim_factory: Callable[..., Simulator]) -> None:
    """With real health checks: OFFLINE (unknown to the provider) until the first check passes, then DRAINING
    (healthy), never ERROR on the way; a failing weight-0 member goes to ERROR."""
    from releasectl.providers.base import Health
    from releasectl.providers.openstack.status import member_health

    sim = openstack_sim_factory(serve_apps=True, monitor_delay=0.3, lb_delay=0.5)
    cloud = Cloud(sim)
    good = cloud.wait_server(cloud.create_server("good"))["addresses"]["private"][0]["addr"]
    sim.set_builder_fail_health(True)
    bad_image = cloud.snapshot(sim.builder_id, "bad")
    sim.set_builder_fail_health(False)
    bad = cloud.wait_server(cloud.create_server("bad", bad_image))["addresses"]["private"][0]["addr"]
    cloud.wait_lb_active()
    created = cloud.lb("POST", f"/pools/{sim.pool_id}/members",
                       json={"member": {"address": good, "protocol_port": 8000, "weight": 0}})
    assert created.status_code == 201, created.text
    member = created.json()["member"]["id"]
    seen: list[str] = [created.json()["member"]["operating_status"]]

    def draining() -> bool:
        seen.append(cloud.member_status(member))
        return seen[-1] == "DRAINING"

    wait_for(draining, timeout=5, interval=0.01, what="DRAINING after the first passing check")
    assert seen[0] == "OFFLINE" and set(seen) <= {"OFFLINE", "DRAINING"}, seen
    assert [member_health(s) for s in ("OFFLINE", "DRAINING")] == [Health.UNKNOWN, Health.HEALTHY]
    failing = cloud.add_member(bad, weight=0)
    wait_for(lambda: cloud.member_status(failing) == "ERROR", timeout=5, what="ERROR for a failing weight-0 member")
    assert member_health("ERROR") is Health.UNHEALTHY


def test_member_list_paging(cloud: Cloud) -> None:
    cloud.wait_lb_active()
    members = [{"address": f"127.0.1.{70 + i}", "protocol_port": 8000} for i in range(3)]
    assert cloud.lb("PUT", f"/pools/{cloud.sim.pool_id}/members", json={"members": members}).status_code == 202
    cloud.wait_lb_active()
    seen, url = [], f"{cloud.sim.url}/load-balancer/v2.0/lbaas/pools/{cloud.sim.pool_id}/members?limit=2"
    for _ in range(10):  # bounded
        body = cloud.http.get(url, timeout=5).json()
        seen += [m["address"] for m in body["members"]]
        nxt = [link["href"] for link in body["members_links"] if link["rel"] == "next"]
        if not nxt:
            break
        assert "/load-balancer/v2.0/" in nxt[0]
        url = nxt[0]
    assert seen == [m["address"] for m in members]


def test_neutron_networks_list_and_show(cloud: Cloud) -> None:
    networks = cloud.call("network", "GET", "/v2.0/networks?name=private").json()["networks"]
    assert [(n["id"], n["name"]) for n in networks] == [(cloud.sim.network_id, "private")]
    assert cloud.call("network", "GET", "/v2.0/networks?name=public").json()["networks"] == []
    shown = cloud.call("network", "GET", f"/v2.0/networks/{cloud.sim.network_id}").json()["network"]
    assert shown["subnets"] == [cloud.sim.subnet_id]
    subnet = cloud.call("network", "GET", f"/v2.0/subnets/{cloud.sim.subnet_id}").json()["subnet"]
    assert subnet["cidr"] == "127.0.1.0/24"
    missing = cloud.call("network", "GET", "/v2.0/networks/nope")
    assert missing.status_code == 404 and missing.json()["NeutronError"]["type"] == "NetworkNotFound"


# ----------------------------------------------------------------------------- Swift


def test_swift_catalog_entry_is_this_projects_account_and_token_checked(openstack_sim: Simulator) -> None:
    sim = openstack_sim
    cloud = Cloud(sim)
    info = requests.get(sim.url + "/object-store/info", timeout=5)
    assert info.status_code == 200 and info.json()["swift"]["container_listing_limit"] == 10000
    account = f"{sim.url}/object-store/v1/AUTH_{sim.project_id}"
    for headers in ({}, {"X-Auth-Token": "bogus"}):
        resp = requests.get(account + "/c", headers=headers, timeout=5)
        assert resp.status_code == 401 and resp.text.startswith("<html><h1>Unauthorized</h1>")
        assert resp.headers["X-Trans-Id"].startswith("tx")
    other = requests.put(f"{sim.url}/object-store/v1/AUTH_{'0' * 32}/c", headers={"X-Auth-Token": cloud.token},
                         timeout=5)
    assert other.status_code == 403 and "<h1>Forbidden</h1>" in other.text
    head = cloud.swift("HEAD")
    assert head.status_code == 204 and head.headers["X-Account-Container-Count"] == "0"


def test_swift_objects_put_get_head_delete(cloud: Cloud) -> None:
    assert cloud.swift("PUT", "/records/a/b").status_code == 404  # no container yet
    assert cloud.swift("PUT", "/records").status_code == 201
    assert cloud.swift("PUT", "/records").status_code == 202  # exists
    body = json.dumps({"phase": "progressing"}).encode()
    put = cloud.swift("PUT", "/records/app/prod/current", data=body, headers={"Content-Type": "application/json"})
    assert put.status_code == 201 and put.headers["Etag"] == hashlib.md5(body).hexdigest()
    assert re.fullmatch(r"tx[0-9a-f]{21}-[0-9a-f]{10}", put.headers["X-Trans-Id"])
    got = cloud.swift("GET", "/records/app/prod/current")
    assert got.status_code == 200 and got.content == body and got.headers["Content-Type"] == "application/json"
    assert got.headers["Etag"] == put.headers["Etag"] and got.headers["Last-Modified"].endswith("GMT")
    head = cloud.swift("HEAD", "/records/app/prod/current")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(body)) and head.content == b""
    replaced = cloud.swift("PUT", "/records/app/prod/current", data=b"v2")  # a PUT replaces it whole
    assert replaced.status_code == 201 and cloud.swift("GET", "/records/app/prod/current").content == b"v2"
    bad_etag = cloud.swift("PUT", "/records/x", data=b"data", headers={"Etag": "0" * 32})
    assert bad_etag.status_code == 422 and cloud.swift("GET", "/records/x").status_code == 404
    good_etag = cloud.swift("PUT", "/records/x", data=b"data", headers={"Etag": hashlib.md5(b"data").hexdigest()})
    assert good_etag.status_code == 201
    assert cloud.swift("DELETE", "/records/records-none").status_code == 404
    assert cloud.swift("DELETE", "/records").status_code == 409  # not empty
    assert cloud.swift("DELETE", "/records/x").status_code == 204
    missing = cloud.swift("GET", "/records/x")
    assert missing.status_code == 404 and missing.text == (
        "<html><h1>Not Found</h1><p>The resource could not be found.</p></html>")
    assert cloud.swift("PUT", "/records/x", data=b"again").status_code == 201  # names are reused after DELETE
    assert cloud.swift("PATCH", "/records/x").status_code == 405
    assert cloud.swift("PUT", "/records/" + "n" * 1025, data=b"").status_code == 400


def test_swift_conditional_requests(cloud: Cloud) -> None:
    assert cloud.swift("PUT", "/lock").status_code == 201
    gen = "/lock/app/prod/lock/000000000001"
    first = cloud.swift("PUT", gen, data=b"mine", headers={"If-None-Match": "*"})
    assert first.status_code == 201
    second = cloud.swift("PUT", gen, data=b"theirs", headers={"If-None-Match": "*"})
    assert second.status_code == 412 and "<h1>Precondition Failed</h1>" in second.text
    assert cloud.swift("GET", gen).content == b"mine"
    bad = cloud.swift("PUT", gen, data=b"x", headers={"If-None-Match": first.headers["Etag"]})
    assert bad.status_code == 400 and bad.text == "If-None-Match only supports *"
    etag = first.headers["Etag"]
    assert cloud.swift("PUT", gen, data=b"x", headers={"If-Match": "0" * 32}).status_code == 412
    assert cloud.swift("PUT", "/lock/nothing", data=b"x", headers={"If-Match": "*"}).status_code == 412
    moved = cloud.swift("PUT", gen, data=b"next", headers={"If-Match": f'"{etag}"'})
    assert moved.status_code == 201
    assert cloud.swift("GET", gen, headers={"If-Match": etag}).status_code == 412
    assert cloud.swift("GET", gen, headers={"If-None-Match": moved.headers["Etag"]}).status_code == 304
    assert cloud.swift("GET", gen, headers={"If-Match": moved.headers["Etag"]}).content == b"next"
    assert cloud.swift("DELETE", gen).status_code == 204
    assert cloud.swift("PUT", gen, data=b"new", headers={"If-None-Match": "*"}).status_code == 201


def test_swift_create_only_put_has_exactly_one_winner(cloud: Cloud) -> None:
    import concurrent.futures

    assert cloud.swift("PUT", "/race").status_code == 201
    sessions = [Cloud(cloud.sim, cloud.token) for _ in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda c: c[1].swift("PUT", "/race/g1", data=str(c[0]).encode(),
                                                    headers={"If-None-Match": "*"}).status_code,
                              enumerate(sessions)))
    assert sorted(codes) == [201] + [412] * 7


def test_swift_listings(cloud: Cloud) -> None:
    assert cloud.swift("PUT", "/c").status_code == 201
    names = ["a/1", "a/2", "a/3", "a/sub/x", "b/1", "é"]
    for name in names:
        assert cloud.swift("PUT", f"/c/{name}", data=name.encode()).status_code == 201

    def listing(query: str) -> list:
        resp = cloud.swift("GET", f"/c?format=json{query}")
        assert resp.status_code == 200, resp.text
        return [e.get("name", e.get("subdir")) for e in resp.json()]

    assert listing("") == names  # byte order
    assert listing("&prefix=a/") == ["a/1", "a/2", "a/3", "a/sub/x"]
    assert listing("&prefix=a/&limit=2") == ["a/1", "a/2"]
    assert listing("&prefix=a/&limit=2&marker=a/2") == ["a/3", "a/sub/x"]
    assert listing("&marker=a/3&end_marker=b/1") == ["a/sub/x"]
    assert listing("&delimiter=/") == ["a/", "b/", "é"]
    assert listing("&prefix=a/&delimiter=/") == ["a/1", "a/2", "a/3", "a/sub/"]
    assert listing("&prefix=a/&reverse=true&limit=2") == ["a/sub/x", "a/3"]
    assert listing("&prefix=zzz") == []
    entry = cloud.swift("GET", "/c?format=json&prefix=b/").json()[0]
    assert entry == {"name": "b/1", "hash": hashlib.md5(b"b/1").hexdigest(), "bytes": 3,
                     "content_type": "application/octet-stream", "last_modified": entry["last_modified"]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", entry["last_modified"])
    plain = cloud.swift("GET", "/c?prefix=b/", headers={"Accept": "text/plain"})
    assert plain.status_code == 200 and plain.text == "b/1\n"
    assert cloud.swift("GET", "/c?prefix=zzz", headers={"Accept": "text/plain"}).status_code == 204
    as_json = cloud.swift("GET", "/c?prefix=b/")  # the Cloud client sends Accept: application/json
    assert as_json.json()[0]["name"] == "b/1"
    too_many = cloud.swift("GET", "/c?format=json&limit=10001")
    assert too_many.status_code == 412 and too_many.text == "Maximum limit is 10000"
    head = cloud.swift("HEAD", "/c")
    assert head.status_code == 204 and head.headers["X-Container-Object-Count"] == str(len(names))
    assert cloud.swift("GET", "/nope?format=json").status_code == 404
    account = cloud.swift("GET", "?format=json").json()
    assert [(c["name"], c["count"]) for c in account] == [("c", len(names))]


def test_swift_listing_limit_option(openstack_sim_factory: Callable[..., Simulator]) -> None:
    cloud = Cloud(openstack_sim_factory(object_store_listing_limit=2))
    cloud.swift("PUT", "/c")
    for i in range(3):
        cloud.swift("PUT", f"/c/{i}", data=b"")
    assert len(cloud.swift("GET", "/c?format=json").json()) == 2
    assert cloud.swift("GET", "/c?format=json&limit=3").status_code == 412


def test_swift_is_journaled_faulted_and_in_the_state(cloud: Cloud) -> None:
    sim = cloud.sim
    sim.reset_requests()
    cloud.swift("PUT", "/c")
    cloud.swift("PUT", "/c/a/b", data=b'{"x": 1}')
    cloud.swift("GET", "/c?format=json")
    cloud.swift("GET", "/c/a/b")
    assert sim.request_counts() == {
        "object-store GET /v1/{account}/{container}": 1,
        "object-store GET /v1/{account}/{container}/{object}": 1,
        "object-store PUT /v1/{account}/{container}": 1,
        "object-store PUT /v1/{account}/{container}/{object}": 1,
    }
    state = requests.get(sim.url + "/_sim/state", timeout=5).json()
    assert state["containers"] == [{"account": f"AUTH_{sim.project_id}", "name": "c", "object_count": 1, "bytes": 8}]
    [obj] = state["objects"]
    assert (obj["container"], obj["name"], obj["data"], obj["bytes"]) == ("c", "a/b", '{"x": 1}', 8)
    # a lost answer: stored, but the proxy answers 503
    assert requests.post(sim.url + "/_sim/faults", json={"lose_put_answers": 1}, timeout=5).status_code == 200
    lost = cloud.swift("PUT", "/c/lost", data=b"kept", headers={"If-None-Match": "*"})
    assert lost.status_code == 503 and "<h1>Service Unavailable</h1>" in lost.text
    assert cloud.swift("GET", "/c/lost").content == b"kept"
    assert cloud.swift("PUT", "/c/lost", data=b"kept", headers={"If-None-Match": "*"}).status_code == 412
    assert sim.faults()["injected"]["lose_put_answers"] == 1
    sim.set_faults(error_rate=1.0, error_statuses=[503], error_services=["object-store"])
    assert cloud.swift("GET", "/c/a/b").status_code == 503
    assert cloud.compute("GET", "/servers").status_code == 200
    sim.clear_faults()
    assert cloud.swift("GET", "/c/a/b").status_code == 200


def test_a_cloud_without_swift(openstack_sim_factory: Callable[..., Simulator]) -> None:
    sim = openstack_sim_factory(object_store=False)
    token = issue_token(sim)
    body = requests.get(f"{sim.auth_url}/auth/catalog", headers={"X-Auth-Token": token}, timeout=5).json()
    assert "object-store" not in {e["type"] for e in body["catalog"]}
    assert Cloud(sim, token).swift("PUT", "/c").status_code == 404


# ----------------------------------------------------------------------------- faults


def test_random_errors_are_reproducible_with_a_seed(cloud: Cloud) -> None:
    def run() -> list[int]:
        requests.post(cloud.sim.url + "/_sim/faults", json={"reset": True, "error_rate": 0.5, "seed": 7}, timeout=5)
        return [cloud.compute("GET", "/servers").status_code for _ in range(20)]

    first, second = run(), run()
    assert first == second
    assert set(first) >= {200} and set(first) - {200} and set(first) <= {200, 500, 503}
    cloud.sim.set_faults(error_statuses=[503], error_rate=1.0)
    nova = cloud.compute("GET", "/servers")
    assert nova.status_code == 503 and "serviceUnavailable" in nova.json()
    assert cloud.image("GET", "/v2/images").json()["code"] == "503 Service Unavailable"
    assert cloud.lb("GET", "/pools").json()["faultcode"] == "Server"
    assert requests.post(f"{cloud.sim.auth_url}/auth/tokens", json=password_auth(cloud.sim), timeout=5).status_code == 201
    cloud.sim.clear_faults()
    assert cloud.compute("GET", "/servers").status_code == 200
    assert cloud.sim.faults()["injected"] == {}


def test_octavia_conflict_burst(cloud: Cloud) -> None:
    resp = requests.post(cloud.sim.url + "/_sim/faults", json={"octavia_conflicts": 2}, timeout=5)
    assert resp.status_code == 200 and resp.json()["faults"]["octavia_conflicts"] == 2
    pool = f"/pools/{cloud.sim.pool_id}/members"
    body = {"member": {"address": "127.0.1.90", "protocol_port": 8000}}
    assert [cloud.lb("POST", pool, json=body).status_code for _ in range(2)] == [409, 409]
    assert cloud.lb("GET", pool).status_code == 200  # reads are not affected
    assert cloud.lb("POST", pool, json=body).status_code == 201
    assert cloud.sim.faults()["injected"]["octavia_conflict"] == 2


def test_latency_fault_slows_service_calls(cloud: Cloud) -> None:
    cloud.sim.set_faults(latency=0.3, latency_services=["image"])
    started = time.monotonic()
    assert cloud.image("GET", "/v2/images").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert cloud.compute("GET", "/servers").status_code == 200
    assert time.monotonic() - started < 0.3


def test_forced_token_expiry(cloud: Cloud) -> None:
    assert cloud.compute("GET", "/servers").status_code == 200
    resp = requests.post(cloud.sim.url + "/_sim/faults", json={"expire_tokens": True}, timeout=5)
    assert resp.json()["expired_tokens"] >= 1
    assert cloud.compute("GET", "/servers").status_code == 401
    assert Cloud(cloud.sim).compute("GET", "/servers").status_code == 200  # re-auth works


def test_next_create_goes_to_error_with_a_fault(cloud: Cloud) -> None:
    cloud.sim.set_faults(next_create_error="No valid host was found.")
    server = cloud.wait_server(cloud.create_server("doomed"), status="ERROR")
    assert server["fault"]["message"] == "No valid host was found." and server["fault"]["code"] == 500
    assert server["addresses"] == {}
    assert cloud.wait_server(cloud.create_server("fine"))["status"] == "ACTIVE"  # one-shot


def test_next_create_answers_500_but_the_server_exists(cloud: Cloud) -> None:
    cloud.sim.set_faults(next_create_500=True)
    body = {"server": {"name": "ghost", "imageRef": cloud.sim.base_image_id, "flavorRef": "2", "networks": "auto"}}
    resp = cloud.compute("POST", "/servers", json=body)
    assert resp.status_code == 500 and resp.json()["computeFault"]["code"] == 500
    found = cloud.compute("GET", "/servers/detail?name=%5Eghost%24").json()["servers"]
    assert len(found) == 1
    cloud.wait_server(found[0]["id"])


def test_next_snapshot_vanishes_while_saving(cloud: Cloud) -> None:
    cloud.sim.set_faults(next_snapshot_vanish=True)
    resp = cloud.compute("POST", f"/servers/{cloud.sim.builder_id}/action", json={"createImage": {"name": "v"}},
                         mv="2.45")
    image_id = resp.json()["image_id"]
    wait_for(lambda: cloud.image("GET", f"/v2/images/{image_id}").status_code == 404, what="snapshot vanished")
    wait_for(lambda: cloud.server(cloud.sim.builder_id)["OS-EXT-STS:task_state"] is None, what="builder idle")
    assert "v" not in image_names(cloud)
    cloud.snapshot(cloud.sim.builder_id, "next-one-works")


def test_fault_settings_are_validated(openstack_sim: Simulator) -> None:
    for body in ({"nope": 1}, {"error_rate": 2}, {"error_statuses": [404]}):
        resp = requests.post(openstack_sim.url + "/_sim/faults", json=body, timeout=5)
        assert resp.status_code == 400, body
    assert requests.get(openstack_sim.url + "/_sim/nope", timeout=5).status_code == 404


# ----------------------------------------------------------------------------- control endpoints


def test_request_counter_by_service_method_and_template(cloud: Cloud) -> None:
    requests.post(cloud.sim.url + "/_sim/requests/reset", timeout=5)
    cloud.server(cloud.sim.builder_id)
    cloud.server(cloud.sim.builder_id)
    cloud.lb("GET", f"/pools/{cloud.sim.pool_id}/members")
    cloud.compute("GET", "/servers/00000000-0000-0000-0000-000000000000/bogus")
    body = requests.get(cloud.sim.url + "/_sim/requests", timeout=5).json()
    assert body["counts"] == {
        "compute GET /v2.1/servers/{id}": 2,
        "compute GET /v2.1/servers/{id}/bogus": 1,
        "load-balancer GET /v2/lbaas/pools/{id}/members": 1,
    }
    assert body["total"] == 4 and [e["status"] for e in body["journal"]] == [200, 200, 200, 404]
    assert cloud.sim.request_count(service="compute", method="GET") == 3
    reset = requests.post(cloud.sim.url + "/_sim/requests/reset", timeout=5).json()
    assert reset["total"] == 0 and cloud.sim.request_counts() == {}


def test_state_lists_resources_and_orphans(cloud: Cloud) -> None:
    sim = cloud.sim
    server_id = cloud.create_server("stateful")
    cloud.wait_server(server_id)
    cloud.add_member("127.0.1.222")
    state = requests.get(sim.url + "/_sim/state", timeout=5).json()
    assert {s["name"] for s in state["servers"]} == {"demo-builder", "stateful"}
    assert [i["id"] for i in state["images"]] == [sim.base_image_id]
    assert [m["address"] for m in state["members"]] == ["127.0.1.222"]
    assert state["processes"] == []
    assert state["orphans"] == {"processes": [], "members": [state["members"][0]["id"]]}
    assert state["ids"]["pool"] == sim.pool_id and state["ids"]["builder_server"] == sim.builder_id


def test_builder_toggle_endpoint(cloud: Cloud) -> None:
    url = cloud.sim.url + "/_sim/builder"
    assert requests.get(url, timeout=5).json() == {"server_id": cloud.sim.builder_id, "fail_health": False}
    assert requests.post(url, json={"fail_health": True}, timeout=5).json()["fail_health"] is True
    image = cloud.image("GET", f"/v2/images/{cloud.snapshot(cloud.sim.builder_id, 'bad')}").json()
    assert image["sim_fail_health"] == "true"
    assert requests.post(url, json={"fail_health": "yes"}, timeout=5).status_code == 400
    requests.post(url, json={"fail_health": False}, timeout=5)
    image = cloud.image("GET", f"/v2/images/{cloud.snapshot(cloud.sim.builder_id, 'good')}").json()
    assert "sim_fail_health" not in image


# ----------------------------------------------------------------------------- app processes


def test_apps_serve_version_and_real_health_checks(openstack_sim_apps: Simulator) -> None:
    sim = openstack_sim_apps
    cloud = Cloud(sim)
    builder_proc = requests.get(sim.url + "/_sim/state", timeout=5).json()["processes"]
    assert [p["server_id"] for p in builder_proc] == [sim.builder_id]
    image_id = cloud.snapshot(sim.builder_id, "web-2.0.0", {"releasectl_version": "2.0.0", "releasectl_port": "8080"})
    server = cloud.wait_server(cloud.create_server("web-2.0.0-a", image_id))
    address = server["addresses"]["private"][0]["addr"]
    home = requests.get(f"http://{address}:8080/", timeout=5)
    assert home.status_code == 200 and home.json()["version"] == "2.0.0"
    assert requests.get(f"http://{address}:8080/healthz", timeout=5).status_code == 200
    member = cloud.add_member(address, 8080)
    wait_for(lambda: cloud.member_status(member) == "ONLINE", what="member ONLINE by real health checks")
    state = requests.get(sim.url + "/_sim/state", timeout=5).json()
    assert [m["last_check"]["status"] for m in state["members"]] == [200]


def test_fail_health_snapshot_boots_an_app_whose_healthz_fails(openstack_sim_apps: Simulator) -> None:
    sim = openstack_sim_apps
    cloud = Cloud(sim)
    sim.set_builder_fail_health(True)
    image_id = cloud.snapshot(sim.builder_id, "bad", {"releasectl_version": "6.6.6"})
    server = cloud.wait_server(cloud.create_server("bad-a", image_id))
    address = server["addresses"]["private"][0]["addr"]
    assert requests.get(f"http://{address}:8000/", timeout=5).json()["version"] == "6.6.6"
    assert requests.get(f"http://{address}:8000/healthz", timeout=5).status_code == 500
    member = cloud.add_member(address, 8000)
    wait_for(lambda: cloud.member_status(member) == "ERROR", what="member ERROR by real health checks")


def test_app_processes_stop_on_delete_and_on_simulator_stop(openstack_sim_apps: Simulator) -> None:
    sim = openstack_sim_apps
    cloud = Cloud(sim)
    keep, drop = cloud.create_server("keep"), cloud.create_server("drop")
    cloud.wait_server(keep)
    cloud.wait_server(drop)
    procs = {p["server_id"]: p["pid"] for p in sim.state()["processes"]}
    assert set(procs) == {sim.builder_id, keep, drop} and all(pid_alive(pid) for pid in procs.values())
    assert cloud.compute("DELETE", f"/servers/{drop}").status_code == 204
    cloud.wait_gone(drop)
    assert not pid_alive(procs[drop])
    assert {p["server_id"] for p in sim.state()["processes"]} == {sim.builder_id, keep}
    assert sim.state()["orphans"]["processes"] == []
    sim.stop()
    assert not any(pid_alive(pid) for pid in procs.values())


# ----------------------------------------------------------------------------- by hand and the official CLI


def test_module_runs_by_hand_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tests.openstack_sim", "--port", "0", "--build-delay", "0.1"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # one JSON line once it serves
        info = json.loads(line)
        assert requests.get(info["auth_url"], timeout=5).status_code == 200
        assert info["application_credential"]["id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
            proc.stdout.close()
            proc.stderr.close()


def openstack_cli() -> str | None:
    return os.environ.get("OPENSTACK_CLI") or shutil.which("openstack")


@pytest.mark.skipif(openstack_cli() is None, reason="the official openstack CLI is not installed "
                                                     "(set OPENSTACK_CLI to its path)")
def test_official_openstack_cli_lists_servers_images_and_members(openstack_sim: Simulator) -> None:
    sim = openstack_sim
    cloud = Cloud(sim)
    cloud.add_member("127.0.1.1", 8000, name="builder-member")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(sim.os_environ())

    def run(*args: str) -> Any:
        out = subprocess.run([openstack_cli(), *args, "-f", "json"], env=env, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    servers = run("server", "list")
    assert [(s["Name"], s["Status"], s["Flavor"]) for s in servers] == [("demo-builder", "ACTIVE", "m1.small")]
    assert [i["Name"] for i in run("image", "list")] == [sim.options.base_image_name]
    members = run("loadbalancer", "member", "list", "demo-pool")
    assert [(m["name"], m["address"], m["operating_status"]) for m in members] == [
        ("builder-member", "127.0.1.1", "ONLINE")]
    assert sim.request_count("load-balancer", "GET", "/v2.0/lbaas/pools/{id}/members") == 1
