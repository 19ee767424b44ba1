"""Durable records and the release lock (files only, no processes of their own)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from releasectl.errors import LockHeld
from releasectl.providers.base import this_host
from releasectl.providers.local import procs

OWNER = {"host": this_host(), "pid": str(os.getpid()), "user": "ci", "ci_job": "build-77",
         "command": "releasectl rollout 2.0.0"}


def test_records_round_trip(provider, factory):
    keys = ["release/current", "release/history/0001", "..", ".hidden", "a/../b", "", "ünï cødé %41", "x" * 60]
    for i, key in enumerate(keys):
        provider.write_record(key, f'{{"n": {i}}}')
    for i, key in enumerate(keys):
        assert provider.read_record(key) == f'{{"n": {i}}}'
    assert provider.read_record("release") is None
    assert provider.list_records("release/") == ["release/current", "release/history/0001"]
    assert provider.list_records("release/history/") == ["release/history/0001"]
    assert sorted(provider.list_records("")) == sorted(keys)

    provider.write_record("release/current", '{"n": "new"}')  # replaced atomically
    assert provider.read_record("release/current") == '{"n": "new"}'
    folder = factory.project / ".releasectl" / "envs" / "test" / "records"
    assert all("/" not in p.name and not p.name.startswith(".") for p in folder.iterdir())

    # scoped per environment, and seen by a later run
    assert factory(env="staging").list_records("") == []
    assert factory().read_record("..") == '{"n": 2}'


def test_held_lock_names_its_holder(provider, factory):
    lease = provider.acquire_lock(OWNER, ttl=60)
    assert lease.key == "demo/test" and lease.owner == OWNER and lease.expires_at - lease.acquired_at == 60
    other = factory()  # another CLI run
    with pytest.raises(LockHeld) as err:
        other.acquire_lock({**OWNER, "pid": "1"}, ttl=60)
    text = str(err.value)
    for part in (OWNER["host"], OWNER["pid"], "build-77", "releasectl rollout 2.0.0", "expires at"):
        assert part in text
    assert other.read_lock() == lease
    assert factory(env="staging").acquire_lock(OWNER, ttl=60).token != lease.token  # one lock per env


def test_expired_lease_is_taken_over(provider, factory):
    old = provider.acquire_lock({**OWNER, "host": "elsewhere", "pid": "4242"}, ttl=30)
    later = factory()
    later.lock.clock = lambda: old.expires_at + 1  # the lease ran out
    lease = later.acquire_lock(OWNER, ttl=30)
    assert lease.token != old.token
    assert "by ci@elsewhere (pid 4242, CI job build-77)" in lease.owner["took_over"] and "expired" in lease.owner["took_over"]
    with pytest.raises(LockHeld, match="taken over"):
        provider.renew_lock(old, ttl=30)
    provider.release_lock(old)  # not ours any more: nothing happens
    assert provider.read_lock() == lease


def test_dead_holder_on_this_host_is_taken_over(provider):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = dead.stdout.strip()
    assert not procs.pid_is_running(int(pid))
    provider.acquire_lock({**OWNER, "pid": pid}, ttl=600)
    lease = provider.acquire_lock(OWNER, ttl=600)
    assert f"process {pid} on this host is gone" in lease.owner["took_over"]

    # a live holder on this host, or any holder on another host, is not
    with pytest.raises(LockHeld):
        provider.acquire_lock({**OWNER, "pid": "1"}, ttl=600)
    provider.break_lock()
    provider.acquire_lock({**OWNER, "host": "elsewhere", "pid": pid}, ttl=600)
    with pytest.raises(LockHeld, match="elsewhere"):
        provider.acquire_lock(OWNER, ttl=600)


def test_renew_release_read_break(provider, factory):
    lease = provider.acquire_lock(OWNER, ttl=10)
    renewed = provider.renew_lock(lease, ttl=100)
    assert renewed.token == lease.token and renewed.expires_at > lease.expires_at
    provider.release_lock(lease)
    assert provider.read_lock() is None
    provider.release_lock(lease)  # idempotent

    lease = provider.acquire_lock(OWNER, ttl=100)
    factory().break_lock()  # `releasectl unlock` from another run
    assert provider.read_lock() is None
    with pytest.raises(LockHeld, match="broken"):
        provider.renew_lock(lease, ttl=100)
    provider.break_lock()  # idempotent
    assert provider.acquire_lock(OWNER, ttl=100).owner == OWNER  # no took_over after a clean break


def test_create_record_is_create_only_and_delete_record_is_idempotent(provider, factory):
    import threading

    key = "intents/r1/0001-a"
    results: list[bool] = []
    start = threading.Barrier(8)

    def create(n: int) -> None:
        start.wait()
        results.append(provider.create_record(key, f'{{"writer": {n}}}'))

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]  # exactly one writer won
    winner = provider.read_record(key)
    assert provider.create_record(key, '{"writer": "late"}') is False
    assert provider.read_record(key) == winner  # never overwritten
    assert factory().list_records("intents/r1/") == [key]
    folder = factory.project / ".releasectl" / "envs" / "test" / "records"
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".tmp-")]  # no temp file left behind

    provider.delete_record(key)
    provider.delete_record(key)
    assert provider.read_record(key) is None and provider.list_records("intents/") == []
    assert provider.create_record(key, "again") is True
