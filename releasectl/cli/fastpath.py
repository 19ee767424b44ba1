"""Commands without typer: the read-only `status`, `images`, `history` and `pipelines`, and `rollback` (an
operator's emergency: start-up is on the path to traffic back on the known-good version), given in their plain
form (global options, the command name, nothing else), run here before typer is imported (its import and
command building cost more CPU than `status` itself). Anything else, `--help`, a sub-command, an option we do not know,
an odd value, goes to the typer app (cli/app.py), so help, usage errors and their wording stay typer's. The
typer commands call the same functions below, and both end at the same boundary (cli/boundary.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from releasectl.cli.render import Result
from releasectl.cli.runtime import Globals, client

# the global options of cli/app.py's callback: option -> its parameter
VALUE_OPTIONS = {"--config": "config", "--env": "env", "--output": "output", "-o": "output", "--state-dir": "state_dir",
                 "--os-cloud": "os_cloud"}
FLAGS = ("-v", "--verbose")
PATH_OPTIONS = ("config", "state_dir")
COMPLETION_VARIABLE = "_RELEASECTL_COMPLETE"  # click's shell completion: typer's business


def status_result(g: Globals) -> Result:
    from releasectl.cli import views

    api = client(g)
    if api.settings.regions:
        from releasectl.cli import waves_cmd

        return waves_cmd.status(g, api.settings)
    return views.status_result(api.status())


def images_result(g: Globals) -> Result:
    from releasectl.cli import views

    return views.images_result(client(g).images())


def history_result(g: Globals) -> Result:
    from releasectl.cli import views

    api = client(g)
    if api.settings.regions:  # each region's releases, and the waves
        from releasectl.cli import waves_cmd

        return waves_cmd.history(g, api.settings)
    return views.history_result(api.history())


def pipelines_result(g: Globals) -> Result:
    """The built-in pipelines, and the environment's own when it has one that is not built in."""
    from releasectl.cli import views
    from releasectl.config import builtin_pipelines, configured_pipeline, parse_pipeline

    found = [parse_pipeline(path) for path in builtin_pipelines().values()]
    configured = configured_pipeline(g.config, g.env, g.state_dir)
    if configured is not None and all(p.source != configured[0].source for p in found):
        found.append(configured[0])
    return views.pipelines_result(found, configured)


def rollback_result(g: Globals, to: str | None = None) -> Result:
    from releasectl.cli import views
    from releasectl.cli.release_json import live_release, reporting_release

    api = client(g)
    with live_release(g), reporting_release() as api.track:
        released = api.rollback(to)
    return views.release_result(released)


COMMANDS: dict[str, Callable[[Globals], Result]] = {
    "status": status_result,
    "images": images_result,
    "history": history_result,
    "pipelines": pipelines_result,
    "rollback": rollback_result,
}


def parse(argv: list[str]) -> tuple[str, dict] | None:
    """(command, global options) of `[global options...] COMMAND`, or None for anything else."""
    options: dict = {"verbose": False}
    i = 0
    while i < len(argv) - 1:
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if arg in FLAGS:
            options["verbose"] = True
        elif arg in VALUE_OPTIONS or (eq and name.startswith("--") and name in VALUE_OPTIONS):
            if not eq:
                i += 1
                value = argv[i]
            key = VALUE_OPTIONS[name]
            if key in options or not value or value.startswith("-") or "\x00" in value or len(value) > 4096:
                return None  # repeated, empty, dash-led or odd: typer's parsing and its messages decide
            options[key] = Path(value) if key in PATH_OPTIONS else value
        else:
            return None
        i += 1
    if i != len(argv) - 1 or argv[i] not in COMMANDS:
        return None
    return argv[i], options


def run(argv: list[str]) -> int | None:
    """The exit code of a read-only command run here, or None: the typer app runs `argv`."""
    if os.environ.get(COMPLETION_VARIABLE):
        return None
    parsed = parse(argv)
    if parsed is None:
        return None
    from releasectl.cli.boundary import finish, guarded, set_globals

    command, options = parsed

    def call() -> int:
        g = Globals()
        set_globals(g, config=options.get("config"), env=options.get("env"), output=options.get("output", "table"),
                    verbose=options["verbose"], state_dir=options.get("state_dir"), os_cloud=options.get("os_cloud"))
        return finish(g, COMMANDS[command](g))

    return guarded(argv, call)
