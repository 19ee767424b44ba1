"""Damaged state files and hostile image archives (issue 9, item 6): every case names its damage, runs the
real CLI in process and asserts the exit code, the error line, the state folder byte for byte where the
command must not write, and that no process is left.

The read commands (status, history, images) keep working around the damage (exit 0) and report it;
`doctor` lists it (exit 2, nothing written); commands that would act on a damaged release record refuse
(exit 2, pointing at doctor); a hostile archive is refused before anything is unpacked (exit 2).
"""

from __future__ import annotations

import json
import os
import tarfile

import pytest

from releasectl.providers.local import images as images_mod
from tests.hostile.state_harness import (
    DAMAGES,
    SERVER_ID,
    Project,
    build_template,
    copy_project,
    damage,
    listing,
    member,
    replace_archive,
)

# file -> (the read command that must keep working, where its JSON shows the damage)
READERS = {
    "current.rec": ("status", "damaged"),
    "history.rec": ("history", None),
    "lock.json": ("status", "damaged"),
    "lb.json": ("status", "damaged"),
    "members.json": ("status", "damaged"),
    "server.json": ("status", "damaged"),
    "manifest.json": ("images", None),
}
# each file gets every damage kind; three of them run in the fast tier, the rest with the slow suite
KINDS = sorted(DAMAGES)
FAST_KINDS = {"garbage_bytes", "wrong_field_type", "empty"}


def _cases():
    for name in READERS:
        for kind in KINDS:
            marks = () if kind in FAST_KINDS else (pytest.mark.slow,)
            yield pytest.param(name, kind, id=f"{name}-{kind}", marks=marks)


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Project:
    return build_template(tmp_path_factory.mktemp("template") / "shop")


@pytest.fixture
def project(template, tmp_path) -> Project:
    p = copy_project(template, tmp_path / "shop")
    yield p
    p.no_process_left()


def _lock_file(project: Project) -> None:
    """lock.json is absent in the template (a command taking the lock would rewrite it): write a sound one."""
    path = project.env_dir / "lock.json"
    path.write_text(json.dumps({"token": "t" * 32, "owner": {"host": "elsewhere", "pid": "1"}, "acquired_at": 1.0,
                                "expires_at": 2.0}))


@pytest.mark.parametrize("name, kind", list(_cases()))
def test_read_commands_work_around_a_damaged_file_and_doctor_lists_it(project, name, kind):
    if name == "lock.json":
        _lock_file(project)
    path = project.state_file(name)
    damage(path, kind)
    before = listing(project.state)

    command, field = READERS[name]
    result = project.run(command, "-o", "json")
    project.check_read(result)
    doc = result.json()
    if field:
        assert any(path.name in d["path"] or "current" in d["path"] for d in doc[field]), doc[field]
    if name == "manifest.json":
        rows = {i["version"] or i["id"]: i["status"] for i in doc["images"]}
        assert rows.get("1.0.0") == "baked", rows  # the sound image is still listed
        assert "damaged" in rows.values(), rows
    if name == "history.rec":
        assert [r["version"] for r in doc["releases"]] == ["1.0.0"]  # current still reads
    if name == "server.json":
        server = next(s for s in doc["servers"] if s["id"] == SERVER_ID)
        assert server["status"] == "error" and server["role"] is None
    assert listing(project.state) == before

    found = project.run("doctor", "-o", "json")
    project.check(found, 2)
    report = found.json()
    assert report["healthy"] is False and report["findings"]
    assert any(path.name in f["path"] or (name.endswith(".rec") and "record" in f["path"]) for f in report["findings"]), report
    assert listing(project.state) == before


@pytest.mark.parametrize("command", [["rollout", "1.1.0"], ["rollback"], ["promote"], ["abort"], ["rollout", "--resume"]],
                         ids=lambda c: "-".join(c))
def test_a_damaged_release_record_makes_acting_commands_refuse_pointing_at_doctor(project, command):
    damage(project.state_file("current.rec"), "garbage_bytes")
    before = listing(project.state)
    result = project.run(*command, "-o", "json")
    project.check(result, 2)
    error = result.json()["errors"][0]
    assert error["code"] == "damaged_state" and "doctor" in error["hint"]
    assert "current" in error["message"]
    assert listing(project.state) == before


@pytest.mark.parametrize("name", ["current.rec", "server.json", "lb.json", "lock.json"])
def test_gc_dry_run_works_around_damage_and_writes_nothing(project, name):
    if name == "lock.json":
        _lock_file(project)
    damage(project.state_file(name), "not_json")
    before = listing(project.state)
    result = project.run("gc", "--dry-run", "-o", "json")
    project.check(result, 0)
    doc = result.json()
    assert doc["dry_run"] is True
    if name == "current.rec":  # the stopped stable server: not an orphan
        assert doc["servers"] == []
    before.pop("envs/production/lock.json", None)  # a damaged lock is rewritten by the first lock taker
    after = listing(project.state)
    after.pop("envs/production/lock.json", None)
    assert after == before


@pytest.mark.parametrize("name", list(READERS))
def test_doctor_fix_repairs_each_file_then_status_gc_down_exit_0(project, name):
    if name == "lock.json":
        _lock_file(project)
    damage(project.state_file(name), "garbage_bytes")
    fixed = project.run("doctor", "--fix", "-o", "json")
    project.check(fixed, 0)
    report = fixed.json()
    assert report["healthy"] is True and report["remaining"] == []
    assert all(f["done"] for f in report["findings"]), report
    quarantined = list((project.env_dir / "quarantine").glob("*")) + list((project.state / "quarantine").glob("*"))
    if name != "lock.json":  # doctor's own lock replaces a damaged lock.json: a damaged lock holds nothing
        assert quarantined, "the damaged file was moved aside, not deleted"
    assert project.run("doctor", "-o", "json").json()["healthy"] is True
    for command in (["status"], ["gc"], ["down"], ["images"], ["history"]):
        project.check_read(project.run(*command, "-o", "json"))


def test_one_huge_manifest_leaves_the_other_images_listed(project):
    (project.image_dir("1.1.0") / "manifest.json").write_bytes(b"{" + b'"k": 1, ' * 300_000 + b'"e": 0}')
    before = listing(project.state)
    result = project.run("images", "-o", "json")
    project.check(result, 0)
    assert sorted(i["status"] for i in result.json()["images"]) == ["baked", "damaged"]
    assert listing(project.state) == before


def test_images_prune_keeps_a_damaged_image(project):
    damage(project.state_file("manifest.json"), "not_json")
    result = project.run("images", "prune", "--keep", "1", "--dry-run", "-o", "json")
    project.check(result, 0)
    kept = {k["name"]: k["reason"] for k in result.json()["kept"]}
    assert any("damaged" in reason for reason in kept.values()), kept


def test_down_stops_everything_around_a_damaged_lb_json_and_server_json(project):
    damage(project.state_file("lb.json"), "truncated")
    damage(project.state_file("server.json"), "garbage_bytes")
    result = project.run("down", "-o", "json")
    project.check(result, 0)
    assert SERVER_ID in result.json()["stopped"]
    assert not (project.env_dir / "servers" / SERVER_ID).exists()


# ---- hostile archives: refused before anything is unpacked ----------------------------------------------------

HOSTILE = {
    "dotdot_path": [member("app.py", data=b"print(1)\n"), member("../escaped.txt")],
    "deep_dotdot_path": [member("a/b/../../../escaped.txt")],
    "absolute_path": [member("/tmp/releasectl-hostile-absolute.txt")],
    "symlink_out_absolute": [member("link", kind=tarfile.SYMTYPE, link="/etc/passwd")],
    "symlink_out_relative": [member("sub/link", kind=tarfile.SYMTYPE, link="../../outside")],
    "hardlink_out": [member("hard", kind=tarfile.LNKTYPE, link="../../outside")],
    "char_device": [member("null", kind=tarfile.CHRTYPE)],
    "block_device": [member("disk", kind=tarfile.BLKTYPE)],
    "fifo": [member("pipe", kind=tarfile.FIFOTYPE)],
}


def _stage_refused(project: Project, outside_name: str = "escaped.txt") -> None:
    before = listing(project.state)
    result = project.run("stage", "1.1.0", "-o", "json")
    project.check(result, 2)
    error = result.json()["errors"][0]
    assert error["code"] == "damaged_state" and "image.tar.gz" in error["message"]
    assert listing(project.state) == before
    assert not (project.root / outside_name).exists() and not (project.state / outside_name).exists()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_archive_is_refused_before_unpacking(project, case):
    replace_archive(project.image_dir("1.1.0"), HOSTILE[case])
    _stage_refused(project)


def test_a_tar_bomb_of_many_members_is_stopped_at_the_bound(project, monkeypatch):
    monkeypatch.setattr(images_mod, "MAX_MEMBERS", 50)
    replace_archive(project.image_dir("1.1.0"), [member(f"f{i}", data=b"") for i in range(200)])
    _stage_refused(project)


def test_a_tar_bomb_of_inflated_content_is_stopped_at_the_bound(project, monkeypatch):
    monkeypatch.setattr(images_mod, "MAX_UNPACKED_BYTES", 1 << 20)
    replace_archive(project.image_dir("1.1.0"), [member("zeros", data=b"\0" * (4 << 20))])
    _stage_refused(project)


def test_an_archive_that_does_not_match_the_manifest_sha256_is_refused(project):
    manifest_path = project.image_dir("1.1.0") / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    before = listing(project.state)
    result = project.run("stage", "1.1.0", "-o", "json")
    project.check(result, 2)
    assert "integrity" in result.json()["errors"][0]["message"]
    assert listing(project.state) == before


def test_a_damaged_server_record_without_a_process_does_not_block_and_gc_removes_it(project):
    damage(project.state_file("server.json"), "truncated")
    result = project.run("gc", "-o", "json")
    project.check(result, 0)
    assert result.json()["servers"] == [SERVER_ID]
    assert not (project.env_dir / "servers" / SERVER_ID).exists()


def test_an_empty_server_folder_left_by_an_interrupted_delete_is_no_server(project):
    folder = project.env_dir / "servers" / SERVER_ID
    (folder / "server.json").unlink()
    os.utime(folder, (1.0, 1.0))  # an old leftover, not a create in progress
    status = project.run("status", "-o", "json")
    project.check_read(status)
    assert [s for s in status.json()["servers"] if s["id"] == SERVER_ID] == []
    fixed = project.run("doctor", "--fix", "-o", "json")
    project.check(fixed, 0)
    assert not (project.env_dir / "servers" / SERVER_ID).exists()


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "srv-1\nbackend evil", "address": "127.0.0.1", "port": 80},
        {"name": "srv-1", "address": "127.0.0.1 check\nlisten x", "port": 80},
        {"name": "srv-1", "address": "127.0.0.1", "port": 70000},
        {"name": "srv-1", "address": "127.0.0.1", "port": 80, "weight": 9999},
        {"name": "srv-1", "address": "127.0.0.1", "port": 80, "admin": "ready\nstats enable"},
    ],
    ids=["name-newline", "address-injection", "port-range", "weight-range", "admin-injection"],
)
def test_a_members_json_entry_that_would_inject_into_haproxy_cfg_is_damage(tmp_path, entry):
    from releasectl.errors import DamagedState
    from releasectl.providers.local.pool import read_members

    path = tmp_path / "members.json"
    path.write_text(json.dumps([entry]))
    with pytest.raises(DamagedState, match="members.json is damaged"):
        read_members(path)
