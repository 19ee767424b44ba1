"""The provider contract: what `releasectl.providers.base` promises, checked the same way on every provider.

Each test runs against memory, local, openstack-sim and openstack-real (see conftest.py). The tests follow
the interface's docstrings, not any one provider: a provider that behaves differently fails here.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from releasectl.errors import LockHeld, NotFound, UsageError
from releasectl.providers.base import (
    AdminState,
    Health,
    ImageStatus,
    Label,
    LBStatus,
    MemberStats,
    Role,
)

OWNER = {"host": "ci-7", "user": "alice", "pid": "4242", "ci_job": "CI_JOB_ID=991", "command": "rollout"}
OTHER = {"host": "laptop", "user": "bob", "pid": "77", "ci_job": "", "command": "rollback"}
MISSING_ID = "00000000-0000-0000-0000-000000000000"


# ---- images ---------------------------------------------------------------------------------------------


def test_bake_lists_gets_and_labels_an_image(subject) -> None:
    p = subject.provider
    image = p.bake_image("1.0.0", "demo-1.0.0", {"extra": "contract", Label.PORT: "8000"})
    assert (image.status, image.version, image.app, image.name) == (ImageStatus.ACTIVE, "1.0.0", "demo", "demo-1.0.0")
    assert image.labels["extra"] == "contract" and not image.protected
    assert [i.id for i in p.list_images()] == [image.id]
    assert p.get_image(image.id) == image
    assert p.get_image(MISSING_ID) is None


def test_update_image_labels_and_protection_then_delete_is_idempotent(subject) -> None:
    p = subject.provider
    image = subject.image("1.0.0")
    updated = p.update_image(image.id, labels={"role_test": "live", Label.OUTCOME: "released"}, protected=True)
    assert updated.protected and updated.labels["role_test"] == "live" and updated.outcome.value == "released"
    again = p.update_image(image.id, labels={"role_test": None, "never_set": None})
    assert "role_test" not in again.labels and "never_set" not in again.labels and again.protected
    assert p.get_image(image.id).labels == again.labels  # read back
    p.delete_image(image.id)  # protected: unprotected first
    assert p.get_image(image.id) is None and p.list_images() == []
    p.delete_image(image.id)  # gone: success
    with pytest.raises(NotFound):
        p.update_image(image.id, labels={"x": "y"})


# ---- servers --------------------------------------------------------------------------------------------


def test_create_lists_by_labels_exactly_once(subject) -> None:
    p = subject.provider
    server = subject.boot("1.0.0", name="demo-1.0.0-a")
    assert (server.app, server.env, server.version, server.role, server.release_id) == ("demo", subject.env, "1.0.0",
                                                                                        Role.CANDIDATE, "rel-1")
    listed = [s for s in p.list_servers() if s.name == "demo-1.0.0-a"]
    assert [s.id for s in listed] == [server.id]  # never a duplicate
    assert listed[0].labels[Label.APP] == "demo" and listed[0].labels[Label.ENV] == subject.env
    assert subject.make(env="other-env").list_servers() == []  # scoped to the environment
    assert p.get_server(MISSING_ID) is None


def test_server_labels_merge_and_remove(subject) -> None:
    p = subject.provider
    server = subject.boot()
    updated = p.update_server_labels(server.id, {Label.ROLE: Role.STABLE.value, Label.RETIRE_AFTER: "123"})
    assert updated.role is Role.STABLE and updated.labels[Label.RETIRE_AFTER] == "123"
    assert updated.labels[Label.VERSION] == "1.0.0"  # the others stay
    again = p.update_server_labels(server.id, {Label.RETIRE_AFTER: None})
    assert Label.RETIRE_AFTER not in again.labels and again.role is Role.STABLE
    assert p.get_server(server.id).labels == again.labels
    with pytest.raises(NotFound):
        p.update_server_labels(MISSING_ID, {Label.ROLE: "stable"})


def test_delete_server_is_idempotent(subject) -> None:
    p = subject.provider
    server = subject.boot()
    p.delete_server(server.id)
    assert p.get_server(server.id) is None and server.id not in {s.id for s in p.list_servers()}
    p.delete_server(server.id)


def test_create_from_a_missing_image_is_not_found(subject) -> None:
    spec = subject.spec()
    subject.provider.delete_image(spec.image_id)
    with pytest.raises(NotFound):
        subject.provider.create_server(spec)


def test_probe_answers_from_the_app(subject) -> None:
    server = subject.boot()
    probe = subject.wait(lambda: (pr := subject.provider.probe(server, "/healthz", 2.0)).status == 200 and pr,
                         "the app to answer its health check")
    assert probe.passed(200) and probe.error is None and probe.latency >= 0


# ---- the pool -------------------------------------------------------------------------------------------


def test_add_member_at_weight_0_idempotent_and_owned(subject) -> None:
    p = subject.provider
    server = subject.boot()
    p.ensure_pool()
    member = p.add_member(server)
    assert (member.weight, member.address, member.port) == (0, server.address, server.port)
    assert member.admin is not AdminState.READY  # no traffic until set_weights raises it
    assert p.add_member(server).id == member.id  # adopted, not added twice
    assert [m.id for m in p.list_members() if m.address == server.address] == [member.id]
    listed = next(m for m in p.list_members() if m.id == member.id)
    assert listed.owned_by("demo", subject.env) and not listed.owned_by("other", subject.env)
    assert listed.server_id in (None, server.id)
    subject.wait(lambda: next(m for m in p.list_members() if m.id == member.id).health is Health.HEALTHY,
                 "the member to pass its checks")


def test_a_foreign_member_is_not_ours(subject) -> None:
    if subject.add_foreign is None:
        pytest.skip(f"{subject.kind}: the load balancer owns every member (nothing foreign can join)")
    foreign_id = subject.add_foreign()
    member = next(m for m in subject.provider.list_members() if m.id == foreign_id)
    assert not member.owned_by("demo", subject.env)


def test_set_weights_reads_back_and_keeps_the_others(subject) -> None:
    p = subject.provider
    a, b = subject.boot(name="demo-1.0.0-a"), subject.boot(name="demo-1.0.0-b")
    p.ensure_pool()
    ma, mb = p.add_member(a), p.add_member(b)
    subject.wait(lambda: all(m.health is Health.HEALTHY for m in p.list_members() if m.id in (ma.id, mb.id)),
                 "both members to pass their checks")
    p.set_weights({ma.id: 10, mb.id: 20})
    weights = {m.id: (m.weight, m.admin) for m in p.list_members()}
    assert weights[ma.id] == (10, AdminState.READY) and weights[mb.id] == (20, AdminState.READY)
    p.set_weights({ma.id: 0})  # drain one: the other keeps its weight
    weights = {m.id: m.weight for m in p.list_members()}
    assert weights[ma.id] == 0 and weights[mb.id] == 20
    p.set_weights({})  # nothing to do
    with pytest.raises(UsageError):
        p.set_weights({mb.id: p.capabilities.max_weight + 1})


def test_remove_member_is_idempotent(subject) -> None:
    p = subject.provider
    server = subject.boot()
    p.ensure_pool()
    member = p.add_member(server)
    p.remove_member(member.id)
    assert member.id not in {m.id for m in p.list_members()}
    p.remove_member(member.id)


def test_member_stats_shape(subject) -> None:
    p = subject.provider
    server = subject.boot()
    p.ensure_pool()
    member = p.add_member(server)
    stats = p.member_stats()
    assert isinstance(stats, Mapping)
    if not p.capabilities.member_stats:
        assert stats == {}
        return
    assert set(stats) <= {m.id for m in p.list_members()} and member.id in stats
    for member_id, s in stats.items():
        assert isinstance(s, MemberStats) and s.member_id == member_id
        assert s.requests >= 0 and s.http_5xx >= 0 and s.errors >= 0


def test_lb_state_is_up_after_ensure_pool_and_reading_it_changes_nothing(subject) -> None:
    p = subject.provider
    p.ensure_pool()
    state = p.lb_state()
    assert state.status is LBStatus.UP
    assert p.lb_state() == state and p.pool_endpoint() is not None


# ---- records --------------------------------------------------------------------------------------------


def test_records_round_trip_and_list_by_prefix(subject) -> None:
    p = subject.provider
    assert p.read_record("current") is None and p.list_records("history/") == []
    p.write_record("current", '{"phase": "progressing"}')
    p.write_record("history/000000000001-abc", "one")
    p.write_record("history/000000000002-def", "two")
    other_runner = subject.make(env=subject.env)
    assert other_runner.read_record("current") == '{"phase": "progressing"}'
    assert other_runner.list_records("history/") == ["history/000000000001-abc", "history/000000000002-def"]
    p.write_record("current", "é" * 5000)  # replaced whole
    assert other_runner.read_record("current") == "é" * 5000
    assert subject.make(env="other-env").read_record("current") is None  # scoped to app and environment


def test_create_record_is_create_only(subject) -> None:
    p, other_runner = subject.provider, subject.make(env=subject.env)
    assert p.create_record("intents/0001", "abort") is True
    assert other_runner.create_record("intents/0001", "promote") is False  # the first writer won
    assert p.read_record("intents/0001") == "abort"
    assert p.list_records("intents/") == ["intents/0001"]


def test_delete_record_is_idempotent(subject) -> None:
    p = subject.provider
    p.write_record("intents/0002", "pause")
    p.delete_record("intents/0002")
    assert p.read_record("intents/0002") is None and p.list_records("intents/") == []
    p.delete_record("intents/0002")
    assert p.create_record("intents/0002", "again") is True  # the key is free again


# ---- the lock -------------------------------------------------------------------------------------------


def test_lock_is_exclusive_and_names_its_holder(subject) -> None:
    p, other_runner = subject.provider, subject.make(env=subject.env)
    lease = p.acquire_lock(OWNER, 60)
    assert lease.owner["user"] == "alice" and "took_over" not in lease.owner and lease.alive(lease.acquired_at)
    with pytest.raises(LockHeld) as err:
        other_runner.acquire_lock(OTHER, 60)
    assert "alice@ci-7 (pid 4242, CI job CI_JOB_ID=991)" in str(err.value)
    assert other_runner.read_lock().token == lease.token
    assert subject.make(env="other-env").acquire_lock(OTHER, 60).token != lease.token  # one lock per environment


def test_renew_release_and_read(subject) -> None:
    p = subject.provider
    lease = p.acquire_lock(OWNER, 10)
    renewed = p.renew_lock(lease, 100)
    assert renewed.token == lease.token and renewed.expires_at > lease.expires_at
    p.release_lock(renewed)
    assert p.read_lock() is None
    p.release_lock(renewed)  # idempotent


def test_an_expired_lease_is_taken_over_and_its_holder_finds_out(subject) -> None:
    p, other_runner = subject.provider, subject.make(env=subject.env)
    old = p.acquire_lock(OWNER, 0.5)
    subject.pass_time(old.expires_at)
    assert not other_runner.read_lock().alive(old.expires_at + 0.01)
    new = other_runner.acquire_lock(OTHER, 60)
    assert "rollout by alice@ci-7" in new.owner["took_over"] and "expired" in new.owner["took_over"]
    with pytest.raises(LockHeld):
        p.renew_lock(old, 60)
    p.release_lock(old)  # not its lock any more: nothing happens
    assert other_runner.read_lock().token == new.token


def test_break_lock(subject) -> None:
    p, other_runner = subject.provider, subject.make(env=subject.env)
    lease = p.acquire_lock(OWNER, 300)
    other_runner.break_lock()
    assert other_runner.read_lock() is None
    with pytest.raises(LockHeld):
        p.renew_lock(lease, 30)
    other_runner.break_lock()  # nothing there: fine
    assert "took_over" not in other_runner.acquire_lock(OTHER, 30).owner  # a clean break leaves no dead holder


# ---- error mapping --------------------------------------------------------------------------------------


def test_missing_things_are_none_or_not_found_and_deletes_succeed(subject) -> None:
    p = subject.provider
    assert p.get_image(MISSING_ID) is None and p.get_server(MISSING_ID) is None
    assert p.read_record("no/such/key") is None
    with pytest.raises(NotFound):
        p.update_image(MISSING_ID, protected=True)
    with pytest.raises(NotFound):
        p.update_server_labels(MISSING_ID, {Label.ROLE: "stable"})
    p.delete_image(MISSING_ID)
    p.delete_server(MISSING_ID)
    p.delete_record("no/such/key")
    p.ensure_pool()
    p.remove_member(MISSING_ID)

