"""Servers: detached processes on loopback, recorded so a later CLI run finds them."""

from __future__ import annotations

import json

import pytest

from releasectl.errors import NotFound
from releasectl.providers.base import Label, Role, ServerStatus
from releasectl.providers.local import procs
from releasectl.wait import wait_for

from tests.helpers import processes_under

from .conftest import spec, start_server


def _proc(provider, server_id):
    rec = json.loads((provider.servers.root / server_id / "server.json").read_text())
    return procs.ProcId(rec["pid"], rec["pid_start"], rec["boot_id"])


def test_lifecycle(provider, factory):
    image = provider.bake_image("1.0.0", "demo-1.0.0", {})
    server = provider.create_server(spec("1.0.0", image.id, team="web"))
    assert server.status in (ServerStatus.BUILDING, ServerStatus.ACTIVE)
    assert server.address == "127.0.0.1" and server.port and server.port != factory.lb_port
    assert server.role is Role.CANDIDATE and server.release_id == "rel-1" and server.image_id == image.id
    assert server.labels["team"] == "web" and server.labels["version"] == "1.0.0"

    wait_for(lambda: provider.probe(server, "/", 1.0).status == 200, timeout=15, interval=0.05)
    root = provider.probe(server, "/", 1.0)
    assert root.body.strip() == "1.0.0" and root.error is None and root.latency >= 0
    assert provider.probe(server, "/healthz", 1.0).passed(200)
    assert provider.probe(server, "/nope", 1.0).status == 404
    assert provider.get_server(server.id).status is ServerStatus.ACTIVE
    assert [s.id for s in provider.list_servers()] == [server.id]

    proc = _proc(provider, server.id)
    assert procs.is_alive(proc)
    log_path = provider.server_log_path(server.id)
    provider.delete_server(server.id)
    assert not procs.is_alive(proc)
    assert not log_path.parent.exists()
    assert provider.get_server(server.id) is None and provider.list_servers() == []
    provider.delete_server(server.id)  # idempotent

    # the probe of a server that is gone reports, never raises
    gone = provider.probe(server, "/healthz", 0.5)
    assert gone.status is None and gone.error


def test_create_is_idempotent_by_name(provider):
    image = provider.bake_image("1.0.0", "demo-1.0.0", {})
    first = provider.create_server(spec("1.0.0", image.id, name="demo-1.0.0-x"))
    again = provider.create_server(spec("1.0.0", image.id, name="demo-1.0.0-x"))
    assert again.id == first.id and len(provider.list_servers()) == 1


def test_a_fleet_is_created_and_stopped_in_one_call(provider):
    """create_servers: one record and port per new name, the existing name returned as it is, every process
    started; delete_servers stops them all (signalled together) and removes their folders."""
    image = provider.bake_image("1.0.0", "demo-1.0.0", {})
    first = provider.create_server(spec("1.0.0", image.id, name="demo-1.0.0-0"))
    fleet = provider.create_servers([spec("1.0.0", image.id, name=f"demo-1.0.0-{i}") for i in range(4)])
    assert [s.name for s in fleet] == [f"demo-1.0.0-{i}" for i in range(4)] and fleet[0].id == first.id
    assert len({s.port for s in fleet}) == 4 and len(provider.list_servers()) == 4
    for server in fleet:
        wait_for(lambda s=server: provider.probe(s, "/healthz", 1.0).status == 200, timeout=15, interval=0.05)
    running = [_proc(provider, s.id) for s in fleet]
    provider.delete_servers([s.id for s in fleet])
    assert not any(procs.is_alive(p) for p in running)
    assert provider.list_servers() == [] and not any(provider.servers.root.glob("srv-*"))


def test_a_fleet_is_relabelled_in_one_call(provider):
    """update_servers_labels: every record rewritten (labels and the fields that mirror them); a server that
    does not exist fails the call before any record is written."""
    image = provider.bake_image("1.0.0", "demo-1.0.0", {})
    fleet = provider.create_servers([spec("1.0.0", image.id, name=f"demo-1.0.0-{i}") for i in range(3)])
    provider.update_servers_labels([s.id for s in fleet], {Label.ROLE: Role.STABLE.value, Label.RELEASE: None})
    for server in provider.list_servers():
        assert server.role is Role.STABLE and Label.RELEASE not in server.labels and server.version == "1.0.0"
        rec = json.loads((provider.servers.root / server.id / "server.json").read_text())
        assert (rec["role"], rec["release"]) == ("stable", "")
    with pytest.raises(NotFound):
        provider.update_servers_labels([fleet[0].id, "srv-000000000000"], {Label.ROLE: Role.CANDIDATE.value})
    assert all(s.role is Role.STABLE for s in provider.list_servers())
    provider.delete_servers([s.id for s in fleet])


def test_crashed_process_is_stopped_with_fault(factory):
    provider = factory(start_command=["{python}", "-c", "import sys; print('boom: no config found'); sys.exit(3)"])
    image = provider.bake_image("1.0.0", "demo-1.0.0", {})
    server = provider.create_server(spec("1.0.0", image.id))
    stopped = wait_for(
        lambda: (s := provider.get_server(server.id)) and s.status is ServerStatus.STOPPED and s,
        timeout=10, interval=0.05, what="the crashed server to show STOPPED",
    )
    assert "boom: no config found" in stopped.fault
    assert "code 3" in stopped.fault  # known here because this process is its parent
    # another CLI run sees the same, from the log alone
    later = factory(start_command=["{python}", "app.py"]).get_server(server.id)
    assert later.status is ServerStatus.STOPPED and "boom: no config found" in later.fault
    provider.delete_server(server.id)
    assert provider.list_servers() == []


def test_server_survives_into_a_new_provider(factory):
    first = factory()
    server = start_server(first, "1.0.0")
    first.close()

    second = factory()  # what a later CLI run constructs
    seen = second.get_server(server.id)
    assert seen is not None and seen.status is ServerStatus.ACTIVE
    assert (seen.port, seen.version, seen.role, seen.labels) == (server.port, "1.0.0", Role.CANDIDATE, server.labels)
    assert factory(env="other").list_servers() == []  # scoped to the environment

    relabeled = second.update_server_labels(server.id, {"role": "stable", "release": None, "retire_after": "5"})
    assert relabeled.role is Role.STABLE and relabeled.release_id == "" and relabeled.labels["retire_after"] == "5"
    assert first.get_server(server.id).role is Role.STABLE

    proc = _proc(second, server.id)
    procs._CHILDREN.pop(proc.pid, None)  # forget the Popen, as a fresh CLI process would not have it
    second.delete_server(server.id)
    assert not procs.is_alive(proc)
    assert first.list_servers() == []


def test_sigterm_ignored_means_sigkill_after_stop_timeout(factory):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    provider = factory(start_command=["{python}", "-c", code], stop_timeout=0.5)
    image = provider.bake_image("1.0.0", "demo-1.0.0", {})
    server = provider.create_server(spec("1.0.0", image.id))
    wait_for(lambda: "up" in provider.server_log_path(server.id).read_text(), timeout=10, interval=0.05)
    proc = _proc(provider, server.id)
    provider.delete_server(server.id)
    assert not procs.is_alive(proc)
    assert processes_under(factory.tmp_path) == []


def test_reused_pid_is_never_signalled(provider):
    server = start_server(provider, "1.0.0")
    path = provider.servers.root / server.id / "server.json"
    rec = json.loads(path.read_text())
    real = procs.ProcId(rec["pid"], rec["pid_start"], rec["boot_id"])
    rec["pid_start"] = rec["pid_start"] - 1  # as if the PID now belonged to another process
    path.write_text(json.dumps(rec))
    assert provider.get_server(server.id).status is ServerStatus.STOPPED
    provider.delete_server(server.id)
    assert procs.is_alive(real)  # untouched
    procs.terminate(real, timeout=3, what="test server")


@pytest.mark.parametrize("fail", [False, True])
def test_sample_app_health_flag(provider, factory, fail):
    if fail:
        (factory.builder / "FAIL_HEALTH").touch()
    server = start_server(provider, "1.0.0")
    assert provider.probe(server, "/healthz", 1.0).status == (500 if fail else 200)
    flag = provider.servers.root / server.id / "app" / "FAIL_HEALTH"
    flag.unlink() if fail else flag.touch()  # checked on every request
    assert provider.probe(server, "/healthz", 1.0).status == (200 if fail else 500)


def test_a_create_cut_short_by_a_dead_cli_run_is_an_error_at_once(provider):
    """kill -9 between the BUILDING record and the process start: the record names its creator, whose death
    makes the server ERROR immediately (and deletable), instead of BUILDING for BUILD_GRACE."""
    import subprocess

    image = provider.bake_image("1.0.0", "demo-1.0.0", {})
    server = provider.create_server(spec("1.0.0", image.id))
    record_path = provider.servers.root / server.id / "server.json"
    rec = json.loads(record_path.read_text())
    provider.delete_server(server.id)
    ghost = subprocess.Popen(["true"])
    ghost.wait()  # a creator process that has exited
    rec.update(pid=None, pid_start=None, creator={"pid": ghost.pid, "start": 1, "boot": procs.boot_id()})
    record_path.parent.mkdir(parents=True)
    record_path.write_text(json.dumps(rec))
    found = provider.get_server(server.id)
    assert found.status is ServerStatus.ERROR and "interrupted" in found.fault
    provider.delete_server(server.id)  # no Conflict: nobody is still creating it
    assert provider.get_server(server.id) is None


def test_a_create_in_progress_is_building_and_not_deletable(provider):
    import os

    from releasectl.errors import Conflict

    image = provider.bake_image("1.0.0", "demo-1.0.0", {})
    server = provider.create_server(spec("1.0.0", image.id))
    record_path = provider.servers.root / server.id / "server.json"
    rec = json.loads(record_path.read_text())
    provider.delete_server(server.id)
    me = os.getpid()
    rec.update(pid=None, pid_start=None, creator={"pid": me, "start": procs.start_time(me), "boot": procs.boot_id()})
    record_path.parent.mkdir(parents=True)
    record_path.write_text(json.dumps(rec))
    assert provider.get_server(server.id).status is ServerStatus.BUILDING
    with pytest.raises(Conflict):
        provider.delete_server(server.id)
    rec["creator"]["pid"] = -1
    record_path.write_text(json.dumps(rec))
    provider.delete_server(server.id)
