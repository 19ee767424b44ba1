"""The pool: one real HAProxy per app and environment, driven through its runtime API."""

from __future__ import annotations

import os
import signal
import socket
from collections import Counter
from pathlib import Path

import pytest
import requests

from releasectl.errors import Conflict, NotFound, ResourceFailure, UsageError
from releasectl.providers.base import AdminState, Health, LBStatus
from releasectl.providers.local import procs
from releasectl.wait import wait_for

from tests.helpers import processes_under

from .conftest import start_server, wait_health


def get(url: str, n: int = 1) -> list[tuple[int, str]]:
    with requests.Session() as s:
        out = []
        for _ in range(n):
            r = s.get(url, timeout=5)
            out.append((r.status_code, r.text.strip()))
        return out


def live_member(provider, server, weight=100):
    member = provider.add_member(server)
    wait_health(provider, member.id, Health.HEALTHY)
    provider.set_weights({member.id: weight})
    return member


def test_no_lb_until_ensure_pool(provider):
    assert provider.pool_endpoint() is None
    assert provider.list_members() == [] and provider.member_stats() == {}
    provider.ensure_pool()
    pid = provider.pool.running()["pid"]
    provider.ensure_pool()  # no-op while it runs
    assert provider.pool.running()["pid"] == pid
    assert provider.pool_endpoint() == f"http://127.0.0.1:{provider.options['lb_port']}"
    assert provider.list_members() == []


def test_added_member_takes_no_traffic_until_weighted(provider):
    provider.ensure_pool()
    url = provider.pool_endpoint()
    v1 = start_server(provider, "1.0.0")
    member = provider.add_member(v1)
    assert (member.weight, member.admin, member.server_id, member.version) == (0, AdminState.MAINT, v1.id, "1.0.0")
    assert provider.add_member(v1).id == member.id  # adopted, not added twice
    assert len(provider.list_members()) == 1

    wait_health(provider, member.id, Health.HEALTHY)  # checks run while it is still in MAINT
    assert [status for status, _ in get(url, 3)] == [503] * 3  # healthy, but not enabled: no traffic
    provider.set_weights({member.id: 100})
    m = provider.list_members()[0]
    assert (m.weight, m.admin, m.health) == (100, AdminState.READY, Health.HEALTHY)
    assert get(url, 5) == [(200, "1.0.0")] * 5

    v2 = start_server(provider, "2.0.0")
    m2 = provider.add_member(v2)
    wait_health(provider, m2.id, Health.HEALTHY)
    assert set(get(url, 20)) == {(200, "1.0.0")}  # v2 added and healthy, still weight 0 in MAINT


def test_health_gate_keeps_a_failing_member_out(provider, factory):
    provider.ensure_pool()
    url = provider.pool_endpoint()
    live_member(provider, start_server(provider, "1.0.0"))
    (factory.builder / "FAIL_HEALTH").touch()
    broken = start_server(provider, "2.0.0")
    member = provider.add_member(broken)
    wait_health(provider, member.id, Health.UNHEALTHY)

    with pytest.raises(Conflict, match=member.id):
        provider.set_weights({member.id: 50})
    m = next(m for m in provider.list_members() if m.id == member.id)
    assert (m.weight, m.admin, m.health) == (0, AdminState.MAINT, Health.UNHEALTHY)
    assert set(get(url, 10)) == {(200, "1.0.0")}

    # the gate stays closed for a member whose checks have not finished yet
    (factory.builder / "FAIL_HEALTH").unlink()
    slow = start_server(provider, "3.0.0")
    fresh = provider.add_member(slow)
    if fresh.health is not Health.HEALTHY:
        with pytest.raises(Conflict):
            provider.set_weights({fresh.id: 10})


def test_weights_are_verified_and_counted(provider):
    provider.ensure_pool()
    url = provider.pool_endpoint()
    a = live_member(provider, start_server(provider, "1.0.0"), weight=1)
    b = live_member(provider, start_server(provider, "2.0.0"), weight=1)
    provider.set_weights({a.id: 30, b.id: 90})
    weights = {m.id: m.weight for m in provider.list_members()}
    assert weights == {a.id: 30, b.id: 90}

    before = provider.member_stats()
    seen = Counter(text for _, text in get(url, 80))
    after = provider.member_stats()
    assert 16 <= seen["1.0.0"] <= 24 and seen["1.0.0"] + seen["2.0.0"] == 80  # 1:3
    assert after[a.id].requests - before[a.id].requests == seen["1.0.0"]
    assert after[b.id].requests - before[b.id].requests == seen["2.0.0"]
    assert after[a.id].http_5xx == 0 and after[a.id].errors == 0 and after[a.id].response_time_ms is not None

    provider.set_weights({a.id: 0})  # weight 0: no new requests, b keeps its weight
    assert {m.id: m.weight for m in provider.list_members()} == {a.id: 0, b.id: 90}
    assert set(get(url, 10)) == {(200, "2.0.0")}

    with pytest.raises(NotFound, match="nosuch"):
        provider.set_weights({"nosuch": 1})
    with pytest.raises(UsageError):
        provider.set_weights({a.id: 257})
    assert {m.id: m.weight for m in provider.list_members()} == {a.id: 0, b.id: 90}


def test_remove_member_drains_then_maints_then_deletes(provider):
    provider.ensure_pool()
    url = provider.pool_endpoint()
    v1 = live_member(provider, start_server(provider, "1.0.0"))
    v2 = live_member(provider, start_server(provider, "2.0.0"))
    get(url, 10)  # leave idle pooled connections to both (G4)
    provider.remove_member(v1.id)
    assert [m.id for m in provider.list_members()] == [v2.id]
    assert set(get(url, 10)) == {(200, "2.0.0")}
    provider.remove_member(v1.id)  # idempotent

    log = provider.lb_log_path().read_text()
    name = f"app/{v1.id}"
    drain = log.index(f"Server {name} enters drain state")
    maint = log.index(f"Server {name} is going DOWN for maintenance")
    assert drain < maint < log.index("Server deleted.", maint)  # 2.6 logs the delete without a name
    assert v1.id not in provider.pool.cfg_path.read_text()


def test_restart_keeps_members_weights_and_states(provider):
    provider.ensure_pool()
    url = provider.pool_endpoint()
    a = live_member(provider, start_server(provider, "1.0.0"), weight=100)
    b = live_member(provider, start_server(provider, "2.0.0"), weight=30)
    c = provider.add_member(start_server(provider, "3.0.0"))  # waiting for its gate, checks running
    d = live_member(provider, start_server(provider, "4.0.0"), weight=0)
    provider.pool._api().batch([f"set server app/{d.id} state drain"])  # as if a removal was interrupted
    provider.pool._persist(provider.pool._api())
    before = {m.id: (m.weight, m.admin) for m in provider.list_members()}
    assert before == {a.id: (100, AdminState.READY), b.id: (30, AdminState.READY), c.id: (0, AdminState.MAINT),
                      d.id: (0, AdminState.DRAIN)}

    info = provider.pool.running()
    os.kill(info["pid"], signal.SIGKILL)
    lb = procs.ProcId(info["pid"], info["pid_start"], info["boot_id"])
    wait_for(lambda: not procs.is_alive(lb), timeout=5, interval=0.05)
    # down: the endpoint stays, and the pool reads as what the restart brings back, health unknown
    assert provider.lb_state().status is LBStatus.DOWN and provider.pool_endpoint() == url
    assert {m.id: (m.weight, m.admin, m.health) for m in provider.list_members()} == {
        k: (w, admin, Health.UNKNOWN) for k, (w, admin) in before.items()}
    assert provider.member_stats() == {}

    provider.ensure_pool()
    assert provider.pool.running()["pid"] != info["pid"]
    assert {m.id: (m.weight, m.admin) for m in provider.list_members()} == before
    seen = Counter(t for _, t in get(url, 39))
    assert set(seen) == {"1.0.0", "2.0.0"} and 6 <= seen["2.0.0"] <= 12  # 100:30, nothing to c or d
    wait_health(provider, c.id, Health.HEALTHY)  # its checks still run in MAINT after the restart
    provider.set_weights({c.id: 100})
    assert "3.0.0" in {t for _, t in get(url, 30)}


def test_destroy_pool_removes_runtime_files(provider):
    provider.ensure_pool()
    live_member(provider, start_server(provider, "1.0.0"))
    lb_dir = provider.pool.root
    assert (lb_dir / "server-state").exists()
    info = provider.pool.running()
    provider.destroy_pool()
    assert not procs.is_alive(procs.ProcId(info["pid"], info["pid_start"], info["boot_id"]))
    assert provider.pool_endpoint() is None and provider.list_members() == []
    for name in ("server-state", "lb.json", "members.json", "haproxy.cfg", "admin.sock"):
        assert not (lb_dir / name).exists(), name
    provider.destroy_pool()  # idempotent
    provider.ensure_pool()  # a fresh start: no member comes back from old state
    assert provider.list_members() == []


def test_port_in_use_fails_cleanly(factory):
    provider = factory()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", factory.lb_port))
        blocker.listen()
        with pytest.raises(ResourceFailure, match="exited during start-up"):
            provider.ensure_pool()
    assert provider.pool_endpoint() is None
    assert processes_under(factory.tmp_path) == []


def test_long_state_path_uses_a_short_socket(factory, tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    provider = factory(state_dir=deep)
    provider.ensure_pool()
    sock = provider.pool.running()["socket"]
    assert sock.startswith("/tmp/releasectl-") and len(sock) < 100
    v1 = live_member(provider, start_server(provider, "1.0.0"))
    assert [m.id for m in provider.list_members()] == [v1.id]
    provider.destroy_pool()
    assert not Path(sock).parent.exists()


def test_changed_lb_port_restarts_with_the_same_members(provider, factory):
    from .conftest import free_port

    provider.ensure_pool()
    v1 = live_member(provider, start_server(provider, "1.0.0"))
    moved = factory(lb_port=free_port())  # the user edited local.lb_port
    moved.ensure_pool()
    assert moved.pool_endpoint() != f"http://127.0.0.1:{factory.lb_port}"
    assert provider.pool_endpoint() == moved.pool_endpoint()  # what runs, not what the config says
    assert [(m.id, m.weight) for m in moved.list_members()] == [(v1.id, 100)]
    assert get(moved.pool_endpoint(), 3) == [(200, "1.0.0")] * 3


def test_missing_haproxy_binary_says_what_to_do(factory):
    provider = factory(haproxy="/nonexistent/haproxy")
    with pytest.raises(ResourceFailure) as err:
        provider.ensure_pool()
    assert "install HAProxy" in (err.value.hint or "")
    assert provider.pool_endpoint() is None


def test_a_fleet_joins_and_leaves_in_one_session_each(provider):
    """add_members: every member in MAINT at weight 0 with checks running, adopted not doubled on a repeat;
    remove_members: drained together, deleted, and a member outside the batch keeps serving throughout."""
    provider.ensure_pool()
    url = provider.pool_endpoint()
    keep = live_member(provider, start_server(provider, "1.0.0"))
    fleet = [start_server(provider, "2.0.0", name=f"demo-2-{i}") for i in range(3)]
    added = provider.add_members(fleet)
    assert [(m.server_id, m.weight, m.admin) for m in added] == [(s.id, 0, AdminState.MAINT) for s in fleet]
    assert [m.id for m in provider.add_members(fleet)] == [m.id for m in added]  # adopted
    assert len(provider.list_members()) == 4
    for m in added:
        wait_health(provider, m.id, Health.HEALTHY)
    provider.set_weights({m.id: 100 for m in added})
    assert {body for _, body in get(url, 20)} == {"1.0.0", "2.0.0"}
    provider.set_weights({m.id: 0 for m in added})
    provider.remove_members([m.id for m in added])
    assert [m.id for m in provider.list_members()] == [keep.id]
    assert set(get(url, 10)) == {(200, "1.0.0")}
    provider.remove_members([m.id for m in added])  # idempotent
    provider.delete_servers([s.id for s in fleet])
    assert {s.id for s in provider.list_servers()} == {keep.server_id}
