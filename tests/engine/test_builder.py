"""The builder from code in the engine (memory provider): up from the last image, bake records where the image
came from, the whole `bake --recipe` pipeline and its cleanup, and recipes as hostile input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from releasectl.engine.builder import MAX_RECIPE_BYTES, bake_with_recipe, builder_down, builder_up, load_recipe
from releasectl.engine.context import EngineContext
from releasectl.engine.images import bake
from releasectl.errors import QuotaExceeded, RecipeFailed, UsageError
from releasectl.providers.base import BuilderStatus, HealthCheck, Label, ProviderContext
from tests.fakes.clock import FakeClock
from tests.fakes.memory import MemoryCloud, MemoryProvider


@pytest.fixture
def cloud() -> MemoryCloud:
    return MemoryCloud(FakeClock())


@pytest.fixture
def ctx(cloud: MemoryCloud, tmp_path: Path) -> EngineContext:
    health = HealthCheck()
    pctx = ProviderContext(app="demo", env="production", config_dir=tmp_path, state_dir=tmp_path / "state",
                           health=health, app_port=8000)
    return EngineContext(provider=MemoryProvider(pctx, cloud), app="demo", env="production",
                         image_name="{app}-{version}", count=2, health=health, clock=cloud.clock)


@pytest.fixture
def patch(tmp_path: Path) -> Path:
    path = tmp_path / "patch.sh"
    path.write_text("echo patched > PATCHED\n")
    return path


def test_builder_up_starts_from_the_last_image_and_bake_records_its_inputs(ctx, cloud, patch) -> None:
    bake(ctx, "1.0.0")
    newest = bake(ctx, "1.2.0")
    bake(ctx, "1.1.0")  # baked later, but an older version: the patch path starts from the newest version
    builder = builder_up(ctx, source=None, recipe=load_recipe(patch), timeout=60)
    assert builder.source_image_id == newest.id and builder.status is BuilderStatus.READY
    with pytest.raises(UsageError, match="up already"):
        builder_up(ctx, source="base", recipe=None, timeout=60)
    image = bake(ctx, "1.3.0")
    assert image.labels[Label.SOURCE_IMAGE] == newest.id
    assert image.labels[Label.RECIPE_SHA256] == hashlib.sha256(patch.read_bytes()).hexdigest()
    assert int(image.labels[Label.BAKED_AT]) == int(cloud.clock.time())
    assert cloud.builders["demo"].status is BuilderStatus.READY  # quiesced for the snapshot, started again
    assert builder_down(ctx) is True and builder_down(ctx) is False


def test_builder_up_from_a_version_or_the_base(ctx, patch) -> None:
    first = bake(ctx, "1.0.0")
    bake(ctx, "2.0.0")
    assert builder_up(ctx, source="1.0.0", recipe=None, timeout=60).source_image_id == first.id
    builder_down(ctx)
    assert builder_up(ctx, source="base", recipe=None, timeout=60).source_image_id == ""
    builder_down(ctx)
    with pytest.raises(UsageError, match="no image for demo 3.0.0"):
        builder_up(ctx, source="3.0.0", recipe=None, timeout=60)


def test_bake_with_a_recipe_is_the_whole_pipeline_and_leaves_no_builder(ctx, cloud, patch) -> None:
    first = bake(ctx, "1.0.0")
    baked = bake_with_recipe(ctx, "1.1.0", load_recipe(patch), source=None, timeout=60)
    assert baked.image.version == "1.1.0" and baked.image.labels[Label.SOURCE_IMAGE] == first.id
    assert cloud.builders == {}
    with pytest.raises(UsageError, match="already baked"):  # refused before any builder comes up
        bake_with_recipe(ctx, "1.1.0", load_recipe(patch), source=None, timeout=60)
    assert cloud.builders == {}


def test_a_failed_recipe_bakes_nothing_and_removes_the_builder(ctx, cloud, patch) -> None:
    bake(ctx, "1.0.0")
    cloud.fail_next_recipe("E: Unable to locate package nginx-extras")
    with pytest.raises(RecipeFailed, match="nginx-extras"):
        bake_with_recipe(ctx, "1.1.0", load_recipe(patch), source=None, timeout=60)
    assert cloud.builders == {} and [i.version for i in cloud.images.values()] == ["1.0.0"]


def test_a_builder_up_by_hand_is_never_taken_down_by_bake_with_recipe(ctx, cloud, patch) -> None:
    bake(ctx, "1.0.0")
    builder_up(ctx, source=None, recipe=None, timeout=60)
    with pytest.raises(UsageError, match="up already"):
        bake_with_recipe(ctx, "1.1.0", load_recipe(patch), source=None, timeout=60)
    assert "demo" in cloud.builders


def test_bake_refuses_a_failed_builder(ctx, cloud, tmp_path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("echo nope\nexit 2\n")
    with pytest.raises(RecipeFailed):
        builder_up(ctx, source="base", recipe=load_recipe(bad), timeout=60)
    with pytest.raises(UsageError, match="failed"):
        bake(ctx, "1.0.0")
    assert cloud.images == {}


def test_builder_up_is_refused_when_the_quota_is_full(ctx, cloud) -> None:
    cloud.set_quota(instances=0)
    with pytest.raises(QuotaExceeded, match="instances: needed 1, used 0, limit 0"):
        builder_up(ctx, source="base", recipe=None, timeout=60)
    assert cloud.builders == {}


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        ("dir", "is a directory"),
        (b"", "is empty"),
        (b"  \n\t\n", "is empty"),
        (b"echo a\x00b\n", "NUL"),
        (b"echo \xff\xfe\n", "not UTF-8"),
        (b"#" * (MAX_RECIPE_BYTES + 1), f"larger than {MAX_RECIPE_BYTES} bytes"),
    ],
)
def test_hostile_recipes_are_usage_errors(tmp_path, content, message) -> None:
    path = tmp_path / "recipe.sh"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        load_recipe(path)


def test_a_recipe_at_the_bound_is_read_whole(tmp_path) -> None:
    path = tmp_path / "big.sh"
    path.write_bytes(b"#" * MAX_RECIPE_BYTES)
    recipe = load_recipe(path)
    assert len(recipe.text) == MAX_RECIPE_BYTES and recipe.kind == "shell"
    path.write_text("#cloud-config\nruncmd:\n  - echo hi\n")
    assert load_recipe(path).kind == "cloud-config"


# ---- the claim: what a command killed mid-way (kill -9) left is the next command's to remove -------------------


def _dead_pid() -> int:
    """A pid no process has (the highest pid the kernel would hand out is far away from this one)."""
    import os

    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            pass
        pid -= 1


def _claim(ctx: EngineContext, **actor: str) -> None:
    import json
    import socket

    from releasectl.engine.builder import CLAIM

    owner = {"host": socket.gethostname(), "user": "ci", "pid": str(_dead_pid()), "command": "bake 1.1.0 --recipe", **actor}
    ctx.provider.write_record(CLAIM, json.dumps(owner))


def test_a_dead_commands_builder_is_taken_down_by_the_next_bake_recipe(ctx, cloud, patch) -> None:
    bake(ctx, "1.0.0")
    left = builder_up(ctx, source=None, recipe=None, timeout=60)
    _claim(ctx)  # as if a `bake --recipe` had brought it up and been killed before taking it down
    baked = bake_with_recipe(ctx, "1.1.0", load_recipe(patch), source=None, timeout=60)
    assert baked.builder.id != left.id and ctx.provider.get_builder() is None
    assert ctx.provider.read_record("builder/claim") is None  # dropped once the builder is down


@pytest.mark.parametrize("actor", [{"pid": "1"}, {"host": "elsewhere.example"}], ids=["alive", "another host"])
def test_a_claim_that_may_be_alive_refuses_and_removes_nothing(ctx, cloud, patch, actor) -> None:
    bake(ctx, "1.0.0")
    left = builder_up(ctx, source=None, recipe=None, timeout=60)
    _claim(ctx, **actor)
    for attempt in (lambda: bake_with_recipe(ctx, "1.1.0", load_recipe(patch), source=None, timeout=60),
                    lambda: builder_up(ctx, source=None, recipe=None, timeout=60)):
        with pytest.raises(UsageError, match="is making the builder"):
            attempt()
    assert ctx.provider.get_builder().id == left.id


def test_a_builder_up_by_hand_has_no_claim_and_stays(ctx, cloud, patch) -> None:
    bake(ctx, "1.0.0")
    builder_up(ctx, source=None, recipe=None, timeout=60)
    assert ctx.provider.read_record("builder/claim") is None
    with pytest.raises(UsageError, match="up already"):
        bake_with_recipe(ctx, "1.1.0", load_recipe(patch), source=None, timeout=60)
    assert ctx.provider.get_builder() is not None
