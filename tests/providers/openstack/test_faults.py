"""Under injected failures: 10% random 5xx on every service, and a create that succeeded but answered 500."""

from __future__ import annotations

import pytest

from releasectl.errors import ProviderError
from releasectl.providers.base import Label, Role, ServerSpec, ServerStatus
from releasectl.providers.openstack.http import RetryPolicy, Transport
from releasectl.wait import wait_for


def spec(image_id: str, name: str) -> ServerSpec:
    return ServerSpec(name=name, image_id=image_id, app="demo", version="1.0.0", env="production",
                      role=Role.CANDIDATE, release_id="r1")


def active(provider, server_id):
    return wait_for(lambda: (s := provider.get_server(server_id)) and s.status is ServerStatus.ACTIVE and s,
                    timeout=10, interval=0.02)


def test_no_duplicate_server_when_create_answers_500(provider, openstack_sim) -> None:
    image = provider.bake_image("1.0.0", "demo-1.0.0", {})
    openstack_sim.set_faults(next_create_500=True)
    server = provider.create_server(spec(image.id, "demo-1.0.0-dup"))
    named = [s for s in openstack_sim.state()["servers"] if s["name"] == "demo-1.0.0-dup"]
    assert len(named) == 1 and named[0]["id"] == server.id
    assert openstack_sim.request_count("compute", "POST", "/v2.1/servers") == 1
    assert openstack_sim.faults()["injected"]["next_create_500"] == 1


@pytest.mark.parametrize("seed", [7, 11])
def test_a_whole_cycle_under_ten_percent_5xx(provider, openstack_sim, seed) -> None:
    openstack_sim.set_faults(error_rate=0.1, seed=seed, error_statuses=[500, 502, 503])
    image = provider.bake_image("1.0.0", "demo-1.0.0", {Label.PORT: "8000"})
    names = [f"demo-1.0.0-{i}" for i in range(4)]
    servers = [active(provider, provider.create_server(spec(image.id, n)).id) for n in names]
    provider.ensure_pool()
    members = [provider.add_member(s) for s in servers]
    provider.set_weights({m.id: 50 for m in members})
    provider.update_server_labels(servers[0].id, {Label.ROLE: Role.STABLE.value})
    provider.update_image(image.id, labels={"role_production": "live"}, protected=True)
    provider.set_weights({members[0].id: 0})
    provider.remove_member(members[0].id)
    provider.delete_server(servers[0].id)
    injected = openstack_sim.faults()["injected"].get("random_error", 0)
    openstack_sim.clear_faults()
    assert injected > 0
    state = openstack_sim.state()
    mine = [s for s in state["servers"] if s["name"].startswith("demo-1.0.0-")]
    assert sorted(s["name"] for s in mine) == names[1:]  # no duplicates, the deleted one is gone
    assert len([i for i in state["images"] if i["properties"].get("releasectl_app") == "demo"]) == 1
    weights = sorted(m.weight for m in provider.list_members())
    assert weights == [50, 50, 50]
    assert provider.get_image(image.id).protected


def test_retries_are_bounded(openstack_sim, make_provider) -> None:
    provider = make_provider()
    provider.list_servers()
    openstack_sim.set_faults(error_rate=1.0, error_services=["compute"], error_statuses=[503])
    openstack_sim.reset_requests()
    with pytest.raises(ProviderError) as err:
        provider.list_servers()
    assert "HTTP 503" in str(err.value) and "request id req-" in str(err.value)
    assert openstack_sim.request_count("compute", "GET", "/v2.1/servers/detail") == provider.transport.policy.attempts


def test_post_is_not_retried_blindly(openstack_sim, make_provider) -> None:
    provider = make_provider()
    image = provider.bake_image("1.0.0", "demo-1.0.0", {})
    provider.nova.flavor_id("m1.small")  # cached for the run, like the microversion
    openstack_sim.set_faults(error_rate=1.0, error_services=["compute"], error_statuses=[503])
    openstack_sim.reset_requests()
    with pytest.raises(ProviderError):
        provider.create_server(spec(image.id, "demo-1.0.0-never"))
    posts = openstack_sim.request_count("compute", "POST", "/v2.1/servers")
    looks = openstack_sim.request_count("compute", "GET", "/v2.1/servers/detail")
    # one POST; its 503 is ambiguous, so the provider looks for the server by name and marker before any
    # second POST, and when it cannot even look, it stops rather than risk a duplicate
    assert posts == 1 and looks == provider.transport.policy.attempts


def test_429_honours_retry_after() -> None:
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hits.append(time.monotonic())
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if len(hits) == 1:
                body = b'{"overLimit": {"code": 429, "message": "slow down", "retryAfter": "1"}}'
                self.send_response(429)
            else:
                body = b'{"ok": true}'
                self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        transport = Transport(policy=RetryPolicy(base=0.01, cap=0.02))
        resp = transport.request("compute", "POST", f"http://127.0.0.1:{server.server_address[1]}/servers", json={})
        assert resp.status_code == 200
        assert hits[1] - hits[0] >= 0.95  # Nova's retryAfter body field, since there is no header
    finally:
        server.shutdown()
        server.server_close()
