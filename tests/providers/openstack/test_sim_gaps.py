"""Where the simulator used to differ from the real services (issue 13), each as one test that runs against
both: the simulator ("sim") and, when configured, the real Keystone, Octavia and Glance ("real", from
`tests.real_services`). A difference is a failing test, not a comment.

Every call goes through an openstack provider's own service clients (its token, its endpoints), so the same
test body speaks to either backend. Octavia writes are made on a scratch pool of the backend's load balancer,
deleted at teardown, so the environment's own pool and monitor stay as they were.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from releasectl.providers.openstack import OpenStackProvider
from releasectl.providers.openstack.http import EVERY_ERROR

pytestmark = pytest.mark.slow


def _real_provider(tmp_path: Path) -> OpenStackProvider | None:
    """The real services' provider, or a skip (a failure when they are required)."""
    try:
        import tests.real_services as real
    except ImportError:
        if os.environ.get("RELEASECTL_REQUIRE_REAL_SERVICES") == "1":
            pytest.fail("real services are required but tests.real_services is missing")
        pytest.skip("tests.real_services is not available")
    if real.load() is None:
        if real.required():
            pytest.fail("real services are required but not configured (RELEASECTL_REAL_SERVICES_ENV)")
        pytest.skip("real services are not configured")
    provider = real.make_provider(tmp_path, "gaps", "test")
    if provider is None:
        if real.required():
            pytest.fail("real services are required but make_provider returned None")
        pytest.skip("real services are not configured")
    return provider


@dataclass
class Backend:
    """One backend, spoken to through a provider's clients; answers are returned, never raised."""

    kind: str
    provider: OpenStackProvider
    _undo: list[Callable[[], Any]] = field(default_factory=list)

    def settle(self) -> None:
        self.provider.pool.wait_active("between gap tests")

    def lb(self, method: str, path: str, body: Any = None) -> requests.Response:
        """An Octavia call with the load balancer ACTIVE before and (after a write that worked) after it."""
        if method != "GET":
            self.settle()
        resp = self.provider.octavia.call(method, path, json=body, allow=EVERY_ERROR)
        if method != "GET" and resp.status_code < 300:
            self.settle()
        return resp

    def scratch_pool(self) -> str:
        """A new pool on the load balancer, without listener or monitor; deleted at teardown."""
        body = {"pool": {"loadbalancer_id": self.provider.pool.lb_id, "protocol": "HTTP",
                         "lb_algorithm": "ROUND_ROBIN", "name": f"gaps-{uuid.uuid4().hex[:8]}"}}
        resp = self.lb("POST", "/pools", body)
        assert resp.status_code == 201, resp.text
        pool_id = resp.json()["pool"]["id"]
        self._undo.append(lambda: self.lb("DELETE", f"/pools/{pool_id}"))
        return pool_id

    def member(self, pool_id: str, **fields: Any) -> requests.Response:
        return self.lb("POST", f"/pools/{pool_id}/members", {"member": {"protocol_port": 8000, **fields}})

    def monitor(self, pool_id: str, **fields: Any) -> requests.Response:
        body = {"pool_id": pool_id, "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2, **fields}
        return self.lb("POST", "/healthmonitors", {"healthmonitor": body})

    def close(self) -> None:
        for undo in reversed(self._undo):
            try:
                undo()
            except Exception as exc:  # noqa: BLE001 - teardown must try every step
                print(f"gap test teardown: {exc}")
        self.provider.close()


@pytest.fixture(params=["sim", "real"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sim":
        provider = request.getfixturevalue("make_provider")()
    else:
        provider = _real_provider(tmp_path)
    b = Backend(request.param, provider)
    b.settle()
    yield b
    b.close()


def _fault(resp: requests.Response) -> str:
    data = resp.json()
    return str(data.get("faultstring") or data.get("description") or data)


# ---- Octavia: what the real API rejects ------------------------------------------------------------------


def test_monitor_url_path_with_a_space_is_400(backend: Backend) -> None:
    resp = backend.monitor(backend.scratch_pool(), url_path="/health z")
    assert resp.status_code == 400, resp.text
    assert "url_path" in _fault(resp)


@pytest.mark.parametrize("codes", ["99", "200-", "abc", "2000"])
def test_monitor_expected_codes_are_validated(backend: Backend, codes: str) -> None:
    resp = backend.monitor(backend.scratch_pool(), url_path="/healthz", expected_codes=codes)
    assert resp.status_code == 400, resp.text


def test_tcp_monitor_with_a_url_path_is_400(backend: Backend) -> None:
    resp = backend.monitor(backend.scratch_pool(), type="TCP", url_path="/healthz")
    assert resp.status_code == 400, resp.text


def test_names_longer_than_255_are_400(backend: Backend) -> None:
    pool = backend.scratch_pool()
    assert backend.member(pool, address="127.0.1.80", name="m" * 256).status_code == 400
    assert backend.monitor(pool, url_path="/healthz", name="h" * 256).status_code == 400
    ok = backend.member(pool, address="127.0.1.80", name="m" * 255)
    assert ok.status_code == 201, ok.text


def test_member_on_the_metadata_address_is_400(backend: Backend) -> None:
    resp = backend.member(backend.scratch_pool(), address="169.254.169.254")
    assert resp.status_code == 400, resp.text
    assert "169.254.169.254" in _fault(resp)


def test_monitor_delay_is_stored_as_an_integer(backend: Backend) -> None:
    pool = backend.scratch_pool()
    resp = backend.monitor(pool, url_path="/healthz", delay=0.5, timeout=0.5)
    assert resp.status_code == 201, resp.text
    shown = backend.lb("GET", f"/healthmonitors/{resp.json()['healthmonitor']['id']}").json()["healthmonitor"]
    assert (shown["delay"], shown["timeout"]) == (0, 0) and isinstance(shown["delay"], int)


def test_duplicate_entries_in_one_batch_are_409(backend: Backend) -> None:
    pool = backend.scratch_pool()
    entry = {"address": "127.0.1.81", "protocol_port": 8000}
    resp = backend.lb("PUT", f"/pools/{pool}/members", {"members": [entry, {**entry, "weight": 3}]})
    assert resp.status_code == 409, resp.text


# ---- Octavia: different answers -------------------------------------------------------------------------


def test_ipv6_member_address_is_stored_as_sent(backend: Backend) -> None:
    sent = "2001:db8:0:0:0:0:0:1"
    resp = backend.member(backend.scratch_pool(), address=sent)
    assert resp.status_code == 201, resp.text
    assert resp.json()["member"]["address"] == sent


def test_member_without_subnet_keeps_it_null(backend: Backend) -> None:
    pool = backend.scratch_pool()
    resp = backend.member(pool, address="127.0.1.82")
    assert resp.status_code == 201, resp.text
    member_id = resp.json()["member"]["id"]
    assert backend.lb("GET", f"/pools/{pool}/members/{member_id}").json()["member"]["subnet_id"] is None


def test_single_member_put_is_200(backend: Backend) -> None:
    pool = backend.scratch_pool()
    member_id = backend.member(pool, address="127.0.1.83").json()["member"]["id"]
    resp = backend.lb("PUT", f"/pools/{pool}/members/{member_id}", {"member": {"weight": 7}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["member"]["weight"] == 7


def test_octavia_404_body_is_code_title_description(backend: Backend) -> None:
    resp = backend.lb("GET", "/no-such-collection")
    assert resp.status_code == 404
    body = resp.json()
    assert {"code", "title", "description"} <= set(body) and body["code"] == 404


# ---- Keystone and Glance --------------------------------------------------------------------------------


def test_unknown_application_credential_id_is_404(backend: Backend) -> None:
    creds = backend.provider.creds
    body = {"auth": {"identity": {"methods": ["application_credential"],
                                  "application_credential": {"id": uuid.uuid4().hex, "secret": "nope"}}}}
    resp = backend.provider.transport.request("identity", "POST", creds.identity_url + "/auth/tokens", json=body,
                                              allow=EVERY_ERROR)
    assert resp.status_code == 404, resp.text


def test_glance_default_visibility_is_shared(backend: Backend) -> None:
    glance = backend.provider.glance
    resp = glance.call("POST", "/v2/images", json={"name": f"gaps-{uuid.uuid4().hex[:8]}", "disk_format": "raw",
                                                     "container_format": "bare"}, allow=EVERY_ERROR)
    assert resp.status_code == 201, resp.text
    image = resp.json()
    backend._undo.append(lambda: glance.delete(image["id"]))
    assert image["visibility"] == "shared"
