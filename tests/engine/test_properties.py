"""The engine never causes an outage: a stateful property test over random releases, faults and operator acts.

Hypothesis draws sequences of rollouts (random small pipelines), operator verbs (resume, abort, promote,
promote --full, rollback, gc, down; intents posted mid-run when `releasectl.engine.intents` exists) and
faults (server death, a start failure, a server that never gets healthy, LB death, LB in ERROR, a vanished
image, 409s, a foreign member joining the pool, and a crash of the runner at any provider call, after which
the next verb is a new runner). Faults strike between commands, or during one: before its runner's call N,
or before its k-th call of a given write (create_server, set_weights, delete_server...).

The engine is driven only through its public operations (engine/release.py) with the in-memory provider and
a fake clock. The oracle is independent of the engine: it wraps the provider and, around every mutating
call, reads the cloud's truth (which servers answer, which members are weighted and in rotation):

- I1: no call except under `down` takes the environment from >= 1 serving member to none (undoing a first
  release, when nothing was live before it, is not an outage);
- I2: a call that drains, removes or stops a weighted member leaves a weighted member that serves and that
  the LB sees healthy (the replacement is healthy and weighted in before the old one goes);
- I3: no call touches a server, member or image that is not this app's and environment's;
and after each command that ended (no crash):
- CLAIM: when something served as the command began, what it says is live when it ends (a succeeded
  release's version; the previous version after a rollback) is served by at least one member;
- LB: a release command (rollout, resume, abort, rollback, promote) does not end with the LB down;
- START: a start failure of the new fleet ends the release as failed (exit 1), not exit 5.
A check is skipped when a fault struck after the engine's last look at the world (no engine can see it).
"""

from __future__ import annotations

import collections
import copy
import functools
import os
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck as Hc
from hypothesis import Phase as Stage
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from releasectl.engine import records
from releasectl.engine import release as release_verbs
from releasectl.engine.context import EngineContext
from releasectl.engine.images import bake
from releasectl.engine.model import Analyze, Launch, Pause, Phase, Pipeline, Release, ReleaseKind, Retire, SetWeight
from releasectl.engine.release import abort, down, gc, promote, rollback, rollout
from releasectl.errors import LockHeld, ProviderError, ReleaseFailed, ReleasectlError, UsageError
from releasectl.providers.base import AdminState, Health, HealthCheck, Label, LBStatus, ProviderContext, ServerStatus
from tests.fakes.clock import FakeClock
from tests.fakes.memory import Crash, MemoryCloud, MemoryProvider

try:  # operator intents (issue 8 item 5) land on another branch; without them, verbs run between commands
    from releasectl.engine import intents
except ImportError:  # pragma: no cover - depends on the branch
    intents = None

APP, ENV, POOL = "demo", "production", "shared-pool"
HEALTH = HealthCheck(path="/healthz", expected_status=200, interval=1.0, timeout=1.0, rise=2, fall=2)
ACTOR = {"host": "prop", "user": "hypothesis", "pid": "1"}
OPERATOR = {"host": "prop", "user": "operator", "pid": "2"}  # a second shell, not the runner
MUTATING = {"create_server", "update_server_labels", "delete_server", "add_member", "set_weights", "remove_member",
            "update_image", "delete_image", "bake_image", "ensure_pool", "destroy_pool"}
OBSERVING = {"list_servers", "list_members", "lb_state"}
BATCHES = {"create_servers": "create_server", "add_members": "add_member", "remove_members": "remove_member", "delete_servers": "delete_server",
           "update_servers_labels": "update_server_labels"}
RELEASE_VERBS = {"rollout", "resume", "abort", "rollback", "promote", "promote_full"}
MAX_CALLS = 5_000  # provider calls one command may make before it counts as stuck
MAX_HOURS = 6.0  # fake hours one command may take

FAULTS = ("server_death", "start_failure", "never_healthy", "lb_death", "lb_error", "vanished_image", "conflicts",
          "foreign_member", "crash")
COVERED: collections.Counter[str] = collections.Counter()  # what the runs exercised, for the report


class Violation(AssertionError):
    """An invariant broke. Subclasses differ so hypothesis reports each kind of outage separately."""


class I1Violation(Violation):
    pass


class I2Violation(Violation):
    pass


class I3Violation(Violation):
    pass


class ClaimViolation(Violation):
    pass


class LBLeftDown(Violation):
    pass


class StartFailureNotFailed(Violation):
    pass


class Stuck(Violation):
    pass


class World:
    """The cloud's truth, as the oracle reads it (never through the provider API the engine uses)."""

    def __init__(self, cloud: MemoryCloud) -> None:
        self.cloud = cloud

    def ours(self, server_id: str | None) -> bool:
        server = self.cloud.servers.get(server_id or "")
        return server is not None and server.labels.get(Label.APP) == APP and server.labels.get(Label.ENV) == ENV

    def members(self) -> list:
        pool = self.cloud.pools.get(POOL)
        return [] if pool is None or pool.status is LBStatus.ABSENT else list(pool.members.values())

    def serving(self, *, lb_healthy: bool = False) -> list:
        """Our members that take traffic and answer it: weighted, in rotation, their server up and healthy."""
        out = []
        for m in self.members():
            server = self.cloud.servers.get(m.server_id or "")
            if self.ours(m.server_id) and m.weight > 0 and m.admin is AdminState.READY and server.answers:
                if not lb_healthy or m.health is Health.HEALTHY:
                    out.append(m)
        return out

    def serves(self, version: str) -> bool:
        return any(self.cloud.servers[m.server_id].labels.get(Label.VERSION) == version for m in self.serving())

    def lb(self) -> LBStatus:
        pool = self.cloud.pools.get(POOL)
        return LBStatus.ABSENT if pool is None else pool.status

    def foreign(self, kind: str, ident: str) -> bool:
        if kind == "image":
            image = self.cloud.images.get(ident)
            return image is not None and image.app != APP
        if kind == "member":  # who added it, as the cloud recorded it (its server may be gone)
            member = next((m for m in self.members() if m.id == ident), None)
            return member is not None and (member.app, member.env) != (APP, ENV)
        return ident in self.cloud.servers and not self.ours(ident)


def targets(name: str, args: tuple, kwargs: dict) -> list[tuple[str, str]]:
    """(kind, id) of what a mutating call acts on."""
    if name == "set_weights":
        return [("member", mid) for mid in args[0]]
    if name == "remove_member":
        return [("member", args[0])]
    if name in ("delete_server", "update_server_labels"):
        return [("server", args[0])]
    if name == "add_member":
        return [("server", args[0].id)]
    if name in ("update_image", "delete_image"):
        return [("image", args[0])]
    return []


class Oracle:
    """Wraps one runner's provider: applies the faults scheduled at call N and checks I1-I3 around each write."""

    def __init__(self, provider: MemoryProvider, world: World, schedule: dict[Any, list[tuple[str, Callable[[], None]]]],
                 command: str, started: float) -> None:
        self._provider = provider
        self._world = world
        self._schedule = schedule
        self._command = command
        self._started = started
        self.calls = 0
        self.per_method: collections.Counter[str] = collections.Counter()
        self.last_observed = 0  # call index of the engine's last look at servers, members or the LB
        self.last_fault = 0  # call index of the last fault applied during this command
        self.faults: list[str] = []
        self._looked: dict[str, int] = {}  # the last call of each observing method

    def __getattr__(self, name: str) -> Any:
        if name in BATCHES:  # a batch runs as its single calls, so faults and checks land between them
            single = getattr(self, BATCHES[name])
            return lambda items, *rest: [single(item, *rest) for item in items]
        attr = getattr(self._provider, name)
        if name.startswith("_") or not callable(attr):
            return attr
        return functools.partial(self._call, name, attr)

    def apply(self, kind: str, fault: Callable[[], None]) -> None:
        fault()
        self.faults.append(kind)
        self.last_fault = self.calls

    def _call(self, name: str, method: Callable, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls > MAX_CALLS or self._world.cloud.clock.time() - self._started > MAX_HOURS * 3600:
            raise Stuck(f"{self._command} made {self.calls} provider calls over "
                        f"{(self._world.cloud.clock.time() - self._started) / 3600:.1f} fake hours without ending")
        self.per_method[name] += 1
        due = self._schedule.pop(self.calls, []) + self._schedule.pop((name, self.per_method[name]), [])
        for kind, fault in due:
            self.apply(kind, fault)
        if name not in MUTATING:
            result = method(*args, **kwargs)
            if name in OBSERVING:
                # the engine's look is complete once each of its reads came after the fault: a server
                # killed between list_servers and list_members is one no engine has seen yet
                self._looked[name] = self.calls
                self.last_observed = min(self._looked.values())
            return result
        for kind, ident in targets(name, args, kwargs):
            if self._world.foreign(kind, ident):
                raise I3Violation(f"{self._command}: {name}{args!r} touches a {kind} that is not {APP}/{ENV}'s")
        before = {m.id: (m.weight, m.admin) for m in self._world.members()}
        serving_before = self._world.serving()
        try:
            return method(*args, **kwargs)
        finally:  # a call that crashed after it took effect is checked too
            self._check_capacity(name, args, before, serving_before)

    def _check_capacity(self, name: str, args: tuple, before: dict, serving_before: list) -> None:
        if self._command == "down" or self.last_fault > self.last_observed:
            return
        serving = self._world.serving()
        call = f"{self._command}: {name}{args!r}"
        if serving_before and not serving and not self._undoing_a_first_release():
            raise I1Violation(f"{call} left no serving member (before: {[m.name for m in serving_before]})")
        if name == "set_weights":
            gone = [mid for mid, w in args[0].items() if w == 0 and before.get(mid, (0, None))[0] > 0]
        elif name == "remove_member":
            gone = [args[0]] if before.get(args[0], (0, None))[0] > 0 else []
        elif name == "delete_server":
            gone = [mid for mid, (w, admin) in before.items()
                    if w > 0 and admin is AdminState.READY and mid in {m.id for m in serving_before if m.server_id == args[0]}]
        else:
            gone = []
        if gone and serving_before and not self._world.serving(lb_healthy=True) and not self._undoing_a_first_release():
            raise I2Violation(f"{call} took weighted member(s) {gone} out while no replacement is healthy and weighted in")

    def _undoing_a_first_release(self) -> bool:
        """Undoing a first release (nothing was live before it) leaves nothing live: that is not an outage."""
        text = self._world.cloud.records.get((APP, ENV), {}).get(records.CURRENT)
        rel = None if text is None else Release.from_json(text)
        return rel is not None and rel.previous_version is None and (rel.phase is not Phase.SUCCEEDED)


# strategies are built once (building one per draw re-validated it every time: a sixth of the run)
GATE_OR_ANALYSIS = st.one_of(
    st.builds(Pause, duration=st.sampled_from([None, 5.0])),
    st.builds(Analyze, duration=st.just(5.0), max_error_rate=st.just(0.01)),
)
STEP = st.one_of(
    st.builds(SetWeight, percent=st.sampled_from([10.0, 25.0, 50.0]), hold=st.sampled_from([0.0, 5.0, 20.0])),
    GATE_OR_ANALYSIS,
)
MIDDLE_STEPS = st.lists(STEP, max_size=3)
AFTER_STEPS = st.lists(GATE_OR_ANALYSIS, max_size=1)
DRAIN_TIMEOUTS = st.sampled_from([0.0, 2.0])
KEEP_PREVIOUS = st.sampled_from([0.0, 30.0])


@st.composite
def pipelines(draw: Callable) -> Pipeline:
    """Valid pipelines (config._check_order): launch first, a last weight of 100 %, retire last."""
    middle = draw(MIDDLE_STEPS)
    after = draw(AFTER_STEPS)
    retire = Retire(drain_timeout=draw(DRAIN_TIMEOUTS), keep_previous=draw(KEEP_PREVIOUS))
    return Pipeline(name="random", steps=(Launch(), *middle, SetWeight(percent=100.0), *after, retire))


FIRST = Pipeline(name="first", steps=(Launch(), SetWeight(percent=100.0), Retire(drain_timeout=0.0)))
MID_RUN = FAULTS + (("intent",) if intents is not None else ())
# faults a command meets: (kind, at its runner's call N, a number that picks the target and variant)
# a fault strikes before the runner's call N, or before its k-th call of a write (the kill points of the chaos test)
strike_at = st.one_of(st.integers(min_value=1, max_value=200),
                      st.tuples(st.sampled_from(sorted(MUTATING - {"bake_image", "ensure_pool", "destroy_pool"})),
                                st.integers(min_value=1, max_value=3)))
fault_plans = st.lists(st.tuples(st.sampled_from(MID_RUN), strike_at, st.integers(min_value=0, max_value=7)), max_size=2)


VERBS: dict[str, Callable[[EngineContext], Any]] = {
    "resume": lambda ctx: rollout(ctx, None, FIRST, resume=True),
    "abort": abort,
    "promote": lambda ctx: promote(ctx, full=False),
    "promote_full": lambda ctx: promote(ctx, full=True),
    "rollback": rollback,
    "gc": lambda ctx: gc(ctx, dry_run=False),
    "down": down,
}
if hasattr(release_verbs, "pause"):  # `releasectl pause` comes with the intents
    VERBS["pause"] = release_verbs.pause


def provider_for(cloud: MemoryCloud, app: str = APP) -> MemoryProvider:
    ctx = ProviderContext(app=app, env=ENV, config_dir=Path("/nonexistent"), state_dir=Path("/nonexistent"),
                          health=HEALTH, app_port=8000, options={"pool": POOL})
    return MemoryProvider(ctx, cloud)


@functools.lru_cache(maxsize=1)
def _first_release() -> MemoryCloud:
    """1.0.0 live on two servers in a pool shared with another app's member and an operator's static one."""
    cloud = MemoryCloud(FakeClock())
    provider = provider_for(cloud)
    provider.ensure_pool()
    cloud.add_foreign_member(POOL, app="other", env=ENV)
    cloud.add_foreign_member(POOL, app=None, env=None)  # the operator's own, not releasectl's
    provider_for(cloud, "other").bake_image("9.9.9", "other-9.9.9", {})  # another app's image
    ctx = EngineContext(provider=provider, app=APP, env=ENV, image_name="{app}-{version}", count=2, health=HEALTH,
                        clock=cloud.clock, actor=dict(ACTOR))
    bake(ctx, "1.0.0")
    assert rollout(ctx, "1.0.0", FIRST).phase is Phase.SUCCEEDED
    return cloud


def _first_release_snapshot() -> MemoryCloud:
    return copy.deepcopy(_first_release())


class EngineMachine(RuleBasedStateMachine):
    """One app and environment in a pool it shares with another app; 1.0.0 is live to begin with."""

    def __init__(self) -> None:
        super().__init__()
        self.cloud = MemoryCloud()
        self.clock = self.cloud.clock
        self.world = World(self.cloud)
        self.baked = 0
        self.last_outcome = ""

    # ---- plumbing ----------------------------------------------------------------------------------------

    def provider(self) -> MemoryProvider:
        return provider_for(self.cloud)

    def context(self, provider: Any, count: int = 2) -> EngineContext:
        return EngineContext(provider=provider, app=APP, env=ENV, image_name="{app}-{version}", count=count,
                             health=HEALTH, progress_deadline=120.0, drain_timeout=2.0, clock=self.clock,
                             actor=dict(ACTOR), lock_ttl=30.0)

    def unfinished(self) -> Release | None:
        text = self.cloud.records.get((APP, ENV), {}).get(records.CURRENT)
        rel = None if text is None else Release.from_json(text)
        return rel if rel is not None and not rel.phase.finished else None

    def command(self, name: str, operation: Callable[[EngineContext], Any], faults: list, count: int = 2) -> None:
        """Run one command as a new runner process, with `faults` [(kind, at call, pick)], then check what it left."""
        COVERED[f"verb:{name}"] += 1
        schedule: dict[Any, list] = {}
        for kind, when, pick in faults:
            schedule.setdefault(when, []).append((kind, self.make_fault(kind, pick)))
        oracle = Oracle(self.provider(), self.world, schedule, name, self.clock.time())
        oracle.lb_at_start, oracle.served_at_start = self.world.lb(), bool(self.world.serving())
        ctx = self.context(oracle, count)
        crashed = False
        outcome: Any = None
        try:
            outcome = operation(ctx)
        except Crash:
            crashed = True
        except ReleasectlError as exc:
            outcome = exc
        self.last_outcome = f"{name}: {type(outcome).__name__ if not isinstance(outcome, Release) else outcome.phase.value}"
        if crashed:
            COVERED["crash:" + name] += 1
        elif oracle.last_fault <= oracle.last_observed:
            self.check_end(name, oracle, outcome)
        for index in sorted(schedule, key=str):  # scheduled past the command's last call: they strike after it
            for kind, fault in schedule[index]:
                oracle.apply(kind, fault)

    def check_end(self, name: str, oracle: Oracle, outcome: Any) -> None:
        world = self.world
        claimed = None
        if isinstance(outcome, Release) and outcome.phase is Phase.SUCCEEDED:
            claimed = outcome.version
        elif isinstance(outcome, Release) and outcome.phase in (Phase.FAILED, Phase.ABORTED):
            claimed = outcome.previous_version
        elif isinstance(outcome, ReleaseFailed):
            rel = records.load_current(self.provider())
            claimed = rel.previous_version if rel is not None else None
        if claimed is not None and oracle.served_at_start and not world.serves(claimed):
            raise ClaimViolation(f"{name} ended ({self.last_outcome}) saying {claimed} is live, but no member serves it")
        if name in RELEASE_VERBS and not isinstance(outcome, (UsageError, LockHeld)) and world.lb() is LBStatus.DOWN:
            raise LBLeftDown(f"{name} ended ({self.last_outcome}) with the load balancer down")
        rel = records.load_current(self.provider())
        if (name in ("rollout", "resume") and rel is not None and (APP, rel.version) in self.cloud.failing_starts
                and rel.kind is ReleaseKind.ROLLOUT and isinstance(outcome, ProviderError) and not oracle.faults
                and oracle.lb_at_start is LBStatus.UP and rel.image_id in self.cloud.images
                and self.restorable(rel.previous_version)):
            raise StartFailureNotFailed(f"{name} of {rel.version}, whose servers cannot start, ended with exit 5: {outcome}")

    def restorable(self, version: str | None) -> bool:
        """Whether a rollback can bring `version` back: a server of it answers, or an image of it can start.
        When it cannot, a start failure ends with exit 5 (halted, nothing removed), not exit 1."""
        if version is None:
            return True
        if any(s.labels.get(Label.VERSION) == version and s.answers for s in self.cloud.servers.values() if self.world.ours(s.id)):
            return True
        startable = (APP, version) not in self.cloud.failing_starts and (APP, version) not in self.cloud.unhealthy_versions
        return startable and any(i.app == APP and i.version == version for i in self.cloud.images.values())

    def release_version(self) -> str:
        """The version faults aimed at 'the new fleet' hit: the unfinished release's, else the next one baked."""
        rel = self.unfinished()
        return rel.version if rel is not None else f"1.{self.baked}.0"

    # ---- setup -------------------------------------------------------------------------------------------

    @initialize()
    def first_release(self) -> None:
        """From a snapshot of the same start for every sequence (the first release costs as much as a test)."""
        self.cloud = _first_release_snapshot()
        self.clock = self.cloud.clock
        self.world = World(self.cloud)
        self.baked = 1

    # ---- commands: each may carry faults that strike at call N of its runner -------------------------

    @rule(pipeline=pipelines(), count=st.integers(min_value=1, max_value=3), faults=fault_plans,
          then=st.lists(st.tuples(st.sampled_from(sorted(VERBS)), fault_plans), max_size=2))
    def do_rollout(self, pipeline: Pipeline, count: int, faults: list, then: list) -> None:
        """A rollout, and what an operator does next (resume it, abort it...), each with its own faults."""
        version = f"1.{self.baked}.0"
        self.baked += 1

        def run(ctx: EngineContext) -> Release:
            bake(ctx, version)
            return rollout(ctx, version, pipeline)

        self.command("rollout", run, faults, count)
        for verb, verb_faults in then:
            self.command(verb, VERBS[verb], verb_faults)

    @rule(verb=st.sampled_from(sorted(VERBS)), faults=fault_plans)
    def do_verb(self, verb: str, faults: list) -> None:
        self.command(verb, VERBS[verb], faults)

    @precondition(lambda self: self.world.lb() is LBStatus.ERROR)
    @rule()
    def operator_fails_the_lb_over(self) -> None:
        COVERED["verb:failover"] += 1
        self.cloud.repair_lb(POOL)

    @rule(kind=st.sampled_from([f for f in FAULTS if f != "crash"]), pick=st.integers(min_value=0, max_value=7))
    def fault_between_commands(self, kind: str, pick: int) -> None:
        self.make_fault(kind, pick)()

    # ---- faults ------------------------------------------------------------------------------------------

    def make_fault(self, kind: str, pick: int) -> Callable[[], None]:
        """The fault `kind` as a callable; `pick` chooses its target and variant deterministically."""
        cloud, world = self.cloud, self.world

        def strike() -> None:
            COVERED[f"fault:{kind}"] += 1
            if kind == "server_death":
                ours = sorted(s.id for s in cloud.servers.values() if world.ours(s.id))
                if ours:
                    cloud.kill_server(ours[pick % len(ours)], ServerStatus.ERROR if pick % 2 else ServerStatus.STOPPED)
            elif kind == "start_failure":
                cloud.fail_starts(APP, self.release_version())
            elif kind == "never_healthy":
                cloud.never_healthy(APP, self.release_version())
            elif kind == "lb_death" and world.lb() is LBStatus.UP:
                cloud.kill_lb(POOL)
            elif kind == "lb_error" and world.lb() is not LBStatus.ABSENT:
                cloud.error_lb(POOL)
            elif kind == "vanished_image":
                ours = sorted((i for i in cloud.images.values() if i.app == APP), key=lambda i: i.created_at)
                if ours:
                    cloud.vanish_image((ours[-1] if pick % 2 else ours[0]).id)
            elif kind == "conflicts":
                cloud.conflict_next(1 + pick % 5)
            elif kind == "foreign_member" and world.lb() is not LBStatus.ABSENT:
                cloud.add_foreign_member(POOL)
            elif kind == "crash":
                cloud.crash_next_call(after_effect=bool(pick % 2))
            elif kind == "intent" and intents is not None:
                rel = self.unfinished()
                if rel is not None:
                    intent_kind = sorted(intents.IntentKind, key=str)[pick % len(intents.IntentKind)]
                    COVERED[f"intent:{intent_kind.name.lower()}"] += 1
                    self.operator_posts(rel.id, intent_kind)

        return strike

    def operator_posts(self, release_id: str, kind: Any) -> None:
        """An operator in a second shell posts an intent: its own process, so a crash or 409s scheduled for
        the runner's next calls are not spent on it (they stay armed for the runner)."""
        cloud = self.cloud
        armed = (cloud.crash, cloud.conflicts)
        cloud.crash, cloud.conflicts = None, 0
        try:
            intents.post(self.provider(), release_id, kind, dict(OPERATOR), self.clock.time())
        finally:
            cloud.crash, cloud.conflicts = armed

    @invariant()
    def foreign_things_are_intact(self) -> None:
        """I3 from the outside too: the other app's image and members are all still there."""
        assert any(i.app == "other" for i in self.cloud.images.values()), "the other app's image is gone"
        pool = self.cloud.pools.get(POOL)
        if pool is not None:
            foreign = [m for m in pool.members.values() if (m.app, m.env) != (APP, ENV)]
            assert len(foreign) >= 2 and all(m.weight == 100 for m in foreign), "a foreign member was changed"


def run_machine(examples: int, *, derandomize: bool = False, every_intent: bool = False) -> None:
    """`derandomize`: the same sequences on every run and machine. No example database either way (the fast
    tier must not fail on a fresh clone for a sequence only this machine's database remembers; CI has none):
    a failure prints its blob for `@reproduce_failure`. Shrinking stays (a minimal sequence is the report),
    the `explain` phase, which replays many variants of a failure, does not. `every_intent`: assert that each
    kind of operator intent was posted to a running release too (the fast run's 100 sequences reach 3 of 4)."""
    COVERED.clear()
    extra = {"derandomize": True} if derandomize else {}
    run_state_machine_as_test(
        EngineMachine,
        settings=settings(max_examples=examples, stateful_step_count=10, deadline=None, database=None,
                          phases=(Stage.explicit, Stage.generate, Stage.shrink),
                          suppress_health_check=[Hc.too_slow, Hc.filter_too_much], print_blob=True, **extra),
    )
    report = ", ".join(f"{k} {v}" for k, v in sorted(COVERED.items()))
    faults = {k.split(":")[1] for k in COVERED if k.startswith("fault:") and k != "fault:intent"}
    posted = {k.split(":")[1] for k in COVERED if k.startswith("intent:")}
    kinds = {k.name.lower() for k in intents.IntentKind} if intents is not None else set()
    print(f"\n{examples} sequences; {len(faults)}/{len(FAULTS)} faults and {len(posted)}/{len(kinds)} intents "
          f"covered: {report}")
    assert not set(FAULTS) - faults, f"faults never exercised: {set(FAULTS) - faults}"
    if every_intent:
        assert not kinds - posted, f"intents never posted to a running release: {kinds - posted}"


GATED = Pipeline(name="gated", steps=(Launch(), Pause(duration=None), SetWeight(percent=100.0),
                                      Analyze(duration=5.0, max_error_rate=0.01), Retire(drain_timeout=0.0)))

# The outages of issue 8 as fixed sequences (what hypothesis finds, replayed deterministically):
# (name, [(rule, arguments)]) from the first release of 1.0.0 on two servers.
KNOWN = [
    ("abort after the old fleet was retired (crash before finalize)",
     [("rollout", dict(pipeline=FIRST, count=2, faults=[("crash", ("update_server_labels", 1), 0)], then=[("abort", [])]))]),
    ("rollback after the old fleet was retired (crash before finalize)",
     [("rollout", dict(pipeline=FIRST, count=2, faults=[("crash", ("update_server_labels", 1), 0)], then=[("rollback", [])]))]),
    ("the release's image vanishes at the end: resume fails, then abort",
     [("rollout", dict(pipeline=FIRST, count=2, faults=[("vanished_image", ("update_server_labels", 1), 1)],
                       then=[("resume", []), ("abort", [])]))]),
    ("the LB dies during the health gate of the launch (call 33)",
     [("rollout", dict(pipeline=FIRST, count=1, faults=[("lb_death", 33, 0)], then=[]))]),
    ("gc on a pool shared with another app", [("verb", dict(verb="gc", faults=[]))]),
    ("down on a pool shared with another app", [("verb", dict(verb="down", faults=[]))]),
    ("a start failure of the new fleet",
     [("rollout", dict(pipeline=FIRST, count=2, faults=[("start_failure", ("create_server", 1), 0)], then=[]))]),
    # found by the property test: a new server dies around the retire step of a fully promoted release
    ("the old fleet dies, the new version cannot start and the previous version's image is gone: halt (exit 5)",
     [("fault", dict(kind="vanished_image", pick=0)), ("fault", dict(kind="start_failure", pick=0)),
      ("rollout", dict(pipeline=FIRST, count=2, faults=[("server_death", ("create_server", 1), 0),
                                                        ("server_death", ("create_server", 1), 1)], then=[("resume", [])]))]),
    ("promote --full, a new server dies while the old members are out of the pool (count 2)",
     [("rollout", dict(pipeline=GATED, count=2, faults=[], then=[("promote_full", [("server_death", ("delete_server", 1), 0)])]))]),
    ("promote --full, the new server dies while the old members are out of the pool (count 1)",
     [("rollout", dict(pipeline=GATED, count=1, faults=[], then=[("promote_full", [("server_death", ("delete_server", 1), 0)])]))]),
    ("promote --full, the new server dies after the old fleet was stopped (count 1)",
     [("rollout", dict(pipeline=GATED, count=1, faults=[], then=[("promote_full", [("server_death", ("update_server_labels", 1), 0)])]))]),
]


@pytest.mark.parametrize("steps", [steps for _, steps in KNOWN], ids=[name for name, _ in KNOWN])
def test_known_outage_sequences(steps: list) -> None:
    machine = EngineMachine()
    machine.first_release()
    for rule_name, arguments in steps:
        rules = {"rollout": machine.do_rollout, "verb": machine.do_verb, "fault": machine.fault_between_commands}
        rules[rule_name](**arguments)
        machine.foreign_things_are_intact()
    machine.teardown()


def test_engine_invariants_fast() -> None:
    """The development loop's share: 100 fixed (derandomized) sequences."""
    run_machine(100, derandomize=True)


@pytest.mark.slow
def test_engine_invariants_1000() -> None:
    """The CI run: at least 1,000 sequences (more with RELEASECTL_PROPERTY_EXAMPLES)."""
    run_machine(int(os.environ.get("RELEASECTL_PROPERTY_EXAMPLES", "1000")), every_intent=True)


def _rollout_of_1_1_0(fault: tuple) -> tuple[EngineMachine, Release | None]:
    """1.1.0 rolled out on one server from the first release, with one fault during the command."""
    machine = EngineMachine()
    machine.first_release()
    outcome: list = []

    def run(ctx: EngineContext) -> Release:
        bake(ctx, "1.1.0")
        outcome.append(rollout(ctx, "1.1.0", FIRST))
        return outcome[-1]

    machine.command("rollout", run, [fault], count=1)
    return machine, (outcome[0] if outcome else None)


def test_lb_dying_between_the_look_and_a_pool_write_is_restarted_not_exit_5() -> None:
    """Finding a: the LB died after this pass read it UP, before its add_member; the write failed and the run
    exited 5 with the LB down. Now the next pass sees it down and restarts it, and the release goes on."""
    machine, outcome = _rollout_of_1_1_0(("lb_death", ("add_member", 1), 0))
    assert outcome is not None and outcome.phase is Phase.SUCCEEDED, machine.last_outcome
    assert machine.world.lb() is LBStatus.UP and machine.world.serves("1.1.0")


def test_a_busy_image_service_at_the_end_of_a_release_is_waited_out() -> None:
    """409s on the image labels after the release is done: retried, not an exit 5 (resume then failed)."""
    machine, outcome = _rollout_of_1_1_0(("conflicts", ("update_image", 1), 4))
    assert outcome is not None and outcome.phase is Phase.SUCCEEDED, machine.last_outcome
    assert any(i.labels.get(f"role_{ENV}") == "live" and i.version == "1.1.0" for i in machine.cloud.images.values())


def test_a_rollback_that_cannot_restore_the_previous_version_halts_and_never_claims_it_is_live() -> None:
    """The finding of the 1,000-sequence run: the old fleet dies during a rollout whose servers cannot start,
    and 1.0.0's image is gone. The rollback cannot bring 1.0.0 back: it halts (exit 5, resumable), removes
    nothing and says nothing serves; resume halts the same way, and once 1.0.0 is baked again it finishes."""
    machine = EngineMachine()
    machine.first_release()
    machine.fault_between_commands("vanished_image", 0)
    machine.fault_between_commands("start_failure", 0)
    machine.do_rollout(pipeline=FIRST, count=2, faults=[("server_death", ("create_server", 1), 0),
                                                       ("server_death", ("create_server", 1), 1)], then=[])
    assert machine.last_outcome == "rollout: InvariantRefused"
    rel = machine.unfinished()
    assert rel is not None and rel.phase is Phase.ROLLING_BACK
    assert "the previous version 1.0.0 could not be restored: its image is gone" in rel.reason
    assert "left serving: no member of demo in production serves traffic" in rel.reason
    machine.do_verb("resume", [])
    assert machine.last_outcome == "resume: InvariantRefused"
    machine.command("bake", lambda ctx: bake(ctx, "1.0.0"), [])
    machine.do_verb("resume", [])
    assert machine.last_outcome == "resume: ReleaseFailed" and machine.world.serves("1.0.0")
