"""The builder from code: bring the app's builder up from its last image (the patch path) or a base, apply a
recipe, check it, snapshot it, take it down.

`builder_up` and `builder_down` are the two halves; `bake_with_recipe` is the whole pipeline in one command
(builder up from the last image, recipe, smoke checks on the builder where it runs the app, a quiesced
snapshot, builder down). Recipes are hostile input: read here, bounded, and refused with exit 2 before
anything is created.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from releasectl.engine import quota
from releasectl.engine.context import EngineContext
from releasectl.engine.images import bake, check_bakeable, usable_image
from releasectl.engine.stage import CheckResult, evaluate
from releasectl.engine.versions import parse_version, version_key
from releasectl.errors import Interrupted, ReleasectlError, SmokeCheckFailed, UsageError
from releasectl.providers.base import Builder, BuilderSpec, Image, ImageStatus, Recipe, Server, ServerStatus, this_host

MAX_RECIPE_BYTES = 32 * 1024  # Nova takes 64 KiB of base64 user data, and the recipe rides in it with a wrapper
BASE = "base"  # `--from base`: the provider's base (local: the configured builder folder; openstack: base_image)


def load_recipe(path: Path) -> Recipe:
    """Read a recipe file: a regular file of at most MAX_RECIPE_BYTES of UTF-8 text without NUL. UsageError
    (exit 2, nothing changed) otherwise."""
    shown = str(path)[:200]
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_RECIPE_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"recipe {shown}: no such file", hint="pass a shell script or a #cloud-config file") from None
    except IsADirectoryError:
        raise UsageError(f"recipe {shown} is a directory, not a file") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"recipe {shown}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    if len(data) > MAX_RECIPE_BYTES:
        raise UsageError(f"recipe {shown} is larger than {MAX_RECIPE_BYTES} bytes",
                         hint="keep the recipe small: have it fetch or unpack what it needs")
    if not data.strip():
        raise UsageError(f"recipe {shown} is empty")
    if b"\x00" in data:
        raise UsageError(f"recipe {shown} holds a NUL byte: it must be a text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"recipe {shown} is not UTF-8 text (byte {exc.start})") from None
    return Recipe(name=Path(path).name[:100], text=text, sha256=hashlib.sha256(data).hexdigest())


def last_image(ctx: EngineContext) -> Image | None:
    """The newest baked image of the app (by version) that did not fail: what the next version patches."""
    usable = [i for i in ctx.provider.list_images()
              if i.status is ImageStatus.ACTIVE and i.version and (i.outcome is None or i.outcome.value != "failed")]
    return max(usable, key=lambda i: (version_key(i.version), i.created_at), default=None)


def source_image(ctx: EngineContext, source: str | None) -> str | None:
    """The image id the builder boots from: `source` a version of the app, `base`, or an image the provider
    resolves (an id; on OpenStack also a Glance name). Without one: the last image, else the base."""
    if source is None:
        last = last_image(ctx)
        return last.id if last is not None else None
    if source == BASE:
        return None
    try:
        parse_version(source)
    except UsageError:
        return source
    return usable_image(ctx, source).id


def builder_up(ctx: EngineContext, *, source: str | None, recipe: Recipe | None, timeout: float) -> Builder:
    """`builder up`: claimed while it runs, so the same command run again after a kill -9 replaces the
    half-made builder; once it ends (ready, or failed for the operator to read) the builder is the operator's."""
    take_over(ctx)
    write_claim(ctx, "builder up")
    try:
        builder = _up(ctx, source=source, recipe=recipe, timeout=timeout)
    except (Interrupted, KeyboardInterrupt):
        raise  # unfinished: the claim stays, and a rerun replaces what is left
    except BaseException:
        forget_claim(ctx)
        raise
    forget_claim(ctx)
    return builder


def _up(ctx: EngineContext, *, source: str | None, recipe: Recipe | None, timeout: float) -> Builder:
    existing = ctx.provider.get_builder()
    if existing is not None:
        raise UsageError(f"the builder of {ctx.app} is up already ({existing.name}, {existing.status.value})",
                         hint="bake it with `releasectl bake VERSION`, or remove it with `releasectl builder down`")
    image_id = source_image(ctx, source)
    quota.preflight(ctx.provider, what=f"builder up for {ctx.app}", servers=1)
    origin = f"image {image_id}" if image_id else "the base"
    ctx.event("builder", f"bringing the builder up from {origin}" + (f" with recipe {recipe.name}" if recipe else ""))
    builder = ctx.provider.builder_up(BuilderSpec(source_image_id=image_id, recipe=recipe, timeout=timeout))
    ctx.event("builder", f"builder {builder.name} is {builder.status.value}")
    return builder


def builder_down(ctx: EngineContext) -> bool:
    removed = ctx.provider.builder_down()
    ctx.event("builder", "removed the builder" if removed else "no builder was up")
    return removed


def check_builder(ctx: EngineContext, builder: Builder) -> list[CheckResult]:
    """The stage smoke checks against the builder's app, when the builder runs one (a server); a folder
    builder runs none, and its image meets the checks at `stage`."""
    if builder.address is None or not ctx.stage_checks:
        return []
    as_server = Server(id=builder.id, name=builder.name, app=ctx.app, version="", env="", role=None, release_id="",
                       status=ServerStatus.ACTIVE, address=builder.address, port=builder.port)
    results = []
    for check in ctx.stage_checks:
        result = evaluate(check, ctx.provider.probe(as_server, check.path, max(ctx.health.timeout, check.max_latency or 0) + 1))
        results.append(result)
        ctx.event("check", f"builder {check.path}: {'pass' if result.passed else 'FAIL'} ({result.detail})")
    failed = [r for r in results if not r.passed]
    if failed:
        raise SmokeCheckFailed(f"{len(failed)} of {len(results)} smoke checks failed on the builder: "
                               + "; ".join(f"{r.check.path}: {r.detail}" for r in failed))
    return results


@dataclass(frozen=True)
class RecipeBake:
    image: Image
    builder: Builder
    checks: list[CheckResult]


def bake_with_recipe(ctx: EngineContext, version: str, recipe: Recipe, *, source: str | None, timeout: float,
                     force: bool = False, live: bool = False) -> RecipeBake:
    """Builder up from the last image (or `source`), the recipe, smoke checks on the builder, snapshot, builder
    down: the builder is removed whatever happens after it came up."""
    check_bakeable(ctx, version, force=force)  # before anything boots: a baked version is refused at once
    take_over(ctx)
    existing = ctx.provider.get_builder()
    if existing is not None:  # never take down a builder this command did not bring up
        raise UsageError(f"the builder of {ctx.app} is up already ({existing.name}, {existing.status.value})",
                         hint=f"bake it with `releasectl bake {version}` (no --recipe), or `releasectl builder down` first")
    write_claim(ctx, f"bake {version} --recipe")
    try:
        builder = _up(ctx, source=source, recipe=recipe, timeout=timeout)
        checks = check_builder(ctx, builder)
        image = bake(ctx, version, force=force, live=live)
    finally:
        try:
            builder_down(ctx)
            forget_claim(ctx)
        except ReleasectlError as exc:  # the image (or the first error) matters more; say what is left
            ctx.event("builder", f"could not remove the builder: {exc} (run `releasectl builder down`, or "
                                 "`releasectl bake --recipe` again)")
    return RecipeBake(image, builder, checks)


# ---- who is making the builder: `builder up` and `bake --recipe` claim it, so a rerun after a kill -9 can
# take down what the dead command left half-made -------------------------------------------------------------

CLAIM = "builder/claim"  # a record of the environment: the actor and command making the builder right now


def write_claim(ctx: EngineContext, command: str) -> None:
    """Written before the builder comes up; deleted when the command ends (`bake --recipe`: once the builder
    is down again). While it exists, the builder (or the one being made) belongs to that command, and to
    whichever command runs next once its process is gone. Best effort: without a record store (a cloud with
    no object storage) the builder is made unclaimed, and a rerun refuses it as one made by hand."""
    try:
        ctx.provider.write_record(CLAIM, json.dumps({**ctx.actor, "command": command, "at": ctx.clock.time()}))
    except ReleasectlError as exc:
        ctx.event("builder", f"could not record who makes the builder ({exc}); if this command is killed, "
                             "`releasectl builder down` removes what it leaves")


def take_over(ctx: EngineContext) -> None:
    """Before bringing the builder up: refuse (exit 2) while another command is making it; remove the builder
    a command that died (kill -9) left half-made, and its claim. A builder without a claim is the operator's
    and is left alone."""
    claim = read_claim(ctx)
    if claim is None:
        return
    if not claim_dead(claim):
        raise UsageError(f"`{claim.get('command')}` by {_who(claim)} is making the builder of {ctx.app}",
                         hint="wait for it to finish")
    existing = ctx.provider.get_builder()
    if existing is not None:
        ctx.event("builder", f"removing the builder {existing.name} ({existing.status.value}) left by an interrupted "
                             f"`{claim.get('command')}` ({_who(claim)}, gone)")
        builder_down(ctx)
    forget_claim(ctx)


def read_claim(ctx: EngineContext) -> dict | None:
    """The claim, or None; unreadable or unreachable is None (a builder is then refused, never taken down)."""
    try:
        claim = json.loads(ctx.provider.read_record(CLAIM) or "null")
    except (ReleasectlError, ValueError):
        return None
    return claim if isinstance(claim, dict) else None


def forget_claim(ctx: EngineContext) -> None:
    try:
        ctx.provider.delete_record(CLAIM)
    except ReleasectlError as exc:  # left, it lets the next builder command replace this builder
        ctx.event("builder", f"could not remove the builder's claim ({exc}): the next `builder up` or `bake "
                             "--recipe` will take this builder down as one left half-made")


def claim_dead(claim: dict) -> bool:
    """The claiming process is gone: it ran on this host and no process has its pid. On another host we
    cannot tell, so it counts as alive (the operator removes the builder with `builder down`)."""
    pid = str(claim.get("pid", ""))
    if claim.get("host") != this_host() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():  # an earlier command of this process (the API, tests in process): over
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's live process
        return False
    return False


def _who(claim: dict) -> str:
    return f"{claim.get('user', '?')}@{claim.get('host', '?')} (pid {claim.get('pid', '?')})"

