"""Servers are labelled stable at launch; the release in progress (the record) makes them its candidates, and
its end writes no label (issue 12). gc stays safe when the record is lost, stale, or the finalize was killed:
the live fleet is never an orphan. In process, on a fake clock."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from releasectl.engine import records
from releasectl.engine.images import bake
from releasectl.engine.model import Phase
from releasectl.engine.release import gc, rollout
from releasectl.engine.status import status
from releasectl.errors import ReleaseFailed
from releasectl.providers.base import Role
from tests.engine.test_record_writes import CANARY, FIRST, Writes, live_100
from tests.fakes.memory import Crash


class Labels(Writes):
    """Counts the label writes on servers (Nova metadata POSTs on OpenStack)."""

    label_writes = 0

    def update_server_labels(self, server_id, labels):
        type(self).label_writes += 1
        return super().update_server_labels(server_id, labels)

    def update_servers_labels(self, server_ids, labels):
        type(self).label_writes += len(server_ids)
        return super().update_servers_labels(server_ids, labels)


def released(tmp_path: Path, emit=None):
    """1.0.0 live, then a canary to 1.1.0 (killed where `emit` kills it); 1.2.0 baked."""
    ctx, provider, cloud = live_100(tmp_path)
    labels = Labels(provider.ctx, cloud)
    ctx = dataclasses.replace(ctx, provider=labels, **({"emit": emit(labels)} if emit else {}))
    bake(ctx, "1.2.0")
    Labels.label_writes = 0
    return ctx, labels, cloud


def killed_canary(tmp_path: Path, kind: str, point: str):
    """The canary to 1.1.0 killed (kill -9) at its first `kind` event starting with `point`; the context of a
    new runner (a fresh provider on the same cloud) and that provider."""
    def killer(provider):
        def kill(event) -> None:
            if event.kind == kind and event.message.startswith(point) and not provider.dead:
                provider._die()
        return kill

    ctx, provider, cloud = released(tmp_path, emit=killer)
    with pytest.raises(Crash):
        rollout(ctx, "1.1.0", CANARY)
    fresh = Labels(provider.ctx, cloud)
    return dataclasses.replace(ctx, provider=fresh, emit=lambda event: None), fresh


def roles(ctx) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for s in status(ctx).servers:
        found.setdefault(s["version"], set()).add(s["role"])
    return found


def serving(provider) -> set[str]:
    return {m.id for m in provider.list_members() if m.weight > 0}


def assert_gc_keeps_everything(ctx, provider) -> None:
    before = ({s.id for s in provider.list_servers()}, {m.id: m.weight for m in provider.list_members()})
    report = gc(ctx, dry_run=False)
    assert report.deleted_servers == [] and report.removed_members == [], report
    assert ({s.id for s in provider.list_servers()}, {m.id: m.weight for m in provider.list_members()}) == before


def test_a_release_ends_without_a_label_write_and_its_fleet_is_stable(tmp_path: Path):
    ctx, provider, _ = released(tmp_path)
    assert rollout(ctx, "1.1.0", CANARY).phase is Phase.SUCCEEDED
    assert Labels.label_writes == 0
    assert roles(ctx) == {"1.1.0": {Role.STABLE.value}}
    assert all(s.labels.get("role") == "stable" for s in provider.list_servers())
    assert_gc_keeps_everything(ctx, provider)
    assert rollout(ctx, "1.2.0", CANARY).phase is Phase.SUCCEEDED  # the 1.1.0 fleet is the old fleet it retires
    assert {s.version for s in provider.list_servers()} == {"1.2.0"}


def test_gc_with_a_lost_record_keeps_the_live_fleet_and_the_next_release_retires_it(tmp_path: Path):
    ctx, provider, _ = released(tmp_path)
    assert rollout(ctx, "1.1.0", CANARY).phase is Phase.SUCCEEDED
    provider.delete_record(records.CURRENT)
    assert roles(ctx) == {"1.1.0": {Role.STABLE.value}}
    assert_gc_keeps_everything(ctx, provider)
    assert rollout(ctx, "1.2.0", CANARY).phase is Phase.SUCCEEDED
    assert {s.version for s in provider.list_servers()} == {"1.2.0"}


def test_gc_with_a_stale_record_keeps_the_live_fleet(tmp_path: Path):
    """The record of 1.0.0's release (ended) stored back over 1.1.0's: nothing says 1.1.0 is live but its labels."""
    ctx, provider, _ = released(tmp_path)
    first = records.load_current(provider)
    assert rollout(ctx, "1.1.0", CANARY).phase is Phase.SUCCEEDED
    records.save(provider, first)
    assert_gc_keeps_everything(ctx, provider)
    assert rollout(ctx, "1.2.0", CANARY).phase is Phase.SUCCEEDED
    assert {s.version for s in provider.list_servers()} == {"1.2.0"}


@pytest.mark.parametrize("kind, point", [("advance", "old fleet retired"), ("done", "1.1.0 is live")])
def test_a_killed_finalize_leaves_candidates_that_gc_keeps_and_resume_settles(tmp_path: Path, kind: str, point: str):
    ctx, fresh = killed_canary(tmp_path, kind, point)
    assert records.load_current(fresh).phase is Phase.PROGRESSING
    assert roles(ctx) == {"1.1.0": {Role.CANDIDATE.value}}  # its release has not ended
    weighted = serving(fresh)
    assert weighted
    assert_gc_keeps_everything(ctx, fresh)
    assert rollout(ctx, None, CANARY, resume=True).phase is Phase.SUCCEEDED
    assert roles(ctx) == {"1.1.0": {Role.STABLE.value}} and serving(fresh) == weighted
    assert Labels.label_writes == 0
    assert_gc_keeps_everything(ctx, fresh)


def test_a_record_lost_mid_release_leaves_both_fleets_stable_and_the_next_release_converges(tmp_path: Path):
    """The in-progress fleet of a lost record is no orphan (it may serve): gc keeps it, and the next release
    takes both fleets for its old one and retires them once its own is live."""
    ctx, fresh = killed_canary(tmp_path, "step", "step 4/7")
    fresh.delete_record(records.CURRENT)
    assert roles(ctx) == {"1.0.0": {Role.STABLE.value}, "1.1.0": {Role.STABLE.value}}
    assert len({m.version for m in fresh.list_members() if m.weight > 0}) == 2  # the pool cannot tell either
    # the image the last finished release marked live still names the version live before the lost release
    assert status(ctx).live_version == "1.0.0"
    assert_gc_keeps_everything(ctx, fresh)
    next_release = rollout(ctx, "1.2.0", CANARY)
    assert (next_release.phase, next_release.previous_version) == (Phase.SUCCEEDED, "1.0.0")
    assert {s.version for s in fresh.list_servers()} == {"1.2.0"}
    assert roles(ctx) == {"1.2.0": {Role.STABLE.value}}


def test_finalize_relabels_only_what_is_not_labelled_stable():
    """Servers launched stable are done as they are; adopted warm servers (labelled candidate) and servers
    launched before this change are relabelled, as before."""
    from releasectl.engine.actions import RelabelServers
    from releasectl.engine.decide import Kind, decide
    from releasectl.engine.observe import settle_roles
    from tests.engine.test_decide import CANARY as STEPS, NEW, NOW, member, obs, release

    rel = release(*STEPS, step_index=len(STEPS))
    launched = settle_roles([dataclasses.replace(s, role=Role.STABLE, labels={"role": "stable"}) for s in NEW], rel)
    assert {s.role for s in launched} == {Role.CANDIDATE}
    assert decide(obs(list(launched), [member(s, 100) for s in launched]), rel, NOW).kind is Kind.DONE
    adopted = [dataclasses.replace(s, labels={"role": "candidate"}) for s in NEW]
    assert isinstance(decide(obs(adopted, [member(s, 100) for s in adopted]), rel, NOW).action, RelabelServers)


def test_after_a_record_lost_mid_release_a_failing_release_rolls_back_to_the_version_live_before(tmp_path: Path):
    """The next release knows its previous version (from the image marked live), so its rollback has one to
    restore and the I1 net stays on: both old fleets take the traffic back, the failed one is gone."""
    ctx, fresh = killed_canary(tmp_path, "step", "step 4/7")
    fresh.delete_record(records.CURRENT)
    fresh.cloud.never_healthy(ctx.app, "1.2.0")
    with pytest.raises(ReleaseFailed):
        rollout(ctx, "1.2.0", CANARY)
    last = records.load_history_and_damage(fresh)[0][0]
    assert (last.version, last.previous_version, last.phase) == ("1.2.0", "1.0.0", Phase.FAILED)
    assert "1.2.0" not in {s.version for s in fresh.list_servers()}
    assert {"1.0.0", "1.1.0"} <= {m.version for m in fresh.list_members() if m.weight > 0}
    assert status(ctx).live_version == "1.0.0"
