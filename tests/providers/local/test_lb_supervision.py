"""LB supervision on the local provider: lb_state (UP, DOWN, ABSENT) and ensure_pool restarting a dead,
stopped or silent HAProxy with its members and weights, on a real HAProxy."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import requests

from releasectl.providers.base import AdminState, Health, LBStatus
from releasectl.providers.local import procs
from releasectl.providers.local.haproxy import RuntimeAPI
from releasectl.wait import wait_for

from .conftest import start_server, wait_health

pytestmark = pytest.mark.slow


def lb_proc(provider) -> procs.ProcId:
    info = provider.pool.running()
    return procs.ProcId(info["pid"], info["pid_start"], info["boot_id"])


def answers(url: str) -> str | None:
    """The body of one GET through the LB, or None when it does not answer 200."""
    try:
        r = requests.get(url, timeout=1)
    except requests.RequestException:
        return None
    return r.text.strip() if r.status_code == 200 else None


@pytest.fixture
def pool(provider):
    """A running LB with 1.0.0 at weight 100, 2.0.0 at weight 30 and a 3.0.0 member waiting for its gate."""
    provider.ensure_pool()
    members = {}
    for version, weight in (("1.0.0", 100), ("2.0.0", 30)):
        m = provider.add_member(start_server(provider, version))
        wait_health(provider, m.id, Health.HEALTHY)
        provider.set_weights({m.id: weight})
        members[version] = m.id
    members["3.0.0"] = provider.add_member(start_server(provider, "3.0.0")).id
    return provider, members


def snapshot(provider) -> dict:
    return {m.id: (m.weight, m.admin, m.app, m.env) for m in provider.list_members()}


def test_absent_before_the_first_start_and_after_down(provider):
    state = provider.lb_state()
    assert state.status is LBStatus.ABSENT and "none started yet" in state.detail
    provider.ensure_pool()
    state = provider.lb_state()
    assert state.status is LBStatus.UP and str(lb_proc(provider).pid) in state.detail
    provider.destroy_pool()
    assert provider.lb_state().status is LBStatus.ABSENT
    assert provider.list_members() == [] and provider.pool_endpoint() is None


def test_kill_9_down_then_ensure_pool_answers_within_2s_with_members_and_weights(pool):
    provider, members = pool
    url = provider.pool_endpoint()
    before = snapshot(provider)
    assert {v[2:] for v in before.values()} == {("demo", "test")}  # every member releasectl added is owned
    old = lb_proc(provider)

    os.kill(old.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: not procs.is_alive(old), timeout=5, interval=0.01, what="the kernel to end haproxy")
    state = provider.lb_state()
    assert state.status is LBStatus.DOWN and f"haproxy pid {old.pid} is gone" in state.detail
    assert answers(url) is None
    # while it is down the pool reads as what the restart brings back, never as an empty pool
    assert {m.id: (m.weight, m.admin, m.app, m.env) for m in provider.list_members()} == before
    assert all(m.health is Health.UNKNOWN and m.sessions is None for m in provider.list_members())

    provider.ensure_pool()
    wait_for(lambda: answers(url), timeout=max(0.1, 2.0 - (time.monotonic() - killed_at)), interval=0.02,
             what="the LB to answer within 2 s of the kill")
    assert provider.lb_state().status is LBStatus.UP and lb_proc(provider).pid != old.pid
    assert snapshot(provider) == before
    # weights re-asserted: 100:30 between 1.0.0 and 2.0.0, nothing to the member still behind its gate
    with requests.Session() as s:
        seen = [s.get(url, timeout=5).text.strip() for _ in range(26)]
    assert set(seen) == {"1.0.0", "2.0.0"} and 3 <= seen.count("2.0.0") <= 9
    wait_health(provider, members["3.0.0"], Health.HEALTHY)  # its checks run again, still in MAINT
    assert next(m for m in provider.list_members() if m.id == members["3.0.0"]).admin is AdminState.MAINT


def test_sigstopped_haproxy_is_down_and_replaced(pool):
    provider, _ = pool
    url = provider.pool_endpoint()
    before = snapshot(provider)
    old = lb_proc(provider)
    os.kill(old.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: procs.is_stopped(old), timeout=5, interval=0.01, what="the kernel to stop haproxy")
        state = provider.lb_state()
        assert state.status is LBStatus.DOWN and "stopped" in state.detail
        provider.ensure_pool()
        assert not procs.is_alive(old), "the stopped HAProxy must be gone before a new one binds its port"
    finally:
        if procs.is_alive(old):
            os.kill(old.pid, signal.SIGCONT)
    assert provider.lb_state().status is LBStatus.UP
    assert snapshot(provider) == before
    assert answers(url) in ("1.0.0", "2.0.0")


def test_silent_admin_socket_is_down_and_replaced(pool):
    provider, _ = pool
    before = snapshot(provider)
    old = lb_proc(provider)
    os.unlink(provider.pool.running()["socket"])  # the process serves, but nothing can drive it
    state = provider.lb_state()
    assert state.status is LBStatus.DOWN and "does not answer" in state.detail
    assert snapshot(provider) == before  # from members.json while it cannot be asked
    provider.ensure_pool()
    assert not procs.is_alive(old) and provider.lb_state().status is LBStatus.UP
    assert snapshot(provider) == before


def test_reused_pid_is_down_and_never_signalled(pool):
    provider, _ = pool
    lb_json = provider.pool.info_path
    info = json.loads(lb_json.read_text())
    os.kill(info["pid"], signal.SIGKILL)
    wait_for(lambda: provider.lb_state().status is LBStatus.DOWN, timeout=5, interval=0.01)
    info["pid"] = os.getpid()  # as if the kernel had given HAProxy's PID to this test process
    lb_json.write_text(json.dumps(info))
    state = provider.lb_state()
    assert state.status is LBStatus.DOWN and "belongs to another process" in state.detail
    provider.ensure_pool()  # never signals this process: pid, start time and boot id must all match
    assert provider.lb_state().status is LBStatus.UP


def test_a_pool_change_restarts_a_down_lb(pool):
    provider, members = pool
    os.kill(lb_proc(provider).pid, signal.SIGKILL)
    wait_for(lambda: provider.lb_state().status is LBStatus.DOWN, timeout=5, interval=0.01)
    provider.set_weights({members["2.0.0"]: 60})
    assert provider.lb_state().status is LBStatus.UP
    assert {m.id: m.weight for m in provider.list_members()}[members["2.0.0"]] == 60


def test_a_member_releasectl_did_not_add_has_no_owner_and_survives_restarts(pool):
    provider, members = pool
    foreign = start_server(provider, "9.0.0", name="by-hand")
    api = RuntimeAPI(provider.pool.running()["socket"])
    assert "New server registered" in api.call(f"add server app/by_hand {foreign.address}:{foreign.port} weight 0")
    by_id = {m.id: m for m in provider.list_members()}
    assert (by_id["by_hand"].app, by_id["by_hand"].env) == (None, None)
    assert not by_id["by_hand"].owned_by("demo", "test") and by_id[members["1.0.0"]].owned_by("demo", "test")

    provider.set_weights({members["2.0.0"]: 40})  # a change persists members.json, the foreign one included
    os.kill(lb_proc(provider).pid, signal.SIGKILL)
    wait_for(lambda: provider.lb_state().status is LBStatus.DOWN, timeout=5, interval=0.01)
    assert {m.id: m.app for m in provider.list_members()}["by_hand"] is None
    provider.ensure_pool()
    after = {m.id: m for m in provider.list_members()}
    assert after["by_hand"].app is None and after[members["2.0.0"]].weight == 40
