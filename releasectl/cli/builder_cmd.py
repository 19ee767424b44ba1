"""`releasectl builder up|down|status`, and `bake --recipe`'s whole pipeline: parse, one engine call, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from releasectl.cli.render import Result
from releasectl.errors import UsageError

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


def _builder_result(info: Any) -> Result:
    """`info`: the API's BuilderInfo, or None when no builder is up."""
    if info is None:
        return Result(data={"builder": None}, text=lambda: "no builder is up")
    recipe = f", recipe sha256 {info.recipe_sha256[:12]}" if info.recipe_sha256 else ""
    origin = "the base" if info.source_image == "base" else info.source_image
    return Result(data={"builder": info.to_dict()}, text=lambda: f"builder {info.name}: {info.status}, from {origin}{recipe}")


def _finish(ctx: typer.Context, result: Result) -> None:
    from releasectl.cli.app import _finish as finish

    finish(ctx, result)


def _client(ctx: typer.Context) -> Any:
    from releasectl.cli.app import _globals
    from releasectl.cli.runtime import client

    return client(_globals(ctx))


@builder_app.command("up")
def builder_up(ctx: typer.Context, source: FromOption = None, recipe: RecipeOption = None,
               timeout: TimeoutOption = "10m") -> None:
    """Bring the builder up (not in the pool) from the last image or --from, apply --recipe, wait until it is done."""
    check_source(source)
    seconds = recipe_timeout(timeout)
    _finish(ctx, _builder_result(_client(ctx).builder_up(source=source, recipe=recipe, timeout=seconds)))


@builder_app.command("down")
def builder_down(ctx: typer.Context) -> None:
    """Remove the builder that `builder up` made (nothing else). Idempotent."""
    removed = _client(ctx).builder_down()
    _finish(ctx, Result(data={"removed": removed}, text=lambda: "removed the builder" if removed else "no builder was up"))


@builder_app.command("status")
def builder_status(ctx: typer.Context) -> None:
    """The builder from code, if one is up."""
    _finish(ctx, _builder_result(_client(ctx).builder_status()))


def bake_with_recipe(ctx: typer.Context, version: str, recipe: Path, *, source: str | None, timeout: str,
                     force: bool, live: bool) -> None:
    """`bake VERSION --recipe FILE`: builder up, recipe, checks on the builder, snapshot, builder down."""
    from releasectl.api import BuilderInfo, ImageInfo
    from releasectl.cli import views
    from releasectl.cli.app import _globals
    from releasectl.cli.runtime import engine_context
    from releasectl.engine.builder import bake_with_recipe as do_bake
    from releasectl.engine.builder import load_recipe
    from releasectl.engine.images import describe_status

    check_source(source)
    seconds = recipe_timeout(timeout)
    loaded = load_recipe(recipe)
    ectx = engine_context(_globals(ctx), stop_at_once=True)
    baked = do_bake(ectx, version, loaded, source=source, timeout=seconds, force=force, live=live)
    result = views.image_result(ImageInfo.of(baked.image, describe_status(baked.image, ectx.env)))
    result.data["builder"] = BuilderInfo.of(baked.builder).to_dict()
    result.data["checks"] = [{"path": r.check.path, "passed": r.passed, "detail": r.detail} for r in baked.checks]
    _finish(ctx, result)
