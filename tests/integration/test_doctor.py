"""Issue 9 item 6 with real processes: damage each state file of a live environment; `status`, `down` and
`gc` keep working around it; `doctor --fix` repairs it; afterwards status, gc and down exit 0 and no
process is left (the workspace fixture fails the test on any leftover after `down`)."""

from __future__ import annotations

import shutil

import pytest

from tests.helpers import processes_under

pytestmark = pytest.mark.slow


def env_dir(ws):
    return ws.path / ".releasectl" / "envs" / "production"


def serving_server(ws) -> dict:
    return next(s for s in ws.status()["servers"] if s["role"] == "stable")


def doctor_fix_then_all_commands_exit_0(ws, live: str = "1.0.0") -> dict:
    fixed = ws.cli("doctor", "--fix", "-o", "json")
    assert fixed.code == 0, fixed.stderr
    report = fixed.json()
    assert report["healthy"] and report["remaining"] == [], report
    assert ws.ok("doctor", "-o", "json").json()["findings"] == []
    status = ws.status()
    assert status["damaged"] == [] and status["live_version"] == live
    assert [m for m in status["members"] if m["weight"] > 0], "the live version still serves"
    gc = ws.ok("gc", "-o", "json").json()
    assert gc["members"] == [] and gc["servers"] == [], gc
    ws.ok("down")
    assert processes_under(ws.path) == []
    return report


def test_damaged_current_record(live_100):
    ws = live_100
    (env_dir(ws) / "records" / "current.rec").write_bytes(b"\x00\xffnot a record")
    status = ws.status()
    assert status["live_version"] == "1.0.0" and any("current" in d["path"] for d in status["damaged"])
    assert ws.cli("history").code == 0
    refused = ws.cli("rollback", "-o", "json")
    assert refused.code == 2 and refused.json()["errors"][0]["code"] == "damaged_state"
    listed = ws.cli("doctor", "-o", "json")
    assert listed.code == 2
    report = doctor_fix_then_all_commands_exit_0(ws)
    assert any("current" in f["path"] for f in report["findings"])


def test_damaged_lb_json_keeps_the_lb_reachable_and_stoppable(live_100):
    ws = live_100
    (env_dir(ws) / "lb" / "lb.json").write_text('{"pid": ')
    status = ws.status()
    assert status["endpoint"] and status["live_version"] == "1.0.0"
    report = doctor_fix_then_all_commands_exit_0(ws)
    assert any("lb.json" in f["path"] and "HAProxy" in f["done"] for f in report["findings"]), report


def test_down_stops_haproxy_and_apps_despite_a_damaged_lb_json(live_100):
    ws = live_100
    (env_dir(ws) / "lb" / "lb.json").write_text("[]")
    ws.ok("down")
    assert processes_under(ws.path) == []


def test_gc_spares_a_serving_server_with_a_damaged_record_and_down_still_stops_it(live_100):
    ws = live_100
    victim = serving_server(ws)
    (env_dir(ws) / "servers" / victim["id"] / "server.json").write_text("{truncated")
    gc = ws.ok("gc", "-o", "json").json()
    assert gc["members"] == [] and gc["servers"] == [] and victim["id"] in gc["spared"], gc
    status = ws.status()
    assert len([m for m in status["members"] if m["weight"] > 0]) == 2  # still in the pool, still serving
    ws.bake("1.1.0")
    refused = ws.cli("rollout", "1.1.0", "-o", "json")  # a release would not know that server's role: it refuses
    assert refused.code == 2 and refused.json()["errors"][0]["code"] == "damaged_state", refused.stderr
    ws.ok("down")
    assert processes_under(ws.path) == []


def test_doctor_readopts_a_serving_server_with_a_damaged_record(live_100):
    ws = live_100
    victim = serving_server(ws)
    (env_dir(ws) / "servers" / victim["id"] / "server.json").write_bytes(b"")
    report = doctor_fix_then_all_commands_exit_0(ws)
    assert any("re-adopted" in (f["done"] or "") for f in report["findings"]), report


def test_doctor_readopts_then_status_shows_two_stable_servers(live_100):
    ws = live_100
    victim = serving_server(ws)
    (env_dir(ws) / "servers" / victim["id"] / "server.json").write_text('{"id": 7}')
    ws.ok("doctor", "--fix")
    status = ws.status()
    assert sorted(s["role"] for s in status["servers"]) == ["stable", "stable"]
    assert all(s["status"] == "active" for s in status["servers"])


def test_doctor_stops_an_orphaned_app_process_and_takes_its_member_out(live_100):
    ws = live_100
    victim = serving_server(ws)
    shutil.rmtree(env_dir(ws) / "servers" / victim["id"])  # its record is gone; its process still runs
    listed = ws.cli("doctor", "-o", "json")
    assert listed.code == 2 and any("without a server record" in f["problem"] for f in listed.json()["findings"])
    report = doctor_fix_then_all_commands_exit_0(ws)
    assert any("stopped pid" in (f["done"] or "") for f in report["findings"]), report


def test_damaged_members_json_is_rebuilt_from_the_running_lb(live_100):
    ws = live_100
    members = env_dir(ws) / "lb" / "members.json"
    members.write_text('[{"name": "x\\nbackend evil", "address": "127.0.0.1", "port": 1}]')
    report = doctor_fix_then_all_commands_exit_0(ws)
    assert any("members.json" in f["path"] for f in report["findings"]), report


def test_damaged_lock_json(live_100):
    ws = live_100
    (env_dir(ws) / "lock.json").write_text('{"token": 5}')
    assert ws.status()["lock"] is None
    doctor_fix_then_all_commands_exit_0(ws)
