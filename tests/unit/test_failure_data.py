"""Failures as data: the failing member and an analysis's figures travel from `decide` to the record, its
history and the JSON as typed fields (engine/health.py `FailingMember`, `AnalysisResult`), never parsed back
from the reason's words. In-process runs on the in-memory provider and a fake clock (fast tier)."""

from __future__ import annotations

import json

from releasectl.engine import records
from releasectl.engine.model import Release


def test_a_failed_analysis_carries_its_figures_and_failing_member(memory_project):
    assert memory_project("rollout", "1.0.0")[0] == 0
    memory_project.cloud.serve_errors("demo", "1.1.0")  # healthy checks, failing traffic: only analysis sees it
    code, doc, _ = memory_project("rollout", "1.1.0")
    assert code == 1 and doc["errors"][0]["code"] == "rolled_back"
    release = doc["release"]
    analysis = release["analysis"]
    assert analysis["result"] == "failed" and analysis["source"] == "load balancer stats"
    assert analysis["new_error_rate_pct"] > analysis["max_error_rate_pct"] > 0
    assert analysis["errors"] > 0 and analysis["requests"] >= analysis["errors"]
    servers = {s["name"]: s["id"] for s in memory_project("status")[1]["servers"]}
    member = analysis["failing_member"]
    assert release["failing_member"] == member["name"] and release["failing_member_id"] == member["id"]
    assert member["name"].startswith("demo-1.1.0-") and member["id"].startswith("srv-")
    assert member["name"] not in servers  # rolled back: the new fleet is gone

    code, story, _ = memory_project("history", "show", "latest")
    assert code == 0 and story["release"]["analysis"] == analysis
    failed = [e for e in story["events"] if e["event"] == "rollback"]
    assert failed and failed[0]["analysis"] == analysis
    code, listed, _ = memory_project("history")
    assert listed["releases"][0]["failing_member"] == member["name"]


def test_a_health_failure_names_its_server_by_name_and_id(memory_project):
    assert memory_project("rollout", "1.0.0")[0] == 0
    memory_project.cloud.never_healthy("demo", "1.1.0")
    code, doc, _ = memory_project("rollout", "1.1.0")
    assert code == 1
    release = doc["release"]
    assert release["failing_member"].startswith("demo-1.1.0-") and release["failing_member_id"]
    assert release["failing_member_id"].startswith("srv-")  # the server's id (the fake's), not its member's
    assert release["analysis"] is None  # a health check failed, no analysis


def test_a_record_of_the_old_format_loads_with_null_failure_data(memory_project):
    """Records written before the fields existed: failure words, no failing_member, analysis figures only in
    the message. They load; status and history show null (the words are not parsed)."""
    assert memory_project("rollout", "1.0.0")[0] == 0
    memory_project.cloud.never_healthy("demo", "1.1.0")
    assert memory_project("rollout", "1.1.0")[0] == 1
    cloud = memory_project.cloud
    for key, record in cloud.records.items():
        for name, text in list(record.items()):
            data = json.loads(text)
            for field in ("failing_member", "failure_analysis"):
                data.pop(field, None)
            for event in data["events"]:
                event.pop("analysis", None)
                event.pop("failing_member", None)
            record[name] = json.dumps(data)
    old = [Release.from_json(text) for record in cloud.records.values() for text in record.values()]
    assert any(rel.failure for rel in old) and all(rel.failing_member is None for rel in old)
    code, listed, _ = memory_project("history")
    assert code == 0 and listed["releases"][0]["failing_member"] is None and listed["releases"][0]["analysis"] is None
    code, story, _ = memory_project("history", "show", "latest")
    assert code == 0 and story["release"]["failing_member"] is None
    assert all(e["analysis"] is None for e in story["events"])
    assert memory_project("rollout", "1.2.0")[0] == 0  # and the next release runs on from it


def test_the_record_round_trips_the_failure_data(memory_project):
    assert memory_project("rollout", "1.0.0")[0] == 0
    memory_project.cloud.serve_errors("demo", "1.1.0")
    assert memory_project("rollout", "1.1.0")[0] == 1
    text = next(r["current"] for r in memory_project.cloud.records.values() if "current" in r)
    rel = Release.from_json(text)
    assert rel.failure_analysis is not None and rel.failing_member == rel.failure_analysis.failing_member
    assert Release.from_json(rel.to_json()) == rel
    assert records._parse("current", text) == rel  # the loader status and history use: no damage reported


def test_failure_data_of_the_wrong_shape_is_damage_not_a_crash(memory_project):
    import pytest

    from releasectl.errors import DamagedState

    assert memory_project("rollout", "1.0.0")[0] == 0
    memory_project.cloud.never_healthy("demo", "1.1.0")
    assert memory_project("rollout", "1.1.0")[0] == 1
    text = next(r["current"] for r in memory_project.cloud.records.values() if "current" in r)
    for bad in ({"failing_member": "demo-1.1.0-abc"}, {"failure_analysis": {"result": "failed", "requests": 1}}):
        with pytest.raises(DamagedState):
            records._parse("current", json.dumps({**json.loads(text), **bad}))
