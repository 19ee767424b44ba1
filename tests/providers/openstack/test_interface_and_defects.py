"""The newer interface methods on the simulator (create/delete records, lb_state, member ownership) and the
provider defects of issue 13 (Octavia's `description`, catalog refresh when an endpoint moved, the sha512
checksum of a default Glance, credentials refused by Keystone as exit-2 errors). The tests that start the
simulator are marked slow; the pure ones (parsing, paging, state tables) stay in the fast tier."""

from __future__ import annotations

import dataclasses
import json
import socket

import pytest
import requests

from releasectl.cli.exitcodes import ExitCode, classify
from releasectl.errors import CredentialsError
from releasectl.providers.base import Label, LBStatus, Role, ServerSpec, ServerStatus
from releasectl.providers.openstack.http import error_message, next_page
from releasectl.providers.openstack.pool import member_name, owner_of, owner_tags
from releasectl.wait import wait_for

from .conftest import write_clouds

TOKENS = "/v3/auth/tokens"


def _server(provider, name: str, image_id: str):
    s = provider.create_server(ServerSpec(name=name, image_id=image_id, app=provider.ctx.app, version="1.0.0",
                                          env=provider.ctx.env, role=Role.CANDIDATE, release_id="r1"))
    return wait_for(lambda: (x := provider.get_server(s.id)) and x.status is ServerStatus.ACTIVE and x,
                    timeout=10, interval=0.02, what="server active")


# ---- records: create-only and delete -------------------------------------------------------------------


@pytest.mark.slow  # starts the simulator
def test_create_record_is_create_only_and_delete_is_idempotent(make_provider, swift) -> None:
    a, b = make_provider(state="a"), make_provider(state="b")
    assert a.create_record("intents/0001-abort", '{"id": "0001"}') is True
    assert b.create_record("intents/0001-abort", '{"id": "other"}') is False  # If-None-Match: * -> 412
    assert b.read_record("intents/0001-abort") == '{"id": "0001"}'
    assert b.list_records("intents/") == ["intents/0001-abort"]
    a.delete_record("intents/0001-abort")
    a.delete_record("intents/0001-abort")  # a 404 is success
    assert b.read_record("intents/0001-abort") is None
    assert b.create_record("intents/0001-abort", "again") is True


@pytest.mark.slow  # starts the simulator
def test_create_record_recognises_its_own_object_after_a_lost_answer(provider, swift) -> None:
    provider.write_record("warm", "x")  # the container exists
    swift.lose_put_answers = 1  # stored, answered 503: the replay gets 412 over our own document
    assert provider.create_record("intents/0002-pause", '{"id": "0002"}') is True
    assert provider.read_record("intents/0002-pause") == '{"id": "0002"}'


# ---- lb_state ------------------------------------------------------------------------------------------


@pytest.mark.slow  # starts the simulator
def test_lb_state_up_busy_absent(make_provider, openstack_sim) -> None:
    provider = make_provider()
    state = provider.lb_state()
    assert state.status is LBStatus.UP and "ACTIVE" in state.detail
    provider.octavia.call("DELETE", f"/healthmonitors/{openstack_sim.healthmonitor_id}")  # a write: PENDING_UPDATE
    busy = provider.lb_state()
    assert busy.status is LBStatus.BUSY and "PENDING_UPDATE" in busy.detail
    assert make_provider(pool="nope", state="s2").lb_state().status is LBStatus.ABSENT
    assert make_provider(pool=None, state="s3").lb_state().status is LBStatus.ABSENT


def test_lb_state_of_a_pool_without_listener_is_up_but_says_it_serves_nothing() -> None:
    from releasectl.providers.openstack.status import lb_state

    lb = {"id": "lb1", "name": "web-lb", "provisioning_status": "ACTIVE", "operating_status": "ONLINE"}
    state = lb_state(lb, {"id": "p1", "listeners": []}, "web-pool")
    assert state.status is LBStatus.UP and "no listener" in state.detail and "serves no traffic" in state.detail
    assert lb_state({**lb, "provisioning_status": "ERROR"}, {"listeners": [{"id": "l"}]}, "p").status is LBStatus.ERROR
    assert lb_state({**lb, "admin_state_up": False}, {"listeners": [{"id": "l"}]}, "p").status is LBStatus.DOWN
    assert lb_state({**lb, "provisioning_status": "PENDING_DELETE"}, {"listeners": []}, "p").status is LBStatus.BUSY
    assert lb_state(None, {"listeners": []}, "p").status is LBStatus.ABSENT


# ---- member ownership ----------------------------------------------------------------------------------


@pytest.mark.slow  # starts the simulator
def test_members_carry_ownership_tags_and_foreign_members_have_none(make_provider, openstack_sim) -> None:
    demo, shop = make_provider(state="a"), make_provider(app="shop", state="b")
    demo.ensure_pool()
    image = demo.bake_image("1.0.0", "demo-1.0.0", {Label.PORT: "8000"})
    shop_image = shop.bake_image("1.0.0", "shop-1.0.0", {Label.PORT: "8000"})
    mine = demo.add_member(_server(demo, "demo-1.0.0-0", image.id))
    theirs = shop.add_member(_server(shop, "shop-1.0.0-0", shop_image.id))
    raw = {m["id"]: m for m in openstack_sim.state()["members"]}
    assert set(owner_tags("demo", "production")) <= set(raw[mine.id]["tags"])
    assert raw[mine.id]["name"] == member_name("demo", "production", "demo-1.0.0-0")
    # an operator's own member, without our tags
    pool_id = demo.pool.id
    demo.pool.write("operator member", lambda: demo.octavia.call(
        "POST", f"/pools/{pool_id}/members", json={"member": {"address": "127.0.1.200", "protocol_port": 9000, "name": "ops"}}))
    members = {m.id: m for m in demo.list_members()}
    assert len(members) == 3
    assert members[mine.id].owned_by("demo", "production") and not members[mine.id].owned_by("shop", "production")
    assert (members[theirs.id].app, members[theirs.id].env) == ("shop", "production")
    ops = next(m for m in members.values() if m.name == "ops")
    assert (ops.app, ops.env) == (None, None)


def test_owner_from_tags_else_from_the_name() -> None:
    assert owner_of({"tags": owner_tags("a", "b"), "name": "whatever"}) == ("a", "b")
    assert owner_of({"tags": [], "name": "releasectl/web/prod/web-1.0.0-0"}) == ("web", "prod")
    assert owner_of({"tags": ["releasectl_app=web"], "name": "web-1"}) == (None, None)  # half a claim is none
    assert owner_of({"name": "releasectl/"}) == (None, None)


@pytest.mark.slow  # starts the simulator
def test_adopting_an_untagged_member_on_our_address_claims_it(provider, openstack_sim) -> None:
    provider.ensure_pool()
    image = provider.bake_image("1.0.0", "demo-1.0.0", {Label.PORT: "8000"})
    server = _server(provider, "demo-1.0.0-0", image.id)
    pool_id = provider.pool.id
    provider.pool.write("untagged member", lambda: provider.octavia.call(
        "POST", f"/pools/{pool_id}/members", json={"member": {"address": server.address, "protocol_port": 8000, "weight": 0}}))
    member = provider.add_member(server)
    assert member.owned_by("demo", "production")


# ---- defects -------------------------------------------------------------------------------------------


def _response(status: int, body: dict) -> requests.Response:
    resp = requests.Response()
    resp.status_code, resp._content, resp.reason = status, json.dumps(body).encode(), "Not Found"
    return resp


def test_error_message_reads_octavias_description() -> None:
    body = {"code": 404, "title": "Not Found", "description": "Pool abc could not be found."}
    assert error_message(_response(404, body)) == "Pool abc could not be found."
    assert error_message(_response(400, {"faultcode": "Client", "faultstring": "bad", "debuginfo": None})) == "bad"


def test_next_page_in_each_services_way() -> None:
    nova = {"servers": [{"id": "a"}], "servers_links": [{"rel": "next", "href": "http://internal:8774/v2.1/servers/detail?limit=1&marker=a"}]}
    assert next_page(nova, "servers", nova["servers"], "/servers/detail", [("limit", 1)]) == ("/servers/detail", [("limit", "1"), ("marker", "a")])
    assert next_page({"images": [{}], "next": "/v2/images?marker=x"}, "images", [{}], "/v2/images", []) == ("/v2/images?marker=x", [])
    assert next_page({"members": [{}], "members_links": []}, "members", [{}], "/p", []) is None
    swift = [{"name": "a"}, {"name": "b"}]
    assert next_page(swift, None, swift, "/c", [("prefix", "x/"), ("limit", 2)]) == ("/c", [("prefix", "x/"), ("limit", 2), ("marker", "b")])
    assert next_page(swift[:1], None, swift[:1], "/c", [("limit", 2)]) is None


@pytest.mark.slow  # starts the simulator
def test_checksum_is_glances_sha512_multihash(provider) -> None:
    image = provider.bake_image("1.0.0", "demo-1.0.0", {})
    algo, _, digest = (image.checksum or "").partition(":")
    assert algo == "sha512" and len(digest) == 128


def _stale_catalog(provider, service_type: str, url: str) -> None:
    path = provider.auth.cache_path()
    cached = json.loads(path.read_text())
    for entry in cached["catalog"]:
        if entry["type"] == service_type:
            for ep in entry["endpoints"]:
                ep["url"] = url
    path.write_text(json.dumps(cached))


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # starts the simulator
@pytest.mark.parametrize("where", ["refused", "404"])
def test_a_moved_endpoint_refreshes_the_catalog_and_replays(make_provider, openstack_sim, where) -> None:
    first = make_provider()
    first.list_servers()
    assert openstack_sim.request_count("identity", "POST", TOKENS) == 1
    stale = f"http://127.0.0.1:{_dead_port()}/compute/v2.1" if where == "refused" else f"{openstack_sim.url}/compute-old/v2.1"
    _stale_catalog(first, "compute", stale)
    second = make_provider()  # a later run finds the cached token and its stale catalog
    assert second.list_servers() == []
    assert openstack_sim.request_count("identity", "POST", TOKENS) == 2  # one refresh
    assert second.nova.url == f"{openstack_sim.url}/compute/v2.1"
    assert second.get_server("00000000-0000-0000-0000-000000000000") is None  # a real 404 stays a 404
    assert openstack_sim.request_count("identity", "POST", TOKENS) == 2


@pytest.mark.slow  # starts the simulator
@pytest.mark.parametrize("change", ["password", "app_cred_id"])
def test_credentials_refused_by_keystone_are_exit_2(make_provider, openstack_sim, tmp_path, change) -> None:
    auth_type = "password" if change == "password" else "v3applicationcredential"
    clouds = write_clouds(openstack_sim, tmp_path / "bad.yaml", auth_type=auth_type)
    doc = __import__("yaml").safe_load(clouds.read_text())
    if change == "password":
        doc["clouds"]["sim"]["auth"]["password"] = "wrong-pw-123"
    else:
        doc["clouds"]["sim"]["auth"]["application_credential_id"] = "0" * 32
    clouds.write_text(__import__("yaml").safe_dump(doc))
    with pytest.raises(CredentialsError) as err:
        make_provider(clouds=clouds, auth_type=auth_type).list_servers()
    assert classify(err.value)[0] is ExitCode.USAGE
    assert ("401" if change == "password" else "404") in str(err.value) and "wrong-pw-123" not in str(err.value)


@pytest.mark.slow  # starts the simulator
def test_a_health_path_octavia_would_refuse_is_a_usage_error_before_any_write(make_provider, openstack_sim) -> None:
    from releasectl.errors import UsageError
    from releasectl.providers.base import HealthCheck

    first = make_provider()
    first.octavia.call("DELETE", f"/healthmonitors/{openstack_sim.healthmonitor_id}")
    first.pool.wait_active()
    provider = make_provider(create_monitor=True, state="s2")
    provider.ctx = dataclasses.replace(provider.ctx, health=HealthCheck(path="/health z"))
    provider.__dict__.pop("pool", None)
    with pytest.raises(UsageError, match="health.path"):
        provider.ensure_pool()
    assert openstack_sim.request_count("load-balancer", "POST", "/v2/lbaas/healthmonitors") == 0
