"""The Octavia pool through the provider: monitor requirement, members, batch weights, waits and 409s."""

from __future__ import annotations

import pytest

from releasectl.errors import ResourceFailure, UsageError
from releasectl.providers.base import AdminState, Capabilities, Health, Label, LBStatus, Role, ServerSpec, ServerStatus
from releasectl.wait import wait_for

BATCH = "/v2/lbaas/pools/{id}/members"


def batch_puts(sim) -> int:
    return sim.request_count("load-balancer", "PUT", BATCH)


@pytest.fixture
def servers(provider, openstack_sim):
    image = provider.bake_image("1.0.0", "demo-1.0.0", {Label.PORT: "8000"})
    made = []
    for i in range(3):
        s = provider.create_server(ServerSpec(name=f"demo-1.0.0-{i}", image_id=image.id, app="demo", version="1.0.0",
                                              env="production", role=Role.CANDIDATE, release_id="r1"))
        made.append(s.id)
    return [wait_for(lambda sid=sid: (s := provider.get_server(sid)) and s.status is ServerStatus.ACTIVE and s,
                     timeout=10, interval=0.02) for sid in made]


def test_capabilities_and_endpoint(provider, openstack_sim) -> None:
    assert provider.capabilities == Capabilities(member_sessions=False, member_stats=False)
    provider.ensure_pool()
    assert provider.pool_endpoint() == "http://127.0.1.250:80"
    assert provider.member_stats() == {}
    provider.destroy_pool()  # the operator's: nothing happens
    assert openstack_sim.state()["pools"][0]["id"] == openstack_sim.pool_id


def _drop_monitor(provider, sim) -> None:
    provider.octavia.call("DELETE", f"/healthmonitors/{sim.healthmonitor_id}")
    provider.pool.wait_active()
    wait_for(lambda: sim.healthmonitor_id is None or None, timeout=5, interval=0.02)


def test_a_pool_without_monitor_is_refused(provider, openstack_sim) -> None:
    provider.ensure_pool()
    _drop_monitor(provider, openstack_sim)
    with pytest.raises(UsageError) as err:
        provider.ensure_pool()
    assert "no health monitor" in str(err.value) and "create_monitor: true" in err.value.hint


def test_create_monitor_makes_one_from_the_health_settings(make_provider, openstack_sim) -> None:
    first = make_provider()
    first.ensure_pool()
    _drop_monitor(first, openstack_sim)
    provider = make_provider(create_monitor=True, state="s2")
    provider.ensure_pool()
    hm_id = openstack_sim.healthmonitor_id
    assert hm_id
    hm = provider.octavia.call("GET", f"/healthmonitors/{hm_id}").json()["healthmonitor"]
    assert (hm["type"], hm["url_path"], hm["expected_codes"], hm["delay"], hm["max_retries"]) == ("HTTP", "/healthz", "200", 1, 1)
    assert hm["name"] == "releasectl-demo-production"
    provider.ensure_pool()  # now it has one: nothing more
    assert openstack_sim.request_count("load-balancer", "POST", "/v2/lbaas/healthmonitors") == 1


def test_unknown_pool_is_a_usage_error(make_provider) -> None:
    with pytest.raises(UsageError, match="no Octavia pool 'nope'"):
        make_provider(pool="nope").ensure_pool()


def test_add_member_at_weight_0_and_adopt_a_duplicate(provider, openstack_sim, servers) -> None:
    provider.ensure_pool()
    member = provider.add_member(servers[0])
    assert (member.weight, member.admin, member.address, member.port) == (0, AdminState.DRAIN, servers[0].address, 8000)
    again = provider.add_member(servers[0])
    assert again.id == member.id
    assert openstack_sim.request_count("load-balancer", "POST", "/v2/lbaas/pools/{id}/members") == 1
    assert [m.id for m in provider.list_members()] == [member.id]
    healthy = wait_for(lambda: (m := provider.list_members()[0]).health is Health.HEALTHY and m, timeout=5, interval=0.02)
    assert healthy.admin is AdminState.DRAIN  # weight 0 reports DRAINING, and its checks pass


def test_add_member_adopts_after_a_409_duplicate(provider, openstack_sim, servers) -> None:
    provider.ensure_pool()
    # Someone else adds the same address between our look-up and our POST: Octavia answers 409.
    pool = provider.pool
    original = pool.find_member
    calls = {"n": 0}

    def racing_find(address, port):
        calls["n"] += 1
        if calls["n"] == 1:
            provider.octavia.call("POST", f"/pools/{pool.id}/members", json={"member": {"address": address, "protocol_port": port, "weight": 0}})
            return None
        return original(address, port)

    pool.find_member = racing_find
    member = provider.add_member(servers[0])
    assert member.address == servers[0].address
    assert len(provider.list_members()) == 1


def test_set_weights_is_one_batch_put_with_the_full_state(provider, openstack_sim, servers) -> None:
    provider.ensure_pool()
    a, b, c = (provider.add_member(s) for s in servers)
    openstack_sim.reset_requests()
    provider.set_weights({a.id: 10, b.id: 20})
    assert batch_puts(openstack_sim) == 1
    weights = {m.id: m.weight for m in provider.list_members()}
    assert weights == {a.id: 10, b.id: 20, c.id: 0}  # c kept weight 0 (an omitted field would reset it to 1)
    provider.set_weights({c.id: 256})
    assert batch_puts(openstack_sim) == 2
    assert {m.id: m.weight for m in provider.list_members()} == {a.id: 10, b.id: 20, c.id: 256}
    provider.set_weights({c.id: 256})  # already so: no change to make
    assert batch_puts(openstack_sim) == 2
    states = {m.id: m.admin for m in provider.list_members()}
    assert states[c.id] is AdminState.READY
    with pytest.raises(UsageError):
        provider.set_weights({a.id: 300})


def test_no_write_while_the_lb_is_pending(provider, openstack_sim, servers) -> None:
    provider.ensure_pool()
    members = [provider.add_member(s) for s in servers]
    provider.set_weights({m.id: 5 for m in members})
    provider.remove_member(members[0].id)
    writes = [e for e in openstack_sim.requests()["journal"] if e["service"] == "load-balancer" and e["method"] != "GET"]
    assert writes and all(e["status"] < 400 for e in writes)  # never hit the LB while PENDING_UPDATE


def test_409_while_pending_update_is_waited_out(provider, openstack_sim, servers) -> None:
    provider.ensure_pool()
    a = provider.add_member(servers[0])
    openstack_sim.set_faults(octavia_conflicts=2)
    openstack_sim.reset_requests()
    provider.set_weights({a.id: 7})
    assert provider.list_members()[0].weight == 7
    puts = [e["status"] for e in openstack_sim.requests()["journal"] if e["method"] == "PUT"]
    assert puts == [409, 409, 202]
    openstack_sim.set_faults(octavia_conflicts=1)
    b = provider.add_member(servers[1])
    assert b.weight == 0


def test_lb_in_error_is_a_resource_failure(provider, openstack_sim, servers) -> None:
    provider.ensure_pool()
    with openstack_sim.ctx.store.lock:
        openstack_sim.ctx.store.loadbalancers[openstack_sim.loadbalancer_id].provisioning_status = "ERROR"
    with pytest.raises(ResourceFailure) as err:
        provider.add_member(servers[0])
    assert "ERROR" in str(err.value) and "failover" in err.value.hint
    with pytest.raises(ResourceFailure):
        provider.ensure_pool()


def test_remove_member_is_idempotent(provider, openstack_sim, servers) -> None:
    provider.ensure_pool()
    member = provider.add_member(servers[0])
    provider.remove_member(member.id)
    wait_for(lambda: provider.list_members() == [] or None, timeout=5, interval=0.02)
    provider.remove_member(member.id)


def test_health_follows_operating_status(provider, openstack_sim) -> None:
    openstack_sim.set_builder_fail_health(True)
    bad = provider.bake_image("9.9.9", "demo-9.9.9", {})
    openstack_sim.set_builder_fail_health(False)
    server = provider.create_server(ServerSpec(name="demo-bad", image_id=bad.id, app="demo", version="9.9.9",
                                               env="production", role=Role.CANDIDATE, release_id="r2"))
    server = wait_for(lambda: (s := provider.get_server(server.id)) and s.status is ServerStatus.ACTIVE and s, timeout=5, interval=0.02)
    provider.ensure_pool()
    provider.add_member(server)
    failing = wait_for(lambda: (m := provider.list_members()[0]).health is Health.UNHEALTHY and m, timeout=5, interval=0.02)
    assert failing.weight == 0


def test_status_tables() -> None:
    from releasectl.providers.base import ImageStatus, ServerStatus as S
    from releasectl.providers.openstack.status import image_status, member_admin, member_health, server_status

    assert [member_health(s) for s in ("ONLINE", "DRAINING", "ERROR", "OFFLINE", "NO_MONITOR", "weird")] == [
        Health.HEALTHY, Health.HEALTHY, Health.UNHEALTHY, Health.UNKNOWN, Health.UNKNOWN, Health.UNKNOWN]
    assert (member_admin(True, 0), member_admin(True, 5), member_admin(False, 5)) == (
        AdminState.DRAIN, AdminState.READY, AdminState.MAINT)
    assert server_status("ACTIVE", "deleting") is S.DELETING and server_status("ACTIVE", "image_snapshot") is S.ACTIVE
    assert (server_status("BUILD", "spawning"), server_status("ERROR", None), server_status("SHUTOFF", None)) == (
        S.BUILDING, S.ERROR, S.STOPPED)
    assert [image_status(s) for s in ("queued", "saving", "active", "killed", "deactivated")] == [
        ImageStatus.PENDING, ImageStatus.PENDING, ImageStatus.ACTIVE, ImageStatus.FAILED, ImageStatus.FAILED]


def test_probe_false_reports_the_load_balancers_view(make_provider, openstack_sim, servers) -> None:
    provider = make_provider(probe=False, state="p")
    server = servers[0]
    assert provider.probe(server, "/healthz", 1.0).error == "not a pool member yet (probe: false)"
    provider.ensure_pool()
    provider.add_member(server)
    ok = wait_for(lambda: (p := provider.probe(server, "/healthz", 1.0)).status == 200 and p, timeout=5, interval=0.02)
    assert ok.passed(200) and "load balancer" in ok.body


# ---- whole-fleet operations (issue 12) ------------------------------------------------------------------


def test_add_members_is_one_batch_put_and_keeps_a_foreign_member(provider, openstack_sim, servers) -> None:
    """A fleet joins in one LB update; a member releasectl does not own (the operator's, no tags) survives
    the full-state PUT with its weight, and a member already on one of the addresses is adopted, not doubled."""
    provider.ensure_pool()
    pool_id = provider.pool.id
    provider.pool.write("an operator's member", lambda: provider.octavia.call(
        "POST", f"/pools/{pool_id}/members", json={"member": {"address": "127.0.9.9", "protocol_port": 9, "weight": 7}}))
    adopted = provider.add_member(servers[0])
    openstack_sim.reset_requests()
    added = provider.add_members(servers)
    assert batch_puts(openstack_sim) == 1
    assert openstack_sim.request_count("load-balancer", "POST", BATCH) == 0
    assert [m.address for m in added] == [s.address for s in servers] and added[0].id == adopted.id
    assert all(m.weight == 0 and m.owned_by("demo", "production") for m in added)
    foreign = [m for m in provider.list_members() if m.address == "127.0.9.9"]
    assert [(m.weight, m.app) for m in foreign] == [(7, None)]
    assert len(provider.list_members()) == 4
    provider.add_members(servers)  # all there already: no write
    assert batch_puts(openstack_sim) == 1


def test_remove_members_is_one_batch_put_and_idempotent(provider, openstack_sim, servers) -> None:
    provider.ensure_pool()
    members = provider.add_members(servers)
    provider.set_weights({members[2].id: 50})
    openstack_sim.reset_requests()
    provider.remove_members([members[0].id, members[1].id])
    assert batch_puts(openstack_sim) == 1
    assert openstack_sim.request_count("load-balancer", "DELETE") == 0
    assert [(m.id, m.weight) for m in provider.list_members()] == [(members[2].id, 50)]  # the other kept its weight
    provider.remove_members([members[0].id, members[1].id])  # gone already: no write
    assert batch_puts(openstack_sim) == 1


def test_delete_servers_deletes_in_parallel_and_polls_one_listing(provider, openstack_sim, servers) -> None:
    openstack_sim.reset_requests()
    provider.delete_servers([s.id for s in servers])
    assert provider.list_servers() == []
    assert openstack_sim.request_count("compute", "DELETE") == 3
    assert openstack_sim.request_count("compute", "GET", "/v2.1/servers/{id}") == 0  # no per-server polling
    provider.delete_servers([s.id for s in servers])  # gone already: success


def test_create_servers_creates_a_fleet_with_one_listing(provider, openstack_sim) -> None:
    image = provider.bake_image("1.0.0", "demo-1.0.0", {Label.PORT: "8000"})
    specs = [ServerSpec(name=f"demo-1.0.0-f{i}", image_id=image.id, app="demo", version="1.0.0", env="production",
                        role=Role.CANDIDATE, release_id="r1") for i in range(4)]
    openstack_sim.reset_requests()
    made = provider.create_servers(specs)
    assert [s.name for s in made] == [spec.name for spec in specs] and len({s.id for s in made}) == 4
    assert openstack_sim.request_count("compute", "POST", "/v2.1/servers") == 4
    assert openstack_sim.request_count("compute", "GET", "/v2.1/servers/{id}") == 0
    assert openstack_sim.request_count("image", "GET", "/v2/images/{id}") == 1
    assert sorted(s.name for s in provider.list_servers()) == sorted(spec.name for spec in specs)


def test_the_look_right_after_a_pool_write_reads_nothing_again(provider, openstack_sim, servers, monkeypatch) -> None:
    """The wait after a write saw the LB ACTIVE and read the members back: the next look (the engine's pass)
    takes both instead of reading them again, and the look after it reads again. The wait's first read of
    the LB comes a first poll after the PUT (right after it, Octavia only ever says PENDING_UPDATE)."""
    from releasectl.providers.openstack import pool
    from releasectl.wait import FIRST_POLL

    monkeypatch.setattr(pool, "LB_TRUST", 60.0)  # the test asserts what is read, not how fast it runs
    provider.ensure_pool()
    a = provider.add_member(servers[0])
    openstack_sim.reset_requests()
    provider.set_weights({a.id: 7})
    journal = [e for e in openstack_sim.requests()["journal"] if e["service"] == "load-balancer"]
    put = next(i for i, e in enumerate(journal) if (e["method"], e["template"]) == ("PUT", BATCH))
    first_look = next(e for e in journal[put + 1:] if e["template"] == "/v2/lbaas/loadbalancers/{id}")
    assert first_look["time"] - journal[put]["time"] >= min(FIRST_POLL, provider.poll.interval) * 0.9
    counts = openstack_sim.request_counts()
    assert provider.lb_state().status is LBStatus.UP
    assert {m.id: m.weight for m in provider.list_members()} == {a.id: 7}
    assert openstack_sim.request_counts() == counts  # nothing read again
    assert {m.id: m.weight for m in provider.list_members()} == {a.id: 7}
    assert openstack_sim.request_count("load-balancer", "GET", "/v2/lbaas/pools/{id}/members") == \
        counts["load-balancer GET /v2/lbaas/pools/{id}/members"] + 1
    openstack_sim.reset_requests()
    provider.set_weights({a.id: 7})  # nothing to change: no write, and no wait
    assert openstack_sim.request_count("load-balancer", "GET", "/v2/lbaas/loadbalancers/{id}") == 0
    assert batch_puts(openstack_sim) == 0


def test_relabel_after_a_listing_reads_no_server(provider, openstack_sim, servers) -> None:
    """Nova answers a metadata POST with the whole metadata: with the server's last listing, that is the
    relabelled server, without a GET per server."""
    provider.list_servers()
    openstack_sim.reset_requests()
    updated = provider.update_server_labels(servers[0].id, {Label.ROLE: Role.STABLE.value, "x": "1"})
    assert (updated.id, updated.address, updated.role, updated.labels["x"]) == (servers[0].id, servers[0].address, Role.STABLE, "1")
    assert openstack_sim.request_count("compute", "GET", "/v2.1/servers/{id}") == 0
    again = provider.update_server_labels(servers[0].id, {"x": None})
    assert "x" not in again.labels and again.role is Role.STABLE
    assert provider.get_server(servers[0].id).labels == again.labels


def test_relabel_a_fleet_after_a_listing_writes_each_once_and_reads_none(provider, openstack_sim, servers) -> None:
    provider.list_servers()
    openstack_sim.reset_requests()
    provider.update_servers_labels([s.id for s in servers], {Label.ROLE: Role.STABLE.value, Label.RELEASE: None})
    assert openstack_sim.request_count("compute", "POST", "/v2.1/servers/{id}/metadata") == 3
    assert openstack_sim.request_count("compute", "GET", "/v2.1/servers/{id}") == 0
    assert {(s.role, s.release_id) for s in provider.list_servers()} == {(Role.STABLE, "")}


MEMBERS_GET = "/v2/lbaas/pools/{id}/members"


def test_a_batch_put_right_after_a_look_starts_from_that_look(provider, openstack_sim, servers, monkeypatch) -> None:
    """The engine's pass reads the members and a moment later changes weights: the batch PUT starts from
    that read (once) instead of reading the members again; a replay after a 409 reads them afresh."""
    from releasectl.providers.openstack import pool

    monkeypatch.setattr(pool, "MEMBERS_FRESH", 60.0)  # the test asserts what is read, not how fast it runs
    provider.ensure_pool()
    a = provider.add_member(servers[0])
    provider.pool.wait_active()
    provider.list_members()
    provider.list_members()  # the look the PUT may start from (the one before was the write's read-back)
    openstack_sim.reset_requests()
    provider.set_weights({a.id: 5})
    assert openstack_sim.request_count("load-balancer", "GET", MEMBERS_GET) == 1  # the read-back only
    assert {m.id: m.weight for m in provider.list_members()} == {a.id: 5}
    openstack_sim.set_faults(octavia_conflicts=1)
    provider.list_members()
    openstack_sim.reset_requests()
    provider.set_weights({a.id: 6})
    assert batch_puts(openstack_sim) == 2  # refused (409), replayed
    assert openstack_sim.request_count("load-balancer", "GET", MEMBERS_GET) == 2  # the replay's base and the read-back
    assert {m.id: m.weight for m in provider.list_members()} == {a.id: 6}


def test_a_look_is_no_base_after_a_write_of_ours(provider, openstack_sim, servers, monkeypatch) -> None:
    """A member added after the look must survive the next batch PUT (a member left out of it is deleted)."""
    from releasectl.providers.openstack import pool

    monkeypatch.setattr(pool, "MEMBERS_FRESH", 60.0)
    provider.ensure_pool()
    a = provider.add_member(servers[0])
    provider.list_members()
    provider.list_members()
    b = provider.add_member(servers[1])
    provider.set_weights({a.id: 3})
    assert {m.id: m.weight for m in provider.list_members()} == {a.id: 3, b.id: 0}
