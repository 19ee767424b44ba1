"""Named bad inputs, as an attacker would try them: every one exits 2 with one clear line (plus an optional
hint), changes nothing in the project folder (a sha256 listing before and after, state folder included),
and leaves no process behind. They run in process (`releasectl.cli.main`), so the whole table takes
seconds.

Each config case breaks exactly one thing in an otherwise good releasectl.yaml and runs through both
`config check` (which validates everything) and `rollout 1.0.0` (which would write if it got that far); a
project with the image 1.0.0 already baked is copied for every case."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.conftest import CliRun, run_cli_in_process
from tests.helpers import processes_under, tree_digest

BASE: dict = {
    "app": "shop",
    "provider": "local",
    "local": {"builder": "app", "start_command": ["{python}", "app.py"]},
    "image": {"name": "{app}-{version}", "keep": 5},
    "health": {"path": "/healthz", "expected_status": 200, "interval": "1s", "timeout": "2s", "rise": 2, "fall": 2},
    "rollout": {"count": 2, "pipeline": "canary", "progress_deadline": "5m"},
    "stage": {"checks": [{"path": "/", "expected_status": 200}]},
    "default_environment": "production",
    "environments": {"production": {"local": {"lb_port": 18555}}, "staging": {"local": {"lb_port": 18556}}},
}
GOOD_PIPELINE = "name: p\nsteps:\n  - launch: {}\n  - weight: {percent: 100, hold: 1s}\n  - retire: {drain_timeout: 1s}\n"


def config(**raw: str) -> str:
    """BASE with the dotted keys set to raw YAML text (`config(**{"health.path": '"/a\\\\nb"'})`).
    A value of None removes the key."""
    data = yaml.safe_load(yaml.safe_dump(BASE))
    marks = {}
    for i, (dotted, value) in enumerate(raw.items()):
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
            continue
        marks[f"__RAW{i}__"] = value
        node[last] = f"__RAW{i}__"
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    for mark, value in marks.items():
        text = text.replace(mark, value)
    return text


@dataclass(frozen=True)
class Case:
    id: str
    fragment: str  # in the error line
    config: str | bytes | None = None  # releasectl.yaml; None keeps the good one
    argv: tuple[tuple[str, ...], ...] = (("config", "check"), ("rollout", "1.0.0"))
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


def cfg(id: str, fragment: str, **raw: str) -> Case:
    return Case(id, fragment, config(**raw))


def pipe(id: str, fragment: str, body: str | bytes) -> Case:
    """A bad pipeline file, named by the config (config check) and by --pipeline (rollout)."""
    return Case(
        id,
        fragment,
        config(**{"rollout.pipeline": "p.yaml"}),
        argv=(("config", "check"), ("rollout", "1.0.0", "--pipeline", "p.yaml")),
        files={"p.yaml": body},
    )


def cmd(id: str, fragment: str, *argv: str, env: dict[str, str] | None = None, files: dict | None = None) -> Case:
    return Case(id, fragment, argv=(argv,), env=env or {}, files=files or {})


BOMB = "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9) if p else ', '.join(['lol'] * 9)}]\n"
    for p, n in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefgh")
)

CONFIG_CASES = [
    # --- health.path: what reaches haproxy.cfg and the Octavia monitor ---
    cfg("path-newline-injection", "health.path: expected a URL path",
        **{"health.path": '"/healthz\\n    http-request return status 200 content-type text/plain string pwned"'}),
    cfg("path-space", "health.path: expected a URL path", **{"health.path": '"/health z"'}),
    cfg("path-no-slash", "health.path: expected a URL path starting with /", **{"health.path": "healthz"}),
    cfg("path-tab", "health.path: expected a URL path", **{"health.path": '"/health\\tz"'}),
    cfg("path-crlf", "health.path: expected a URL path", **{"health.path": '"/h\\r\\nHost: evil"'}),
    cfg("path-hash-comment", "health.path: expected a URL path", **{"health.path": '"/healthz#x"'}),
    cfg("path-env-expansion", "health.path: expected a URL path", **{"health.path": '"/${HOME}"'}),
    cfg("path-double-quote", "health.path: expected a URL path", **{"health.path": "'/a\"b'"}),
    cfg("path-single-quote", "health.path: expected a URL path", **{"health.path": "\"/a'b\""}),
    cfg("path-backslash", "health.path: expected a URL path", **{"health.path": '"/a\\\\b"'}),
    cfg("path-too-long", "health.path: expected a URL path of at most 255", **{"health.path": "/" + "a" * 300}),
    cfg("path-bad-escape", "health.path: expected a URL path", **{"health.path": '"/a%zz"'}),
    cfg("path-non-ascii", "health.path: expected a URL path", **{"health.path": '"/gesundheit-ü"'}),
    cfg("path-nul", "health.path: expected a URL path", **{"health.path": '"/a\\0b"'}),
    cfg("path-not-string", "health.path: expected a URL path", **{"health.path": "[/a]"}),
    cfg("stage-check-path-newline", "stage.checks[0].path: expected a URL path",
        **{"stage.checks": '[{path: "/\\nx", expected_status: 200}]'}),
    # --- durations: finite and bounded ---
    cfg("interval-inf", "health.interval: expected a duration from 10ms to 1h", **{"health.interval": ".inf"}),
    cfg("interval-nan", "health.interval: expected a duration", **{"health.interval": ".nan"}),
    cfg("interval-negative", "health.interval: expected a duration", **{"health.interval": "-1"}),
    cfg("interval-zero", "health.interval: expected a duration", **{"health.interval": "0"}),
    cfg("interval-two-hours", "health.interval: expected a duration from 10ms to 1h", **{"health.interval": "2h"}),
    cfg("interval-1e11", "health.interval: expected a duration", **{"health.interval": "1e11"}),
    cfg("interval-huge-int", "health.interval: expected a duration", **{"health.interval": "1" + "0" * 30}),
    cfg("interval-float-overflow", "health.interval: expected a duration", **{"health.interval": "1.0e+400"}),
    cfg("interval-words", "health.interval: expected a duration", **{"health.interval": "soon"}),
    cfg("timeout-inf", "health.timeout: expected a duration", **{"health.timeout": ".inf"}),
    cfg("timeout-over-ten-intervals", "health.timeout: 20s is more than ten times", **{"health.timeout": "20s"}),
    cfg("progress-deadline-inf", "rollout.progress_deadline: expected a duration from 1s to 7d",
        **{"rollout.progress_deadline": ".inf"}),
    cfg("progress-deadline-8d", "rollout.progress_deadline: expected a duration", **{"rollout.progress_deadline": "8d"}),
    cfg("progress-deadline-zero", "rollout.progress_deadline: expected a duration", **{"rollout.progress_deadline": "0s"}),
    cfg("drain-timeout-30d", "rollout.drain_timeout: expected a duration", **{"rollout.drain_timeout": "30d"}),
    cfg("stage-timeout-inf", "stage.timeout: expected a duration", **{"stage.timeout": ".inf"}),
    cfg("max-latency-2h", "stage.checks[0].max_latency: expected a duration",
        **{"stage.checks": "[{path: /, max_latency: 2h}]"}),
    cfg("stop-timeout-inf", "local.stop_timeout: expected a duration", **{"local.stop_timeout": ".inf"}),
    cfg("local-drain-negative", "local.drain_timeout: expected a duration", **{"local.drain_timeout": "-5"}),
    # --- counts and health thresholds ---
    cfg("count-100000", "rollout.count: 100000 is more than rollout.max_count (100)", **{"rollout.count": "100000"}),
    cfg("count-zero", "rollout.count: expected a whole number of at least 1", **{"rollout.count": "0"}),
    cfg("count-negative", "rollout.count: expected a whole number", **{"rollout.count": "-1"}),
    cfg("count-inf", "rollout.count: expected a whole number", **{"rollout.count": ".inf"}),
    cfg("count-float", "rollout.count: expected a whole number", **{"rollout.count": "2.0"}),
    cfg("count-string", "rollout.count: expected a whole number", **{"rollout.count": '"2"'}),
    cfg("count-bool", "rollout.count: expected a whole number", **{"rollout.count": "true"}),
    cfg("count-over-raised-max", "rollout.count: 300 is more than rollout.max_count (200)",
        **{"rollout.count": "300", "rollout.max_count": "200"}),
    cfg("max-count-zero", "rollout.max_count: expected a whole number from 1 to 10000", **{"rollout.max_count": "0"}),
    cfg("max-count-huge", "rollout.max_count: expected a whole number from 1 to 10000", **{"rollout.max_count": "100000"}),
    cfg("rise-1e11", "health.rise: expected a whole number from 1 to 100", **{"health.rise": "1e11"}),
    cfg("rise-100000000000", "health.rise: expected a whole number from 1 to 100", **{"health.rise": "100000000000"}),
    cfg("rise-zero", "health.rise: expected a whole number from 1 to 100", **{"health.rise": "0"}),
    cfg("fall-101", "health.fall: expected a whole number from 1 to 100", **{"health.fall": "101"}),
    cfg("fall-fraction", "health.fall: expected a whole number", **{"health.fall": "2.5"}),
    cfg("status-99", "health.expected_status: expected one HTTP status code", **{"health.expected_status": "99"}),
    cfg("status-600", "health.expected_status: expected one HTTP status code", **{"health.expected_status": "600"}),
    cfg("status-range", "health.expected_status: expected one HTTP status code", **{"health.expected_status": "200-299"}),
    cfg("tolerance-150", "rollout.weight_tolerance: expected a percentage", **{"rollout.weight_tolerance": "150%"}),
    cfg("tolerance-nan", "rollout.weight_tolerance: expected a percentage", **{"rollout.weight_tolerance": ".nan"}),
    cfg("image-keep-zero", "image.keep: expected a whole number from 1 to 1000", **{"image.keep": "0"}),
    cfg("image-keep-huge", "image.keep: expected a whole number from 1 to 1000", **{"image.keep": "100000"}),
    cfg("stage-checks-not-list", "stage.checks: expected a list", **{"stage.checks": "/healthz"}),
    cfg("stage-checks-too-many", "stage.checks: expected a list of at most 50",
        **{"stage.checks": "[" + ", ".join(["{path: /}"] * 51) + "]"}),
    # --- names, ports, addresses, commands ---
    cfg("app-upper-case", "app: expected a name", **{"app": "Shop"}),
    cfg("app-too-long", "app: expected a name of 1 to 40", **{"app": "a" * 41}),
    cfg("app-missing", "app: required key missing", **{"app": None}),
    cfg("app-list", "app: expected a name", **{"app": "[shop]"}),
    cfg("provider-unknown", "provider: expected one of local, openstack", **{"provider": "aws"}),
    cfg("provider-list", "provider: expected one of", **{"provider": "[local]"}),
    cfg("env-cjk-long", "expected an environment name of 1 to 32",
        **{"environments": "{" + "生产环境" * 30 + ": {}}", "default_environment": None}),
    cfg("env-upper-case", "expected an environment name", **{"environments": "{Prod: {}}", "default_environment": None}),
    cfg("env-empty-mapping", "environments: expected a mapping of environment names", **{"environments": "{}"}),
    cfg("env-list", "environments: expected a mapping of environment names", **{"environments": "[production]"}),
    cfg("default-env-undefined", "default_environment: \"qa\" is not one of the environments",
        **{"default_environment": "qa"}),
    cfg("app-port-zero", "app_port: expected a TCP port", **{"app_port": "0"}),
    cfg("app-port-70000", "app_port: expected a TCP port", **{"app_port": "70000"}),
    cfg("lb-port-zero", "environments.production.local.lb_port: expected a TCP port",
        **{"environments.production.local.lb_port": "0"}),
    cfg("lb-port-string", "local.lb_port: expected a TCP port", **{"local.lb_port": '"8080"'}),
    cfg("lb-port-clash", "load-balancer port 18555 is also the port of environment production",
        **{"environments.staging.local.lb_port": "18555"}),
    cfg("lb-bind-with-port", "local.lb_bind: expected an IP address", **{"local.lb_bind": '"127.0.0.1:80"'}),
    cfg("lb-bind-injection", "local.lb_bind: expected an IP address", **{"local.lb_bind": '"0.0.0.0\\n  bind :1"'}),
    cfg("start-command-unbalanced-quote", "local.start_command: cannot split the command line",
        **{"local.start_command": "\"python -c 'print(1)\""}),
    cfg("start-command-empty-list", "local.start_command: expected a command", **{"local.start_command": "[]"}),
    cfg("start-command-nul", "local.start_command: expected", **{"local.start_command": '["python", "a\\0b"]'}),
    cfg("haproxy-newline", "local.haproxy: expected a string without control characters",
        **{"local.haproxy": '"haproxy\\nx"'}),
    cfg("image-name-no-version", "image.name: expected a template containing {version}", **{"image.name": "shop-latest"}),
    cfg("image-name-slash", "image.name: expected letters, digits", **{"image.name": '"{app}/{version}"'}),
    cfg("image-name-attribute", "image.name: expected", **{"image.name": '"{version.__class__}-{version}"'}),
    cfg("state-dir-empty", "state_dir: expected a non-empty string", **{"state_dir": '""'}),
    cfg("state-dir-nul", "state_dir: expected a string without control characters", **{"state_dir": '"a\\0b"'}),
    cfg("lock-container-slash", "openstack.lock_container: expected a Swift container name",
        **{"openstack": "{lock_container: a/b}"}),
    cfg("boot-timeout-inf", "openstack.boot_timeout: expected a duration", **{"openstack": "{boot_timeout: .inf}"}),
    cfg("security-groups-too-many", "openstack.security_groups: expected a list of 1 to 50",
        **{"openstack": "{security_groups: [" + ", ".join(["sg"] * 51) + "]}"}),
    cfg("insecure-maybe", "openstack.insecure: expected true or false", **{"openstack": "{insecure: maybe}"}),
    # --- keys and secrets ---
    cfg("unknown-top-key", "rolout: unknown key", **{"rolout": "{count: 2}"}),
    cfg("unknown-env-key", "environments.production.colour: unknown key", **{"environments.production.colour": "blue"}),
    cfg("secret-openstack-password", "openstack.password: secrets never go in releasectl.yaml",
        **{"openstack": "{password: hunter2}"}),
    cfg("secret-app-credential", "openstack.application_credential_secret: secrets never go",
        **{"openstack": "{application_credential_secret: s3cr3t}"}),
    cfg("secret-in-environment", "environments.production.openstack.token: secrets never go",
        **{"environments.production.openstack": "{token: abc}"}),
    cfg("secret-api-key-local", "local.api_key: secrets never go", **{"local.api_key": "k"}),
    cfg("secret-top-level", "password: unknown key", **{"password": "hunter2"}),
    cfg("pipeline-unknown-name", "unknown pipeline 'nope'", **{"rollout.pipeline": "nope"}),
    cfg("pipeline-missing-file", 'pipeline file "missing.yaml" not found', **{"rollout.pipeline": "missing.yaml"}),
    # --- the YAML itself ---
    Case("yaml-alias-bomb", "expands to more than 50000 values", BOMB + config()),
    Case("yaml-recursive-alias", "recursive alias", "x: &a [1, *a]\n" + config()),
    Case("yaml-recursive-mapping", "recursive alias", config(**{"rollout": "&r {count: 2, again: *r}"})),
    Case("yaml-deep-nesting", "nested more than 64 levels", "x: " + "[" * 200 + "]" * 200 + "\n" + config()),
    Case("yaml-duplicate-key", "app: duplicate key", config() + "app: other\n"),
    Case("yaml-python-tag", "YAML tag !!python/object/apply:os.system is not allowed",
         config(**{"app": "!!python/object/apply:os.system ['touch pwned']"})),
    Case("yaml-custom-tag", "YAML tag !custom is not allowed", config(**{"rollout.count": "!custom 3"})),
    Case("yaml-int-abc", "rollout.count: \"abc\" is not a valid !!int", config(**{"rollout.count": "!!int abc"})),
    Case("yaml-binary-tag", "YAML tag !!binary is not allowed", config(**{"app": "!!binary c2hvcA=="})),
    Case("yaml-set-tag", "YAML tag !!set is not allowed", config(**{"stage": "!!set {a}"})),
    Case("yaml-merge-scalar", "`<<` merges only mappings", config(**{"rollout": "{<<: 3, count: 2}"})),
    Case("yaml-non-utf8", "not valid UTF-8", config().encode() + b"# caf\xe9\n"),
    Case("yaml-utf16", "not valid UTF-8", config().encode("utf-16")),
    Case("yaml-over-1mib", "file is larger than 1024 KiB", config() + ("# padding\n" * 110_000)),
    Case("yaml-nul-byte", "is not allowed", config() + "x: \x00\n"),
    Case("yaml-two-documents", "not valid YAML", config() + "---\napp: other\n"),
    Case("yaml-top-level-list", "expected a mapping of keys at the top level", "- app: shop\n"),
    Case("yaml-top-level-scalar", "expected a mapping of keys at the top level", "shop\n"),
    Case("yaml-tab-indent", "not valid YAML", "app: shop\nhealth:\n\tpath: /\n"),
    Case("yaml-unclosed-flow", "not valid YAML", "app: shop\nrollout: {count: 2\n"),
]

PIPELINE_CASES = [
    pipe("pipeline-hold-inf", "steps[1].weight.hold: expected a duration", "steps:\n  - launch: {}\n  - weight: {percent: 100, hold: .inf}\n  - retire: {}\n"),
    pipe("pipeline-pause-inf", "steps[1].pause.duration: expected a duration", "steps:\n  - launch: {}\n  - pause: {duration: .inf}\n  - weight: {percent: 100}\n  - retire: {}\n"),
    pipe("pipeline-pause-8d", "steps[1].pause.duration: expected a duration from 0s to 7d", "steps:\n  - launch: {}\n  - pause: {duration: 8d}\n  - weight: {percent: 100}\n  - retire: {}\n"),
    pipe("pipeline-analyze-8d", "steps[2].analyze.duration: expected a duration", "steps:\n  - launch: {}\n  - weight: {percent: 10}\n  - analyze: {duration: 8d, max_error_rate: 1%}\n  - weight: {percent: 100}\n  - retire: {}\n"),
    pipe("pipeline-launch-100000", "steps[0].launch.count: 100000 is more than rollout.max_count (100)", "steps:\n  - launch: {count: 100000}\n  - weight: {percent: 100}\n  - retire: {}\n"),
    pipe("pipeline-launch-1e11", "steps[0].launch.count: expected a whole number", "steps:\n  - launch: {count: 1e11}\n  - weight: {percent: 100}\n  - retire: {}\n"),
    pipe("pipeline-percent-101", "steps[1].weight.percent: expected a percentage", "steps:\n  - launch: {}\n  - weight: {percent: 101}\n  - retire: {}\n"),
    pipe("pipeline-percent-nan", "steps[1].weight.percent: expected a percentage", "steps:\n  - launch: {}\n  - weight: {percent: .nan}\n  - retire: {}\n"),
    pipe("pipeline-keep-previous-30d", "steps[2].retire.keep_previous: expected a duration", "steps:\n  - launch: {}\n  - weight: {percent: 100}\n  - retire: {keep_previous: 30d}\n"),
    pipe("pipeline-drain-inf", "steps[2].retire.drain_timeout: expected a duration", "steps:\n  - launch: {}\n  - weight: {percent: 100}\n  - retire: {drain_timeout: .inf}\n"),
    pipe("pipeline-error-rate-200", "steps[2].analyze.max_error_rate: expected a percentage", "steps:\n  - launch: {}\n  - weight: {percent: 10}\n  - analyze: {duration: 1s, max_error_rate: 200%}\n  - weight: {percent: 100}\n  - retire: {}\n"),
    pipe("pipeline-p95-2h", "steps[2].analyze.max_p95: expected a duration", "steps:\n  - launch: {}\n  - weight: {percent: 10}\n  - analyze: {duration: 1s, max_error_rate: 1%, max_p95: 2h}\n  - weight: {percent: 100}\n  - retire: {}\n"),
    pipe("pipeline-min-requests-negative", "steps[2].analyze.min_requests: expected a whole number", "steps:\n  - launch: {}\n  - weight: {percent: 10}\n  - analyze: {duration: 1s, max_error_rate: 1%, min_requests: -1}\n  - weight: {percent: 100}\n  - retire: {}\n"),
    pipe("pipeline-min-requests-1e10", "steps[2].analyze.min_requests: expected a whole number", "steps:\n  - launch: {}\n  - weight: {percent: 10}\n  - analyze: {duration: 1s, max_error_rate: 1%, min_requests: 10000000000}\n  - weight: {percent: 100}\n  - retire: {}\n"),
    pipe("pipeline-min-requests-float", "steps[2].analyze.min_requests: expected a whole number", "steps:\n  - launch: {}\n  - weight: {percent: 10}\n  - analyze: {duration: 1s, max_error_rate: 1%, min_requests: 2.5}\n  - weight: {percent: 100}\n  - retire: {}\n"),
    pipe("pipeline-inconclusive-unknown", "steps[2].analyze.inconclusive: expected one of extend, fail, pass", "steps:\n  - launch: {}\n  - weight: {percent: 10}\n  - analyze: {duration: 1s, max_error_rate: 1%, inconclusive: ignore}\n  - weight: {percent: 100}\n  - retire: {}\n"),
    pipe("pipeline-inconclusive-bool", "steps[2].analyze.inconclusive: expected one of extend, fail, pass", "steps:\n  - launch: {}\n  - weight: {percent: 10}\n  - analyze: {duration: 1s, max_error_rate: 1%, inconclusive: true}\n  - weight: {percent: 100}\n  - retire: {}\n"),
    pipe("pipeline-weight-null-body", "steps[1].weight: required key `percent` missing", "steps:\n  - launch: {}\n  - weight:\n  - retire: {}\n"),
    pipe("pipeline-101-steps", "steps: expected a non-empty list of at most 100", "steps:\n" + "  - pause: {duration: 1s}\n" * 101),
    pipe("pipeline-name-newline", "name: expected a string without control characters", 'name: "a\\nb"\n' + GOOD_PIPELINE.split("\n", 1)[1]),
    pipe("pipeline-alias-bomb", "expands to more than 50000 values", BOMB + GOOD_PIPELINE.split("\n", 1)[1]),
    pipe("pipeline-recursive-alias", "recursive alias", "x: &a [*a]\n" + GOOD_PIPELINE),
    pipe("pipeline-non-utf8", "not valid UTF-8", GOOD_PIPELINE.encode() + b"# \xff\xfe\n"),
    pipe("pipeline-python-tag", "is not allowed", "name: !!python/name:os.system p\n" + GOOD_PIPELINE.split("\n", 1)[1]),
    pipe("pipeline-duplicate-key", "steps: duplicate key", GOOD_PIPELINE + "steps: []\n"),
    pipe("pipeline-launch-not-first", "the first step must be `launch`", "steps:\n  - weight: {percent: 100}\n  - launch: {}\n  - retire: {}\n"),
    pipe("pipeline-unknown-kind", "unknown step kind", "steps:\n  - launch: {}\n  - shift: {percent: 100}\n  - retire: {}\n"),
    pipe("pipeline-top-level-list", "expected a mapping with `name` and `steps`", "- launch: {}\n"),
    Case("pipeline-option-unknown-name", "unknown pipeline 'nope'", argv=(("rollout", "1.0.0", "--pipeline", "nope"),)),
    Case("pipeline-option-folder", "not found", argv=(("rollout", "1.0.0", "--pipeline", "app/"),)),
    Case("pipeline-option-dev-zero", "not found", argv=(("rollout", "1.0.0", "--pipeline", "/dev/zero"),)),
]

VERSION_CASES = [
    cmd("version-two-parts", "'1.4' is not a semantic version", "bake", "1.4"),
    cmd("version-v-prefix", "is not a semantic version", "bake", "v1.0.0"),
    cmd("version-empty", "is not a semantic version", "bake", ""),
    cmd("version-too-long", "a version has at most 64 characters", "bake", "1.0.0-" + "a" * 100),
    cmd("version-newline", "is not a semantic version", "bake", "1.0.0\n"),
    cmd("version-non-ascii", "is not a semantic version", "bake", "1.0.0-é"),
    cmd("version-path", "is not a semantic version", "bake", "../../1.0.0"),
    cmd("version-rollout-short", "is not a semantic version", "rollout", "1.0"),
    cmd("version-stage-words", "is not a semantic version", "stage", "latest"),
    cmd("version-rollback-to", "is not a semantic version", "rollback", "--to", "1"),
]

CLI_CASES = [
    cmd("output-yaml", "--output must be table or json", "--output", "yaml", "status"),
    cmd("unknown-command", "No such command", "deploy"),
    cmd("unknown-option", "No such option", "rollout", "--fast"),
    cmd("prune-keep-zero", "--keep must be from 1 to 1000", "images", "prune", "--keep", "0"),
    cmd("prune-keep-huge", "--keep must be from 1 to 1000", "images", "prune", "--keep", "100000"),
    cmd("prune-keep-words", "Invalid value", "images", "prune", "--keep", "abc"),
    cmd("init-port-zero", "--port must be from 1 to 65534", "init", "new", "--port", "0"),
    cmd("init-port-70000", "--port must be from 1 to 65534", "init", "new", "--port", "70000"),
    cmd("init-provider-aws", "--provider must be local or openstack", "init", "new", "--provider", "aws"),
    cmd("init-bad-app", "is not a valid app name", "init", "new", "--app", "Bad_Name"),
    cmd("init-existing-config", "already exists", "init", "."),
    cmd("init-onto-a-file", "exists and is not a folder", "init", "notes.txt", files={"notes.txt": "x"}),
    cmd("init-under-a-file", "cannot be created: notes.txt is not a folder", "init", "notes.txt/sub", files={"notes.txt": "x"}),
    cmd("init-app-is-a-file", "exists and is not a folder", "init", "new", files={"new/app": "x"}),
    cmd("init-cloud-injection", "--cloud: expected a string without control characters",
        "init", "new", "--provider", "openstack", "--cloud", "x\nprovider: local"),
    cmd("init-nul-directory", "embedded null byte", "init", "a\x00b"),
    cmd("config-missing", "no such file", "--config", "missing.yaml", "status"),
    cmd("config-is-a-folder", "is a folder, not a file", "--config", "app", "status"),
    cmd("config-fifo", "is not a regular file", "--config", "fifo.yaml", "status", files={"fifo.yaml": None}),
    cmd("config-device", "is not a regular file", "--config", "/dev/zero", "status"),
    cmd("config-nul", "embedded null byte", "--config", "a\x00b", "status"),
    cmd("env-nul", "--env must be a path or name without NUL characters", "--env", "a\x00b", "status"),
    cmd("env-undefined", "environment 'qa' is not defined", "--env", "qa", "rollout", "1.0.0"),
    cmd("env-option-cjk-long", "is not defined", "--env", "生产环境" * 30, "rollout", "1.0.0"),
    cmd("state-dir-under-a-file", "state folder", "--state-dir", "notes.txt/state", "bake", "2.0.0",
        files={"notes.txt": "x"}),
    cmd("state-dir-is-a-file", "is not a folder", "--state-dir", "notes.txt", "rollout", "1.0.0",
        files={"notes.txt": "x"}),
    cmd("state-dir-newline", "the path has control characters", "--state-dir", "st\nstats socket /tmp/x", "rollout", "1.0.0"),
    cmd("project-folder-newline", "the path has control characters", "--config", "a\nb/releasectl.yaml", "down",
        files={"a\nb/releasectl.yaml": config()}),
    cmd("demo-port-zero", "--port must be from 1 to 65534", "demo", "--port", "0"),
    cmd("report-no-release", "there is no release in this environment yet", "report", "latest", "--html", "r.html"),
    cmd("report-unknown-id", "no release with id", "report", "0123abcd", "--html", "r.html"),
    cmd("report-id-markup", "RELEASE must be a release id of at most 64 characters", "report", "<script>" * 10, "--html", "r.html"),
    cmd("report-no-html", "Missing option '--html'", "report", "latest"),
]

ENV_CASES = [
    cmd("lock-ttl-words", "$RELEASECTL_LOCK_TTL: expected a duration", "rollout", "1.0.0", env={"RELEASECTL_LOCK_TTL": "abc"}),
    cmd("lock-ttl-zero", "$RELEASECTL_LOCK_TTL: expected a duration from 1s to 1h", "rollout", "1.0.0", env={"RELEASECTL_LOCK_TTL": "0"}),
    cmd("lock-ttl-inf", "$RELEASECTL_LOCK_TTL: expected a duration", "abort", env={"RELEASECTL_LOCK_TTL": "inf"}),
    cmd("lock-ttl-nan", "$RELEASECTL_LOCK_TTL: expected a duration", "gc", env={"RELEASECTL_LOCK_TTL": "nan"}),
    cmd("lock-ttl-negative", "$RELEASECTL_LOCK_TTL: expected a duration", "promote", env={"RELEASECTL_LOCK_TTL": "-5"}),
    cmd("lock-ttl-overflow", "$RELEASECTL_LOCK_TTL: expected a duration", "bake", "2.0.0", env={"RELEASECTL_LOCK_TTL": "1e400"}),
    cmd("lock-ttl-a-week", "$RELEASECTL_LOCK_TTL: expected a duration from 1s to 1h", "rollback", env={"RELEASECTL_LOCK_TTL": "7d"}),
]

CASES = CONFIG_CASES + PIPELINE_CASES + VERSION_CASES + CLI_CASES + ENV_CASES

# Refused by release verbs: the engine checks these read-only before it takes the release lock (which
# would create envs/<env>/ and its lock.flock), then again under the lock.
REFUSED_BEFORE_LOCKING = [
    cmd("rollout-unbaked-version", "no image for shop 9.9.9", "rollout", "9.9.9"),
    cmd("promote-with-nothing-running", "no release in progress to promote", "promote"),
    cmd("abort-with-nothing-running", "no release in progress to abort", "abort"),
    cmd("rollback-with-nothing-earlier", "no earlier known-good version", "rollback"),
    cmd("rollback-to-unbaked-version", "no image for shop 9.9.9", "rollback", "--to", "9.9.9"),
    cmd("resume-with-nothing-unfinished", "no unfinished release to resume", "rollout", "--resume"),
]


@pytest.fixture(scope="module")
def baked_project(tmp_path_factory) -> Path:
    """A project made by `init`, with 1.0.0 baked: the state folder has something to protect."""
    root = tmp_path_factory.mktemp("hostile") / "shop"
    assert run_cli_in_process("init", str(root), "--app", "shop", "--port", "18555", cwd=root.parent).code == 0
    (root / "releasectl.yaml").write_text(config())
    baked = run_cli_in_process("bake", "1.0.0", cwd=root)
    assert baked.code == 0, baked.stderr
    return root


def assert_one_clear_line(result: CliRun, fragment: str) -> None:
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("releasectl: error: ")]
    assert len(errors) == 1, result.stderr
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("  hint: ")), result.stderr
    assert fragment in errors[0], (fragment, result.stderr)
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_the_table_is_large_and_named_uniquely():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 100


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(case: Case, baked_project: Path, tmp_path: Path):
    project = tmp_path / "shop"
    shutil.copytree(baked_project, project, symlinks=True)
    if case.config is not None:
        target = project / "releasectl.yaml"
        target.write_bytes(case.config if isinstance(case.config, bytes) else case.config.encode())
    for name, body in case.files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        if body is None:
            os.mkfifo(project / name)
        else:
            (project / name).write_bytes(body if isinstance(body, bytes) else body.encode())
    before = tree_digest(tmp_path)
    for argv in case.argv:
        result = run_cli_in_process(*argv, cwd=project, env=case.env)
        assert result.code == 2, (argv, result.stderr)
        assert_one_clear_line(result, case.fragment)
        assert tree_digest(tmp_path) == before, argv
    assert processes_under(tmp_path) == []


@pytest.mark.parametrize("case", REFUSED_BEFORE_LOCKING, ids=[c.id for c in REFUSED_BEFORE_LOCKING])
def test_refused_release_verbs_write_nothing(case: Case, baked_project: Path, tmp_path: Path):
    test_bad_input_exits_2_with_one_line_and_changes_nothing(case, baked_project, tmp_path)


def test_json_output_of_a_bad_input_is_one_document(baked_project: Path, tmp_path: Path):
    project = tmp_path / "shop"
    shutil.copytree(baked_project, project, symlinks=True)
    (project / "releasectl.yaml").write_text(config(**{"health.interval": ".inf"}))
    result = run_cli_in_process("rollout", "1.0.0", "-o", "json", cwd=project)
    import json

    doc = json.loads(result.stdout)
    assert result.code == 2 and doc["exit_code"] == 2
    assert doc["errors"][0]["message"].startswith("releasectl.yaml:")
