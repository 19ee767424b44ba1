"""Command-line entry point: the one error boundary that turns exceptions into messages and exit codes."""

from __future__ import annotations

import sys

GLOBAL_VALUE_OPTIONS = ("--config", "--env", "--output", "-o", "--state-dir", "--os-cloud")
GLOBAL_FLAGS = ("-v", "--verbose")


def hoist_global_options(argv: list[str]) -> list[str]:
    """Let global options stand anywhere (`releasectl images --output json`) by moving them to the front,
    where the typer callback reads them. Subcommands never define these names, so nothing is shadowed."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_VALUE_OPTIONS:
            if "=" in arg or i + 1 >= len(argv):
                front.append(arg)
            else:
                front.extend(argv[i : i + 2])
                i += 1
        elif arg in GLOBAL_FLAGS:
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:  # fast path: no typer, no provider imports
        from releasectl import __version__

        sys.stdout.write(f"releasectl {__version__}\n")
        return 0
    from releasectl.cli import fastpath
    from releasectl.cli.runtime import finish_notifications

    argv = hoist_global_options(argv)
    code = fastpath.run(argv)  # status, images, history, pipelines, rollback: without typer
    if code is None:
        from releasectl.cli.app import run

        code = run(argv)
    finish_notifications(code)  # `notify:` webhooks: the outcome, then at most one timeout's wait
    return code
