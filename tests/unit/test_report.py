"""Traffic samples in the release record (engine/samples.py) and the HTML report made from them
(cli/report_html.py): bounded, written only with writes that happen anyway, rendered without trusting a
byte of the record. In-process, on the memory provider and a fake clock."""

from __future__ import annotations

import copy
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from releasectl.cli.report_html import render_html
from releasectl.engine import records, samples
from releasectl.engine.context import EngineContext
from releasectl.engine.images import bake
from releasectl.engine.model import Analyze, Launch, Phase, Pipeline, Release, ReleaseKind, Retire, SetWeight
from releasectl.engine.release import rollout
from releasectl.errors import UsageError
from releasectl.providers.base import HealthCheck, ProviderContext
from tests.conftest import run_cli_in_process
from tests.fakes.clock import FakeClock
from tests.fakes.memory import MemoryCloud, MemoryProvider

HEALTH = HealthCheck(path="/healthz", interval=1.0, timeout=1.0, rise=2, fall=2, expected_status=200)
FIRST = Pipeline("first", (Launch(), SetWeight(100.0), Retire(drain_timeout=0.0)))
CANARY = Pipeline("canary", (Launch(), SetWeight(20.0, hold=5.0), Analyze(5.0, 0.01, min_requests=0), SetWeight(100.0),
                             Retire(drain_timeout=0.0)))


def provider_for(cloud: MemoryCloud) -> MemoryProvider:
    ctx = ProviderContext(app="shop", env="production", config_dir=Path("/nonexistent"), state_dir=Path("/nonexistent"),
                          health=HEALTH, app_port=8000, options={"pool": "pool-1"})
    return MemoryProvider(ctx, cloud)


def context(cloud: MemoryCloud, provider) -> EngineContext:
    return EngineContext(provider=provider, app="shop", env="production", image_name="{app}-{version}", count=2,
                         health=HEALTH, clock=cloud.clock, actor={"user": "tester", "host": "box"})


class CountingWrites(MemoryProvider):
    writes = 0

    def write_record(self, key, data):
        type(self).writes += key == records.CURRENT
        return super().write_record(key, data)


def canary() -> tuple[Release, int]:
    """1.0.0 then a canary to 1.1.0 on a fresh cloud; the canary's record as stored, and its count of
    record writes."""
    cloud = MemoryCloud(FakeClock())
    provider = provider_for(cloud)
    provider.ensure_pool()
    ctx = context(cloud, provider)
    bake(ctx, "1.0.0")
    rollout(ctx, "1.0.0", FIRST)
    bake(ctx, "1.1.0")
    counting = CountingWrites(provider.ctx, cloud)
    CountingWrites.writes = 0
    returned = rollout(context(cloud, counting), "1.1.0", CANARY)
    rel = records.load_current(provider)
    assert rel.samples == returned.samples
    return rel, CountingWrites.writes


def test_the_runner_records_samples_without_writing_more_often(monkeypatch):
    rel, writes = canary()
    assert rel.phase is Phase.SUCCEEDED
    stored = rel
    assert len(stored.samples) > 10
    shares = [s["versions"].get("1.1.0", {}).get("ach") for s in stored.samples]
    assert 20.0 in shares and shares[-1] == 100.0  # the canary's 20 % and the end
    assert {s["traffic"] for s in stored.samples} == {"load balancer stats"}
    assert any((s["versions"].get("1.0.0") or {}).get("rps") for s in stored.samples)
    # the same release without sampling makes exactly as many writes of the record
    monkeypatch.setattr(samples.Kept, "extend", lambda self, new: self)
    bare, bare_writes = canary()
    assert bare.samples == [] and bare_writes == writes


def test_samples_are_bounded_and_keep_the_newest():
    many = [{"at": float(i)} for i in range(2500)]
    kept = samples.append([], many)
    assert len(kept) <= samples.MAX_SAMPLES and kept[-1]["at"] == 2499.0 and kept[0]["at"] == 0.0
    assert samples.append(kept, [{"at": 3000.0}])[-1]["at"] == 3000.0


def test_a_long_release_keeps_its_record_far_below_a_state_file_limit():
    rel, _ = canary()
    big = dict(rel.samples[-1])
    big["versions"] = {f"1.{i}.0-rc.{i}+build.{i}": dict(v) for i in range(4) for v in rel.samples[-1]["versions"].values()}
    log = samples.Kept()
    for i in range(800):  # the runner appends at each write; a long release writes many times
        log.extend([dict(big, at=float(i))] * 5)
    rel.samples = kept = log.items
    text = rel.to_json()
    assert len(text) < 400 * 1024 and kept[-1]["at"] == 799.0 and kept[0]["at"] == 0.0
    assert Release.from_json(text).samples == kept
    assert text.count("\n") < 2 * len(kept) + 200  # one line per sample, not one per figure


def test_requested_share_follows_the_pipeline():
    rel = Release(id="r", app="shop", env="production", kind=ReleaseKind.ROLLOUT, version="1.1.0", image_id="i",
                  previous_version="1.0.0", pipeline=CANARY, count=2)
    assert [samples.requested_share(replace(rel, step_index=i)) for i in range(6)] == [0.0, 20.0, 20.0, 100.0, 100.0, 100.0]
    assert samples.requested_share(replace(rel, step_index=2, phase=Phase.ROLLING_BACK)) == 0.0
    first = replace(rel, previous_version=None, step_index=1)
    assert samples.requested_share(first) == 0.0  # a first release skips to its last weight step


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.polylines: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        if tag == "polyline":
            self.polylines.append(dict(attrs))


HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def test_the_report_escapes_everything_from_the_record():
    rel, _ = canary()
    evil = copy.deepcopy(rel)
    evil.version = "1.1.0" + HOSTILE
    evil.reason = evil.failure = HOSTILE
    evil.app, evil.actor = HOSTILE, {"user": HOSTILE, "host": HOSTILE}
    evil.events.append({"at": rel.started_at + 1, "message": HOSTILE})
    for sample in evil.samples:
        sample["versions"][evil.version] = sample["versions"].pop("1.1.0", {"ach": 50.0})
    evil.samples += [  # damage of every shape: ignored, never fatal
        {"at": "soon", "versions": {}}, {"at": 1.0, "versions": "no"}, "junk", {"at": float("nan"), "versions": {}},
        {"at": rel.started_at + 2, "versions": {"x": {"ach": "100", "rps": float("inf"), "err": [1]}}},
    ]
    page = render_html(evil)
    parsed = Page()
    parsed.feed(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert not any(name.startswith("on") for name, _ in parsed.attrs)
    assert "&lt;script&gt;" in page
    versions = {p["data-version"] for p in parsed.polylines if p["data-metric"] == "weight"}
    assert versions == {"1.0.0", evil.version}  # attribute values come back intact once unescaped


def test_a_record_without_samples_still_renders():
    rel, _ = canary()
    rel.samples = []
    page = render_html(rel)
    assert "no samples in this record" in page and "<polyline" not in page


def test_find_a_release_by_id_prefix_or_latest():
    cloud = MemoryCloud(FakeClock())
    provider = provider_for(cloud)
    provider.ensure_pool()
    ctx = context(cloud, provider)
    bake(ctx, "1.0.0")
    first = rollout(ctx, "1.0.0", FIRST)
    assert records.find(provider, "latest").id == first.id
    assert records.find(provider, first.id[:4]).id == first.id
    with pytest.raises(UsageError, match="no release with id"):
        records.find(provider, "zzzz")
    with pytest.raises(UsageError, match="no release in this environment"):
        records.find(provider_for(MemoryCloud(FakeClock())), "latest")


def test_report_refuses_a_missing_html_option(tmp_path):
    result = run_cli_in_process("report", "latest", cwd=tmp_path)
    assert result.code == 2


def test_without_lb_counters_the_sample_takes_errors_from_the_probes_and_says_so():
    from releasectl.engine.health import HealthTracker
    from releasectl.engine.observe import Observed
    from releasectl.providers.base import AdminState, Health, Member, Probe, Role, Server, ServerStatus

    def server(n: int, version: str) -> Server:
        return Server(id=f"s{n}", name=f"shop-{n}", app="shop", version=version, env="production", role=Role.STABLE,
                      release_id="r", status=ServerStatus.ACTIVE, address="10.0.0.1", port=8000 + n)

    servers = [server(1, "1.0.0"), server(2, "1.1.0")]
    members = [Member(id=f"m{s.id}", name=s.name, address=s.address, port=s.port, weight=50, admin=AdminState.READY,
                      health=Health.HEALTHY, server_id=s.id, version=s.version) for s in servers]
    rel = Release(id="r", app="shop", env="production", kind=ReleaseKind.ROLLOUT, version="1.1.0", image_id="i",
                  previous_version="1.0.0", pipeline=CANARY, count=1, step_index=1)
    for source, label in (("probe", "releasectl probes"), ("pool status", "pool status reads")):
        tracker = HealthTracker(HEALTH)
        sampler = samples.Sampler(tracker)
        observed = Observed(servers=tuple(servers), members=tuple(members))
        sampler.take(observed, rel, None, 0.0)
        for i in range(4):
            tracker.record("s2", Probe(status=500 if i == 0 else 200, latency=0.02, source=source), float(i))
        sample = sampler.take(observed, rel, None, 4.0)
        new = sample["versions"]["1.1.0"]
        assert sample["traffic"] == label and new["err"] == 0.25 and new["err_src"] == label
        assert "rps" not in new and new["req"] == 20.0 and new["ach"] == 50.0
        assert ("p95" in new) is (source == "probe")  # a pool read has no latency
