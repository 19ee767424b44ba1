"""The Python API in this process, on the local provider, without starting a server or HAProxy: typed results
that are the CLI's JSON, errors with their exit codes, events, and the non-blocking Handle."""

from __future__ import annotations

import json
import threading

import pytest

from releasectl import api
from releasectl.errors import ReleasectlError, UsageError
from tests.conftest import run_cli_in_process


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "shop"
    assert run_cli_in_process("init", str(folder), "--port", "18400", cwd=tmp_path).code == 0
    return folder


def test_bake_returns_what_the_cli_json_shows_and_emits_typed_events(project):
    events: list[api.Event] = []
    image = api.Client(project / "releasectl.yaml", on_event=events.append).bake("1.0.0")

    assert isinstance(image, api.ImageInfo) and image.version == "1.0.0" and image.status == "baked"
    listed = run_cli_in_process("images", "--output", "json", cwd=project).json()["images"]
    assert listed == [image.to_dict()] == [json.loads(image.to_json())]
    assert events and all(isinstance(e, api.Event) and e.kind and e.message for e in events)
    assert api.Client(project / "releasectl.yaml").images() == [image]


def test_status_and_history_are_typed_and_match_the_cli(project):
    client = api.Client(project / "releasectl.yaml")
    status = client.status()
    assert isinstance(status, api.Status) and status.live_version is None and status.release is None
    cli_status = run_cli_in_process("status", "--output", "json", cwd=project).json()
    assert {k: cli_status[k] for k in status.to_dict()} == json.loads(status.to_json())
    assert client.history() == []


@pytest.mark.parametrize("call,exit_code", [
    (lambda c: c.rollout("9.9.9"), 2),  # never baked
    (lambda c: c.rollout("not-a-version"), 2),
    (lambda c: c.stage("1." + "0" * 70 + ".0"), 2),  # longer than 64 characters
    (lambda c: c.abort(), 2),  # no release in progress
    (lambda c: c.promote(), 2),
    (lambda c: c.rollback(), 2),  # nothing to go back to
    (lambda c: c.prune(keep=0), 2),
])
def test_errors_are_ours_and_carry_the_cli_exit_code(project, call, exit_code):
    with pytest.raises(ReleasectlError) as caught:
        call(api.Client(project / "releasectl.yaml"))
    assert caught.value.exit_code == exit_code and caught.value.error_code == "usage"


def test_a_bad_config_raises_a_usage_error_with_exit_2(tmp_path):
    (tmp_path / "releasectl.yaml").write_text("app: shop\nprovider: nowhere\n")
    with pytest.raises(UsageError) as caught:
        api.Client(tmp_path / "releasectl.yaml")
    assert caught.value.exit_code == 2


def test_wait_false_returns_a_handle_whose_result_is_the_value_or_the_error(project):
    client = api.Client(project / "releasectl.yaml")
    seen: list[str] = []
    handle = client.bake("1.0.0", wait=False, on_event=lambda e: seen.append(threading.current_thread().name))
    assert isinstance(handle, api.Handle)
    assert handle.wait(60) and handle.done()
    assert handle.result().version == "1.0.0"
    assert seen and set(seen) == {"releasectl-bake"}  # events arrive from the thread running the call

    failing = client.rollout("2.0.0", wait=False)  # not baked: refused, exit 2
    assert failing.wait(60)
    with pytest.raises(UsageError) as caught:
        failing.result()
    assert caught.value.exit_code == 2


def test_module_functions_take_a_config_path_or_settings(project):
    from releasectl.config import load_settings

    api.bake("1.0.0", config_path=project / "releasectl.yaml")
    settings = load_settings(project / "releasectl.yaml")
    assert [i.version for i in api.images(settings=settings)] == ["1.0.0"]
    assert api.Client(settings=settings, provider="local").settings.provider == "local"


def test_gc_and_down_match_the_cli(project):
    client = api.Client(project / "releasectl.yaml")
    report = client.gc(dry_run=True)
    assert isinstance(report, api.GcReport) and report.dry_run
    cli = run_cli_in_process("gc", "--dry-run", "--output", "json", cwd=project).json()
    assert {k: cli[k] for k in report.to_dict()} == report.to_dict()
    assert client.down() == []  # nothing runs in a fresh project


def test_env_builder_and_quota_calls_match_the_cli(project):
    client = api.Client(project / "releasectl.yaml")
    plan = client.env_plan()
    assert isinstance(plan, api.EnvInfo) and plan.action == "plan"
    cli = run_cli_in_process("env", "plan", "--output", "json", cwd=project).json()
    assert {k: cli[k] for k in plan.to_dict()} == plan.to_dict()
    assert client.builder_status() is None
    assert run_cli_in_process("builder", "status", "--output", "json", cwd=project).json()["builder"] is None
    quota = client.quota()
    assert isinstance(quota, api.QuotaInfo) and quota.resources == {}  # the local provider knows no limit
    assert api.quota(config_path=project / "releasectl.yaml") == quota


def test_release_story_refuses_a_bad_ref_and_an_empty_history_with_exit_2(project):
    client = api.Client(project / "releasectl.yaml")
    with pytest.raises(UsageError) as caught:
        client.release_story("x" * 65)
    assert caught.value.exit_code == 2
    with pytest.raises(UsageError):
        client.release_story()  # no release yet
