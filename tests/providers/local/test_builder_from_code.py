"""The local builder from code (folders): `builder up/down` and `bake --recipe` through the CLI, in process
(nothing here starts a server or HAProxy), with shell and cloud-config recipes, timeouts and hostile recipes."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pytest

from tests.conftest import CliRun, run_cli_in_process


@pytest.fixture
def project(tmp_path: Path) -> Path:
    assert run_cli_in_process("init", str(tmp_path / "shop"), "--port", "18991", cwd=tmp_path).code == 0
    return tmp_path / "shop"


def cli(project: Path, *args: str) -> CliRun:
    return run_cli_in_process(*args, "--output", "json", cwd=project)


def members(project: Path, version: str) -> set[str]:
    images = {i["version"]: i["id"] for i in cli(project, "images").json()["images"]}
    with tarfile.open(project / ".releasectl" / "images" / images[version] / "image.tar.gz") as tar:
        return {m.name.removeprefix("./") for m in tar.getmembers()}


def test_bake_with_a_recipe_patches_the_last_image(project: Path) -> None:
    assert cli(project, "bake", "1.0.0").code == 0
    (project / "patch.sh").write_text("echo 1.1.0 > PATCH_LEVEL\nrm -f README.gone\n")
    baked = cli(project, "bake", "1.1.0", "--recipe", "patch.sh")
    assert baked.code == 0, baked.stderr
    image = baked.json()["image"]
    first = next(i for i in cli(project, "images").json()["images"] if i["version"] == "1.0.0")
    assert image["labels"]["source_image"] == first["id"]
    assert image["labels"]["recipe_sha256"] == hashlib.sha256((project / "patch.sh").read_bytes()).hexdigest()
    assert "PATCH_LEVEL" in members(project, "1.1.0") and "PATCH_LEVEL" not in members(project, "1.0.0")
    assert baked.json()["builder"]["status"] == "ready"
    assert cli(project, "builder", "status").json()["builder"] is None  # taken down after the snapshot
    assert not (project / "app" / "PATCH_LEVEL").exists()  # the configured builder folder is untouched


def test_builder_up_cloud_config_then_bake_then_down(project: Path) -> None:
    (project / "cfg.yaml").write_text(
        "#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: hello\n    permissions: '0600'\n"
        "runcmd:\n  - [sh, -c, 'echo ran > RAN']\n  - echo two >> RAN\n"
    )
    up = cli(project, "builder", "up", "--from", "base", "--recipe", "cfg.yaml")
    assert up.code == 0, up.stderr
    assert up.json()["builder"]["source_image"] == "base"
    tree = project / ".releasectl" / "builder" / "tree"
    assert (tree / "etc" / "motd").read_text() == "hello" and (tree / "RAN").read_text() == "ran\ntwo\n"
    assert (tree / "etc" / "motd").stat().st_mode & 0o777 == 0o600
    again = cli(project, "builder", "up")
    assert again.code == 2 and "up already" in again.json()["errors"][0]["message"]
    assert cli(project, "bake", "1.0.0").json()["image"]["labels"]["source_image"] == "base"
    assert {"etc/motd", "RAN", "app.py"} <= members(project, "1.0.0")
    assert cli(project, "builder", "down").json()["removed"] is True
    assert cli(project, "builder", "down").json()["removed"] is False
    assert not (project / ".releasectl" / "builder").exists()


def test_a_failing_recipe_exits_1_with_its_output_and_bakes_nothing(project: Path) -> None:
    (project / "bad.sh").write_text("echo installing nginx-extras\nfalse\necho never\n")
    failed = cli(project, "bake", "1.0.0", "--recipe", "bad.sh", "--from", "base")
    assert failed.code == 1, failed.stderr
    assert "installing nginx-extras" in failed.json()["errors"][0]["message"]
    assert cli(project, "images").json()["images"] == []
    assert cli(project, "builder", "status").json()["builder"] is None


def test_a_recipe_that_outlives_its_timeout_is_killed(project: Path) -> None:
    (project / "slow.sh").write_text("sleep 30 &\nwait\n")
    up = cli(project, "builder", "up", "--from", "base", "--recipe", "slow.sh", "--timeout", "1s")
    assert up.code == 1 and "did not finish within 1s" in up.json()["errors"][0]["message"]
    status = cli(project, "builder", "status").json()["builder"]
    assert status["status"] == "failed"
    assert cli(project, "bake", "1.0.0").code == 2  # a failed builder is not baked
    assert cli(project, "builder", "down").code == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["builder", "up", "--recipe", "missing.sh"], "no such file"),
        (["builder", "up", "--recipe", "app"], "is a directory"),
        (["bake", "1.0.0", "--recipe", "missing.sh"], "no such file"),
        (["builder", "up", "--from", "9.9.9"], "no image for"),
        (["builder", "up", "--from", "img-000000000000"], "no image 'img-000000000000'"),
        (["builder", "up", "--timeout", "forever"], "--timeout"),
        (["bake", "1.0.0", "--from", "base"], "--from needs --recipe"),
        (["builder", "up", "--recipe", "escape.yaml"], "climbs out"),
        (["builder", "up", "--recipe", "pkgs.yaml"], "packages"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(project: Path, args: list[str], message: str) -> None:
    (project / "escape.yaml").write_text("#cloud-config\nwrite_files:\n  - path: ../../outside\n    content: x\n")
    (project / "pkgs.yaml").write_text("#cloud-config\npackages: [nginx]\n")
    result = cli(project, *args)
    assert result.code == 2, result.stderr
    assert message in result.json()["errors"][0]["message"]
    assert not (project / ".releasectl" / "builder").exists()
    assert not (project.parent / "outside").exists()
    assert not (project / ".releasectl" / "images").exists() or cli(project, "images").json()["images"] == []
