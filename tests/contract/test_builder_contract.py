"""The provider contract for the builder from code and the quota (see conftest.py for the providers).

A builder is brought up from an image of the app with a recipe, is never a server of the environment,
is snapshotted by bake_image while it is up, and goes with builder_down, idempotently."""

from __future__ import annotations

import hashlib

import pytest

from releasectl.errors import Conflict, RecipeFailed
from releasectl.providers.base import UNLIMITED, BuilderSpec, BuilderStatus, ImageStatus, Recipe


def recipe(text: str, name: str = "patch.sh") -> Recipe:
    return Recipe(name=name, text=text, sha256=hashlib.sha256(text.encode()).hexdigest())


PATCH = recipe("echo patched > PATCHED\necho the recipe ran\n")


def test_builder_up_from_an_image_is_baked_then_goes_down(subject) -> None:
    p = subject.provider
    base = subject.image("1.0.0")
    assert p.get_builder() is None and p.builder_down() is False
    builder = p.builder_up(BuilderSpec(source_image_id=base.id, recipe=PATCH, timeout=120))
    assert builder.status is BuilderStatus.READY
    assert (builder.source_image_id, builder.recipe_sha256) == (base.id, PATCH.sha256)
    seen = p.get_builder()
    assert seen is not None and (seen.id, seen.status) == (builder.id, BuilderStatus.READY)
    with pytest.raises(Conflict):  # never replaces the one that is up
        p.builder_up(BuilderSpec(source_image_id=base.id, recipe=PATCH, timeout=120))
    assert p.list_servers() == []  # the builder is no server of the environment, never in a fleet
    assert p.list_members() == []
    stopped = p.quiesce_builder()
    try:
        image = p.bake_image("1.1.0", "demo-1.1.0", {"recipe_sha256": PATCH.sha256})
    finally:
        if stopped:
            p.resume_builder()
    assert image.status is ImageStatus.ACTIVE and image.labels["recipe_sha256"] == PATCH.sha256
    assert p.get_builder().status is BuilderStatus.READY  # started again after the snapshot
    assert p.builder_down() is True
    assert p.get_builder() is None and p.builder_down() is False


def test_a_failing_recipe_raises_and_leaves_a_failed_builder_to_take_down(subject) -> None:
    p = subject.provider
    base = subject.image("1.0.0")
    with pytest.raises(RecipeFailed) as failed:
        p.builder_up(BuilderSpec(source_image_id=base.id, recipe=recipe("echo about to fail\nexit 3\n"), timeout=120))
    assert "exit" in failed.value.message
    left = p.get_builder()
    assert left is not None and left.status is BuilderStatus.FAILED
    assert p.builder_down() is True and p.get_builder() is None


def test_quota_is_typed_and_counts_a_server(subject) -> None:
    quota = subject.provider.quota()
    assert quota.per_server.get("instances") == 1
    assert all(isinstance(v, int) and v >= UNLIMITED for v in quota.limits.values())
    assert all(isinstance(v, int) and v >= 0 for v in quota.used.values())
