"""kill -9 of `builder up --recipe` and `bake --recipe` (local provider) at several points: while the recipe
runs, and while the image is being written. After each kill nothing is orphaned or half-made that a rerun
cannot finish or clean: no process left running that the tool does not list (its builder, in its JSON), no
partial image listed, no lock held, and the same command run again succeeds."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from releasectl.wait import wait_for
from tests.conftest import run_cli_in_process
from tests.helpers import processes_under, stop_leftovers
from tests.integration.procs import start_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path):
    assert run_cli_in_process("init", str(tmp_path / "shop"), "--port", "18992", cwd=tmp_path).code == 0
    root = tmp_path / "shop"
    assert json_of(root, "bake", "1.0.0")["image"]["version"] == "1.0.0"
    yield root
    leftovers = stop_leftovers(root)  # by PID; a leak fails the test after it is cleaned up
    assert not leftovers, leftovers


def json_of(root: Path, *args: str) -> dict:
    result = run_cli_in_process(*args, "--output", "json", cwd=root)
    assert result.code == 0, (args, result.stderr)
    return result.json()


def slow_recipe(root: Path) -> Path:
    """A recipe that says it started (a marker file), then runs a child for longer than any test waits."""
    path = root / "slow.sh"
    path.write_text(f"touch {root / 'recipe-started'}\nsleep 120 &\nwait\n")
    return path


def big_recipe(root: Path) -> Path:
    """A quick recipe that leaves 48 MiB of incompressible data, so the snapshot takes a while."""
    path = root / "big.sh"
    path.write_text("head -c 50331648 /dev/urandom > blob.bin\n")
    return path


def kill_when(running, probe, what: str) -> None:
    """Poll for a state of the run, then SIGKILL the CLI by PID."""
    wait_for(lambda: probe() or running.proc.poll() is not None, timeout=60, interval=0.02, max_interval=0.1, what=what)
    assert running.proc.poll() is None, f"the command ended before {what}: {running.stderr[-2000:]}"
    os.kill(running.proc.pid, signal.SIGKILL)
    assert running.finish() == -signal.SIGKILL


def assert_nothing_orphaned(root: Path, version: str) -> dict:
    """No process of the recipe outlives the killed CLI; no partial image of `version` is listed; no lock.
    Returns the builder the tool lists (or None)."""
    wait_for(lambda: not processes_under(root), timeout=10, interval=0.05, max_interval=0.2,
             what="the recipe's processes to die with the CLI")
    images = json_of(root, "images")["images"]
    assert all(i["version"] != version for i in images), images  # nothing half-written is listed
    assert json_of(root, "status")["lock"] is None
    return json_of(root, "builder", "status")["builder"]


def assert_clean(root: Path) -> None:
    state = root / ".releasectl"
    assert not list(state.glob(".builder-*")), list(state.glob(".builder-*"))  # swept by the rerun
    assert not list((state / "images").glob(".tmp-*")), list((state / "images").glob(".tmp-*"))
    assert json_of(root, "builder", "status")["builder"] is None


def test_kill_builder_up_while_its_recipe_runs(project: Path) -> None:
    recipe = slow_recipe(project)
    running = start_cli("builder", "up", "--from", "base", "--recipe", str(recipe), cwd=project)
    kill_when(running, (project / "recipe-started").exists, "the recipe to start")
    assert assert_nothing_orphaned(project, "none") is None  # the half-made builder is never listed
    (project / "quick.sh").write_text("echo patched > PATCHED\n")
    again = json_of(project, "builder", "up", "--from", "base", "--recipe", "quick.sh")
    assert again["builder"]["status"] == "ready"
    assert (project / ".releasectl" / "builder" / "tree" / "PATCHED").exists()
    assert json_of(project, "builder", "down")["removed"] is True
    assert_clean(project)


def test_kill_bake_recipe_while_its_recipe_runs(project: Path) -> None:
    recipe = slow_recipe(project)
    running = start_cli("bake", "1.1.0", "--recipe", str(recipe), cwd=project)
    kill_when(running, (project / "recipe-started").exists, "the recipe to start")
    assert assert_nothing_orphaned(project, "1.1.0") is None
    (project / "quick.sh").write_text("echo patched > PATCHED\n")
    baked = json_of(project, "bake", "1.1.0", "--recipe", "quick.sh")
    assert baked["image"]["version"] == "1.1.0" and baked["image"]["status"] == "baked"
    assert_clean(project)


def test_kill_bake_recipe_while_the_image_is_written(project: Path) -> None:
    running = start_cli("bake", "1.1.0", "--recipe", str(big_recipe(project)), cwd=project)
    images = project / ".releasectl" / "images"
    kill_when(running, lambda: any(images.glob(".tmp-*")), "the snapshot to start")
    builder = assert_nothing_orphaned(project, "1.1.0")
    assert builder is not None and builder["status"] in ("ready", "stopped")  # left up, and listed
    manual = run_cli_in_process("bake", "1.1.0", "--recipe", "big.sh", "--output", "json", cwd=project)
    assert manual.code == 0, manual.stderr  # the rerun takes down what the dead bake left, and bakes
    image = manual.json()["image"]
    assert image["version"] == "1.1.0" and image["status"] == "baked"
    assert_clean(project)
    verified = run_cli_in_process("images", "--output", "json", cwd=project).json()["images"]
    assert [i["status"] for i in verified if i["version"] == "1.1.0"] == ["baked"]


def test_a_builder_up_by_hand_is_never_taken_down_by_bake_recipe(project: Path) -> None:
    """The claim is what makes a builder a dead bake's: one brought up by `builder up` stays, and bake
    --recipe refuses (exit 2), also after an earlier `bake --recipe` was killed."""
    running = start_cli("bake", "1.1.0", "--recipe", str(slow_recipe(project)), cwd=project)
    kill_when(running, (project / "recipe-started").exists, "the recipe to start")
    assert assert_nothing_orphaned(project, "1.1.0") is None  # the recipe dies with the CLI (its watcher polls)
    assert json_of(project, "builder", "up", "--from", "base")["builder"]["status"] == "ready"
    refused = run_cli_in_process("bake", "1.1.0", "--recipe", "slow.sh", "--output", "json", cwd=project)
    assert refused.code == 2 and "up already" in refused.json()["errors"][0]["message"]
    assert json_of(project, "builder", "status")["builder"]["status"] == "ready"
    assert json_of(project, "builder", "down")["removed"] is True
