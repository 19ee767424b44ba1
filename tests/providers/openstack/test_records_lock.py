"""Release records and the lock in Swift (the simulator's object store, over HTTP), as two runners see them."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from releasectl.engine.lock import LockKeeper
from releasectl.errors import Interrupted, LockHeld, ProviderError
from releasectl.providers.openstack.records import KEEP

OWNER = {"host": "ci-7", "user": "alice", "pid": "4242", "ci_job": "CI_JOB_ID=991", "command": "rollout"}
OTHER = {"host": "laptop", "user": "bob", "pid": "77", "ci_job": "", "command": "rollback"}


@pytest.fixture
def two(make_provider):
    """Two providers for the same app and environment with separate state dirs: two machines."""
    return make_provider(state="a"), make_provider(state="b")


def test_records_round_trip_and_list_by_prefix(two, swift, make_provider) -> None:
    a, b = two
    assert a.read_record("current") is None
    assert a.list_records("history/") == []
    a.write_record("current", '{"phase": "progressing"}')
    a.write_record("history/000000000001-abc", "one")
    a.write_record("history/000000000002-def", "two")
    assert b.read_record("current") == '{"phase": "progressing"}'
    assert b.list_records("history/") == ["history/000000000001-abc", "history/000000000002-def"]
    b.write_record("current", "é" * 5000)
    assert a.read_record("current") == "é" * 5000
    staging = make_provider(env="staging", state="c")
    assert staging.read_record("current") is None  # scoped to app and environment
    assert "releasectl" in swift.containers and "demo/production/records/current" in swift.names()


def test_no_object_store_is_explained(make_provider, openstack_sim_factory, tmp_path) -> None:
    from .conftest import write_clouds

    bare = openstack_sim_factory(object_store=False)  # a cloud without Swift in its catalog
    provider = make_provider(sim=bare, clouds=write_clouds(bare, tmp_path / "noswift.yaml"))
    with pytest.raises(ProviderError) as err:
        provider.read_record("current")
    assert "object-store" in str(err.value) and "object_store_endpoint_override" in err.value.hint


def test_lock_is_exclusive_and_names_the_holder(two) -> None:
    a, b = two
    lease = a.acquire_lock(OWNER, 30)
    assert lease.owner["user"] == "alice" and "took_over" not in lease.owner
    with pytest.raises(LockHeld) as err:
        b.acquire_lock(OTHER, 30)
    message = str(err.value)
    assert "rollout by alice@ci-7 (pid 4242, CI job CI_JOB_ID=991)" in message and "expires at" in message
    assert "releasectl unlock" in err.value.hint
    seen = b.read_lock()
    assert seen.token == lease.token and seen.owner["host"] == "ci-7"
    a.release_lock(lease)
    assert b.read_lock() is None
    taken = b.acquire_lock(OTHER, 30)
    a.release_lock(lease)  # an old lease: does nothing to the new holder
    assert a.read_lock().token == taken.token


def test_renew_extends_and_costs_one_put(two, swift) -> None:
    a, b = two
    lease = a.acquire_lock(OWNER, 5)
    before = dict(swift.counts)
    renewed = a.renew_lock(lease, 60)
    assert renewed.token == lease.token and renewed.expires_at > lease.expires_at
    assert swift.counts["PUT object"] - before.get("PUT object", 0) == 1
    assert swift.counts["GET object"] == before.get("GET object", 0)
    assert b.read_lock().expires_at == pytest.approx(renewed.expires_at)


def test_expired_lease_is_taken_over_and_the_old_holder_learns_it(two) -> None:
    a, b = two
    old = a.acquire_lock(OWNER, 0.2)
    time.sleep(0.3)
    new = b.acquire_lock(OTHER, 30)
    assert "rollout by alice@ci-7" in new.owner["took_over"] and "expired" in new.owner["took_over"]
    with pytest.raises(LockHeld) as err:
        a.renew_lock(old, 30)
    assert "bob@laptop" in str(err.value)
    a.release_lock(old)
    assert b.read_lock().token == new.token


def test_dead_process_on_this_host_is_taken_over(two) -> None:
    a, b = two
    dead = {**OWNER, "host": socket.gethostname(), "pid": str(2**22 + 12345)}
    a.acquire_lock(dead, 300)
    lease = b.acquire_lock({**OTHER, "pid": str(os.getpid())}, 30)
    assert "process" in lease.owner["took_over"] and "gone" in lease.owner["took_over"]


def test_break_lock_and_the_holder_finds_out(two) -> None:
    a, b = two
    lease = a.acquire_lock(OWNER, 300)
    b.break_lock()
    assert b.read_lock() is None
    with pytest.raises(LockHeld, match="broken or taken over"):
        a.renew_lock(lease, 30)
    b.break_lock()  # nothing there: fine
    assert b.acquire_lock(OTHER, 30).owner["user"] == "bob"


def test_racing_runners_get_exactly_one_lock(make_provider) -> None:
    providers = [make_provider(state=f"r{i}") for i in range(6)]
    results: list[object] = []
    barrier = threading.Barrier(len(providers))

    def run(p) -> None:
        barrier.wait()
        try:
            results.append(p.acquire_lock({**OWNER, "pid": str(id(p))}, 30))
        except LockHeld as exc:
            results.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in providers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    leases = [r for r in results if not isinstance(r, Exception)]
    assert len(results) == 6 and len(leases) == 1
    assert providers[0].read_lock().token == leases[0].token


def test_generations_are_never_reused_and_old_ones_are_collected(two, swift) -> None:
    a, _ = two
    lease = a.acquire_lock(OWNER, 30)
    for _ in range(KEEP + 5):
        lease = a.renew_lock(lease, 30)
    a.release_lock(lease)
    lease = a.acquire_lock(OWNER, 30)
    gens = [int(n.rsplit("/", 1)[1]) for n in swift.names() if "/lock/" in n]
    assert max(gens) == KEEP + 8 and len(gens) <= KEEP + 1  # a new name for every state, old ones deleted
    released = json.loads(swift.containers["releasectl"][f"demo/production/lock/{KEEP + 7:012d}"][0])
    assert released["released"] is True


def test_a_lost_put_answer_does_not_lose_the_lock(two, swift) -> None:
    a, b = two
    swift.lose_put_answers = 1  # stored, but the proxy answers 503: the replay finds our own object
    lease = a.acquire_lock(OWNER, 30)
    assert b.read_lock().token == lease.token
    swift.lose_put_answers = 1
    lease = a.renew_lock(lease, 30)
    assert b.read_lock().expires_at == pytest.approx(lease.expires_at)


def test_lock_keeper_renews_and_releases(make_provider) -> None:
    a, b = make_provider(state="k1"), make_provider(state="k2")
    with LockKeeper(a, OWNER, ttl=0.6) as keeper:
        time.sleep(1.0)  # longer than the ttl: only renewals keep it
        with pytest.raises(LockHeld):
            b.acquire_lock(OTHER, 30)
        keeper.check()
    assert b.read_lock() is None
    with LockKeeper(a, OWNER, ttl=0.6) as keeper:
        b.break_lock()
        b.acquire_lock(OTHER, 30)
        time.sleep(0.5)
        with pytest.raises(Interrupted, match="lost the release lock"):
            keeper.check()
