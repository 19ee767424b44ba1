"""Issue 2 end to end: init, bake, images, stage and prune through the real CLI on the local provider."""

from __future__ import annotations

import json

from tests.conftest import run_cli, snapshot_tree


def test_acceptance_sequence_in_an_empty_folder(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    assert run_cli("init", "--port", "29999", cwd=folder).code == 0
    assert run_cli("bake", "1.0.0", cwd=folder).code == 0
    again = run_cli("bake", "1.0.0", cwd=folder)
    assert again.code == 2 and "already baked" in again.stderr and "--force" in again.stderr
    short = run_cli("bake", "1.4", cwd=folder)
    assert short.code == 2 and "1.4.0" in short.stderr
    images = run_cli("images", "--output", "json", cwd=folder).json()["images"]
    assert [i["version"] for i in images] == ["1.0.0"]
    assert len(images[0]["sha256"]) == 64
    staged = run_cli("stage", "1.0.0", cwd=folder)
    assert staged.code == 0, staged.stderr
    assert "pass" in staged.stdout
    (folder / "app" / "FAIL_HEALTH").touch()
    assert run_cli("bake", "1.0.1", cwd=folder).code == 0
    failed = run_cli("stage", "1.0.1", cwd=folder)
    assert failed.code == 1
    assert "FAIL" in failed.stdout and "/healthz" in failed.stderr


def test_images_are_ordered_by_semver_and_prereleases_allowed(workspace):
    for version in ("1.9.0", "1.10.0", "1.5.0-rc.1", "1.5.0"):
        workspace.bake(version)
    rows = workspace.ok("images", "--output", "json").json()["images"]
    assert [r["version"] for r in rows] == ["1.10.0", "1.9.0", "1.5.0", "1.5.0-rc.1"]
    table = workspace.ok("images").stdout
    assert table.index("1.10.0") < table.index("1.9.0")


def test_image_records_version_source_time_and_checksum(workspace):
    workspace.bake("2.0.0")
    image = workspace.ok("images", "-o", "json").json()["images"][0]
    assert image["name"] == "shop-2.0.0"
    assert image["source"].endswith("/app")
    assert image["created_at"].startswith("20")
    assert image["labels"]["created_by"]


def test_force_rebake_replaces_an_image_that_is_not_live(workspace):
    workspace.bake("1.0.0")
    first = workspace.ok("images", "-o", "json").json()["images"][0]["id"]
    (workspace.path / "app" / "extra.txt").write_text("new content")
    workspace.ok("bake", "1.0.0", "--force")
    images = workspace.ok("images", "-o", "json").json()["images"]
    assert len(images) == 1 and images[0]["id"] != first


def test_force_rebake_refuses_a_live_image(live_100):
    result = live_100.cli("bake", "1.0.0", "--force")
    assert result.code == 2 and "cannot be replaced" in result.stderr and "live in production" in result.stderr


def test_tampered_archive_is_detected_before_use(workspace):
    workspace.bake("1.0.0")
    provider = workspace.provider()
    image = provider.list_images()[0]
    archive = next((workspace.path / ".releasectl").rglob("*.tar.gz"))
    with open(archive, "ab") as handle:
        handle.write(b"tampered")
    for command in (["stage", "1.0.0"], ["rollout", "1.0.0"]):
        result = workspace.cli(*command)
        assert result.code == 2, result.stderr
        assert "integrity" in result.stderr and "--force" in result.stderr
    assert workspace.status()["servers"] == []
    assert image.id


def test_stage_keep_leaves_the_instance_and_smoke_checks_from_config(workspace):
    config = workspace.path / "releasectl.yaml"
    config.write_text(
        config.read_text().replace(
            "    - path: /\n      expected_status: 200\n",
            "    - path: /\n      expected_status: 200\n      body_contains: \"1.0.0\"\n      max_latency: 2s\n"
            "    - path: /missing\n      expected_status: 404\n",
        )
    )
    workspace.bake("1.0.0")
    result = workspace.ok("stage", "1.0.0", "--keep", "--output", "json")
    doc = result.json()
    assert doc["passed"] and doc["kept"]
    assert [c["path"] for c in doc["checks"]] == ["/healthz", "/", "/missing"]
    servers = workspace.status()["servers"]
    assert [s["role"] for s in servers] == ["staging"]
    assert workspace.status()["members"] == []  # a staging instance never joins the pool


def test_stage_with_an_unknown_version_exits_2_and_changes_nothing(workspace):
    workspace.bake("1.0.0")
    before = snapshot_tree(workspace.path)
    result = workspace.cli("stage", "9.9.9")
    assert result.code == 2 and "releasectl bake 9.9.9" in result.stderr
    assert snapshot_tree(workspace.path) == before


def test_prune_keeps_live_and_previous(workspace):
    for version in ("1.0.0", "1.1.0"):
        workspace.bake(version)
        workspace.ok("rollout", version, "--pipeline", "canary-fast.yaml")
    for version in ("1.2.0", "1.3.0", "1.4.0"):
        workspace.bake(version)
    dry = workspace.ok("images", "prune", "--keep", "1", "--dry-run", "-o", "json").json()
    assert set(dry["deleted"]) == {"shop-1.2.0", "shop-1.3.0"}
    assert len(workspace.ok("images", "-o", "json").json()["images"]) == 5  # dry run deleted nothing
    workspace.ok("images", "prune", "--keep", "1")
    left = {i["version"]: i["status"] for i in workspace.ok("images", "-o", "json").json()["images"]}
    assert left == {"1.4.0": "baked", "1.1.0": "live", "1.0.0": "previous"}


def test_bad_inputs_change_nothing_on_disk(workspace):
    workspace.bake("1.0.0")
    before = snapshot_tree(workspace.path)
    for args in (["bake", "1.0"], ["bake", "1.0.0"], ["stage", "x"], ["rollout", "2.0.0"], ["images", "prune", "--keep", "0"],
                 ["rollout", "--pipeline", "missing.yaml"], ["--env", "qa", "status"], ["rollback"], ["promote"], ["abort"]):
        result = workspace.cli(*args)
        assert result.code == 2, (args, result.code, result.stderr)
        assert result.stderr.startswith("releasectl: error: "), result.stderr
        assert "Traceback" not in result.stderr
    after = snapshot_tree(workspace.path)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert not {c for c in changed if not c.endswith(("lock.json", ".lock", ".flock"))}, changed


def test_json_errors_are_one_document_on_stdout(workspace):
    result = workspace.cli("bake", "1.4", "--output", "json")
    assert result.code == 2
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 2 and doc["errors"][0]["code"] == "usage"
    assert "1.4.0" in doc["errors"][0]["hint"]
