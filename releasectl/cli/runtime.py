"""Turn global options and releasectl.yaml into an EngineContext: settings, provider, progress, signals."""

from __future__ import annotations

import getpass
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from releasectl.cli.render import ProgressPrinter
from releasectl.config import CONTROL_CHARACTERS, Settings, duration, load_settings
from releasectl.engine.context import EngineContext, StopToken
from releasectl.engine.events import Event, EventSink
from releasectl.errors import ConfigError
from releasectl.logs import Logger
from releasectl.providers import load as load_provider
from releasectl.providers.base import Provider, ProviderContext, this_host
from releasectl.wait import RealClock

CI_JOB_VARIABLES = ("RELEASECTL_JOB_ID", "CI_JOB_ID", "GITHUB_RUN_ID", "BUILDKITE_JOB_ID", "BUILD_TAG", "ZUUL_BUILD")


@dataclass
class Globals:
    """The global options every command takes, and its progress printer."""

    config: Path | None = None
    env: str | None = None
    output: str = "table"
    verbose: bool = False
    state_dir: Path | None = None
    os_cloud: str | None = None  # --os-cloud: the openstack provider's cloud, over OS_CLOUD and openstack.cloud
    printer: ProgressPrinter = field(default_factory=ProgressPrinter)


def actor() -> dict[str, str]:
    """Who runs this: recorded on the lock and on each release, for `status` and `history`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    job = next((f"{name}={os.environ[name]}" for name in CI_JOB_VARIABLES if os.environ.get(name)), "")
    return {"host": this_host(), "user": user, "pid": str(os.getpid()), "ci_job": job}


def provider_options(s: Settings, os_cloud: str | None = None) -> dict:
    """releasectl.yaml's provider section, plus --os-cloud (`os_cloud`) for the openstack provider."""
    options = dict(s.provider_options)
    if s.provider == "openstack" and os_cloud:
        options["os_cloud"] = os_cloud
    return options


REGION_VARIABLE = "RELEASECTL_REGION"


def settings(g: Globals) -> Settings:
    """The chosen environment's settings; with `regions:` and $RELEASECTL_REGION, those of that one region."""
    s = load_settings(g.config, g.env, g.state_dir)
    region = os.environ.get(REGION_VARIABLE)
    return s.for_region(region) if s.regions and region else s


LOCK_TTL_VARIABLE = "RELEASECTL_LOCK_TTL"
_lock_ttl = duration(1.0, 3600.0)


def lock_ttl() -> float:
    """$RELEASECTL_LOCK_TTL (seconds, or a duration like 30s), 1 s to 1 h; default 30 s."""
    raw = os.environ.get(LOCK_TTL_VARIABLE, "30")
    try:
        value: float | str = float(raw)
    except ValueError:
        value = raw
    try:
        return _lock_ttl(value)
    except ValueError as exc:
        raise ConfigError(f"${LOCK_TTL_VARIABLE}: {exc}", hint="unset it, or set it to seconds like 30") from None


def unwritable_folder(folder: Path) -> str | None:
    """Why `folder` cannot be created or written (checked on its nearest existing ancestor), or None."""
    probe = folder
    try:
        while not probe.exists() and probe != probe.parent:
            if probe.is_symlink():
                return f"{probe} is a broken symbolic link"
            probe = probe.parent
        if not probe.is_dir():
            return "is not a folder" if probe == folder else f"cannot be created: {probe} is not a folder"
        if not os.access(probe, os.W_OK | os.X_OK):
            return "is not writable" if probe == folder else f"cannot be created: {probe} is not writable"
    except OSError as exc:  # a name too long, a loop of links
        return str(exc.strerror or exc)
    return None


def check_state_dir(state_dir: Path) -> None:
    """Refuse, before anything is created, a state folder that cannot be made or written, or whose path
    has control characters (it is written into the local LB's haproxy.cfg, one setting a line)."""
    if CONTROL_CHARACTERS.search(str(state_dir)):
        raise ConfigError(f"state folder {str(state_dir)!r}: the path has control characters (newline, tab, ...)",
                          hint="use another folder (state_dir or --state-dir)")
    problem = unwritable_folder(state_dir)
    if problem:
        raise ConfigError(f"state folder {state_dir} {problem}", hint="set state_dir, or pass --state-dir PATH")


def engine_context(
    g: Globals,
    s: Settings | None = None,
    *,
    pipeline_name: str | None = None,
    writes: bool = True,
    stop_at_once: bool = False,
    stop: StopToken | None = None,
    notify: bool = True,
) -> EngineContext:
    """Settings, arguments and environment are all validated here, before the provider exists.
    `notify` False: no `notify:` webhooks for this context (a wave's regions: the wave sends one summary).

    `stop_at_once`: the first SIGINT/SIGTERM interrupts right where the command is (bake: it has no safe
    point to wait for; its cleanup removes the partial image), instead of at the engine's next safe point."""
    s = s or settings(g)
    installed = stop is not None  # given: another context of this command already installed the handlers for it
    stop = stop or StopToken()
    ctx = context_for(s, emit=g.printer, stop=stop, pipeline_name=pipeline_name, writes=writes, verbose=g.verbose,
                      os_cloud=g.os_cloud)
    if not installed:
        _install_signal_handlers(stop, at_once=stop_at_once)
    if writes and notify:  # webhooks only once everything was validated: a refused command notifies nobody
        ctx.emit = _event_sink(g, s)
    return ctx


def context_for(
    s: Settings,
    *,
    emit: EventSink,
    stop: StopToken | None = None,
    pipeline_name: str | None = None,
    writes: bool = True,
    verbose: bool = False,
    provider: Provider | None = None,
    os_cloud: str | None = None,
) -> EngineContext:
    """The EngineContext of validated settings, without signal handlers or printing: the CLI and the Python
    API (releasectl/api.py) both build theirs here. `provider`: an already built one (tests, the API);
    `os_cloud`: --os-cloud, the openstack provider's cloud over OS_CLOUD and openstack.cloud."""
    if s.regions:  # commands that know regions bind a region first (Settings.for_region)
        raise ConfigError(f"environment {s.env} lists regions ({', '.join(s.region_names())}): this command acts on one region",
                          hint=f"set {REGION_VARIABLE} to one of them; rollout, promote, abort, status and history act on all")
    ttl = lock_ttl()
    if writes:
        check_state_dir(s.state_dir)
    stop = stop or StopToken()
    if provider is None:
        pctx = ProviderContext(
            app=s.app,
            env=s.env,
            config_dir=s.config_dir,
            state_dir=s.state_dir,
            health=s.health,
            app_port=s.app_port,
            options=provider_options(s, os_cloud),
            verbose=verbose,
        )
        provider = load_provider(s.provider, pctx)
    return EngineContext(
        provider=provider,
        app=s.app,
        env=s.env,
        image_name=s.image_name,
        count=s.rollout.count,
        health=s.health,
        pipeline_name=pipeline_name or s.rollout.pipeline,
        progress_deadline=s.rollout.progress_deadline,
        drain_timeout=s.rollout.drain_timeout,
        weight_tolerance=s.rollout.weight_tolerance,
        stage_checks=s.stage.checks,
        stage_timeout=s.stage.timeout,
        image_keep=s.image_keep,
        clock=RealClock(stop_check=stop.check),
        emit=emit,
        stop=stop,
        actor=actor(),
        lock_ttl=ttl,
    )


def client(g: Globals, s: Settings | None = None):
    """The Python API's Client (releasectl/api.py) as the CLI runs it: the global options' settings, signal
    handlers, the progress printer and, for commands that change things, the `notify:` webhooks. Its `track`
    (`with reporting_release() as client.track:`) is handed every context it makes, so an error carries the
    release it was about (cli/release_json.py)."""
    from releasectl.api import Client

    class CliClient(Client):
        track = None

        def context(self, *, pipeline_name=None, writes=True, stop=None, stop_at_once=False, on_event=None) -> EngineContext:
            ectx = engine_context(g, self.settings, pipeline_name=pipeline_name, writes=writes, stop_at_once=stop_at_once)
            return self.track(ectx) if self.track is not None else ectx

    return CliClient(settings=s or settings(g), verbose=g.verbose, os_cloud=g.os_cloud)


_notifications: list = []  # this command's ReleaseNotifications, finished by finish_notifications


def _event_sink(g: Globals, s: Settings) -> EventSink:
    """The progress printer, plus the webhooks of `notify:` when there are any (imported only then)."""
    if not s.notify.webhooks:
        return g.printer
    from releasectl.notify import ReleaseNotifications

    notifications = ReleaseNotifications(s.app, s.env, s.notify.webhooks)
    _notifications.append(notifications)

    def both(event: Event) -> None:
        g.printer(event)
        notifications(event)

    return both


def note_release(data: dict) -> None:
    """The release a command hands back (its JSON `release`), for the last notification."""
    release = data.get("release")
    for notifications in _notifications:
        notifications.release = release if isinstance(release, dict) else None


def finish_notifications(exit_code: int) -> None:
    """At the end of a command: send its outcome and wait for delivery at most a webhook's timeout, once."""
    try:
        while _notifications:
            _notifications.pop(0).finish(exit_code)
    except KeyboardInterrupt:  # a second Ctrl-C while waiting: stop waiting, keep the exit code
        _notifications.clear()


def _install_signal_handlers(stop: StopToken, *, at_once: bool = False) -> None:
    """SIGINT/SIGTERM ask the engine to stop at its next safe point; a second one (or, with at_once, the
    first) stops at once."""
    if sys.platform == "win32":
        return

    def handler(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if stop.is_set or at_once:
            stop.set(name)
            raise KeyboardInterrupt(name)
        Logger("releasectl").warning("%s received: stopping at the next safe point", name)
        stop.set(name)

    try:
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. in-process test runners)
        pass


def keyring_problem() -> str | None:
    """Why the OS keyring cannot hold a secret here (no usable backend), or None. `login` asks this
    before prompting, so nobody types a secret that cannot be stored."""
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
    except Exception as exc:  # a broken keyring install is "no keyring", not a crash
        return f"the OS keyring is not usable here ({type(exc).__name__})"
    try:
        priority = float(backend.priority)
    except Exception:  # a backend that does not rate itself (tests' in-memory one) is taken as usable
        priority = 1.0
    if isinstance(backend, fail.Keyring) or priority <= 0:
        return f"no usable OS keyring backend here ({type(backend).__name__})"
    return None
