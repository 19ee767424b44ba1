"""The Python API: the CLI's release and image commands, callable from a script, returning the typed objects
their JSON shows.

    from releasectl import api

    client = api.Client("releasectl.yaml", on_event=print)
    client.bake("1.4.0")
    handle = client.rollout("1.4.0", wait=False)   # runs in a thread; handle.done(), handle.wait(60)
    release = handle.result()                       # an api.ReleaseInfo, or the error the CLI would exit with

Every result is a dataclass with `to_dict()` (exactly the CLI's `--output json` document, minus the envelope)
and `to_json()`. Every error is one of releasectl.errors, carrying `exit_code` (the CLI's exit code for it)
and `error_code` (its JSON `code`). The CLI (releasectl/cli/app.py) is a thin layer over this module.

The environment (`env_plan`, `env_up`, `env_down`), the builder from code (`builder_up`, `builder_down`,
`builder_status`), the project's `quota` and one release's story (`release_story`, `history show`) are here
too; `bake --recipe` and `status --watch` are CLI-only.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar

from releasectl.engine.events import Event, EventSink
from releasectl.engine.status import StatusView
from releasectl.errors import ReleasectlError, UsageError, WaitTimeout
from releasectl.timefmt import rfc3339, rfc3339_or_dash

if TYPE_CHECKING:  # the rest is imported by the call that needs it: a command loads only its own engine parts
    from releasectl.api_results import (BuilderInfo, EnvInfo, GcReport, IntentInfo, PruneReport, QuotaInfo,
                                        ReleaseStory, StageReport)
    from releasectl.config import Settings
    from releasectl.engine.context import EngineContext, StopToken
    from releasectl.engine.model import Pipeline, Release
    from releasectl.providers.base import Builder, Image, Provider, Quota

__all__ = [
    "Client", "Handle", "Event", "ImageInfo", "ReleaseInfo", "IntentInfo", "StageReport", "CheckInfo", "Status",
    "HistoryEntry", "ReleaseStory", "TimelineEvent", "PruneReport", "GcReport", "EnvInfo", "BuilderInfo", "QuotaInfo", "check_version", "bake",
    "stage", "rollout", "promote", "abort", "pause", "rollback", "status", "history", "release_story", "images", "prune", "down",
    "gc", "env_plan", "env_up", "env_down", "builder_up", "builder_down", "builder_status", "quota",
]

T = TypeVar("T")
MAX_VERSION_LENGTH = 64


def check_version(version: str) -> None:
    """A version argument: strict semver of at most 64 characters (it becomes part of image names)."""
    from releasectl.engine.versions import parse_version

    if len(version) > MAX_VERSION_LENGTH:
        raise UsageError(f"a version has at most {MAX_VERSION_LENGTH} characters, got {len(version)}")
    parse_version(version)


def with_exit_code(exc: ReleasectlError) -> ReleasectlError:
    """Attach the CLI's exit code and JSON error code to an error (cli/exitcodes.py stays the one table)."""
    from releasectl.cli.exitcodes import classify

    code, name = classify(exc)
    exc.exit_code = int(code)  # type: ignore[attr-defined]
    exc.error_code = name  # type: ignore[attr-defined]
    return exc


# ---- typed results --------------------------------------------------------------------------------------


class _Json:
    """`to_dict()`: the command's JSON document (without schema_version, exit_code, errors); `to_json()`."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)


@dataclass(frozen=True)
class ImageInfo(_Json):
    """One row of `images`: an image and its status in this environment."""

    version: str
    name: str
    id: str
    status: str  # pending | baked | live | previous | failed | rolled back | released | damaged
    size: int | None
    sha256: str | None
    created_at: str | None  # RFC 3339 UTC; None when the cloud does not say
    source: str
    protected: bool
    labels: dict[str, str]

    @classmethod
    def of(cls, image: "Image", status: str) -> "ImageInfo":
        return cls(version=image.version, name=image.name, id=image.id, status=status, size=image.size,
                   sha256=image.checksum, created_at=rfc3339(image.created_at or None), source=image.source,
                   protected=image.protected, labels=dict(image.labels))


@dataclass(frozen=True)
class ReleaseInfo(_Json):
    """The `release` object of rollout, promote, abort, pause, rollback, status, history and watch's JSON:
    engine/status.py's `release_summary` with RFC 3339 UTC times (None while unset)."""

    id: str
    kind: str  # rollout | rollback
    app: str
    environment: str
    version: str
    from_version: str | None
    previous_version: str | None
    pipeline: str
    state: str  # progressing | paused | rolling_back | succeeded | failed | aborted | interrupted
    step: int
    steps: int
    step_description: str
    reason: str
    failure: str | None
    failing_member: str | None  # name of the server it failed on (engine data, not parsed from `failure`)
    failing_member_id: str | None
    analysis: dict[str, Any] | None  # a failed analysis's figures: error rates, requests, threshold, member
    started_at: str | None
    ended_at: str | None
    actor: dict[str, str]

    @classmethod
    def of_summary(cls, summary: dict[str, Any]) -> "ReleaseInfo":
        """The one place the `release` object is built (cli/views.py: release_json uses it too)."""
        return cls(**{**summary, "started_at": rfc3339(summary["started_at"] or None),
                      "ended_at": rfc3339(summary["ended_at"])})

    @classmethod
    def of(cls, rel: "Release", state: str | None = None) -> "ReleaseInfo":
        from releasectl.engine.status import release_summary

        return cls.of_summary(release_summary(rel, state))


HistoryEntry = ReleaseInfo  # a row of `history`: the same release object, its state as seen from outside


# The results of the rarer commands (history show, promote/abort/pause to a live runner, stage, prune, gc,
# env, builder, quota) live in releasectl/api_results.py, imported on first use: creating a dataclass costs
# start-up CPU that `status` and `images` need not pay. `api.StageReport` etc. still work (__getattr__ below).
_RESULTS = ("TimelineEvent", "ReleaseStory", "IntentInfo", "CheckInfo", "StageReport", "PruneReport", "GcReport", "EnvInfo",
            "BuilderInfo", "QuotaInfo")


def __getattr__(name: str) -> Any:
    if name in _RESULTS:
        from releasectl import api_results

        return getattr(api_results, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class Status(StatusView, _Json):
    """`status`: the engine's StatusView (members, servers, release, lock, warm, damaged, lb) with to_json()."""

    def to_dict(self) -> dict[str, Any]:
        data = StatusView.to_dict(self)
        if self.release:
            data["release"] = ReleaseInfo.of_summary(self.release).to_dict()
        return data


# ---- the non-blocking form ------------------------------------------------------------------------------


class Handle(Generic[T]):
    """A call running in a thread (`wait=False`): `done()`, `wait(timeout)`, `result(timeout)`, `cancel()`.

    `cancel()` asks the engine to stop at its next safe point, as Ctrl-C does: a release stops resumable."""

    def __init__(self, work: Callable[[], T], stop: "StopToken", what: str) -> None:
        self._stop = stop
        self._value: T | None = None
        self._error: BaseException | None = None
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(work,), name=f"releasectl-{what}", daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], T]) -> None:
        try:
            self._value = work()
        except BaseException as exc:  # handed to result(), never lost in the thread
            self._error = exc
        finally:
            self._finished.set()

    def done(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the call finished (True) or `timeout` seconds passed (False)."""
        return self._finished.wait(timeout)

    def result(self, timeout: float | None = None) -> T:
        """The call's result, or its error raised here; WaitTimeout when it is still running after `timeout`."""
        if not self._finished.wait(timeout):
            raise with_exit_code(WaitTimeout(f"still running after {timeout} s", hint="call result() again, or cancel()"))
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def cancel(self) -> None:
        self._stop.set("cancel")


# ---- the client -----------------------------------------------------------------------------------------


class Client:
    """One app and environment of a releasectl.yaml (or given Settings), as the CLI's global options pick.

    `provider`: "local" or "openstack" to override the config's, or a built Provider (tests). `on_event`:
    called with every progress Event (kind, message, at, data), from the thread that runs the call.
    `os_cloud`: the clouds.yaml cloud (openstack), as --os-cloud: over OS_CLOUD and openstack.cloud."""

    def __init__(
        self,
        config_path: str | Path | None = None,
        *,
        env: str | None = None,
        state_dir: str | Path | None = None,
        settings: "Settings | None" = None,
        provider: "str | Provider | None" = None,
        on_event: EventSink | None = None,
        verbose: bool = False,
        os_cloud: str | None = None,
    ) -> None:
        if settings is None:
            from releasectl.config import load_settings

            try:
                settings = load_settings(Path(config_path) if config_path else None, env,
                                         Path(state_dir) if state_dir else None)
            except ReleasectlError as exc:
                raise with_exit_code(exc) from None
        self._provider: Provider | None = None
        if isinstance(provider, str):
            import dataclasses

            settings = dataclasses.replace(settings, provider=provider)
        elif provider is not None:
            self._provider = provider
        self.settings = settings
        self.on_event = on_event
        self.verbose = verbose
        self.os_cloud = os_cloud

    # -- plumbing --

    def context(self, *, pipeline_name: str | None = None, writes: bool = True, stop: "StopToken | None" = None,
                stop_at_once: bool = False, on_event: EventSink | None = None) -> "EngineContext":
        """The engine's context for one call (the CLI's client overrides this: signals, printer, webhooks)."""
        from releasectl.cli.runtime import context_for

        sinks = [s for s in (self.on_event, on_event) if s is not None]

        def emit(event: Event) -> None:
            for sink in sinks:
                sink(event)

        return context_for(self.settings, emit=emit, stop=stop, pipeline_name=pipeline_name, writes=writes,
                           verbose=self.verbose, provider=self._provider, os_cloud=self.os_cloud)

    def _call(self, what: str, work: Callable[["EngineContext"], T], *, wait: bool = True, writes: bool = True,
              pipeline_name: str | None = None, stop_at_once: bool = False, on_event: EventSink | None = None) -> Any:
        """Run `work(ctx)` here (wait=True) or in a thread (a Handle); errors carry their exit code."""
        from releasectl.engine.context import StopToken

        stop = StopToken()
        try:
            ctx = self.context(pipeline_name=pipeline_name, writes=writes, stop=stop, stop_at_once=stop_at_once,
                               on_event=on_event)
        except ReleasectlError as exc:
            raise with_exit_code(exc) from None

        def run() -> T:
            try:
                return work(ctx)
            except ReleasectlError as exc:
                raise with_exit_code(exc)

        return run() if wait else Handle(run, stop, what)

    # -- images --

    def bake(self, version: str, *, force: bool = False, live: bool = False, wait: bool = True,
             on_event: EventSink | None = None) -> ImageInfo:
        """Snapshot the builder into a version-named image (`live`: while it runs, no stop and start around it)."""
        from releasectl.engine.images import bake, describe_status

        _checked(version)

        def work(ctx: "EngineContext") -> ImageInfo:
            image = bake(ctx, version, force=force, live=live)
            return ImageInfo.of(image, describe_status(image, ctx.env))

        return self._call("bake", work, wait=wait, stop_at_once=True, on_event=on_event)

    def images(self) -> list[ImageInfo]:
        """Images, newest version first."""
        from releasectl.engine.images import list_images

        return self._call("images", lambda ctx: [ImageInfo.of(r.image, r.status) for r in list_images(ctx)], writes=False)

    def prune(self, keep: int | None = None, *, dry_run: bool = False, on_event: EventSink | None = None) -> PruneReport:
        """Delete all but the newest `keep` images (default image.keep); never a live or previous one."""
        from releasectl.api_results import PruneReport
        from releasectl.engine.images import prune

        keep = self.settings.image_keep if keep is None else keep
        if not 1 <= keep <= 1000:
            raise with_exit_code(UsageError(f"--keep must be from 1 to 1000, got {keep}", hint="or set image.keep in releasectl.yaml"))

        def work(ctx: "EngineContext") -> PruneReport:
            result = prune(ctx, keep, dry_run=dry_run)
            return PruneReport(dry_run=result.dry_run, deleted=[i.name for i in result.deleted],
                               kept=[{"name": i.name, "reason": why} for i, why in result.kept])

        return self._call("prune", work, on_event=on_event)

    def stage(self, version: str, *, keep: bool = False, wait: bool = True, on_event: EventSink | None = None) -> StageReport:
        """Boot one instance of the image out of the pool and run the smoke checks. A failed check raises
        SmokeCheckFailed (exit 1) whose `report` is the StageReport."""
        from releasectl.api_results import StageReport
        from releasectl.engine.stage import stage
        from releasectl.errors import SmokeCheckFailed

        _checked(version)

        def work(ctx: "EngineContext") -> StageReport:
            try:
                return StageReport.of(stage(ctx, version, keep=keep))
            except SmokeCheckFailed as exc:
                staged = getattr(exc, "result", None)
                exc.report = StageReport.of(staged) if staged is not None else None  # type: ignore[attr-defined]
                raise

        return self._call("stage", work, wait=wait, on_event=on_event)

    # -- releases --

    def rollout(self, version: str | None = None, *, pipeline: "str | Pipeline | None" = None, resume: bool = False,
                wait: bool = True, on_event: EventSink | None = None) -> ReleaseInfo:
        """Boot the new version, shift traffic step by step, watch health, retire the old fleet. `pipeline`: a
        name, a YAML path or a Pipeline (default: the config's). A failure rolls back and raises ReleaseFailed
        (exit 1); a manual gate raises PausedAtGate (exit 4)."""
        from releasectl.engine.model import Pipeline
        from releasectl.engine.release import rollout

        if version is not None:
            _checked(version)
        chosen = pipeline if isinstance(pipeline, Pipeline) else self.pipeline(pipeline)
        return self._call("rollout", lambda ctx: ReleaseInfo.of(rollout(ctx, version, chosen, resume=resume)),
                          wait=wait, pipeline_name=chosen.name, on_event=on_event)

    def pipeline(self, name: str | None = None) -> "Pipeline":
        """The pipeline a rollout follows: `name` (a built-in name or a YAML path), else the config's."""
        from releasectl.config import load_pipeline

        s = self.settings
        try:
            return load_pipeline(name or s.rollout.pipeline, s.config_dir, max_count=s.rollout.max_count)
        except ReleasectlError as exc:
            raise with_exit_code(exc) from None

    def promote(self, *, full: bool = False, runner_wait: float | None = None, wait: bool = True,
                on_event: EventSink | None = None) -> "ReleaseInfo | IntentInfo":
        """Continue past a manual gate (`full`: skip the remaining steps). While another process runs the
        release, hand it the intent (IntentInfo); `runner_wait` seconds: wait for that runner's outcome."""
        return self._intent_verb("promote_full" if full else "promote", runner_wait, wait, on_event,
                                 lambda verbs, ctx: verbs.promote(ctx, full=full, wait=runner_wait))

    def abort(self, *, runner_wait: float | None = None, wait: bool = True, on_event: EventSink | None = None) -> "ReleaseInfo | IntentInfo":
        """Roll back the release that is running, interrupted or paused (here, or by intent to its runner)."""
        return self._intent_verb("abort", runner_wait, wait, on_event, lambda verbs, ctx: verbs.abort(ctx, wait=runner_wait))

    def pause(self, *, runner_wait: float | None = None, wait: bool = True, on_event: EventSink | None = None) -> "ReleaseInfo | IntentInfo":
        """Stop the running release where it is until `promote` (raises PausedAtGate, exit 4, when done here)."""
        return self._intent_verb("pause", runner_wait, wait, on_event, lambda verbs, ctx: verbs.pause(ctx, wait=runner_wait))

    def _intent_verb(self, kind: str, runner_wait: float | None, wait: bool, on_event: EventSink | None,
                     verb: Callable[[Any, "EngineContext"], Any]) -> Any:
        """`promote`, `abort`, `pause`: without `runner_wait`, a live runner is handed the intent before the
        engine's verbs (and the decision code they import) are loaded, so the call returns at once; otherwise
        the engine verb runs (it hands the intent over itself when a runner appeared meanwhile)."""

        def work(ctx: "EngineContext") -> "ReleaseInfo | IntentInfo":
            from releasectl.engine import intents

            result = intents.hand_to_runner(ctx, intents.IntentKind(kind)) if runner_wait is None else None
            if result is None:
                from releasectl.engine import release as verbs

                result = verb(verbs, ctx)
            return release_or_intent(result)

        return self._call(kind.split("_")[0], work, wait=wait, on_event=on_event)

    def rollback(self, to: str | None = None, *, wait: bool = True, on_event: EventSink | None = None) -> ReleaseInfo:
        """Return traffic to the last known-good version (or `to`)."""
        from releasectl.engine.release import rollback

        if to is not None:
            _checked(to)
        return self._call("rollback", lambda ctx: ReleaseInfo.of(rollback(ctx, to)), wait=wait, on_event=on_event)

    def down(self, *, on_event: EventSink | None = None) -> list[str]:
        """Stop the environment's servers and its local load balancer (images stay): the names stopped."""
        from releasectl.engine.release import down

        return self._call("down", down, on_event=on_event)

    def gc(self, *, dry_run: bool = False, on_event: EventSink | None = None) -> GcReport:
        """Remove tagged servers, members and images that no live, warm, staged or running release owns."""
        from releasectl.api_results import GcReport
        from releasectl.engine.release import gc

        def work(ctx: "EngineContext") -> GcReport:
            r = gc(ctx, dry_run=dry_run)
            return GcReport(dry_run=r.dry_run, members=r.removed_members, servers=r.deleted_servers,
                            images=r.deleted_images, spared=r.spared)

        return self._call("gc", work, on_event=on_event)

    # -- the environment and the builder from code --

    def _env_spec(self) -> Any:
        """The `env:` section (the local provider needs none: its environment has no settings)."""
        from releasectl.errors import ConfigError
        from releasectl.providers.base import EnvSpec

        s = self.settings
        if s.env_spec is not None:
            return s.env_spec
        if s.provider == "local":
            return EnvSpec(network="")
        raise with_exit_code(ConfigError(f"{s.path.name} has no env: section", hint="add `env: {network: {name: NAME, "
                                         "cidr: 10.20.0.0/24}}` (see README, \"From an empty OpenStack project\")"))

    def env_plan(self) -> EnvInfo:
        """What `env_up` would create or change, writing nothing."""
        from releasectl.api_results import EnvInfo
        from releasectl.engine.env import env_plan

        spec = self._env_spec()
        return self._call("env plan", lambda ctx: EnvInfo.of(env_plan(ctx, spec, self.settings.app_port)), writes=False)

    def env_up(self, *, on_event: EventSink | None = None) -> EnvInfo:
        """Create what is missing of the `env:` section and update what differs; a second call changes nothing."""
        from releasectl.api_results import EnvInfo
        from releasectl.engine.env import env_up

        spec = self._env_spec()
        return self._call("env up", lambda ctx: EnvInfo.of(env_up(ctx, spec, self.settings.app_port)), on_event=on_event)

    def env_down(self, *, force: bool = False, on_event: EventSink | None = None) -> EnvInfo:
        """Delete what `env_up` created, in dependency order; refused while servers are there unless `force`,
        which retires them first (as `down`)."""
        from releasectl.api_results import EnvInfo
        from releasectl.engine.env import env_down
        from releasectl.engine.release import down

        spec = self._env_spec()
        return self._call("env down", lambda ctx: EnvInfo.of(env_down(ctx, spec, force=force, retire=down)),
                          on_event=on_event)

    def builder_up(self, *, source: str | None = None, recipe: "str | Path | None" = None, timeout: float = 600.0,
                   on_event: EventSink | None = None) -> BuilderInfo:
        """Bring the builder up (never in the pool) from `source` (a version, an image, or "base"; default the
        last image) and apply `recipe` (a shell script or #cloud-config file), waiting `timeout` seconds at most."""
        from releasectl.api_results import BuilderInfo
        from releasectl.engine.builder import builder_up, load_recipe

        try:
            loaded = load_recipe(Path(recipe)) if recipe is not None else None  # before anything is created
        except ReleasectlError as exc:
            raise with_exit_code(exc) from None
        return self._call("builder up", lambda ctx: BuilderInfo.of(builder_up(ctx, source=source, recipe=loaded,
                                                                              timeout=timeout)),
                          stop_at_once=True, on_event=on_event)

    def builder_down(self, *, on_event: EventSink | None = None) -> bool:
        """Remove the builder `builder_up` made (nothing else): True when there was one."""
        from releasectl.engine.builder import builder_down

        return self._call("builder down", builder_down, on_event=on_event)

    def builder_status(self) -> BuilderInfo | None:
        """The builder from code, or None when none is up."""
        from releasectl.api_results import BuilderInfo

        def work(ctx: "EngineContext") -> BuilderInfo | None:
            builder = ctx.provider.get_builder()
            return BuilderInfo.of(builder) if builder is not None else None

        return self._call("builder status", work, writes=False)

    def quota(self) -> QuotaInfo:
        """The project's limits, usage and headroom (read-only), as the preflight of env up, builder up and
        rollout reads them."""
        from releasectl.api_results import QuotaInfo

        return self._call("quota", lambda ctx: QuotaInfo.of(ctx.provider.quota()), writes=False)

    # -- views --

    def status(self) -> Status:
        """Members, versions, weights, health, the release in progress, the lock, the LB."""
        from releasectl.engine.status import status

        return self._call("status", lambda ctx: Status(**vars(status(ctx))), writes=False)

    def history(self) -> list[HistoryEntry]:
        """Releases of this environment, newest first."""
        from releasectl.engine.status import history

        return self._call("history", lambda ctx: [ReleaseInfo.of_summary(row) for row in history(ctx)], writes=False)

    def release_story(self, ref: str = "latest") -> ReleaseStory:
        """One release (`ref`: "latest", an id, or a unique prefix of one) and its timeline: times, steps,
        weights, analysis figures, reasons and who acted."""
        from releasectl.api_results import ReleaseStory, TimelineEvent
        from releasectl.engine.status import release_story

        if "\x00" in ref or len(ref) > 64:
            raise with_exit_code(UsageError("ID must be a release id (at most 64 characters) or latest"))

        def work(ctx: "EngineContext") -> ReleaseStory:
            summary, entries = release_story(ctx, ref)
            return ReleaseStory(release=ReleaseInfo.of_summary(summary), events=[TimelineEvent.of(e) for e in entries])

        return self._call("history show", work, writes=False)


def _checked(version: str) -> None:
    try:
        check_version(version)
    except ReleasectlError as exc:
        raise with_exit_code(exc) from None


def release_or_intent(result: Any) -> "ReleaseInfo | IntentInfo":
    """The typed form of what the engine's promote, abort and pause return: a Release, or the Posted intent."""
    from releasectl.api_results import IntentInfo
    from releasectl.engine.intents import Posted

    return IntentInfo.of(result) if isinstance(result, Posted) else ReleaseInfo.of(result)


# ---- module-level functions: one Client per call -------------------------------------------------------


def _module_function(name: str) -> Callable[..., Any]:
    method = getattr(Client, name)

    def call(*args: Any, settings: "Settings | None" = None, config_path: str | Path | None = None,
             env: str | None = None, on_event: EventSink | None = None, **kwargs: Any) -> Any:
        return getattr(Client(config_path, env=env, settings=settings, on_event=on_event), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"Client(config_path, env=env, settings=settings, on_event=on_event).{name}(...): {method.__doc__}"
    return call


MODULE_FUNCTIONS = ("bake", "stage", "rollout", "promote", "abort", "pause", "rollback", "status", "history",
                    "release_story", "images",
                    "prune", "down", "gc", "env_plan", "env_up", "env_down", "builder_up", "builder_down",
                    "builder_status", "quota")
for _name in MODULE_FUNCTIONS:  # api.rollout("1.4.0", settings=s) and the like, listed in __all__
    globals()[_name] = _module_function(_name)
del _name
