"""Multi-region waves on the simulator (issue 12 item 6): one Keystone catalog, two regions each with its own
Nova, Glance, Octavia and Swift (`Simulator.add_region`), released one region after the other by the real CLI
while bounded load runs against both pools."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.helpers import WebhookReceiver
from tests.integration.openstack_fixtures import Cloud, Traffic, make_cloud
from tests.openstack_sim import Simulator
from tests.openstack_sim.fixtures import FAST

pytestmark = pytest.mark.slow

REGIONS = ("RegionOne", "RegionTwo")


@pytest.fixture
def sims() -> Iterator[tuple[Simulator, Simulator]]:
    one = Simulator(serve_apps=True, **FAST).start()
    try:
        two = one.add_region("RegionTwo", address_prefix="127.0.2")
        yield one, two
    finally:
        one.stop()  # and its second region


def regional(sims: tuple[Simulator, Simulator], root: Path, **waves: Any) -> Cloud:
    """A scaffolded folder whose production environment lists both regions (and `waves:` settings)."""
    cloud = make_cloud(sims[0], root, drain="1s")
    config = cloud.path / "releasectl.yaml"
    doc = yaml.safe_load(config.read_text())
    del doc["openstack"]["region"]
    doc["environments"] = {"production": {"regions": list(REGIONS), **({"waves": waves} if waves else {})}}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    return cloud


def set_waves(cloud: Cloud, **waves: Any) -> None:
    config = cloud.path / "releasectl.yaml"
    doc = yaml.safe_load(config.read_text())
    doc["environments"]["production"]["waves"] = waves
    config.write_text(yaml.safe_dump(doc, sort_keys=False))


def in_region(cloud: Cloud, sim: Simulator, region: str) -> Cloud:
    """The same folder acting on one region alone ($RELEASECTL_REGION), e.g. to bake there."""
    return dataclasses.replace(cloud, sim=sim, env={**cloud.env, "RELEASECTL_REGION": region})


def bake_everywhere(cloud: Cloud, sims: tuple[Simulator, Simulator], version: str, broken_in: str | None = None) -> None:
    for sim, region in zip(sims, REGIONS):
        in_region(cloud, sim, region).bake(version, broken=region == broken_in)


def live_by_region(cloud: Cloud) -> dict[str, str | None]:
    status = cloud.status()
    return {r["region"]: r["live_version"] for r in status["regions"]}


@pytest.fixture
def live_100(sims: tuple[Simulator, Simulator], tmp_path: Path) -> Cloud:
    cloud = regional(sims, tmp_path / "ws")
    bake_everywhere(cloud, sims, "1.0.0")
    first = cloud.cli("rollout", "1.0.0", "--pipeline", "first-fast.yaml", "--output", "json")
    assert first.code == 0, first.stderr[-4000:]
    assert live_by_region(cloud) == {"RegionOne": "1.0.0", "RegionTwo": "1.0.0"}
    return cloud


def test_two_region_canary_under_load(live_100: Cloud, sims: tuple[Simulator, Simulator]) -> None:
    cloud = live_100
    bake_everywhere(cloud, sims, "1.1.0")
    with Traffic(sims[0], max_seconds=120) as one, Traffic(sims[1], max_seconds=120) as two:
        result = cloud.cli("rollout", "1.1.0", "--output", "json")
    assert result.code == 0, result.stderr[-4000:]
    wave = result.json()["wave"]
    assert wave["phase"] == "succeeded" and [r["state"] for r in wave["regions"]] == ["done", "done"]
    assert [r["previous_version"] for r in wave["regions"]] == ["1.0.0", "1.0.0"]
    one.assert_served_throughout()
    two.assert_served_throughout()
    assert one.responses["1.1.0"] and two.responses["1.1.0"]  # both pools really served the new version
    assert live_by_region(cloud) == {"RegionOne": "1.1.0", "RegionTwo": "1.1.0"}

    status = cloud.status()
    assert status["wave"]["id"] == wave["id"] and status["wave"]["current_region"] is None
    for region in status["regions"]:
        assert region["release"] is None and region["lock"] is None, region
        assert {m["version"] for m in region["members"] if m["weight"] > 0} == {"1.1.0"}
    history = cloud.ok("history", "--output", "json").json()
    assert [w["version"] for w in history["waves"]] == ["1.1.0", "1.0.0"]
    for region in history["regions"]:  # each region's own records
        assert [(r["version"], r["state"]) for r in region["releases"]] == [("1.1.0", "succeeded"), ("1.0.0", "succeeded")]
    # the records and locks of each region are kept apart, in that region's own object store
    for sim, region in zip(sims, REGIONS):
        names = {o["name"] for o in sim.state()["objects"]}
        assert f"demo/production/regions/{region}/records/current" in names
        assert not any(n.startswith("demo/production/records/") for n in names)
    assert any(o["name"] == "demo/production/waves/records/wave/current" for o in sims[0].state()["objects"])
    for command in ("status", "history"):  # the tables render (a section per region)
        shown = cloud.ok(command).stdout
        assert all(f"== region {region} ==" in shown for region in REGIONS), shown


@pytest.mark.parametrize("on_failure, first_after", [("keep_done", "1.1.0"), ("rollback_all", "1.0.0")])
def test_broken_build_in_second_region_stops_there(sims: tuple[Simulator, Simulator], tmp_path: Path,
                                                    on_failure: str, first_after: str) -> None:
    cloud = regional(sims, tmp_path / "ws", on_failure=on_failure)
    bake_everywhere(cloud, sims, "1.0.0")
    first = cloud.cli("rollout", "1.0.0", "--pipeline", "first-fast.yaml")
    assert first.code == 0, first.stderr[-4000:]
    bake_everywhere(cloud, sims, "1.1.0", broken_in="RegionTwo")
    with Traffic(sims[0], max_seconds=120) as one, Traffic(sims[1], max_seconds=120) as two:
        result = cloud.cli("rollout", "1.1.0", "--output", "json")
    assert result.code == 1, result.stderr[-4000:]
    wave = result.json()["wave"]
    first_state = "done" if on_failure == "keep_done" else "rolled_back"
    assert wave["phase"] == "failed" and [r["state"] for r in wave["regions"]] == [first_state, "failed"], wave
    one.assert_served_throughout()
    two.assert_served_throughout()
    assert live_by_region(cloud) == {"RegionOne": first_after, "RegionTwo": "1.0.0"}
    region_two = next(r for r in cloud.status()["regions"] if r["region"] == "RegionTwo")
    assert {m["version"] for m in region_two["members"] if m["weight"] > 0} == {"1.0.0"}


def test_gate_between_regions(live_100: Cloud, sims: tuple[Simulator, Simulator]) -> None:
    cloud = live_100
    set_waves(cloud, gate="pause")
    bake_everywhere(cloud, sims, "1.1.0")
    paused = cloud.cli("rollout", "1.1.0", "--output", "json")
    assert paused.code == 4, paused.stderr[-4000:]
    assert paused.json()["wave"]["current_region"] == "RegionTwo"
    assert live_by_region(cloud) == {"RegionOne": "1.1.0", "RegionTwo": "1.0.0"}
    promoted = cloud.cli("promote", "--output", "json")
    assert promoted.code == 0, promoted.stderr[-4000:]
    assert promoted.json()["wave"]["phase"] == "succeeded"
    assert live_by_region(cloud) == {"RegionOne": "1.1.0", "RegionTwo": "1.1.0"}


def notify_to(cloud: Cloud, receiver: WebhookReceiver) -> None:
    config = cloud.path / "releasectl.yaml"
    doc = yaml.safe_load(config.read_text())
    doc["notify"] = {"webhooks": [{"name": "ops", "url": receiver.url("/ops"), "timeout": "5s"}]}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))


def received(receiver: WebhookReceiver) -> list[dict]:
    """What came so far (the CLI waits for delivery before it exits), taken out of the receiver's list."""
    with receiver.received:
        got, receiver.requests[:] = list(receiver.requests), []
    return [{**json.loads(body), "_event": headers["X-Releasectl-Event"]} for _path, headers, body in got]


def test_a_wave_notifies_one_summary_with_each_region(live_100: Cloud, sims: tuple[Simulator, Simulator]) -> None:
    """By default a wave sends `started` and its end, each with every region's state; `waves: {notify: regions}`
    adds each region's own release notifications."""
    cloud = live_100
    bake_everywhere(cloud, sims, "1.1.0")
    with WebhookReceiver() as receiver:
        notify_to(cloud, receiver)
        result = cloud.cli("rollout", "1.1.0", "--output", "json")
        assert result.code == 0, result.stderr[-4000:]
        docs = received(receiver)
        assert [d["_event"] for d in docs] == ["started", "succeeded"], [(d["_event"], d["message"]) for d in docs]
        wave = result.json()["wave"]
        end = docs[-1]["wave"]
        assert end["id"] == wave["id"] and end["phase"] == "succeeded" and end["version"] == "1.1.0"
        assert [(r["region"], r["state"], r["release_id"]) for r in end["regions"]] == \
            [(r["region"], "done", r["release_id"]) for r in wave["regions"]]
        assert docs[0]["wave"]["id"] == wave["id"] and docs[-1]["exit_code"] is None

        set_waves(cloud, notify="regions")
        bake_everywhere(cloud, sims, "1.2.0")
        result = cloud.cli("rollout", "1.2.0", "--output", "json")
        assert result.code == 0, result.stderr[-4000:]
        docs = received(receiver)
        names = [d["_event"] for d in docs]
        summaries = [d for d in docs if d.get("wave")]
        assert [d["_event"] for d in summaries] == ["started", "succeeded"]
        assert names.count("started") == 3 and "step" in names  # the wave's, and each region's own


def _record(sim: Simulator, name: str) -> dict | None:
    import json

    data = next((o["data"] for o in sim.state()["objects"] if o["name"] == name), None)
    return json.loads(data) if data else None


def test_resume_after_kill_continues_in_the_region_it_stopped_in(live_100: Cloud, sims: tuple[Simulator, Simulator]) -> None:
    """kill -9 while the second region's release runs: `rollout --resume` finishes that region's release
    (the first region is not released again) and the wave; both pools serve throughout."""
    from releasectl.wait import wait_for

    cloud = live_100
    bake_everywhere(cloud, sims, "1.1.0")
    wave_key, two_key = "demo/production/waves/records/wave/current", "demo/production/regions/RegionTwo/records/current"
    with Traffic(sims[0], max_seconds=120) as one, Traffic(sims[1], max_seconds=120) as two:
        runner = cloud.start("rollout", "1.1.0")
        try:
            def in_region_two() -> bool:
                release = _record(sims[1], two_key)
                return bool(release and release["version"] == "1.1.0" and release["step_index"] >= 1)

            wait_for(in_region_two, timeout=90, interval=0.05, max_interval=0.1, what="the second region's release")
        finally:
            runner.kill()
        wave = _record(sims[0], wave_key)
        assert [r["state"] for r in wave["regions"]] == ["done", "running"], wave
        resumed = cloud.cli("rollout", "--resume", "--output", "json")
    assert resumed.code == 0, resumed.stderr[-4000:]
    assert resumed.json()["wave"]["id"] == wave["id"] and resumed.json()["wave"]["phase"] == "succeeded"
    one.assert_served_throughout()
    two.assert_served_throughout()
    assert live_by_region(cloud) == {"RegionOne": "1.1.0", "RegionTwo": "1.1.0"}
    history = cloud.ok("history", "--output", "json").json()
    for region in history["regions"]:  # one release of 1.1.0 per region: the first was not released twice
        assert [r["version"] for r in region["releases"]] == ["1.1.0", "1.0.0"], region
