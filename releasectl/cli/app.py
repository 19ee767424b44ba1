"""The typer commands. Each one parses its input, makes one engine call and renders the result."""

from __future__ import annotations

import copy
import functools
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

try:  # typer >= 0.26 vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # older typer uses click itself
    from click import ClickException  # type: ignore[no-redef]

from releasectl import __version__
from releasectl.cli import fastpath, views
from releasectl.cli.boundary import fail, finish, guarded, set_globals, wants_json
from releasectl.cli.exitcodes import ExitCode
from releasectl.cli.release_json import live_release, reporting_release
from releasectl.cli.render import Result
from releasectl.cli.runtime import Globals, client, engine_context
from releasectl.errors import ConfigError, UsageError
from releasectl.cli.lean_typer import install as _lean_typer

_lean_typer()

app = typer.Typer(
    name="releasectl",
    help="Blue-green and canary releases, and an image pipeline, for virtual-machine clouds.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
images_app = typer.Typer(help="List and prune baked images.", invoke_without_command=True, no_args_is_help=False)
config_app = typer.Typer(help="Validate and show releasectl.yaml.", no_args_is_help=True)
app.add_typer(images_app, name="images")
app.add_typer(config_app, name="config")
from releasectl.cli.history_cmd import history_app  # noqa: E402  (history and history show)

app.add_typer(history_app, name="history")
from releasectl.cli.builder_cmd import builder_app  # noqa: E402  (the builder from code)

app.add_typer(builder_app, name="builder")


def _globals(ctx: typer.Context) -> Globals:
    return ctx.ensure_object(Globals)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"releasectl {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option("--config", help="Path to releasectl.yaml (default: nearest one).")] = None,
    env: Annotated[Optional[str], typer.Option("--env", help="Environment from releasectl.yaml (e.g. staging).")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json (one JSON document on stdout).")] = "table",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs, provider requests and tracebacks.")] = False,
    state_dir: Annotated[Optional[Path], typer.Option("--state-dir", help="Local state folder (default .releasectl/ beside the config).")] = None,
    os_cloud: Annotated[Optional[str], typer.Option("--os-cloud", help="clouds.yaml cloud (openstack); beats OS_CLOUD and openstack.cloud.")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    set_globals(ctx.ensure_object(Globals), config=config, env=env, output=output, verbose=verbose, state_dir=state_dir,
                os_cloud=os_cloud)


def _check_version(version: str) -> None:
    """A version argument, checked before the config is read (releasectl/api.py: check_version)."""
    from releasectl.api import check_version

    check_version(version)


def _finish(ctx: typer.Context, result: Result) -> None:
    code = finish(_globals(ctx), result)
    if code:
        raise typer.Exit(code)


# ---- setup --------------------------------------------------------------------------------------------


@app.command()
def init(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Folder to set up (created if missing).")] = Path("."),
    provider: Annotated[str, typer.Option(help="local or openstack.")] = "local",
    app_name: Annotated[Optional[str], typer.Option("--app", help="App name (default: the folder's name, or demo for openstack).")] = None,
    cloud: Annotated[Optional[str], typer.Option(help="clouds.yaml entry (openstack).")] = None,
    port: Annotated[int, typer.Option(help="Load-balancer port of production (local; staging gets port+1).")] = 8080,
    force: Annotated[bool, typer.Option(help="Overwrite an existing releasectl.yaml.")] = False,
    offline: Annotated[bool, typer.Option(help="openstack: do not look at the cloud; write placeholders.")] = False,
) -> None:
    """Write a working releasectl.yaml (and for local, a sample app in app/). For openstack, look at the cloud
    (read-only) and choose its builder, flavor, network and pool, or write marked placeholders."""
    from releasectl.cli.scaffold import scaffold

    if "\x00" in str(directory):
        raise UsageError("DIRECTORY must be a path without NUL characters")

    done = scaffold(directory, provider=provider, app=app_name, cloud=cloud, port=port, force=force, look=not offline)
    _finish(ctx, views.init_result(directory, done))


@config_app.command("check")
def config_check(
    ctx: typer.Context,
    remote: Annotated[bool, typer.Option(help="openstack: also authenticate and check the named resources, the flavor against the images, and the quota.")] = False,
) -> None:
    """Validate releasectl.yaml, every environment and every pipeline it names; print the effective config
    (secrets masked), or every problem (up to 20), each as file:line: key.path: what is wrong. With --remote,
    also look at the cloud (read-only): exit 2 with one line per resource that is missing or does not fit."""
    from releasectl.config import MAX_PROBLEMS, check_config

    g = _globals(ctx)
    try:
        report = check_config(g.config, g.env, g.state_dir)
    except ConfigError as exc:
        problems = getattr(exc, "problems", None)
        if not problems or len(problems) < 2:
            raise  # one problem: the error boundary prints it
        _finish(ctx, views.config_problems_result(problems, MAX_PROBLEMS))
    if remote:
        result = views.config_remote_result(report.settings, report, _check_remote(g, report.settings))
    else:
        result = views.config_result(report.settings, report)
    if report.settings.provider == "openstack":  # which cloud, why, which files, the secret's source (never it)
        from releasectl.providers.openstack.credentials import credentials_report

        creds = credentials_report(report.settings.provider_options, report.settings.config_dir, g.os_cloud)
        result.data["credentials"] = creds
        text = result.text
        result.text = lambda: text() + "credentials: " + ", ".join(f"{k}={v}" for k, v in creds.items() if v not in (None, [], "")) + "\n"
    _finish(ctx, result)


def _check_remote(g: Globals, s):
    """The cloud's view of the config (openstack), or None for a provider that has no cloud to look at."""
    if s.provider != "openstack":
        return None
    from releasectl.api import QuotaInfo
    from releasectl.cli.runtime import context_for
    from releasectl.engine.versions import version_key
    from releasectl.errors import CredentialsError, ProviderError
    from releasectl.providers.openstack.inventory import check_remote

    provider = context_for(s, emit=g.printer, writes=False, verbose=g.verbose, os_cloud=g.os_cloud).provider
    try:
        images = sorted(provider.list_images(), key=lambda i: version_key(i.version))
        report = check_remote(provider, images[-1].id if images else None)
        try:  # the quota the preflight of env up, builder up and rollout reads
            report.quota = QuotaInfo.of(provider.quota()).resources or None
            report.quota_note = "Nova, Neutron and Octavia quotas" if report.quota else "the cloud publishes no quota"
        except CredentialsError:
            raise
        except ProviderError as exc:
            report.quota_note = f"quota not readable: {exc.message}"
        return report
    finally:
        provider.close()


@app.command("pipelines")
def pipelines_cmd(ctx: typer.Context) -> None:
    """List the built-in pipelines and their steps; with a releasectl.yaml, mark the one `rollout` uses in
    the environment (a pipeline file of its own is listed too)."""
    _finish(ctx, fastpath.pipelines_result(_globals(ctx)))


# ---- images -------------------------------------------------------------------------------------------


@app.command()
def bake(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Semantic version, e.g. 1.4.0 or 1.5.0-rc.1.")],
    force: Annotated[bool, typer.Option(help="Replace an existing image of this version (only if not live).")] = False,
    live: Annotated[bool, typer.Option(help="Snapshot the builder while it runs (no stop and start around it).")] = False,
    recipe: Annotated[Optional[Path], typer.Option(help="The whole pipeline: builder up from the last image, this recipe, checks, snapshot, builder down.")] = None,
    source: Annotated[Optional[str], typer.Option("--from", help="With --recipe: VERSION, IMAGE or `base` to start from (default: the last image).")] = None,
    timeout: Annotated[str, typer.Option(help="With --recipe: how long the recipe may take.")] = "10m",
) -> None:
    """Snapshot the builder into a version-named image (with --recipe: build the builder from code first)."""
    _check_version(version)
    if recipe is not None:
        from releasectl.cli.builder_cmd import bake_with_recipe

        bake_with_recipe(ctx, version, recipe, source=source, timeout=timeout, force=force, live=live)
        return
    if source is not None:
        raise UsageError("--from needs --recipe (or use `releasectl builder up --from ...`, then `bake`)")
    _finish(ctx, views.image_result(client(_globals(ctx)).bake(version, force=force, live=live)))


@images_app.callback()
def images_list(ctx: typer.Context) -> None:
    """Images, newest version first."""
    if ctx.invoked_subcommand is not None:
        return
    _finish(ctx, fastpath.images_result(_globals(ctx)))


@images_app.command("prune")
def images_prune(
    ctx: typer.Context,
    keep: Annotated[Optional[int], typer.Option(help="How many of the newest images to keep (default: image.keep).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Show what would be deleted; delete nothing.")] = False,
) -> None:
    """Delete old images; never a live one or the previous live one."""
    _finish(ctx, views.prune_result(client(_globals(ctx)).prune(keep, dry_run=dry_run)))


@app.command()
def stage(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version to stage.")],
    keep: Annotated[bool, typer.Option(help="Leave the staging instance running.")] = False,
) -> None:
    """Boot one instance from the image and run the smoke checks; exit 1 if one fails."""
    from releasectl.errors import SmokeCheckFailed

    _check_version(version)
    try:
        result = client(_globals(ctx)).stage(version, keep=keep)
    except SmokeCheckFailed as exc:
        staged = getattr(exc, "report", None)
        if staged is None:
            raise
        failed = views.stage_result(staged)
        failed.exit_code = int(ExitCode.ROLLED_BACK)
        failed.errors = [{"code": "smoke_check_failed", "message": exc.message}]
        _finish(ctx, failed)
    _finish(ctx, views.stage_result(result))


# ---- releases -----------------------------------------------------------------------------------------


@app.command()
def rollout(
    ctx: typer.Context,
    version: Annotated[Optional[str], typer.Argument(help="Version to release (default: newest baked, not live).")] = None,
    pipeline: Annotated[Optional[str], typer.Option(help="Pipeline name or YAML path (overrides the config).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted release.")] = False,
) -> None:
    """Boot the new version, shift traffic step by step, watch health, retire the old fleet."""
    if version is not None:
        _check_version(version)
    g = _globals(ctx)
    api = client(g)  # the config first: its errors come before there is any release to report
    if api.settings.regions:  # one region after the other (engine/waves.py)
        from releasectl.cli import waves_cmd

        _finish(ctx, waves_cmd.rollout(g, api.settings, api.pipeline(pipeline), version, resume))
        return
    with live_release(g), reporting_release() as api.track:
        released = api.rollout(version, pipeline=pipeline, resume=resume)
    _finish(ctx, views.release_result(released))


WaitOption = Annotated[bool, typer.Option("--wait", help="With a live runner: wait for it to apply the intent and report the outcome.")]
WaitTimeoutOption = Annotated[
    str, typer.Option("--wait-timeout", help="How long --wait waits at most (then exit 5): a duration like 90s or 30m.")
]


def _wait_for(wait: bool, wait_timeout: str) -> float | None:
    """--wait's bound in seconds (None without --wait); a bad duration is a usage error, exit 2."""
    if not wait:
        return None
    from releasectl.config import duration

    try:
        return duration(0.1, 7 * 24 * 3600.0)(wait_timeout)
    except ValueError as exc:
        raise UsageError(f"--wait-timeout: {exc}", hint="e.g. --wait-timeout 30m") from None


@app.command()
def promote(
    ctx: typer.Context,
    full: Annotated[bool, typer.Option(help="Skip the remaining steps and go to 100%.")] = False,
    wait: WaitOption = False,
    wait_timeout: WaitTimeoutOption = "30m",
) -> None:
    """Continue past a manual gate (or with --full, skip the remaining steps). With a live runner, hand it the intent."""
    g = _globals(ctx)
    api = client(g)
    if api.settings.regions:
        from releasectl.cli import waves_cmd

        _finish(ctx, waves_cmd.promote(g, api.settings, full))
        return
    with live_release(g), reporting_release() as api.track:
        result = api.promote(full=full, runner_wait=_wait_for(wait, wait_timeout))
    _finish(ctx, views.release_or_intent_result(result))


@app.command()
def abort(ctx: typer.Context, wait: WaitOption = False, wait_timeout: WaitTimeoutOption = "30m") -> None:
    """Roll back a release that is running, interrupted or paused. With a live runner, hand it the intent."""
    g = _globals(ctx)
    api = client(g)
    if api.settings.regions:
        from releasectl.cli import waves_cmd

        _finish(ctx, waves_cmd.abort(g, api.settings, _wait_for(wait, wait_timeout)))
        return
    with reporting_release() as api.track:
        result = api.abort(runner_wait=_wait_for(wait, wait_timeout))
    _finish(ctx, views.release_or_intent_result(result))


@app.command()
def pause(ctx: typer.Context, wait: WaitOption = False, wait_timeout: WaitTimeoutOption = "30m") -> None:
    """Stop a running release where it is (exit 4) until `promote`. With a live runner, hand it the intent."""
    api = client(_globals(ctx))
    with reporting_release() as api.track:
        result = api.pause(runner_wait=_wait_for(wait, wait_timeout))
    _finish(ctx, views.release_or_intent_result(result))


@app.command()
def rollback(
    ctx: typer.Context,
    to: Annotated[Optional[str], typer.Option(help="Known-good version to return to (default: the last one).")] = None,
) -> None:
    """Return traffic to the last known-good version (warm fleet at once, or relaunched)."""
    if to is not None:
        _check_version(to)
    _finish(ctx, fastpath.rollback_result(_globals(ctx), to))


@app.command()
def status(
    ctx: typer.Context,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Live view until Ctrl-C (exit 0) or the release ends (its exit code).")] = False,
) -> None:
    """What runs: members, versions, weights, health, and any release in progress."""
    if watch:
        from releasectl.cli.watch_cmd import status_watch

        _finish(ctx, status_watch(_globals(ctx)))
        return
    _finish(ctx, fastpath.status_result(_globals(ctx)))


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the environment's servers and its local load balancer. Images stay."""
    _finish(ctx, views.down_result(client(_globals(ctx)).down()))


@app.command()
def gc(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option(help="Show what would be removed; remove nothing.")] = False,
) -> None:
    """Remove tagged servers, members and images that no live, warm, staged or running release owns."""
    _finish(ctx, views.gc_result(client(_globals(ctx)).gc(dry_run=dry_run)))


@app.command()
def doctor(
    ctx: typer.Context,
    fix: Annotated[bool, typer.Option(help="Repair what was found: quarantine unreadable records, rebuild the LB's files, re-adopt or stop orphaned processes.")] = False,
) -> None:
    """List damaged or inconsistent state and what --fix would do (exit 2 when something is found); --fix does it."""
    from releasectl.engine.doctor import doctor as do_doctor

    _finish(ctx, views.doctor_result(do_doctor(engine_context(_globals(ctx)), fix=fix)))


@app.command()
def unlock(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option(help="Break the lock even while its lease is alive.")] = False,
) -> None:
    """Break the lock of a dead holder."""
    from releasectl.engine.lock import unlock as do_unlock

    ectx = engine_context(_globals(ctx))
    _finish(ctx, views.unlock_result(do_unlock(ectx.provider, force=force, now=ectx.clock.time())))


@app.command()
def demo(
    ctx: typer.Context,
    directory: Annotated[Optional[Path], typer.Argument(help="Folder for the demo (default: a new temporary one).")] = None,
    keep: Annotated[bool, typer.Option(help="Leave the demo's servers and load balancer running.")] = False,
    port: Annotated[int, typer.Option(help="Load-balancer port.")] = 18080,
) -> None:
    """Init, bake and roll out a sample app, canary a new version under load, fail one, roll back."""
    from releasectl.demo import run_demo
    from releasectl.errors import Interrupted

    if not 1 <= port <= 65534:
        raise UsageError(f"--port must be from 1 to 65534, got {port}")

    try:
        summary = run_demo(directory, keep=keep, port=port, emit=_globals(ctx).printer)
    except Interrupted as exc:
        raise Interrupted(exc.message, hint="the demo left things running (--keep)" if keep else "the demo stopped everything it had started") from None
    _finish(ctx, views.demo_result(summary))


@app.command()
def login(
    ctx: typer.Context,
    cloud: Annotated[Optional[str], typer.Option(help="clouds.yaml entry the secret belongs to.")] = None,
    application_credential: Annotated[bool, typer.Option("--application-credential", help="Store an application-credential secret instead of a password.")] = False,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the secret from standard input (one line) instead of prompting.")] = False,
) -> None:
    """Check a password or application-credential secret with Keystone, then store it in the OS keyring
    (service `releasectl`)."""
    from releasectl.cli.runtime import keyring_problem
    from releasectl.providers.openstack.auth import verify_secret
    from releasectl.providers.openstack.credentials import store_secret

    kind = "application_credential_secret" if application_credential else "password"
    problem = keyring_problem()  # before asking for anything: a secret typed for nothing is worse
    if problem:
        raise UsageError(problem, hint="install a keyring backend (e.g. Secret Service), or put the secret in secure.yaml (mode 0600)")
    if password_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:  # the prompt goes to stderr, so stdout keeps exactly the one JSON document
        secret = typer.prompt(f"{kind.replace('_', ' ')}", hide_input=True, err=True)
    if not secret:
        raise UsageError(f"an empty {kind.replace('_', ' ')} was given: nothing stored")
    cloud = verify_secret(cloud or _globals(ctx).os_cloud, kind, secret)  # Keystone accepts it, or nothing is stored
    where = store_secret(cloud, kind, secret)
    _finish(ctx, Result(data={"stored": kind, "cloud": cloud, "verified": True, "where": where}, text=lambda: f"stored the {kind.replace('_', ' ')} in {where}"))


from releasectl.cli import help_text, report_cmd  # noqa: E402  (`releasectl report`; --help examples)

report_cmd.register(app, _finish, _globals)


# ---- the error boundary ---------------------------------------------------------------------------------


@functools.cache
def _click_command(name: str | None = None) -> Any:
    """The click command typer builds from `app`, built once per process (typer rebuilds it on every
    call, about 0.1 s; in-process test runs call `run` thousands of times). With `name`, a group of the
    global options and that one command only: its parsing, help and errors do not involve its siblings,
    and building all of them is about 0.01 s of every start-up. None when `app` has no such command."""
    help_text.install(app)  # examples and the exit-code table in every command's --help
    if name is None:
        return typer.main.get_command(app)
    lean = copy.copy(app)
    lean.registered_commands = [c for c in app.registered_commands if (c.name or typer.main.get_command_name(c.callback.__name__)) == name]
    lean.registered_groups = [g for g in app.registered_groups if g.name == name]
    if len(lean.registered_commands) + len(lean.registered_groups) != 1:
        return None
    return typer.main.get_command(lean)


def _command_name(argv: list[str]) -> str | None:
    """The command of argv when only global options (hoisted to the front) come before it, else None
    (then the whole app is built, so group help and "No such command" stay the same)."""
    from releasectl.cli import GLOBAL_FLAGS, GLOBAL_VALUE_OPTIONS

    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in GLOBAL_VALUE_OPTIONS:
            i += 2
        elif arg in GLOBAL_FLAGS or arg.split("=", 1)[0] in GLOBAL_VALUE_OPTIONS and "=" in arg:
            i += 1
        else:
            return None if arg.startswith("-") else arg
    return None


def run(argv: list[str]) -> int:
    """Run the app; map every exception to one message on stderr and one exit code (cli/boundary.py)."""
    output = "json" if wants_json(argv) else "table"

    def invoke() -> int:
        try:
            # without standalone mode, click hands back an Exit's code as the return value
            name = _command_name(argv)
            command = (_click_command(name) if name else None) or _click_command()
            returned = command(args=argv, prog_name="releasectl", standalone_mode=False)
            return returned if isinstance(returned, int) else ExitCode.OK
        except typer.Exit as exc:
            return int(exc.exit_code or 0)
        except typer.Abort:
            return fail(ExitCode.USAGE, "usage", "aborted", None, output)
        except ClickException as exc:
            hint = None
            ctx = getattr(exc, "ctx", None)
            if ctx is not None:
                hint = f"see `{ctx.command_path} --help`"
            return fail(ExitCode.USAGE, "usage", exc.format_message(), hint, output)

    return guarded(argv, invoke)


from releasectl.cli.env_cmd import env_app  # noqa: E402 - registered last: it uses the helpers above

app.add_typer(env_app, name="env")
