"""Operator intents: post / pending / consume against a tiny in-memory record store, `fold` as a pure
function, and the CLI-side verbs (post to a live runner, wait for its outcome) with a fake clock."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from releasectl.engine import intents, records
from releasectl.engine import release as verbs
from releasectl.engine.context import EngineContext
from releasectl.engine.intents import Intent, IntentKind
from releasectl.engine.model import Analyze, Launch, Pause, Phase, Pipeline, Release, ReleaseKind, Retire, SetWeight
from releasectl.errors import Interrupted, LockHeld, PausedAtGate, ReleaseFailed, UsageError, WaitTimeout
from releasectl.providers.base import HealthCheck, Lease, this_host

PIPELINE = Pipeline(
    name="gate",
    steps=(Launch(), SetWeight(percent=10, hold=60), Pause(), SetWeight(percent=100), Retire()),
)
OPERATOR = {"host": "ops-1", "user": "alice", "pid": "77", "ci_job": ""}


class Records:
    """Just the record half of a provider, plus a lock to read: all the intent code touches."""

    def __init__(self) -> None:
        self.docs: dict[str, str] = {}
        self.lease: Lease | None = None
        self.creates = 0

    def read_record(self, key: str) -> str | None:
        return self.docs.get(key)

    def write_record(self, key: str, data: str) -> None:
        self.docs[key] = data

    def list_records(self, prefix: str) -> list[str]:
        return sorted(k for k in self.docs if k.startswith(prefix))

    def create_record(self, key: str, data: str) -> bool:
        self.creates += 1
        if key in self.docs:
            return False
        self.docs[key] = data
        return True

    def delete_record(self, key: str) -> None:
        self.docs.pop(key, None)

    def read_lock(self) -> Lease | None:
        return self.lease

    def acquire_lock(self, owner, ttl: float) -> Lease:
        if self.lease is not None:
            raise LockHeld(f"locked by {self.lease.owner.get('command')}")
        self.lease = Lease(key="shop/production", token="mine", owner=dict(owner), acquired_at=0.0, expires_at=float("inf"))
        return self.lease

    def renew_lock(self, lease: Lease, ttl: float) -> Lease:
        return lease

    def release_lock(self, lease: Lease) -> None:
        if self.lease is not None and self.lease.token == lease.token:
            self.lease = None


class FakeClock:
    """Time moves only when someone sleeps; each sleep lets `on_sleep` (a stand-in runner) act."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.on_sleep = lambda: None

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.on_sleep()


def make_release(**changes) -> Release:
    rel = Release(
        id="r1", app="shop", env="production", kind=ReleaseKind.ROLLOUT, version="1.1.0", image_id="img-2",
        previous_version="1.0.0", pipeline=PIPELINE, count=2, step_index=1, started_at=100.0, updated_at=100.0,
    )
    return replace(rel, **changes)


def intent(kind: IntentKind, n: int = 1, release_id: str = "r1") -> Intent:
    return Intent(id=f"{n:013d}-abcd", kind=kind, release_id=release_id, at=float(n), actor=OPERATOR)


# ---- post, pending, consume --------------------------------------------------------------------------


def test_post_creates_one_record_per_intent_and_pending_lists_them_oldest_first():
    store = Records()
    late = intents.post(store, "r1", IntentKind.PAUSE, OPERATOR, now=200.0)
    early = intents.post(store, "r1", IntentKind.ABORT, OPERATOR, now=150.5)
    intents.post(store, "other-release", IntentKind.ABORT, OPERATOR, now=100.0)
    assert early.id.startswith("0000000150500-") and early.release_id == "r1" and early.actor == OPERATOR
    assert sorted(store.docs) == sorted([f"intents/r1/{early.id}", f"intents/r1/{late.id}", next(k for k in store.docs if "other" in k)])
    assert intents.pending(store, "r1") == [early, late]
    assert json.loads(store.docs[f"intents/r1/{late.id}"])["kind"] == "pause"


def test_post_never_overwrites_an_existing_intent(monkeypatch):
    store = Records()
    suffixes = iter(["aaaa", "aaaa", "bbbb"])
    monkeypatch.setattr(intents.secrets, "token_hex", lambda _n: next(suffixes))
    first = intents.post(store, "r1", IntentKind.ABORT, OPERATOR, now=10.0)
    second = intents.post(store, "r1", IntentKind.PROMOTE_FULL, OPERATOR, now=10.0)  # same key at first: retried
    assert first.id != second.id and store.creates == 3
    assert [i.kind for i in intents.pending(store, "r1")] == [IntentKind.ABORT, IntentKind.PROMOTE_FULL]


def test_pending_skips_an_unreadable_intent_and_consume_is_idempotent():
    store = Records()
    good = intents.post(store, "r1", IntentKind.ABORT, OPERATOR, now=10.0)
    store.docs["intents/r1/0000000000001-junk"] = "{not json"
    assert intents.pending(store, "r1") == [good]
    intents.consume(store, [good])
    intents.consume(store, [good])
    assert intents.pending(store, "r1") == []


# ---- fold (pure) ---------------------------------------------------------------------------------------


def test_fold_applies_an_abort_and_leaves_its_input_untouched():
    rel = make_release(phase=Phase.PAUSED, step_index=2)
    before = rel.to_json()
    folded = intents.fold(rel, [intent(IntentKind.ABORT)])
    assert rel.to_json() == before
    assert folded.abort_requested and folded.phase is Phase.PROGRESSING and not folded.pause_requested
    assert folded.applied_intents == ["0000000000001-abcd"]
    assert folded.events[-1]["intent"] == "0000000000001-abcd" and folded.events[-1]["applied"] is True


def test_fold_ignores_ids_already_applied():
    once = intents.fold(make_release(), [intent(IntentKind.PAUSE)])
    assert once.pause_requested
    resumed = replace(once, pause_requested=False)
    assert intents.fold(resumed, [intent(IntentKind.PAUSE)]) == resumed
    assert intents.verdicts(resumed, [intent(IntentKind.PAUSE)]) == []


@pytest.mark.parametrize(
    ("rel", "kind", "why"),
    [
        (make_release(phase=Phase.ROLLING_BACK), IntentKind.PROMOTE, "rolling back"),
        (make_release(phase=Phase.ROLLING_BACK), IntentKind.PROMOTE_FULL, "rolling back"),
        (make_release(phase=Phase.ROLLING_BACK), IntentKind.PAUSE, "rolling back"),
        (make_release(phase=Phase.ROLLING_BACK), IntentKind.ABORT, "already rolling back"),
        (make_release(abort_requested=True), IntentKind.PROMOTE_FULL, "rolling back"),
        (make_release(), IntentKind.PROMOTE, "not paused"),
        (make_release(phase=Phase.SUCCEEDED), IntentKind.ABORT, "already ended"),
    ],
)
def test_an_intent_that_makes_no_sense_is_recorded_as_applied_and_ignored_with_a_reason(rel, kind, why):
    folded = intents.fold(rel, [intent(kind)])
    (verdict,) = intents.verdicts(rel, [intent(kind)])
    assert not verdict.applied and why in verdict.reason
    assert folded.applied_intents == [verdict.intent.id]
    assert replace(folded, applied_intents=[], events=[]) == replace(rel, applied_intents=[], events=[])
    assert folded.events[-1] == {"at": 1.0, "message": verdict.reason, "intent": verdict.intent.id, "applied": False}


def test_promote_full_skips_ahead_and_clears_a_pause():
    folded = intents.fold(make_release(), [intent(IntentKind.PAUSE, 1), intent(IntentKind.PROMOTE_FULL, 2)])
    assert folded.promote_full and not folded.pause_requested and folded.promoted_step == 1
    assert folded.phase is Phase.PROGRESSING


def test_promote_full_ends_the_current_hold_but_never_an_analysis_or_a_drain():
    holding = make_release(wake_at=500.0)
    assert intents.fold(holding, [intent(IntentKind.PROMOTE_FULL, 7)]).wake_at == 7.0
    analysing = make_release(wake_at=500.0, pipeline=replace(PIPELINE, steps=(Launch(), Analyze(duration=60, max_error_rate=0.01))))
    assert intents.fold(analysing, [intent(IntentKind.PROMOTE_FULL, 7)]).wake_at == 500.0
    draining = make_release(wake_at=500.0, step_index=4)
    assert intents.fold(draining, [intent(IntentKind.PROMOTE_FULL, 7)]).wake_at == 500.0


def test_intents_apply_in_order_each_against_the_result_of_the_last():
    rel = make_release()
    batch = [intent(IntentKind.PROMOTE, 1), intent(IntentKind.PAUSE, 2), intent(IntentKind.PROMOTE, 3)]
    outcome = [v.applied for v in intents.verdicts(rel, batch)]
    assert outcome == [False, True, True]  # nothing to promote until the pause
    folded = intents.fold(rel, batch)
    assert not folded.pause_requested and len(folded.applied_intents) == 3


def test_promote_opens_a_manual_gate():
    at_gate = make_release(step_index=2, phase=Phase.PAUSED)
    folded = intents.fold(at_gate, [intent(IntentKind.PROMOTE)])
    assert folded.promoted_step == 2 and folded.phase is Phase.PROGRESSING and not folded.promote_full


def test_release_records_without_the_intent_fields_still_load():
    rel = intents.fold(make_release(), [intent(IntentKind.PAUSE)])
    assert Release.from_json(rel.to_json()) == rel
    old = json.loads(make_release().to_json())
    del old["applied_intents"], old["pause_requested"]
    loaded = Release.from_json(json.dumps(old))
    assert loaded.applied_intents == [] and loaded.pause_requested is False


# ---- the verbs: hand the intent to a live runner, or wait for its outcome -------------------------------


def context(store: Records, clock: FakeClock) -> EngineContext:
    return EngineContext(provider=store, app="shop", env="production", image_name="{app}-{version}", count=2,
                         health=HealthCheck(), clock=clock, actor=dict(OPERATOR))


def running(store: Records, clock: FakeClock, rel: Release, command: str = "rollout") -> None:
    records.save(store, rel)
    store.lease = Lease(key="shop/production", token="t", owner={"command": command, "pid": "4242", "host": "ci-7"},
                        acquired_at=clock.now - 5, expires_at=clock.now + 30)


def stand_in_runner(store: Records, finish=None):
    """Each fake sleep: fold pending intents into the record (as the Runner's hook does), then maybe end."""

    def step() -> None:
        rel = records.load_current(store)
        found = intents.pending(store, rel.id)
        rel = intents.fold(rel, found)
        if rel.pause_requested:
            rel.phase = Phase.PAUSED
            store.lease = None
        elif finish is not None and rel.applied_intents:
            rel = finish(rel)
            store.lease = None
        records.save(store, rel)
        intents.consume(store, found)

    return step


def test_abort_with_a_live_runner_posts_an_intent_and_changes_nothing_else():
    store, clock = Records(), FakeClock()
    running(store, clock, make_release())
    before = store.docs["current"]
    posted = verbs.abort(context(store, clock))
    assert isinstance(posted, verbs.Posted) and not posted.waited
    assert posted.intent.kind is IntentKind.ABORT and posted.release.id == "r1"
    assert posted.runner["pid"] == "4242"
    assert store.docs["current"] == before
    assert intents.pending(store, "r1") == [posted.intent]
    assert posted.intent.actor["command"] == "abort"


def test_an_intent_the_runner_would_ignore_is_refused_at_once_and_not_posted():
    store, clock = Records(), FakeClock()
    running(store, clock, make_release(phase=Phase.ROLLING_BACK))
    with pytest.raises(UsageError, match="rolling back"):
        verbs.promote(context(store, clock), full=True)
    assert intents.pending(store, "r1") == []


def test_a_lock_held_by_gc_is_no_runner_to_post_to():
    store, clock = Records(), FakeClock()
    running(store, clock, make_release(), command="gc")
    assert verbs._post_to_runner(context(store, clock), IntentKind.ABORT, None) is None
    store.lease = replace(store.lease, owner={"command": "rollout"}, dead_reason="its process 4242 on this host is gone")
    assert verbs._post_to_runner(context(store, clock), IntentKind.ABORT, None) is None


def test_abort_wait_reports_the_rolled_back_release():
    store, clock = Records(), FakeClock()
    running(store, clock, make_release())
    clock.on_sleep = stand_in_runner(store, finish=lambda r: replace(r, phase=Phase.ABORTED))
    posted = verbs.abort(context(store, clock), wait=60)
    assert posted.waited and posted.release.phase is Phase.ABORTED
    assert posted.intent.id in posted.release.applied_intents


def test_promote_full_wait_raises_release_failed_when_the_release_failed():
    store, clock = Records(), FakeClock()
    running(store, clock, make_release())
    clock.on_sleep = stand_in_runner(store, finish=lambda r: replace(r, phase=Phase.FAILED, failure="analysis failed"))
    with pytest.raises(ReleaseFailed, match="analysis failed"):
        verbs.promote(context(store, clock), full=True, wait=60)


def test_promote_full_wait_exits_1_when_someone_else_aborted_the_release():
    store, clock = Records(), FakeClock()
    running(store, clock, make_release())
    clock.on_sleep = stand_in_runner(store, finish=lambda r: replace(r, phase=Phase.ABORTED))
    with pytest.raises(ReleaseFailed, match="aborted by an operator"):
        verbs.promote(context(store, clock), full=True, wait=60)


def test_pause_wait_ends_paused_with_exit_4():
    store, clock = Records(), FakeClock()
    running(store, clock, make_release())
    clock.on_sleep = stand_in_runner(store)
    with pytest.raises(PausedAtGate, match="paused by an operator at step 2/5"):
        verbs.pause(context(store, clock), wait=60)
    assert records.load_current(store).phase is Phase.PAUSED


def test_wait_gives_up_after_its_timeout_and_says_so_when_the_runner_dies_first():
    store, clock = Records(), FakeClock()
    running(store, clock, make_release())
    with pytest.raises(WaitTimeout):
        verbs.abort(context(store, clock), wait=5)

    def runner_dies() -> None:
        store.lease = None

    clock.on_sleep = runner_dies
    with pytest.raises(Interrupted, match="stopped before it applied"):
        verbs.abort(context(store, clock), wait=5)
    assert len(intents.pending(store, "r1")) == 2  # left for the next runner


def test_a_release_that_ends_before_its_runner_applies_the_intent():
    store, clock = Records(), FakeClock()
    running(store, clock, make_release())

    def finishes_first() -> None:
        records.save(store, replace(records.load_current(store), phase=Phase.SUCCEEDED))
        store.lease = None

    clock.on_sleep = finishes_first
    with pytest.raises(UsageError, match="succeeded before its runner applied the abort"):
        verbs.abort(context(store, clock), wait=5)
    assert intents.pending(store, "r1") == []  # withdrawn: no runner will ever read it


def test_pause_with_no_runner_marks_the_release_paused_and_exits_4():
    store, clock = Records(), FakeClock()
    records.save(store, make_release())
    with pytest.raises(PausedAtGate, match="paused by an operator at step 2/5"):
        verbs.pause(context(store, clock))
    rel = records.load_current(store)
    assert rel.phase is Phase.PAUSED and rel.pause_requested
    assert store.lease is None and intents.pending(store, "r1") == []  # acted itself, lock given back


def test_a_runner_that_takes_the_lock_between_the_look_and_the_act_gets_the_intent():
    store, clock = Records(), FakeClock()
    records.save(store, make_release())
    ctx = context(store, clock)
    reads = iter([None])  # the first look finds no runner; by the time of acquire_lock, one holds it
    real_read = store.read_lock
    store.read_lock = lambda: next(reads, real_read())
    store.lease = Lease(key="shop/production", token="t", owner={"command": "rollout", "pid": "9"},
                        acquired_at=clock.now, expires_at=clock.now + 30)
    posted = verbs.pause(ctx)
    assert isinstance(posted, verbs.Posted) and posted.runner["pid"] == "9"
    assert [i.kind for i in intents.pending(store, "r1")] == [IntentKind.PAUSE]
    assert records.load_current(store).phase is Phase.PROGRESSING


# ---- leftovers: intents that arrive after their release's runner looked for the last time -------------------


def test_applied_intents_are_bounded_newest_kept():
    many = [intent(IntentKind.PAUSE, n) for n in range(1, intents.MAX_APPLIED + 51)]
    rel = intents.fold(make_release(), many)
    assert len(rel.applied_intents) == intents.MAX_APPLIED and rel.applied_intents[-1] == many[-1].id
    assert many[50].id in rel.applied_intents and many[49].id not in rel.applied_intents
    assert len(rel.events) <= 50


def _memory_machine():
    """The property test's world: 1.0.0 live on the in-memory provider, a fake clock, the oracle around
    every call (so these runs are checked against I1-I3 too)."""
    from tests.engine.test_properties import EngineMachine

    machine = EngineMachine()
    machine.first_release()
    return machine


def test_an_intent_posted_after_the_runner_ended_is_never_applied_to_the_next_release():
    from tests.engine.test_properties import FIRST

    from releasectl.engine.images import bake

    machine = _memory_machine()
    ctx = machine.context(machine.provider())
    bake(ctx, "1.1.0")
    ended = verbs.rollout(ctx, "1.1.0", FIRST)
    assert ended.phase is Phase.SUCCEEDED
    # the operator saw the runner alive and its release unfinished, and posted just after it ended
    late = intents.post(machine.provider(), ended.id, IntentKind.ABORT, OPERATOR, machine.clock.time())
    bake(ctx, "1.2.0")
    following = verbs.rollout(ctx, "1.2.0", FIRST)
    assert following.phase is Phase.SUCCEEDED and not following.abort_requested
    assert late.id not in following.applied_intents and machine.world.serves("1.2.0")
    assert machine.provider().list_records(intents.PREFIX) == []  # the leftover is gone, not piling up


def test_an_intent_posted_during_the_last_pass_is_recorded_as_ignored_and_deleted():
    """Posted after the runner's last look (while it labels the images): the release ends as it was going
    to, the intent is listed as ignored with the reason, and its record is deleted."""
    from tests.engine.test_properties import FIRST

    from releasectl.engine.images import bake

    machine = _memory_machine()
    abort_pick = sorted(IntentKind, key=str).index(IntentKind.ABORT)

    def run(ctx: EngineContext) -> Release:
        bake(ctx, "1.1.0")
        return verbs.rollout(ctx, "1.1.0", FIRST)

    machine.command("rollout", run, [("intent", ("update_image", 1), abort_pick)], count=1)
    assert machine.last_outcome == "rollout: succeeded"
    rel = records.load_current(machine.provider())
    ignored = [e for e in rel.events if e.get("intent")]
    assert len(ignored) == 1 and ignored[0]["applied"] is False and "already ended" in ignored[0]["message"]
    assert ignored[0]["intent"] in rel.applied_intents
    assert machine.provider().list_records(intents.PREFIX) == []


# ---- the CLI's intent path is light: `abort` from a second shell returns at once ---------------------------


@pytest.mark.parametrize("args, kind", [(("abort",), "abort"), (("promote", "--full"), "promote_full"), (("pause",), "pause")])
def test_an_intent_verb_posts_to_a_live_runner_without_loading_the_engine_verbs(tmp_path, monkeypatch, args, kind):
    """With a live runner, `abort`, `promote --full` and `pause` hand it the intent before the engine's verbs
    and decision code are imported (they are blocked here: importing one would fail the command), so the
    command costs little more than the CLI's start-up (tests/bench/intents.py measures it)."""
    import os
    import sys
    import time

    from releasectl.config import load_settings
    from releasectl.providers.base import ProviderContext
    from releasectl.providers.local import LocalProvider
    from tests.conftest import run_cli_in_process
    from tests.helpers import free_port

    project = tmp_path / "shop"
    assert run_cli_in_process("init", str(project), "--app", "shop", "--port", str(free_port()), cwd=tmp_path).code == 0
    s = load_settings(project / "releasectl.yaml", None)
    provider = LocalProvider(ProviderContext(app=s.app, env=s.env, config_dir=s.config_dir, state_dir=s.state_dir,
                                             health=s.health, app_port=s.app_port, options=dict(s.provider_options)))
    now = time.time()
    records.save(provider, make_release(app="shop", env=s.env, step_index=1, started_at=now, updated_at=now))
    lease = provider.acquire_lock({"command": "rollout", "host": this_host(), "pid": str(os.getpid()), "user": "t"}, ttl=600)
    try:
        for name in ("releasectl.engine.release", "releasectl.engine.reconcile", "releasectl.engine.decide"):
            monkeypatch.setitem(sys.modules, name, None)
        result = run_cli_in_process(*args, "-o", "json", cwd=project)
        assert result.code == 0, result.stderr
        doc = json.loads(result.stdout)
        assert doc["intent"]["state"] == "accepted" and doc["intent"]["kind"] == kind
    finally:
        provider.release_lock(lease)
    assert [i.kind.value for i in intents.pending(provider, "r1")] == [kind]
