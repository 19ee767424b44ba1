"""Bake, list and prune images. A version is baked once; --force replaces it only when it is not in use."""

from __future__ import annotations

from dataclasses import dataclass

import releasectl
from releasectl.engine.context import EngineContext
from releasectl.engine.versions import parse_version, version_key
from releasectl.errors import Interrupted, ReleasectlError, UsageError
from releasectl.providers.base import BuilderStatus, Image, ImageStatus, Label, Role


def in_use(image: Image, ctx: EngineContext) -> str | None:
    """Why the image must not be replaced or deleted, or None."""
    roles = {k.removeprefix("role_"): v for k, v in image.labels.items() if k.startswith("role_")}
    if roles:
        return ", ".join(f"{role} in {env}" for env, role in sorted(roles.items()))
    users = [s for s in ctx.provider.list_servers() if s.image_id == image.id]
    if users:
        return f"used by {len(users)} server(s) in {ctx.env}"
    return None


def usable_image(ctx: EngineContext, version: str) -> Image:
    """The ACTIVE image of a version, or a UsageError saying why there is none and what to do."""
    parse_version(version)
    found = [i for i in ctx.provider.list_images() if i.version == version]
    active = [i for i in found if i.status is ImageStatus.ACTIVE]
    if active:
        return active[0]
    if any(i.status is ImageStatus.FAILED for i in found):
        raise UsageError(
            f"the image of {ctx.app} {version} is unusable: its archive or snapshot failed the integrity check",
            hint=f"re-bake it: `releasectl bake {version} --force`",
        )
    if found:
        raise UsageError(f"the image of {ctx.app} {version} is still being baked (or its bake was interrupted)",
                         hint=f"wait for the bake, or run `releasectl bake {version}` again")
    raise UsageError(f"no image for {ctx.app} {version}", hint=f"bake it first: `releasectl bake {version}`")


def check_bakeable(ctx: EngineContext, version: str, *, force: bool = False) -> list[Image]:
    """Refuse (UsageError) a version that is baked (without force) or whose image is in use; returns the
    images of the version that exist. Read-only."""
    parse_version(version)
    existing = [i for i in ctx.provider.list_images() if i.version == version]
    for image in existing:
        if image.status is ImageStatus.PENDING:
            continue
        if not force:
            raise UsageError(
                f"{image.name} ({version}) is already baked",
                hint=f"bake a new version, or replace it with `releasectl bake {version} --force`",
            )
        busy = in_use(image, ctx)
        if busy:
            raise UsageError(f"{image.name} cannot be replaced: it is {busy}")
    return existing


def bake(ctx: EngineContext, version: str, *, force: bool = False, live: bool = False) -> Image:
    """Snapshot the builder. Unless `live`, it is quiesced first (stopped, then started again after), so the
    snapshot's disk is consistent. The image records where it came from: the builder's source image, its
    recipe's sha256 and the time."""
    existing = check_bakeable(ctx, version, force=force)
    builder = ctx.provider.get_builder()
    if builder is not None and builder.status is BuilderStatus.FAILED:
        raise UsageError(f"the builder {builder.name} failed: {builder.detail[-300:] or 'no detail'}",
                         hint="`releasectl builder down`, then `releasectl builder up --recipe FILE` again")
    for image in existing:
        if image.status is ImageStatus.PENDING:
            ctx.event("bake", f"removing the unfinished image {image.name} left by an interrupted bake")
            ctx.provider.delete_image(image.id)
    name = ctx.image_name_for(version)
    for image in existing:
        if image.status is not ImageStatus.PENDING:
            ctx.event("bake", f"replacing {image.name} (--force)")
            ctx.provider.delete_image(image.id)
    ctx.event("bake", f"snapshotting the builder into {name}")
    labels = {Label.CREATED_BY: releasectl.__version__, Label.PORT: str(ctx.provider.ctx.app_port),
              Label.BAKED_AT: str(int(ctx.clock.time()))}
    if builder is not None:
        labels.update({Label.SOURCE_IMAGE: builder.source_image_id or "base", Label.RECIPE_SHA256: builder.recipe_sha256})
    try:
        if not live and ctx.provider.quiesce_builder():
            ctx.event("bake", "stopped the builder for a consistent snapshot (--live skips this)")
        image = ctx.provider.bake_image(version, name, labels)
    except (Interrupted, KeyboardInterrupt) as exc:
        removed = _remove_partial(ctx, version, {i.id for i in existing})
        raise Interrupted(
            f"bake of {ctx.app} {version} interrupted ({exc or 'signal'}); "
            + (f"removed the partial image {', '.join(removed)}" if removed else "no partial image was left"),
            hint=f"run `releasectl bake {version}` again",
        ) from None
    finally:
        if not live:
            _resume_builder(ctx)
    digest = f", sha256 {image.checksum[:12]}" if image.checksum else ""
    ctx.event("bake", f"baked {image.name} ({image.size or 0} bytes{digest})")
    return image


def _resume_builder(ctx: EngineContext) -> None:
    """Start the builder again after the snapshot. A failure here does not undo the bake (the image is made):
    it is reported, and the builder stays stopped, which the next bake snapshots as it is."""
    try:
        started = ctx.provider.resume_builder()
    except ReleasectlError as exc:
        ctx.event("bake", f"could not start the builder again: {exc}; it stays stopped (a later bake snapshots "
                          "it stopped; `releasectl builder down` removes a builder from code)")
        return
    if started:
        ctx.event("bake", "started the builder again")


def _remove_partial(ctx: EngineContext, version: str, before: set[str]) -> list[str]:
    """After an interrupted bake: delete the images of `version` it left unfinished (never one that was
    there before it started)."""
    removed = []
    try:
        for image in ctx.provider.list_images():
            if image.version == version and image.id not in before and image.status is not ImageStatus.ACTIVE:
                ctx.provider.delete_image(image.id)
                removed.append(image.id)
    except ReleasectlError as exc:  # the cleanup is best effort; the next bake sweeps what is left
        ctx.event("bake", f"could not remove the partial image: {exc}")
    return removed


@dataclass(frozen=True)
class ImageRow:
    image: Image
    status: str  # pending | baked | live | previous | failed | rolled back | released


def describe_status(image: Image, env: str) -> str:
    if Label.DAMAGED in image.labels:
        return "damaged"
    if image.status is not ImageStatus.ACTIVE:
        return image.status.value
    role = image.labels.get(f"role_{env}")
    if role:
        return role
    outcome = image.outcome
    if outcome is not None and outcome.value == "failed":
        return "failed"
    state = image.labels.get(f"state_{env}")
    if state:
        return state.replace("_", " ")
    return "baked"


def list_images(ctx: EngineContext) -> list[ImageRow]:
    images = sorted(ctx.provider.list_images(), key=lambda i: (version_key(i.version), i.created_at), reverse=True)
    return [ImageRow(i, describe_status(i, ctx.env)) for i in images]


@dataclass(frozen=True)
class PruneResult:
    deleted: list[Image]
    kept: list[tuple[Image, str]]  # image, reason
    dry_run: bool


def prune(ctx: EngineContext, keep: int, *, dry_run: bool) -> PruneResult:
    """Delete all but the newest `keep` images; never one that is live, the previous live, or in use."""
    if keep < 1:
        raise UsageError("--keep must be at least 1")
    images = sorted(ctx.provider.list_images(), key=lambda i: version_key(i.version), reverse=True)
    servers = ctx.provider.list_servers()
    deleted: list[Image] = []
    kept: list[tuple[Image, str]] = []
    for index, image in enumerate(images):
        roles = [f"{v} in {k.removeprefix('role_')}" for k, v in image.labels.items() if k.startswith("role_")]
        users = [s for s in servers if s.image_id == image.id and s.role is not Role.STAGING]
        if Label.DAMAGED in image.labels:
            kept.append((image, "damaged: see `releasectl doctor`"))
        elif roles:
            kept.append((image, ", ".join(roles)))
        elif users:
            kept.append((image, f"used by {len(users)} server(s)"))
        elif image.protected:
            kept.append((image, "protected"))
        elif index < keep:
            kept.append((image, f"among the newest {keep}"))
        else:
            deleted.append(image)
    if not dry_run:
        for image in deleted:
            ctx.provider.delete_image(image.id)
            ctx.event("prune", f"deleted {image.name}")
    return PruneResult(deleted, kept, dry_run)
