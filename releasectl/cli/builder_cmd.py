"""`releasectl builder up|down|status`, and `bake --recipe`'s whole pipeline: parse, one engine call, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from releasectl.cli.render import Result, utc
from releasectl.errors import UsageError
from releasectl.providers.base import Builder

builder_app = typer.Typer(help="The builder from code: bring it up from the last image with a recipe, or take it down.",
                          no_args_is_help=True)

FromOption = Annotated[Optional[str], typer.Option("--from", help="VERSION of the app, an IMAGE id (or Glance name), or `base` (default: the last baked image, else the base).")]
RecipeOption = Annotated[Optional[Path], typer.Option("--recipe", help="Shell script or #cloud-config file applied to the builder.")]
TimeoutOption = Annotated[str, typer.Option("--timeout", help="How long the recipe may take: a duration like 10m.")]


def recipe_timeout(text: str) -> float:
    from releasectl.config import duration

    try:
        return duration(1.0, 24 * 3600.0)(text)
    except ValueError as exc:
        raise UsageError(f"--timeout: {exc}", hint="e.g. --timeout 10m") from None


def check_source(source: str | None) -> None:
    if source is not None and (not source or len(source) > 255 or any(c in source for c in "\x00\n\r/")):
        raise UsageError("--from takes a version, an image id or name (at most 255 characters, no '/'), or `base`")


def builder_data(builder: Builder | None) -> dict[str, Any] | None:
    if builder is None:
        return None
    return {
        "id": builder.id, "name": builder.name, "status": builder.status.value,
        "source_image": builder.source_image_id or "base", "recipe_sha256": builder.recipe_sha256 or None,
        "created_at": utc(builder.created_at), "address": builder.address, "port": builder.port,
        "detail": builder.detail or None,
    }


def _describe(builder: Builder | None) -> str:
    if builder is None:
        return "no builder is up"
    recipe = f", recipe sha256 {builder.recipe_sha256[:12]}" if builder.recipe_sha256 else ""
    return f"builder {builder.name}: {builder.status.value}, from {builder.source_image_id or 'the base'}{recipe}"


def _finish(ctx: typer.Context, result: Result) -> None:
    from releasectl.cli.app import _finish as finish

    finish(ctx, result)


def _ectx(ctx: typer.Context, **kwargs: Any) -> Any:
    from releasectl.cli.app import _globals
    from releasectl.cli.runtime import engine_context

    return engine_context(_globals(ctx), **kwargs)


@builder_app.command("up")
def builder_up(ctx: typer.Context, source: FromOption = None, recipe: RecipeOption = None,
               timeout: TimeoutOption = "10m") -> None:
    """Bring the builder up (not in the pool) from the last image or --from, apply --recipe, wait until it is done."""
    from releasectl.engine.builder import builder_up as do_up
    from releasectl.engine.builder import load_recipe

    check_source(source)
    seconds = recipe_timeout(timeout)
    loaded = load_recipe(recipe) if recipe is not None else None  # before anything is created
    builder = do_up(_ectx(ctx, stop_at_once=True), source=source, recipe=loaded, timeout=seconds)
    _finish(ctx, Result(data={"builder": builder_data(builder)}, text=lambda: _describe(builder)))


@builder_app.command("down")
def builder_down(ctx: typer.Context) -> None:
    """Remove the builder that `builder up` made (nothing else). Idempotent."""
    from releasectl.engine.builder import builder_down as do_down

    removed = do_down(_ectx(ctx))
    _finish(ctx, Result(data={"removed": removed}, text=lambda: "removed the builder" if removed else "no builder was up"))


@builder_app.command("status")
def builder_status(ctx: typer.Context) -> None:
    """The builder from code, if one is up."""
    builder = _ectx(ctx, writes=False).provider.get_builder()
    _finish(ctx, Result(data={"builder": builder_data(builder)}, text=lambda: _describe(builder)))


def bake_with_recipe(ctx: typer.Context, version: str, recipe: Path, *, source: str | None, timeout: str,
                     force: bool, live: bool) -> None:
    """`bake VERSION --recipe FILE`: builder up, recipe, checks on the builder, snapshot, builder down."""
    from releasectl.api import ImageInfo
    from releasectl.cli import views
    from releasectl.engine.builder import bake_with_recipe as do_bake
    from releasectl.engine.images import describe_status
    from releasectl.engine.builder import load_recipe

    check_source(source)
    seconds = recipe_timeout(timeout)
    loaded = load_recipe(recipe)
    ectx = _ectx(ctx, stop_at_once=True)
    baked = do_bake(ectx, version, loaded, source=source, timeout=seconds, force=force, live=live)
    result = views.image_result(ImageInfo.of(baked.image, describe_status(baked.image, ectx.env)))
    result.data["builder"] = builder_data(baked.builder)
    result.data["checks"] = [{"path": r.check.path, "passed": r.passed, "detail": r.detail} for r in baked.checks]
    _finish(ctx, result)
