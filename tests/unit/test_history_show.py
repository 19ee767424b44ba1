"""`releasectl history show [ID|latest]`: one release's timeline, read back from its record, as JSON and as a
table. In-process runs on the in-memory provider and a fake clock (tests/unit/conftest.py)."""

from __future__ import annotations

import getpass
import re
import socket

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def test_a_canary_tells_weights_analysis_and_who_promoted(memory_project):
    assert memory_project("rollout", "1.0.0")[0] == 0
    assert memory_project("rollout", "1.1.0", "--pipeline", "canary-manual")[0] == 4
    code, promoted, _ = memory_project("promote")
    assert code == 0, promoted
    code, doc, _ = memory_project("history", "show", "latest")
    assert code == 0 and doc["release"]["id"] == promoted["release"]["id"] and doc["release"]["state"] == "succeeded"
    events = doc["events"]
    assert all(RFC3339.match(e["at"]) for e in events)
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    assert events[0]["event"] == "started" and events[-1]["event"] == "ended"
    me = f"{getpass.getuser()}@{socket.gethostname()}"
    assert events[0]["by"].startswith(me)
    weights = [e["weight"] for e in events if e["event"] == "weights"]
    assert weights and all(0 < w["requested"] <= 100 and 0 <= w["achieved"] <= 100 for w in weights)
    assert [w["requested"] for w in weights] == sorted(w["requested"] for w in weights) and weights[-1]["requested"] == 100
    operator = [e for e in events if e["event"] == "operator"]
    assert len(operator) == 1 and operator[0]["by"].startswith(me) and "promoted" in operator[0]["message"]
    assert all(e["step"] is None or 1 <= e["step"] <= doc["release"]["steps"] for e in events)


def test_a_failed_release_shows_its_rollback_and_reason(memory_project):
    assert memory_project("rollout", "1.0.0")[0] == 0
    memory_project.cloud.never_healthy("demo", "1.1.0")
    assert memory_project("rollout", "1.1.0")[0] == 1
    code, doc, _ = memory_project("history", "show")
    assert code == 0 and doc["release"]["state"] == "failed" and doc["release"]["failing_member"]
    kinds = [e["event"] for e in doc["events"]]
    assert kinds[0] == "started" and "rollback" in kinds and kinds[-1] == "ended"
    assert doc["release"]["failing_member"] in doc["events"][-1]["message"]


def test_by_id_or_prefix_analysis_figures_and_the_table(memory_project):
    assert memory_project("rollout", "1.0.0")[0] == 0
    assert memory_project("rollout", "1.1.0")[0] == 0  # the built-in canary analyses twice
    code, doc, _ = memory_project("history", "show", "latest")
    analyses = [e["analysis"] for e in doc["events"] if e["event"] == "analysis"]
    assert len(analyses) == 2
    assert all(a["result"] == "passed" and a["requests"] > 0 and a["new_error_rate_pct"] >= 0 and a["source"] for a in analyses)
    code, listed, _ = memory_project("history")
    assert code == 0 and len(listed["releases"]) == 2
    first = listed["releases"][-1]["id"]
    code, doc, _ = memory_project("history", "show", first[:6])
    assert code == 0 and doc["release"]["id"] == first and doc["release"]["version"] == "1.0.0"
    table = memory_project.table("history", "show", first)
    assert table.code == 0
    rows = [line.split() for line in table.stdout.splitlines() if RFC3339.match(line.split(" ", 1)[0] or "-")]
    assert rows and rows[0][2] == "started" and rows[-1][2] == "ended"
    assert first in memory_project.table("history").stdout


def test_unknown_id_is_a_usage_error(memory_project):
    code, doc, _ = memory_project("history", "show", "latest")
    assert code == 2 and doc["errors"][0]["code"] == "usage"
    assert memory_project("rollout", "1.0.0")[0] == 0
    code, doc, _ = memory_project("history", "show", "nosuchid")
    assert code == 2 and "nosuchid" in doc["errors"][0]["message"]


def test_the_apis_story_and_history_are_the_clis_json(memory_project):
    """api.Client.release_story/history/rollout: the same release object and timeline as the CLI's JSON."""
    from releasectl import api

    client = api.Client(memory_project.path / "releasectl.yaml")
    released = client.rollout("1.0.0")
    code, doc, _ = memory_project("history", "show", "latest")
    assert code == 0
    story = client.release_story("latest")
    assert story.to_dict() == {"release": doc["release"], "events": doc["events"]}
    assert story.release == released and released.to_dict() == doc["release"]
    code, listed, _ = memory_project("history")
    assert [r.to_dict() for r in client.history()] == listed["releases"]
