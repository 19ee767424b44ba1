"""JSON for CD: every release command's document carries the `release` object whatever the exit code, with
RFC 3339 UTC times and a step counter that never passes `steps`. In-process CLI runs on the in-memory
provider and a fake clock (fast tier): the same argument handling, error boundary and JSON as a real run."""

from __future__ import annotations

import re

from tests.fakes.memory import MemoryProvider

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
RELEASE_FIELDS = {"id", "app", "environment", "version", "from_version", "pipeline", "state", "step", "steps", "reason",
                  "failing_member", "started_at", "ended_at"}


def assert_release_object(doc: dict, **expected) -> dict:
    release = doc["release"]
    assert RELEASE_FIELDS <= set(release), RELEASE_FIELDS - set(release)
    assert RFC3339.match(release["started_at"]), release["started_at"]
    assert release["ended_at"] is None or RFC3339.match(release["ended_at"]), release["ended_at"]
    assert 1 <= release["step"] <= release["steps"], release
    for key, value in expected.items():
        assert release[key] == value, (key, release)
    return release


def test_success_carries_the_release(memory_project):
    code, doc, _ = memory_project("rollout", "1.0.0")
    assert code == 0 and doc["exit_code"] == 0
    release = assert_release_object(doc, version="1.0.0", from_version=None, state="succeeded", app="demo",
                                    environment="production", pipeline="canary", failing_member=None)
    assert release["step"] == release["steps"] and release["ended_at"] >= release["started_at"]


def test_failure_names_version_state_step_and_the_failing_member(memory_project):
    assert memory_project("rollout", "1.0.0")[0] == 0
    memory_project.cloud.never_healthy("demo", "1.1.0")
    code, doc, stderr = memory_project("rollout", "1.1.0")
    assert code == 1 and doc["exit_code"] == 1 and doc["errors"][0]["code"] == "rolled_back"
    release = assert_release_object(doc, version="1.1.0", from_version="1.0.0", state="failed")
    assert release["failing_member"] and release["failing_member"] in release["failure"]
    assert RFC3339.match(release["ended_at"])
    assert "releasectl: error:" in stderr


def test_pause_at_a_gate_is_exit_4_with_the_release_and_a_notice(memory_project):
    assert memory_project("rollout", "1.0.0")[0] == 0
    code, doc, stderr = memory_project("rollout", "1.1.0", "--pipeline", "canary-manual")
    assert code == 4 and doc["errors"][0]["code"] == "paused"
    release = assert_release_object(doc, version="1.1.0", state="paused", ended_at=None)
    assert release["step"] < release["steps"]
    assert "releasectl: notice:" in stderr and "releasectl: error:" not in stderr

    code, doc, _ = memory_project("promote", "--full")
    assert code == 0
    assert_release_object(doc, version="1.1.0", state="succeeded", step=release["steps"])


def test_pause_and_abort_report_the_release(memory_project):
    assert memory_project("rollout", "1.0.0")[0] == 0
    assert memory_project("rollout", "1.1.0", "--pipeline", "canary-manual")[0] == 4
    code, doc, stderr = memory_project("pause")  # already paused: it stays so (exit 4), and says which release
    assert code == 4 and "releasectl: notice:" in stderr
    assert_release_object(doc, version="1.1.0", state="paused")
    code, doc, _ = memory_project("abort")
    assert code == 0
    assert_release_object(doc, version="1.1.0", state="aborted")


def test_lock_held_reports_the_release_that_holds_it(memory_project):
    from releasectl.providers.base import HealthCheck, ProviderContext

    assert memory_project("rollout", "1.0.0")[0] == 0
    code, paused, _ = memory_project("rollout", "1.1.0", "--pipeline", "canary-manual")
    assert code == 4
    other = MemoryProvider(ProviderContext(app="demo", env="production", config_dir=None, state_dir=None,
                                           health=HealthCheck(path="/healthz"), app_port=8000), memory_project.cloud)
    other.acquire_lock({"command": "gc", "user": "someone", "host": "elsewhere", "pid": "1"}, ttl=3600)
    for args in (("promote",), ("rollout", "--resume"), ("abort",)):
        code, doc, _ = memory_project(*args)
        assert code == 3 and doc["errors"][0]["code"] == "locked", (args, doc)
        assert_release_object(doc, id=paused["release"]["id"], version="1.1.0", state="paused")


def test_usage_error_before_any_release_has_a_null_release(memory_project):
    code, doc, _ = memory_project("promote")
    assert code == 2 and doc["release"] is None


def test_status_and_history_times_are_rfc3339(memory_project):
    assert memory_project("rollout", "1.0.0")[0] == 0
    assert memory_project("rollout", "1.1.0", "--pipeline", "canary-manual")[0] == 4
    code, status, _ = memory_project("status")
    assert code == 0
    assert_release_object(status, version="1.1.0", state="paused")
    code, history, _ = memory_project("history")
    assert code == 0 and len(history["releases"]) == 2
    for release in history["releases"]:
        assert_release_object({"release": release})
