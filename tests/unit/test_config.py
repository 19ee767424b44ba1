"""releasectl.yaml validation: every bad input exits 2 with file:line, the key path and what was expected,
and changes nothing on disk."""

from __future__ import annotations

import textwrap

import pytest

from releasectl.config import load_pipeline, load_settings, parse_duration, parse_percent
from releasectl.errors import ConfigError
from tests.conftest import run_cli_in_process as run_cli, snapshot_tree  # logic only: no process needed

GOOD = """\
app: shop
provider: local
local:
  builder: app
  lb_port: 18080
health:
  path: /healthz
  interval: 1s
rollout:
  count: 2
  pipeline: canary
environments:
  production: {}
  staging:
    local: {lb_port: 18081}
    rollout: {count: 1}
"""

# (yaml text, expected line, expected fragment of the message)
BAD = [
    ("app: shop\nrollout:\n  count: three\n", 3, 'rollout.count: expected a whole number of at least 1, got "three"'),
    ("app: shop\nrollout:\n  count: 0\n", 3, "rollout.count: expected a whole number of at least 1, got 0"),
    ("app: shop\nhealth:\n  interval: soon\n", 3, 'health.interval: expected a duration from 10ms to 1h like 10s'),
    ("app: shop\nhealth:\n  rise: -1\n", 3, "health.rise: expected a whole number from 1 to 100"),
    ("app: shop\nhealth:\n  path: healthz\n", 3, "health.path: expected a URL path starting with /"),
    ("app: shop\nhealth:\n  expected_status: 2000\n", 3, "health.expected_status: expected one HTTP status code from 100 to 599"),
    ("app: shop\nrollout:\n  weight_tolerance: 150%\n", 3, "rollout.weight_tolerance: expected a percentage from 0 to 100"),
    ("app: shop\nrollout:\n  progress_deadline: 10 minutes\n", 3, "rollout.progress_deadline: expected a duration"),
    ("app: shop\nrolout:\n  count: 2\n", 2, "rolout: unknown key"),
    ("app: shop\nlocal:\n  lb_port: 99999\n", 3, "local.lb_port: expected a TCP port from 1 to 65535"),
    ("app: shop\nlocal:\n  buildr: app\n", 3, "local.buildr: unknown key"),
    ("app: Shop_1\n", 1, "app: expected a name of 1 to 40 lower-case letters"),
    ("app: shop\nprovider: aws\n", 2, "provider: expected one of local, openstack"),
    ("app: shop\nopenstack:\n  password: hunter2\n", 3, "openstack.password: secrets never go in releasectl.yaml"),
    ("app: shop\nimage:\n  name: shop-latest\n", 3, "image.name: expected a template containing {version}"),
    ("app: shop\nimage:\n  keep: many\n", 3, "image.keep: expected a whole number from 1 to 1000"),
    ("app: shop\nstage:\n  checks:\n    - expected_status: 200\n", 4, "stage.checks[0]: required key `path` missing"),
    ("app: shop\nstage:\n  checks:\n    - path: /\n      max_latency: fast\n", 5, "stage.checks[0].max_latency: expected a duration"),
    ("app: shop\nenvironments:\n  prod:\n    rollout: {count: x}\n", 4, "environments.prod.rollout.count: expected a whole number of at least 1"),
    ("app: shop\nenvironments:\n  prod:\n    colour: blue\n", 4, "environments.prod.colour: unknown key"),
    ("app: shop\nrollout: [1, 2]\n", 2, "rollout: expected a mapping of keys"),
    ("app: shop\n  bad indent: [\n", 2, "not valid YAML"),
    ("provider: local\n", 1, "app: required key missing"),
    ("app: shop\napp: other\n", 2, "app: duplicate key"),
    ("app: shop\nopenstack:\n  insecure: maybe\n", 3, "openstack.insecure: expected true or false"),
]


@pytest.mark.parametrize("text,line,fragment", BAD, ids=[b[2].split(":")[0] + f"-{i}" for i, b in enumerate(BAD)])
def test_bad_config_names_file_line_and_key(tmp_path, text, line, fragment):
    (tmp_path / "releasectl.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "releasectl.yaml")
    message = str(info.value)
    assert message.startswith(f"releasectl.yaml:{line}: "), message
    assert fragment in message


@pytest.mark.parametrize("text,line,fragment", BAD[:16:3])
def test_bad_config_through_the_cli_exits_2_and_changes_nothing(tmp_path, text, line, fragment):
    (tmp_path / "releasectl.yaml").write_text(text)
    before = snapshot_tree(tmp_path)
    for command in (["config", "check"], ["bake", "1.0.0"], ["rollout"], ["status"]):
        result = run_cli(*command, cwd=tmp_path)
        assert result.code == 2, (command, result.stderr)
        assert f"releasectl.yaml:{line}: " in result.stderr and fragment in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) <= 2  # one line, plus an optional hint
    assert snapshot_tree(tmp_path) == before


def test_good_config_and_environment_overrides(tmp_path):
    (tmp_path / "releasectl.yaml").write_text(GOOD)
    prod = load_settings(tmp_path / "releasectl.yaml")
    staging = load_settings(tmp_path / "releasectl.yaml", env="staging")
    assert (prod.env, prod.rollout.count, prod.provider_options["lb_port"]) == ("production", 2, 18080)
    assert (staging.env, staging.rollout.count, staging.provider_options["lb_port"]) == ("staging", 1, 18081)
    assert prod.health.interval == 1.0 and prod.image_name_for("1.4.0") == "shop-1.4.0"
    assert prod.state_dir == tmp_path / ".releasectl"


def test_unknown_environment_is_a_usage_error(tmp_path):
    (tmp_path / "releasectl.yaml").write_text(GOOD)
    with pytest.raises(ConfigError, match="environment 'qa' is not defined"):
        load_settings(tmp_path / "releasectl.yaml", env="qa")


def test_config_check_prints_effective_config_as_json(tmp_path):
    (tmp_path / "releasectl.yaml").write_text(GOOD)
    result = run_cli("config", "check", "--env", "staging", "--output", "json", cwd=tmp_path)
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["config"]["environment"] == "staging"
    assert doc["config"]["local"]["lb_port"] == 18081
    assert doc["exit_code"] == 0 and doc["errors"] == []


def test_missing_config_says_how_to_create_one(tmp_path):
    result = run_cli("status", cwd=tmp_path)
    assert result.code == 2
    assert "no releasectl.yaml" in result.stderr and "releasectl init" in result.stderr


@pytest.mark.parametrize(
    "value,seconds", [("500ms", 0.5), ("10s", 10), ("5m", 300), ("1h", 3600), (3, 3.0), ("2.5s", 2.5)]
)
def test_durations(value, seconds):
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value,percent", [("10%", 10), (50, 50), ("0", 0), ("100%", 100), (12.5, 12.5)])
def test_percentages(value, percent):
    assert parse_percent(value) == percent


BAD_PIPELINES = [
    ("steps: []\n", "steps: expected a non-empty list"),
    ("steps:\n  - weight: {percent: 100}\n  - retire: {}\n", "the first step must be `launch`"),
    ("steps:\n  - launch: {}\n  - weight: {percent: 50}\n  - retire: {}\n", "must send 100%"),
    ("steps:\n  - launch: {}\n  - weight: {percent: 100}\n", "the last step must be `retire`"),
    ("steps:\n  - launch: {}\n  - shift: {percent: 100}\n  - retire: {}\n", "unknown step kind"),
    ("steps:\n  - launch: {}\n  - weight: {hold: 5s}\n  - retire: {}\n", "required key `percent` missing"),
    ("steps:\n  - launch: {}\n  - weight: {percent: 120}\n  - retire: {}\n", "expected a percentage"),
    ("steps:\n  - launch: {}\n  - analyze: {duration: 10s}\n  - weight: {percent: 100}\n  - retire: {}\n", "`max_error_rate` missing"),
]


@pytest.mark.parametrize("text,fragment", BAD_PIPELINES)
def test_bad_pipeline_files(tmp_path, text, fragment):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="p.yaml:") as info:
        load_pipeline(str(path))
    assert fragment in str(info.value)


def test_builtin_pipelines_load():
    canary = load_pipeline("canary")
    assert [s.kind for s in canary.steps][:2] == ["launch", "weight"]
    blue_green = load_pipeline("blue-green")
    assert [getattr(s, "percent", None) for s in blue_green.steps if s.kind == "weight"] == [100.0]
    with pytest.raises(ConfigError, match="unknown pipeline 'nope'"):
        load_pipeline("nope")


def test_pipeline_override_on_the_cli_is_validated(tmp_path):
    (tmp_path / "releasectl.yaml").write_text(textwrap.dedent(GOOD))
    result = run_cli("rollout", "--pipeline", "nope", cwd=tmp_path)
    assert result.code == 2 and "unknown pipeline 'nope'" in result.stderr


def test_config_check_reports_every_problem_with_file_line_and_hint(tmp_path):
    """Problems in another environment, in a pipeline file and between environments are all reported."""
    (tmp_path / "p.yaml").write_text("steps:\n  - launch: {count: 500}\n  - weight: {percent: 100, hold: .inf}\n  - retire: {}\n")
    (tmp_path / "releasectl.yaml").write_text(textwrap.dedent("""\
        app: shop
        health:
          interval: .inf
        rollout:
          pipeline: p.yaml
        environments:
          production:
            local: {lb_port: 18080}
          staging:
            local: {lb_port: 18080}
            rollout: {count: 100000, pipeline: nope}
        """))
    result = run_cli("config", "check", cwd=tmp_path)
    assert result.code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("releasectl: error: ")]
    expected = [
        "releasectl.yaml:3: health.interval: expected a duration from 10ms to 1h",
        "releasectl.yaml:11: environments.staging.rollout.count: 100000 is more than rollout.max_count (100)",
        "releasectl.yaml:10: environments.staging.local.lb_port: load-balancer port 18080 is also the port of environment production",
        "p.yaml:2: steps[0].launch.count: 500 is more than rollout.max_count (100)",
        "p.yaml:3: steps[1].weight.hold: expected a duration",
        "releasectl.yaml:11: environments.staging.rollout.pipeline: unknown pipeline 'nope'",
    ]
    for fragment in expected:
        assert any(fragment in line for line in errors), (fragment, result.stderr)
    assert len(errors) == len(expected)
    assert "  hint: " in result.stderr
    # every other command refuses the same file with its first problem, saying there are more
    rollout = run_cli("rollout", "-o", "json", cwd=tmp_path)
    assert rollout.code == 2 and rollout.stderr.count("releasectl: error: ") == 1
    assert "config check" in rollout.json()["errors"][0]["hint"]
    assert not (tmp_path / ".releasectl").exists()


def test_config_check_lists_at_most_20_problems(tmp_path):
    body = "\n".join(f"  key{i}: 1" for i in range(30))
    (tmp_path / "releasectl.yaml").write_text(f"app: shop\nhealth:\n{body}\n")
    result = run_cli("config", "check", "-o", "json", cwd=tmp_path)
    doc = result.json()
    assert result.code == 2 and doc["problems"] == 30 and len(doc["errors"]) == 21
    assert "10 more problem(s) not shown" in doc["errors"][-1]["message"]


def test_start_command_string_is_split_as_a_shell_would(tmp_path):
    (tmp_path / "releasectl.yaml").write_text("app: shop\nlocal:\n  start_command: \"python -c 'print(1)'\"\n")
    assert load_settings(tmp_path / "releasectl.yaml").provider_options["start_command"] == ["python", "-c", "print(1)"]


def test_bounds_accept_their_edges(tmp_path):
    (tmp_path / "releasectl.yaml").write_text(textwrap.dedent("""\
        app: a
        health: {path: "/a/b?c=1&d=%20", interval: 1h, timeout: 10ms, rise: 100, fall: 1, expected_status: 599}
        rollout: {count: 250, max_count: 250, progress_deadline: 7d, drain_timeout: 0s, weight_tolerance: 100%}
        image: {keep: 1000}
        environments:
          e_2-x: {}
        """))
    s = load_settings(tmp_path / "releasectl.yaml")
    assert (s.health.interval, s.health.timeout, s.rollout.count, s.rollout.progress_deadline) == (3600, 0.01, 250, 604800)
    assert s.env == "e_2-x" and s.image_keep == 1000


def test_prune_keep_defaults_to_image_keep(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "app.py").write_text("print('hi')\n")
    (tmp_path / "releasectl.yaml").write_text("app: shop\nimage: {keep: 1}\nlocal: {lb_port: 18999}\n")
    for version in ("1.0.0", "1.1.0"):
        assert run_cli("bake", version, cwd=tmp_path).code == 0
    result = run_cli("images", "prune", "--dry-run", "-o", "json", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert result.json()["deleted"] == ["shop-1.0.0"]
