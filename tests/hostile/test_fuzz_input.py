"""Structure-aware fuzzing of releasectl.yaml and pipeline files through the real CLI, in process.

Hypothesis builds configs from the schema (known sections and keys, environments, a pipeline file) and
fills them with good values and hostile ones (.inf, .nan, huge and negative numbers, control characters,
CJK names, wrong types, unknown keys, secrets), sometimes damaging the YAML text itself (tags, aliases,
duplicate keys, bad UTF-8). Every example must end in exit 0 or 2, never an internal error; an exit 2
must be one `releasectl: error:` line per problem (with optional hints) and must leave the folder exactly
as it was, including for the commands that would write (`rollout`, `bake`, `stage`, `down`); an exit 0
must produce settings inside every documented bound.

The `input-fuzz` profile runs 2,000 examples (RELEASECTL_FUZZ_EXAMPLES overrides it)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from releasectl.config import check_config
from tests.conftest import run_cli_in_process
from tests.helpers import tree_digest

settings.register_profile(
    "input-fuzz",
    max_examples=int(os.environ.get("RELEASECTL_FUZZ_EXAMPLES", "2000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

HOSTILE = st.one_of(
    st.sampled_from([
        float("inf"), float("-inf"), float("nan"), 10**11, 10**30, -1, 0, 100000, 2**63, 1e11, True, None,
        "1e11", ".inf", "", " ", "10 minutes", "8d", "-5s", "150%", "/health z", "/a\nb", "/a\r\nHost: x",
        "${HOME}", "a'b", '"', "生产环境" * 12, "\x00", "\u2028", "%zz", "200-299", [], {}, ["a", 1], {"k": "v"},
    ]),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
DURATION = st.one_of(
    st.integers(min_value=0, max_value=3 * 86400),
    st.builds(lambda n, u: f"{n}{u}", st.integers(min_value=0, max_value=2000), st.sampled_from(["ms", "s", "m", "h", "d"])),
)
PERCENT = st.one_of(st.integers(min_value=-5, max_value=110), st.builds(lambda n: f"{n}%", st.integers(min_value=0, max_value=120)))
PATH = st.one_of(st.sampled_from(["/healthz", "/", "/a/b?c=1", "/x%20y", "healthz"]), st.text(max_size=10).map(lambda t: "/" + t))


def maybe_hostile(good: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(good, good, good, HOSTILE)


def section(keys: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """Any subset of the section's keys with good or hostile values, now and then an unknown key or a secret."""
    optional = {k: maybe_hostile(v) for k, v in keys.items()}
    return st.fixed_dictionaries({}, optional=optional) | st.fixed_dictionaries(
        {}, optional={**optional, "colour": HOSTILE, "password": HOSTILE}
    )


HEALTH = section({
    "path": PATH, "expected_status": st.integers(min_value=90, max_value=610), "interval": DURATION,
    "timeout": DURATION, "rise": st.integers(min_value=0, max_value=120), "fall": st.integers(min_value=0, max_value=120),
})
ROLLOUT = section({
    "count": st.integers(min_value=0, max_value=300), "max_count": st.integers(min_value=0, max_value=400),
    "pipeline": st.sampled_from(["canary", "blue-green", "canary-manual", "p.yaml", "nope", "missing.yaml"]),
    "progress_deadline": DURATION, "drain_timeout": DURATION, "weight_tolerance": PERCENT,
})
LOCAL = section({
    "builder": st.sampled_from(["app", "elsewhere"]), "lb_port": st.integers(min_value=-1, max_value=70000),
    "lb_bind": st.sampled_from(["127.0.0.1", "0.0.0.0", "::1", "localhost", "127.0.0.1:80"]),
    "start_command": st.one_of(st.sampled_from(["python app.py", "python -c 'print(1)'", "python -c 'print(1)"]),
                               st.lists(st.text(max_size=6), max_size=3)),
    "stop_timeout": DURATION, "drain_timeout": DURATION,
})
STAGE = section({
    "timeout": DURATION,
    "checks": st.lists(section({"path": PATH, "expected_status": st.integers(min_value=90, max_value=610),
                                "max_latency": DURATION, "body_contains": st.text(max_size=8)}), max_size=3),
})
IMAGE = section({"name": st.sampled_from(["{app}-{version}", "shop", "{app}/{version}", "{x}-{version}"]),
                 "keep": st.integers(min_value=-1, max_value=2000)})
ENV_NAME = st.one_of(st.sampled_from(["production", "staging", "qa", "Prod", "生产环境" * 9, "a" * 40, "x y"]),
                     st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True))
ENVIRONMENT = st.fixed_dictionaries({}, optional={
    "health": HEALTH, "rollout": ROLLOUT, "local": LOCAL, "stage": STAGE,
    "app_port": maybe_hostile(st.integers(min_value=1, max_value=65535)),
})
CONFIG = st.fixed_dictionaries(
    {"app": maybe_hostile(st.sampled_from(["shop", "a", "web-2"]))},
    optional={
        "provider": st.sampled_from(["local", "local", "openstack", "aws"]),
        "health": HEALTH, "rollout": ROLLOUT, "local": LOCAL, "stage": STAGE, "image": IMAGE,
        "app_port": maybe_hostile(st.integers(min_value=1, max_value=65535)),
        "environments": st.dictionaries(ENV_NAME, st.one_of(st.none(), ENVIRONMENT), max_size=3),
        "default_environment": ENV_NAME,
    },
)
# configs inside every bound, so that the accepted path (and its oracle) gets as many examples
SECONDS = st.builds(lambda n, u: f"{n}{u}", st.integers(min_value=1, max_value=59), st.sampled_from(["s", "m"]))
GOOD_CONFIG = st.fixed_dictionaries(
    {"app": st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True)},
    optional={
        "health": st.fixed_dictionaries({}, optional={
            "path": st.sampled_from(["/healthz", "/", "/a/b?c=1&d=%20", "/~x;y=1"]),
            "expected_status": st.integers(min_value=100, max_value=599),
            "interval": st.sampled_from(["100ms", "1s", "5s", "1h"]), "timeout": st.sampled_from(["10ms", "1s"]),
            "rise": st.integers(min_value=1, max_value=100), "fall": st.integers(min_value=1, max_value=100),
        }),
        "rollout": st.fixed_dictionaries({}, optional={
            "count": st.integers(min_value=1, max_value=100), "pipeline": st.sampled_from(["canary", "blue-green", "p.yaml"]),
            "progress_deadline": SECONDS, "drain_timeout": SECONDS, "weight_tolerance": PERCENT.filter(lambda p: 0 <= (p if isinstance(p, int) else int(p[:-1])) <= 100),
        }),
        "stage": st.fixed_dictionaries({}, optional={"timeout": SECONDS, "checks": st.lists(
            st.fixed_dictionaries({"path": st.sampled_from(["/", "/x"])}, optional={"max_latency": SECONDS}), max_size=2)}),
        "image": st.fixed_dictionaries({}, optional={"keep": st.integers(min_value=1, max_value=1000)}),
        "local": st.fixed_dictionaries({}, optional={"start_command": st.sampled_from(["python -c 'print(1)'", "x y"]),
                                                     "lb_bind": st.sampled_from(["127.0.0.1", "::1"])}),
        "environments": st.lists(st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True), min_size=1, max_size=3, unique=True)
        .map(lambda names: {n: {"local": {"lb_port": 20000 + i}} for i, n in enumerate(names)}),
    },
)
STEP = st.one_of(
    st.fixed_dictionaries({"launch": section({"count": st.integers(min_value=0, max_value=200)})}),
    st.fixed_dictionaries({"weight": section({"percent": PERCENT, "hold": DURATION})}),
    st.fixed_dictionaries({"pause": st.one_of(st.none(), section({"duration": DURATION}))}),
    st.fixed_dictionaries({"analyze": section({"duration": DURATION, "max_error_rate": PERCENT, "max_p95": DURATION})}),
    st.fixed_dictionaries({"retire": section({"drain_timeout": DURATION, "keep_previous": DURATION})}),
)
PIPELINE = st.one_of(
    # a valid skeleton with fuzzed middle steps, and free-form lists of steps
    st.lists(STEP, max_size=4).map(lambda mid: {"steps": [{"launch": {}}, *mid, {"weight": {"percent": 100}}, {"retire": {}}]}),
    st.fixed_dictionaries({"steps": st.lists(STEP, max_size=6)}, optional={"name": maybe_hostile(st.just("p"))}),
)
# damage done to the YAML text after it is written
DAMAGE = st.sampled_from([
    None, None, None, None, None, None,
    ("append", "app: again\n"),
    ("append", "x: !!python/object/apply:os.system ['true']\n"),
    ("append", "x: !custom 1\n"),
    ("append", "x: !!int abc\n"),
    ("append", "a: &a [1, *a]\n"),
    ("append", "".join(f"{n}: &{n} [{', '.join(['*' + p] * 9) if p else 'x'}]\n" for p, n in zip(["", "l0", "l1", "l2", "l3", "l4", "l5", "l6"], ["l0", "l1", "l2", "l3", "l4", "l5", "l6", "l7"]))),
    ("bytes", b"\xff\xfe"),
    ("append", "  broken: [\n"),
])
COMMANDS = st.sampled_from([
    ("rollout", "1.0.0"), ("bake", "2.0.0"), ("stage", "1.0.0"), ("down",), ("status",), ("images", "prune"), ("gc",),
])


def dump(data) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True, width=1000)


def damage(text: str, how) -> bytes:
    raw = text.encode()
    if how is None:
        return raw
    kind, extra = how
    return raw + extra if kind == "bytes" else raw + extra.encode()


def assert_clean_errors(stderr: str) -> None:
    """Only error lines and hint lines, and never an internal error."""
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert lines and lines[0].startswith("releasectl: error: "), stderr
    assert all(line.startswith(("releasectl: error: ", "  hint: ")) for line in lines), stderr


def assert_within_bounds(folder: Path) -> None:
    """The oracle for an accepted config: every value the engine will get is inside its documented bound."""
    report = check_config(folder / "releasectl.yaml")
    for env in report.environments:
        s = check_config(folder / "releasectl.yaml", env).settings
        h = s.health
        assert 0.01 <= h.interval <= 3600 and 0.01 <= h.timeout <= 10 * h.interval
        assert 1 <= h.rise <= 100 and 1 <= h.fall <= 100 and 100 <= h.expected_status <= 599
        for check in s.stage.checks:
            assert re.fullmatch(r"/[A-Za-z0-9\-._~!&()*+,;=:@/?%]*", check.path), check.path
        r = s.rollout
        assert 1 <= r.count <= r.max_count <= 10_000
        for seconds in (r.progress_deadline, r.drain_timeout, s.stage.timeout):
            assert math.isfinite(seconds) and 0 <= seconds <= 7 * 86400
        assert 0 <= r.weight_tolerance <= 100 and 1 <= s.image_keep <= 1000 and 1 <= s.app_port <= 65535


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """One folder for every example (creating and removing one per example costs more than the example)."""
    return tmp_path_factory.mktemp("fuzz")


@settings(settings.get_profile("input-fuzz"))
@given(config=CONFIG | GOOD_CONFIG, pipeline=PIPELINE, damage_how=DAMAGE, command=COMMANDS, json_output=st.booleans())
def test_fuzzed_configs_exit_0_or_2_and_write_nothing_on_2(folder, config, pipeline, damage_how, command, json_output):
    (folder / "releasectl.yaml").write_bytes(damage(dump(config), damage_how))
    (folder / "p.yaml").write_text(dump(pipeline))
    before = tree_digest(folder)
    output = ("-o", "json") if json_output else ()
    checked = run_cli_in_process("config", "check", *output, cwd=folder)
    assert checked.code in (0, 2), checked.stderr
    valid = checked.code == 0
    event("accepted" if valid else "refused")
    assert tree_digest(folder) == before
    if not valid:
        assert_clean_errors(checked.stderr)
        # a command that would write refuses the same file, before anything exists
        refused = run_cli_in_process(*command, cwd=folder)
        assert refused.code == 2, (command, refused.stderr)
        assert_clean_errors(refused.stderr)
        assert len([l for l in refused.stderr.splitlines() if l.startswith("releasectl: error:")]) == 1
        assert tree_digest(folder) == before, command
    else:
        assert "internal error" not in checked.stderr
        assert_within_bounds(folder)
