"""The simulator's grown APIs (issue 11): an empty (``bare``) project, Neutron resources, keypairs,
Octavia load balancers and listeners with their transitions, Designate, and the held-answer fault."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests

from tests.openstack_sim import Simulator
from tests.openstack_sim.fixtures import openstack_sim, openstack_sim_bare, openstack_sim_factory  # noqa: F401
from tests.test_openstack_sim import Cloud, wait_for

pytestmark = pytest.mark.slow

PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq1kV0Yw0zQ0bWc8kqj9n8Zr2ZQ4m2nqkJm0f7mZr1a "
              "deploy@example")


class EnvCloud(Cloud):
    ROOTS = {**Cloud.ROOTS, "dns": "/dns/v2"}

    def net(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.call("network", method, "/v2.0" + path, **kw)

    def dns(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.call("dns", method, path, **kw)

    def created(self, resp: requests.Response, key: str) -> dict:
        assert resp.status_code in (201, 202), resp.text
        body = resp.json()
        return body[key] if key else body

    def lb_status(self, kind: str, ident: str) -> str | None:
        resp = self.lb("GET", f"/{kind}/{ident}")
        return None if resp.status_code == 404 else resp.json()[kind[:-1]]["provisioning_status"]


def test_bare_simulator_is_an_empty_project(openstack_sim_bare: Simulator) -> None:
    cloud = EnvCloud(openstack_sim_bare)
    nets = cloud.net("GET", "/networks").json()["networks"]
    assert [(n["name"], n["router:external"]) for n in nets] == [("external", True)]
    assert [g["name"] for g in cloud.net("GET", "/security-groups").json()["security_groups"]] == ["default"]
    assert cloud.compute("GET", "/servers").json()["servers"] == []
    assert cloud.lb("GET", "/loadbalancers").json()["loadbalancers"] == []
    assert [f["name"] for f in cloud.compute("GET", "/flavors").json()["flavors"]] == ["m1.small"]
    images = cloud.image("GET", "/v2/images").json()["images"]
    assert [i["name"] for i in images] == [openstack_sim_bare.options.base_image_name]
    assert cloud.dns("GET", "/zones").json()["zones"] == []
    catalog = {c["type"] for c in requests.post(
        openstack_sim_bare.auth_url + "/auth/tokens", timeout=10,
        json={"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "demo", "domain": {"name": "Default"}, "password": "secret"}}},
            "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}}).json()["token"]["catalog"]}
    assert "dns" in catalog


def test_networks_subnets_groups_and_floating_ips_with_tags(openstack_sim_bare: Simulator) -> None:
    cloud = EnvCloud(openstack_sim_bare)
    tags = ["releasectl", "releasectl-app=web", "releasectl-env=prod"]
    net = cloud.created(cloud.net("POST", "/networks", json={"network": {"name": "web-prod", "tags": tags}}),
                        "network")
    assert net["status"] == "ACTIVE" and net["tags"] == tags
    bad = cloud.net("POST", "/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.0.0.1/24",
                                                         "ip_version": 4}})
    assert bad.status_code == 400 and "NeutronError" in bad.json()
    subnet = cloud.created(cloud.net("POST", "/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "10.20.0.0/24", "ip_version": 4, "name": "web-prod", "tags": tags}}),
        "subnet")
    assert subnet["gateway_ip"] == "10.20.0.1" and subnet["allocation_pools"][0]["start"] == "10.20.0.2"
    assert cloud.net("GET", f"/networks/{net['id']}").json()["network"]["subnets"] == [subnet["id"]]
    # tag filters: AND over tags, any over tags-any, negations
    assert [n["id"] for n in cloud.net("GET", "/networks?tags=releasectl,releasectl-env=prod").json()["networks"]] \
        == [net["id"]]
    assert cloud.net("GET", "/networks?tags=releasectl,releasectl-env=dev").json()["networks"] == []
    assert len(cloud.net("GET", "/networks?not-tags=releasectl").json()["networks"]) == 1  # external
    assert cloud.net("PUT", f"/networks/{net['id']}/tags", json={"tags": ["a"]}).json() == {"tags": ["a"]}
    assert cloud.net("PUT", f"/networks/{net['id']}/tags/b").status_code == 201
    assert cloud.net("GET", f"/networks/{net['id']}").json()["network"]["tags"] == ["a", "b"]

    group = cloud.created(cloud.net("POST", "/security-groups", json={"security_group": {
        "name": "web-prod", "tags": tags}}), "security_group")
    assert {(r["direction"], r["ethertype"]) for r in group["security_group_rules"]} == {
        ("egress", "IPv4"), ("egress", "IPv6")}
    rule = {"security_group_id": group["id"], "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
            "port_range_min": 8000, "port_range_max": 8000, "remote_ip_prefix": "10.20.0.0/24"}
    made = cloud.created(cloud.net("POST", "/security-group-rules", json={"security_group_rule": rule}),
                         "security_group_rule")
    dup = cloud.net("POST", "/security-group-rules", json={"security_group_rule": rule})
    assert dup.status_code == 409 and dup.json()["NeutronError"]["type"] == "SecurityGroupRuleExists"
    wrong = cloud.net("POST", "/security-group-rules", json={"security_group_rule": {
        **rule, "remote_ip_prefix": "::/0"}})
    assert wrong.status_code == 400
    assert cloud.net("DELETE", f"/security-group-rules/{made['id']}").status_code == 204

    fip = cloud.created(cloud.net("POST", "/floatingips", json={"floatingip": {
        "floating_network_id": openstack_sim_bare.external_network_id, "tags": tags}}), "floatingip")
    assert fip["status"] == "DOWN" and fip["port_id"] is None and fip["tags"] == tags
    not_external = cloud.net("POST", "/floatingips", json={"floatingip": {"floating_network_id": net["id"]}})
    assert not_external.status_code == 400

    lb = cloud.created(cloud.lb("POST", "/loadbalancers", json={"loadbalancer": {
        "name": "web-prod", "vip_subnet_id": subnet["id"], "tags": tags}}), "loadbalancer")
    vip_port = cloud.net("GET", f"/ports?device_id={lb['id']}").json()["ports"]
    assert [p["id"] for p in vip_port] == [lb["vip_port_id"]]
    moved = cloud.net("PUT", f"/floatingips/{fip['id']}", json={"floatingip": {"port_id": lb["vip_port_id"]}})
    assert moved.json()["floatingip"]["fixed_ip_address"] == lb["vip_address"]
    assert moved.json()["floatingip"]["status"] == "ACTIVE"
    # a network or subnet with ports, and a VIP port, cannot go
    in_use = cloud.net("DELETE", f"/networks/{net['id']}")
    assert in_use.status_code == 409 and in_use.json()["NeutronError"]["type"] == "NetworkInUse"
    assert cloud.net("DELETE", f"/subnets/{subnet['id']}").status_code == 409
    assert cloud.net("DELETE", f"/ports/{lb['vip_port_id']}").status_code == 409
    wait_for(lambda: cloud.lb_status("loadbalancers", lb["id"]) == "ACTIVE", what="LB ACTIVE")
    assert cloud.lb("DELETE", f"/loadbalancers/{lb['id']}").status_code == 204
    wait_for(lambda: cloud.lb_status("loadbalancers", lb["id"]) is None, what="LB gone")
    assert cloud.net("GET", f"/floatingips/{fip['id']}").json()["floatingip"]["port_id"] is None
    assert cloud.net("DELETE", f"/floatingips/{fip['id']}").status_code == 204
    assert cloud.net("DELETE", f"/security-groups/{group['id']}").status_code == 204
    assert cloud.net("DELETE", f"/subnets/{subnet['id']}").status_code == 204
    assert cloud.net("DELETE", f"/networks/{net['id']}").status_code == 204
    assert cloud.net("GET", f"/networks/{net['id']}").status_code == 404
    state = openstack_sim_bare.state()
    assert [n["name"] for n in state["networks"]] == ["external"] and state["ports"] == []


def test_server_ports_follow_nova(openstack_sim: Simulator) -> None:
    cloud = EnvCloud(openstack_sim)
    server_id = cloud.create_server("web-1")
    port = wait_for(lambda: cloud.net("GET", f"/ports?device_id={server_id}").json()["ports"], what="port")
    assert port[0]["device_owner"] == "compute:nova" and port[0]["network_id"] == openstack_sim.network_id
    assert cloud.net("DELETE", f"/ports/{port[0]['id']}").status_code == 409
    assert cloud.compute("DELETE", f"/servers/{server_id}").status_code == 204
    wait_for(lambda: not cloud.net("GET", f"/ports?device_id={server_id}").json()["ports"], what="port gone")


def test_keypairs_follow_nova_microversions(openstack_sim_bare: Simulator) -> None:
    cloud = EnvCloud(openstack_sim_bare)
    made = cloud.compute("POST", "/os-keypairs", json={"keypair": {"name": "web-prod", "public_key": PUBLIC_KEY}})
    assert made.status_code == 201 and made.json()["keypair"]["type"] == "ssh"
    assert re_fingerprint(made.json()["keypair"]["fingerprint"])
    assert cloud.compute("POST", "/os-keypairs", json={"keypair": {"name": "web-prod",
                                                                   "public_key": PUBLIC_KEY}}).status_code == 409
    bad = cloud.compute("POST", "/os-keypairs", json={"keypair": {"name": "x", "public_key": "not a key"}})
    assert bad.status_code == 400 and "badRequest" in bad.json()
    old = cloud.compute("POST", "/os-keypairs", mv=None, json={"keypair": {"name": "old", "public_key": PUBLIC_KEY}})
    assert old.status_code == 200 and "type" not in old.json()["keypair"]
    listed = cloud.compute("GET", "/os-keypairs").json()["keypairs"]
    assert [k["keypair"]["name"] for k in listed] == ["old", "web-prod"]
    assert cloud.compute("GET", "/os-keypairs/web-prod").json()["keypair"]["public_key"] == PUBLIC_KEY
    assert cloud.compute("DELETE", "/os-keypairs/web-prod").status_code == 204
    assert cloud.compute("DELETE", "/os-keypairs/old", mv=None).status_code == 202
    assert cloud.compute("GET", "/os-keypairs/old").status_code == 404
    assert openstack_sim_bare.request_count("compute", "POST", "/v2.1/os-keypairs") == 4


def re_fingerprint(text: str) -> bool:
    parts = text.split(":")
    return len(parts) == 16 and all(len(p) == 2 for p in parts)


def test_load_balancer_listener_pool_monitor_transitions(openstack_sim_bare: Simulator) -> None:
    cloud = EnvCloud(openstack_sim_bare)
    net = cloud.created(cloud.net("POST", "/networks", json={"network": {"name": "n"}}), "network")
    subnet = cloud.created(cloud.net("POST", "/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "10.1.0.0/24", "ip_version": 4}}), "subnet")
    lb = cloud.created(cloud.lb("POST", "/loadbalancers", json={"loadbalancer": {
        "name": "web", "vip_network_id": net["id"], "tags": ["releasectl"]}}), "loadbalancer")
    assert lb["provisioning_status"] == "PENDING_CREATE" and lb["vip_subnet_id"] == subnet["id"]
    early = cloud.lb("POST", "/listeners", json={"listener": {"loadbalancer_id": lb["id"], "protocol": "HTTP",
                                                              "protocol_port": 80}})
    assert early.status_code == 409  # immutable while PENDING_CREATE
    wait_for(lambda: cloud.lb_status("loadbalancers", lb["id"]) == "ACTIVE", what="LB ACTIVE")
    listener = cloud.created(cloud.lb("POST", "/listeners", json={"listener": {
        "loadbalancer_id": lb["id"], "protocol": "HTTP", "protocol_port": 80, "name": "web", "tags": ["t"]}}),
        "listener")
    assert listener["provisioning_status"] == "PENDING_CREATE" and listener["tags"] == ["t"]
    assert cloud.lb_status("loadbalancers", lb["id"]) == "PENDING_UPDATE"
    wait_for(lambda: cloud.lb_status("listeners", listener["id"]) == "ACTIVE", what="listener ACTIVE")
    pool = cloud.created(cloud.lb("POST", "/pools", json={"pool": {
        "listener_id": listener["id"], "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "tags": ["t"]}}), "pool")
    wait_for(lambda: cloud.lb_status("pools", pool["id"]) == "ACTIVE", what="pool ACTIVE")
    assert cloud.lb("GET", f"/listeners/{listener['id']}").json()["listener"]["default_pool_id"] == pool["id"]
    monitor = cloud.created(cloud.lb("POST", "/healthmonitors", json={"healthmonitor": {
        "pool_id": pool["id"], "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2, "url_path": "/healthz",
        "tags": ["t"]}}), "healthmonitor")
    wait_for(lambda: cloud.lb_status("healthmonitors", monitor["id"]) == "ACTIVE", what="monitor ACTIVE")
    assert cloud.lb("GET", "/loadbalancers?tags=releasectl").json()["loadbalancers"][0]["id"] == lb["id"]
    # children block a plain delete; a cascade takes everything, through PENDING_DELETE
    assert cloud.lb("DELETE", f"/loadbalancers/{lb['id']}").status_code == 400
    assert cloud.lb("DELETE", f"/listeners/{listener['id']}").status_code == 204
    assert cloud.lb_status("listeners", listener["id"]) == "PENDING_DELETE"
    wait_for(lambda: cloud.lb_status("listeners", listener["id"]) is None, what="listener gone")
    assert cloud.lb("DELETE", f"/pools/{pool['id']}").status_code == 204
    assert cloud.lb_status("pools", pool["id"]) == "PENDING_DELETE"
    wait_for(lambda: cloud.lb_status("pools", pool["id"]) is None, what="pool gone")
    assert cloud.lb("GET", f"/healthmonitors/{monitor['id']}").status_code == 404
    assert cloud.lb("DELETE", f"/loadbalancers/{lb['id']}").status_code == 204
    assert cloud.lb_status("loadbalancers", lb["id"]) == "PENDING_DELETE"
    wait_for(lambda: cloud.lb_status("loadbalancers", lb["id"]) is None, what="LB gone")
    assert cloud.net("DELETE", f"/networks/{net['id']}").status_code == 204


def test_designate_zones_and_recordsets_go_pending_then_active(openstack_sim_bare: Simulator) -> None:
    cloud = EnvCloud(openstack_sim_bare)
    assert cloud.dns("POST", "/zones", json={"name": "example.test", "email": "a@b.c"}).status_code == 400
    zone = cloud.created(cloud.dns("POST", "/zones", json={"name": "example.test.", "email": "ops@example.test",
                                                           "ttl": 600, "description": "releasectl web/prod"}), "")
    assert (zone["status"], zone["action"]) == ("PENDING", "CREATE")
    assert cloud.dns("POST", "/zones", json={"name": "example.test.", "email": "x@y.z"}).json()["type"] == \
        "duplicate_zone"
    wait_for(lambda: cloud.dns("GET", f"/zones/{zone['id']}").json()["status"] == "ACTIVE", what="zone ACTIVE")
    managed = cloud.dns("GET", f"/zones/{zone['id']}/recordsets").json()
    assert sorted(r["type"] for r in managed["recordsets"]) == ["NS", "SOA"]
    assert managed["metadata"]["total_count"] == 2
    outside = cloud.dns("POST", f"/zones/{zone['id']}/recordsets",
                        json={"name": "web.other.test.", "type": "A", "records": ["127.0.1.250"]})
    assert outside.status_code == 400
    assert cloud.dns("POST", f"/zones/{zone['id']}/recordsets",
                     json={"name": "web.example.test.", "type": "AAAA", "records": ["127.0.1.250"]}).status_code == 400
    rs = cloud.created(cloud.dns("POST", f"/zones/{zone['id']}/recordsets", json={
        "name": "web.example.test.", "type": "A", "records": ["127.0.1.250"], "ttl": 60}), "")
    assert (rs["status"], rs["action"]) == ("PENDING", "CREATE")
    assert cloud.dns("GET", f"/zones/{zone['id']}").json()["status"] == "PENDING"
    assert cloud.dns("POST", f"/zones/{zone['id']}/recordsets", json={
        "name": "web.example.test.", "type": "A", "records": ["127.0.1.251"]}).status_code == 409
    path = f"/zones/{zone['id']}/recordsets/{rs['id']}"
    wait_for(lambda: cloud.dns("GET", path).json()["status"] == "ACTIVE", what="recordset ACTIVE")
    wait_for(lambda: cloud.dns("GET", f"/zones/{zone['id']}").json()["status"] == "ACTIVE", what="zone settled")
    found = cloud.dns("GET", f"/zones/{zone['id']}/recordsets?name=web.example.test.&type=A").json()["recordsets"]
    assert [(r["records"], r["ttl"]) for r in found] == [(["127.0.1.250"], 60)]
    changed = cloud.dns("PUT", path, json={"records": ["127.0.1.251"], "ttl": 120})
    assert changed.status_code == 202 and changed.json()["action"] == "UPDATE"
    wait_for(lambda: cloud.dns("GET", path).json()["status"] == "ACTIVE", what="update landed")
    assert cloud.dns("DELETE", path).json()["action"] == "DELETE"
    wait_for(lambda: cloud.dns("GET", path).status_code == 404, what="recordset gone")
    err = cloud.dns("GET", path).json()
    assert err["code"] == 404 and err["type"] == "recordset_not_found"
    assert cloud.dns("DELETE", f"/zones/{zone['id']}").status_code == 202
    wait_for(lambda: cloud.dns("GET", f"/zones/{zone['id']}").status_code == 404, what="zone gone")
    assert openstack_sim_bare.state()["recordsets"] == []


def test_held_answer_fault_does_the_write_and_holds_its_answer(openstack_sim_bare: Simulator) -> None:
    sim, cloud = openstack_sim_bare, EnvCloud(openstack_sim_bare)
    sim.set_faults(hold_after_writes=1)
    assert cloud.net("POST", "/networks", json={"network": {"name": "first"}}).status_code == 201
    answers: list[int] = []
    thread = threading.Thread(target=lambda: answers.append(
        cloud.net("POST", "/networks", json={"network": {"name": "second"}}).status_code))
    thread.start()
    try:
        wait_for(lambda: sim.faults()["injected"].get("held_answer") == 1, what="held answer")
        assert "second" in [n["name"] for n in sim.state()["networks"]]  # done, not yet answered
        assert answers == []
    finally:
        sim.clear_faults()  # releases the held answer
        thread.join(10)
    assert answers == [201]


@pytest.mark.skipif(__import__("tests.test_openstack_sim", fromlist=["openstack_cli"]).openstack_cli() is None,
                    reason="the official openstack CLI is not installed (set OPENSTACK_CLI to its path)")
def test_official_clients_list_networks_load_balancers_and_recordsets(openstack_sim_bare: Simulator) -> None:
    """python-openstackclient with the octavia and designate plugins, as a user would look at the project."""
    import json
    import os
    import subprocess

    from tests.test_openstack_sim import openstack_cli

    sim, cloud = openstack_sim_bare, EnvCloud(openstack_sim_bare)
    net = cloud.created(cloud.net("POST", "/networks", json={"network": {"name": "web", "tags": ["releasectl"]}}),
                        "network")
    cloud.created(cloud.net("POST", "/subnets", json={"subnet": {"network_id": net["id"], "cidr": "10.9.0.0/24",
                                                                 "ip_version": 4, "name": "web"}}), "subnet")
    lb = cloud.created(cloud.lb("POST", "/loadbalancers", json={"loadbalancer": {"name": "web", "vip_network_id": net["id"]}}),
                       "loadbalancer")
    zone = cloud.created(cloud.dns("POST", "/zones", json={"name": "example.test.", "email": "a@example.test"}), "")
    cloud.created(cloud.dns("POST", f"/zones/{zone['id']}/recordsets", json={
        "name": "web.example.test.", "type": "A", "records": [lb["vip_address"]], "ttl": 60}), "")
    cloud.compute("POST", "/os-keypairs", json={"keypair": {"name": "web", "public_key": PUBLIC_KEY}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(sim.os_environ())

    def run(*args: str) -> Any:
        out = subprocess.run([openstack_cli(), *args, "-f", "json"], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    assert [n["Name"] for n in run("network", "list", "--tags", "releasectl")] == ["web"]
    assert [lb_["name"] for lb_ in run("loadbalancer", "list")] == ["web"]
    records = wait_for(lambda: [r for r in run("recordset", "list", "example.test.") if r["status"] == "ACTIVE"
                                and r["type"] == "A"], timeout=10, what="record ACTIVE")
    assert [(r["name"], r["records"]) for r in records] == [("web.example.test.", lb["vip_address"])]
    assert [k["Name"] for k in run("keypair", "list")] == ["web"]
