"""Multi-region waves, fast: the pure plan (a table), the `regions:`/`waves:` config, and the wave runner over
in-memory regions with a fake clock (each region its own MemoryCloud, as each region has its own cloud)."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasectl.config import load_settings
from releasectl.engine import records, waves
from releasectl.engine.context import EngineContext
from releasectl.engine.images import bake
from releasectl.engine.model import Launch, Pause, Phase, Pipeline, Retire, SetWeight
from releasectl.engine.release import rollout as plain_rollout
from releasectl.engine.waves import Move, RegionState, RegionWave, Wave, WavePhase, next_move
from releasectl.errors import ConfigError, PausedAtGate, ReleaseFailed, UsageError
from releasectl.providers.base import HealthCheck, ProviderContext
from tests.fakes.clock import FakeClock
from tests.fakes.memory import Crash, MemoryCloud, MemoryProvider

P, D, R, F, B = RegionState.PENDING, RegionState.DONE, RegionState.RUNNING, RegionState.FAILED, RegionState.ROLLED_BACK


def wave(*states: RegionState, gate: str = "none", hold: float = 0.0, on_failure: str = "keep_done",
         gate_open: tuple[int, ...] = (), hold_until: dict[int, float] | None = None, prev: str | None = "1.0.0", aborted: bool = False) -> Wave:
    regions = [RegionWave(f"R{i + 1}", state=s, gate_open=i in gate_open, previous_version=prev,
                          hold_until=(hold_until or {}).get(i)) for i, s in enumerate(states)]
    return Wave(id="w", app="demo", env="production", version="2.0.0", pipeline={}, gate=gate, hold=hold,
                on_failure=on_failure, regions=regions, started_at=0.0, updated_at=0.0, aborted=aborted)


@pytest.mark.parametrize("w, now, expected", [
    (wave(P, P), 0.0, Move("run", 0)),  # the first region never waits
    (wave(P, P, gate="pause", hold=60), 0.0, Move("run", 0)),
    (wave(R, P), 0.0, Move("run", 0)),  # resume the region that was running
    (wave(D, P), 0.0, Move("run", 1)),
    (wave(D, P, gate="pause"), 0.0, Move("gate", 1)),
    (wave(D, P, gate="pause", gate_open=(1,)), 0.0, Move("run", 1)),
    (wave(D, P, hold=30), 100.0, Move("hold", 1, until=130.0)),
    (wave(D, P, hold=30, hold_until={1: 130.0}), 120.0, Move("hold", 1, until=130.0)),  # resumed: same end
    (wave(D, P, hold=30, hold_until={1: 130.0}), 130.0, Move("run", 1)),
    (wave(D, P, gate="pause", hold=30, gate_open=(1,)), 0.0, Move("hold", 1, until=30.0)),  # gate, then hold
    (wave(D, R, gate="pause"), 0.0, Move("run", 1)),  # past its gate already
    (wave(D, D), 0.0, Move("finish", phase=WavePhase.SUCCEEDED)),
    (wave(D, F, P), 0.0, Move("finish", phase=WavePhase.FAILED)),  # keep_done; R3 never touched
    (wave(D, F, P, on_failure="rollback_all"), 0.0, Move("rollback", 0)),
    (wave(D, D, F, on_failure="rollback_all"), 0.0, Move("rollback", 1)),  # newest first
    (wave(D, B, F, on_failure="rollback_all"), 0.0, Move("rollback", 0)),
    (wave(B, B, F, on_failure="rollback_all"), 0.0, Move("finish", phase=WavePhase.FAILED)),
    (wave(F, P, on_failure="rollback_all"), 0.0, Move("finish", phase=WavePhase.FAILED)),
    (wave(D, F, on_failure="rollback_all", prev=None), 0.0, Move("finish", phase=WavePhase.FAILED)),  # nothing before
    (wave(D, P, gate="pause", aborted=True), 0.0, Move("finish", phase=WavePhase.FAILED)),  # abort at the gate
    (wave(D, P, gate="pause", aborted=True, on_failure="rollback_all"), 0.0, Move("rollback", 0)),
])
def test_next_move(w: Wave, now: float, expected: Move) -> None:
    assert next_move(w, now) == expected


def test_wave_record_round_trips() -> None:
    w = wave(D, F, P, gate="pause", hold=5, gate_open=(1,), hold_until={1: 9.0})
    again = Wave.from_json(w.to_json())
    assert again == w
    assert w.to_dict()["current_region"] == "R2"


# ---- config ----------------------------------------------------------------------------------------------

BASE = "app: demo\nprovider: openstack\nopenstack: {cloud: sim, pool: demo-pool}\n"


def settings_of(tmp_path: Path, text: str, env: str | None = None):
    (tmp_path / "releasectl.yaml").write_text(text)
    return load_settings(tmp_path / "releasectl.yaml", env)


def test_regions_config(tmp_path: Path) -> None:
    s = settings_of(tmp_path, BASE + "environments:\n  production:\n    regions: [RegionOne, {name: RegionTwo, openstack: {pool: p2}}]\n"
                    "    waves: {gate: pause, hold: 30s, on_failure: rollback_all}\n")
    assert s.region_names() == ("RegionOne", "RegionTwo")
    assert (s.waves.gate, s.waves.hold, s.waves.on_failure, s.waves.notify) == ("pause", 30.0, "rollback_all", "summary")
    one, two = s.for_region("RegionOne"), s.for_region("RegionTwo")
    assert one.provider_options["pool"] == "demo-pool" and two.provider_options["pool"] == "p2"
    assert (two.provider_options["region"], two.provider_options["scope_region"], two.provider_options["record_scope"]) == \
        ("RegionTwo", "RegionTwo", "regions/RegionTwo")
    assert two.region == "RegionTwo" and two.regions == ()
    with pytest.raises(ConfigError, match="not one of"):
        s.for_region("RegionThree")


@pytest.mark.parametrize("body, message", [
    ("regions: []", "expected a list of 1 to 20 regions"),
    ("regions: RegionOne", "expected a list of 1 to 20 regions"),
    ("regions: [RegionOne, RegionOne]", "regions[1]: region RegionOne is listed twice"),
    ("regions: [{name: A, pool: x}]", "regions[0].pool: unknown key"),
    ("regions: [{openstack: {pool: x}}]", "regions[0]: required key `name` missing"),
    ("regions: [{name: A, openstack: {region: B}}]", "regions[0].openstack.region: unknown key"),
    ("regions: [{name: A, openstack: {flavour: B}}]", "regions[0].openstack.flavour: unknown key"),
    ("regions: ['a b']", "regions[0]: expected a name"),
    ("regions: [A]\n    waves: {gate: maybe}", "waves.gate: expected one of none, pause"),
    ("regions: [A]\n    waves: {on_failure: undo}", "waves.on_failure: expected one of keep_done, rollback_all"),
    ("regions: [A]\n    waves: {hold: forever}", "waves.hold: expected a duration"),
    ("regions: [A]\n    waves: {jitter: 1s}", "waves.jitter: unknown key"),
    ("regions: [A]\n    waves: {notify: each}", "waves.notify: expected one of summary, regions"),
    ("waves: {gate: pause}", "`waves` needs `regions`"),
    ("regions: [A]\n    openstack: {region: A}", "`openstack.region` and `regions` both choose the region"),
])
def test_regions_config_errors(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_of(tmp_path, BASE + f"environments:\n  production:\n    {body}\n")
    assert any(message in p.message for p in caught.value.problems), [p.message for p in caught.value.problems]


def test_regions_need_openstack(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="regions need the openstack provider"):
        settings_of(tmp_path, "app: demo\nregions: [A, B]\n")


# ---- the runner over in-memory regions ---------------------------------------------------------------------

HEALTH = HealthCheck(path="/healthz", expected_status=200, interval=1.0, timeout=1.0, rise=2, fall=2)
PIPELINE = Pipeline(name="fast", description="", steps=(Launch(), SetWeight(percent=50.0, hold=1.0), SetWeight(percent=100.0),
                                                        Retire(drain_timeout=1.0, keep_previous=0.0)))


class Regions:
    """Two regions (and the wave's own record store) as separate in-memory clouds sharing one fake clock."""

    def __init__(self, names: tuple[str, ...] = ("R1", "R2")) -> None:
        self.clock = FakeClock()
        self.clouds = {name: MemoryCloud(self.clock) for name in (*names, "_home")}
        self.names = names

    def ctx(self, name: str) -> EngineContext:
        pctx = ProviderContext(app="demo", env="production", config_dir=Path("/nonexistent"), state_dir=Path("/nonexistent"),
                               health=HEALTH, app_port=8000, options={})
        return EngineContext(provider=MemoryProvider(pctx, self.clouds[name]), app="demo", env="production",
                             image_name="{app}-{version}", count=2, health=HEALTH, progress_deadline=120.0, drain_timeout=1.0,
                             clock=self.clock, actor={"host": "t", "user": "t", "pid": "1"})

    def wave_ctx(self, **settings) -> waves.WaveContext:
        return waves.WaveContext(home=self.ctx("_home"), region_ctx=self.ctx, regions=self.names, **settings)

    def release_everywhere(self, version: str) -> None:
        for name in self.names:
            ctx = self.ctx(name)
            bake(ctx, version)
            if version != "1.0.0":
                continue
            assert plain_rollout(ctx, version, PIPELINE).phase is Phase.SUCCEEDED

    def live(self, name: str) -> str | None:
        rel = records.load_current(self.ctx(name).provider)
        return None if rel is None else (rel.version if rel.phase is Phase.SUCCEEDED else rel.previous_version)


@pytest.fixture
def regions() -> Regions:
    r = Regions()
    r.release_everywhere("1.0.0")
    r.release_everywhere("2.0.0")
    return r


def test_wave_releases_each_region_in_order(regions: Regions) -> None:
    w = waves.rollout(regions.wave_ctx(), "2.0.0", PIPELINE)
    assert w.phase is WavePhase.SUCCEEDED
    assert [r.state for r in w.regions] == [D, D] and [r.previous_version for r in w.regions] == ["1.0.0", "1.0.0"]
    assert regions.live("R1") == regions.live("R2") == "2.0.0"
    first, second = (records.load_current(regions.ctx(n).provider) for n in regions.names)
    assert first.ended_at <= second.started_at  # one region, then the next


@pytest.mark.parametrize("on_failure, first_after", [("keep_done", "2.0.0"), ("rollback_all", "1.0.0")])
def test_failure_in_second_region(regions: Regions, on_failure: str, first_after: str) -> None:
    regions.clouds["R2"].never_healthy("demo", "2.0.0")
    with pytest.raises(ReleaseFailed, match="region R2 failed"):
        waves.rollout(regions.wave_ctx(on_failure=on_failure), "2.0.0", PIPELINE)
    w = waves.load_wave(regions.ctx("_home"))
    assert w.phase is WavePhase.FAILED
    assert [r.state for r in w.regions] == [D if on_failure == "keep_done" else B, F]
    assert regions.live("R2") == "1.0.0" and regions.live("R1") == first_after


def test_gate_pauses_until_promote(regions: Regions) -> None:
    wctx = regions.wave_ctx(gate="pause")
    with pytest.raises(PausedAtGate, match="before region R2"):
        waves.rollout(wctx, "2.0.0", PIPELINE)
    assert regions.live("R1") == "2.0.0" and regions.live("R2") == "1.0.0"
    with pytest.raises(UsageError, match="paused at region R2"):
        waves.rollout(regions.wave_ctx(gate="pause"), "2.0.0", PIPELINE)
    with pytest.raises(PausedAtGate):  # resume re-checks the gate
        waves.rollout(regions.wave_ctx(gate="pause"), None, PIPELINE, resume=True)
    w = waves.promote(regions.wave_ctx(gate="pause"))
    assert w.phase is WavePhase.SUCCEEDED and regions.live("R2") == "2.0.0"
    with pytest.raises(UsageError, match="no wave rollout in progress"):
        waves.promote(regions.wave_ctx(gate="pause"))


@pytest.mark.parametrize("on_failure, first_after", [("keep_done", "2.0.0"), ("rollback_all", "1.0.0")])
def test_abort_at_the_gate(regions: Regions, on_failure: str, first_after: str) -> None:
    with pytest.raises(PausedAtGate):
        waves.rollout(regions.wave_ctx(gate="pause", on_failure=on_failure), "2.0.0", PIPELINE)
    w = waves.abort(regions.wave_ctx(gate="pause", on_failure=on_failure))
    assert w.phase is WavePhase.FAILED and w.aborted and "aborted by an operator" in w.reason
    assert w.regions[1].state is P  # never touched
    assert regions.live("R1") == first_after and regions.live("R2") == "1.0.0"


def test_abort_a_region_paused_at_its_own_gate(regions: Regions) -> None:
    gated = Pipeline(name="gated", description="", steps=(Launch(), SetWeight(percent=50.0), Pause(),
                                                          SetWeight(percent=100.0), Retire(drain_timeout=1.0, keep_previous=0.0)))
    with pytest.raises(PausedAtGate):
        waves.rollout(regions.wave_ctx(), "2.0.0", gated)
    assert waves.load_wave(regions.ctx("_home")).regions[0].state is R
    w = waves.abort(regions.wave_ctx())
    assert w.phase is WavePhase.FAILED and [r.state for r in w.regions] == [F, P]
    assert "aborted" in w.regions[0].reason
    assert regions.live("R1") == "1.0.0" and regions.live("R2") == "1.0.0"


def test_hold_between_regions(regions: Regions) -> None:
    started = regions.clock.time()
    w = waves.rollout(regions.wave_ctx(hold=300.0), "2.0.0", PIPELINE)
    assert w.phase is WavePhase.SUCCEEDED
    first, second = (records.load_current(regions.ctx(n).provider) for n in regions.names)
    assert second.started_at - first.ended_at >= 300.0 and w.regions[1].hold_until >= started + 300.0


def test_resume_continues_with_the_region_it_stopped_in(regions: Regions, monkeypatch: pytest.MonkeyPatch) -> None:
    """A runner killed in the second region: --resume finishes that region's release and the wave."""
    real = waves._region_release

    def killed_in_r2(ctx: EngineContext, wave: Wave, pipeline: Pipeline):
        if ctx.provider.cloud is regions.clouds["R2"]:
            regions.clouds["R2"].crash_next_call()
        return real(ctx, wave, pipeline)

    monkeypatch.setattr(waves, "_region_release", killed_in_r2)
    with pytest.raises(Crash):
        waves.rollout(regions.wave_ctx(), "2.0.0", PIPELINE)
    monkeypatch.setattr(waves, "_region_release", real)
    w = waves.load_wave(regions.ctx("_home"))
    assert [r.state for r in w.regions] == [D, R] and w.current_region() == "R2"
    regions.clouds["_home"].leases.clear()  # the dead runner's leases expire
    regions.clouds["R2"].leases.clear()
    w = waves.rollout(regions.wave_ctx(), None, PIPELINE, resume=True)
    assert w.phase is WavePhase.SUCCEEDED and regions.live("R2") == "2.0.0"


def test_promote_a_region_paused_at_its_own_gate(regions: Regions) -> None:
    """A pipeline with a manual gate: each region stops there in turn; `promote` continues that region and
    the wave goes on to the next, with the pipeline the wave began with."""
    gated = Pipeline(name="gated", description="", steps=(Launch(), SetWeight(percent=50.0), Pause(),
                                                          SetWeight(percent=100.0), Retire(drain_timeout=1.0, keep_previous=0.0)))
    with pytest.raises(PausedAtGate):
        waves.rollout(regions.wave_ctx(), "2.0.0", gated)
    with pytest.raises(PausedAtGate):  # R1 promoted and done; R2 now at its own gate
        waves.promote(regions.wave_ctx())
    w = waves.load_wave(regions.ctx("_home"))
    assert [r.state for r in w.regions] == [D, R] and regions.live("R1") == "2.0.0"
    w = waves.promote(regions.wave_ctx())
    assert w.phase is WavePhase.SUCCEEDED and regions.live("R2") == "2.0.0"
    assert records.load_current(regions.ctx("R2").provider).pipeline.name == "gated"


def test_refused_before_anything_changes_when_a_region_lacks_the_image() -> None:
    regions = Regions()
    regions.release_everywhere("1.0.0")
    bake(regions.ctx("R1"), "2.0.0")  # not in R2
    with pytest.raises(UsageError, match="region R2: no image for demo 2.0.0"):
        waves.rollout(regions.wave_ctx(), "2.0.0", PIPELINE)
    assert waves.load_wave(regions.ctx("_home")) is None and regions.live("R1") == "1.0.0"


# ---- notifications: one summary per wave ---------------------------------------------------------------------


class Published:
    """A Notifier stand-in that keeps what was published."""

    def __init__(self) -> None:
        self.notes: list = []

    def publish(self, n) -> None:
        self.notes.append(n)

    def close(self) -> int:
        return 0


def notified_wave(regions: Regions, run, **settings):
    """Run a wave verb with the wave's notifications on its home context (regions get none, as the CLI does
    by default): the notifications, their event names and the exit code the CLI would give."""
    from releasectl.cli.exitcodes import classify
    from releasectl.errors import ReleasectlError
    from releasectl.notify import ReleaseNotifications

    published = Published()
    sink = ReleaseNotifications("demo", "production", (), notifier=lambda: published, clock=regions.clock.time)
    wctx = regions.wave_ctx(**settings)
    wctx.home.emit = sink
    code = 0
    try:
        run(wctx)
    except ReleasectlError as exc:
        code = int(classify(exc)[0])
    sink.finish(code)
    return published.notes, [n.event for n in published.notes], code


def test_a_wave_sends_one_summary_at_its_start_and_its_end(regions: Regions) -> None:
    notes, names, code = notified_wave(regions, lambda w: waves.rollout(w, "2.0.0", PIPELINE))
    assert code == 0 and names == ["started", "succeeded"]
    end = notes[-1].document()
    assert end["wave"]["phase"] == "succeeded" and end["wave"]["version"] == "2.0.0"
    assert [(r["region"], r["state"], r["previous_version"]) for r in end["wave"]["regions"]] == \
        [("R1", "done", "1.0.0"), ("R2", "done", "1.0.0")]
    assert all(r["release_id"] for r in end["wave"]["regions"])
    assert [r["state"] for r in notes[0].document()["wave"]["regions"]] == ["pending", "pending"]


@pytest.mark.parametrize("on_failure, first", [("keep_done", "done"), ("rollback_all", "rolled_back")])
def test_a_failed_wave_sends_one_end_with_each_regions_state(regions: Regions, on_failure: str, first: str) -> None:
    regions.clouds["R2"].never_healthy("demo", "2.0.0")
    notes, names, code = notified_wave(regions, lambda w: waves.rollout(w, "2.0.0", PIPELINE), on_failure=on_failure)
    assert code == 1 and names == ["started", "rolled_back"]  # no separate `failed` for R2 or the rollback_all
    wave = notes[-1].document()["wave"]
    assert wave["phase"] == "failed" and [r["state"] for r in wave["regions"]] == [first, "failed"]
    assert "health check failed" in wave["regions"][1]["reason"] and "R2: failed" in notes[-1].message


def test_a_gate_sends_paused_and_the_promote_sends_the_end(regions: Regions) -> None:
    _, names, code = notified_wave(regions, lambda w: waves.rollout(w, "2.0.0", PIPELINE), gate="pause")
    assert code == 4 and names == ["started", "paused"]
    notes, names, code = notified_wave(regions, lambda w: waves.promote(w), gate="pause")
    assert code == 0 and names == ["succeeded"] and notes[0].document()["wave"]["current_region"] is None


def test_an_unfinished_wave_sends_failed_with_where_it_stopped(regions: Regions) -> None:
    regions.clouds["R2"].error_lb("demo-production")  # R2 halts (exit 5), resumable once repaired
    notes, names, code = notified_wave(regions, lambda w: waves.rollout(w, "2.0.0", PIPELINE))
    assert code == 5 and names == ["started", "failed"], names
    assert notes[-1].exit_code == 5 and "R2" in notes[-1].message and notes[-1].document()["wave"]["phase"] == "running"
