"""`releasectl env plan|up|down`: the environment a release runs in, from the `env:` section."""

from __future__ import annotations

from typing import Annotated

import typer

from releasectl.cli.render import Result, table

env_app = typer.Typer(
    help="Build the environment from releasectl.yaml's env: section (network, keypair, security group, load balancer, DNS).",
    no_args_is_help=True,
)


def _client(ctx: typer.Context):
    from releasectl.cli.app import _globals
    from releasectl.cli.runtime import client

    return client(_globals(ctx))


def _result(report) -> Result:
    """`report`: the API's EnvInfo."""
    data = report.to_dict()
    changes = report.changes

    def text() -> str:
        if report.action == "plan":
            if not changes:
                return f"no changes: the environment matches releasectl.yaml ({report.unchanged} resource(s))"
            return table(changes) + f"\n\n{len(changes)} change(s), {report.unchanged} resource(s) unchanged"
        if report.action == "up":
            head = f"{report.applied} change(s) applied" if report.applied else "no changes: the environment was already up"
            return head + "\n" + table(data["resources"])
        head = f"deleted {report.applied} resource(s)"
        if report.retired:
            head += f" after retiring {len(report.retired)} server(s)"
        return head

    return Result(data=data, text=text)


def _finish(ctx: typer.Context, result: Result) -> None:
    from releasectl.cli.app import _finish as finish

    finish(ctx, result)


@env_app.command("plan")
def plan(ctx: typer.Context) -> None:
    """Show what `env up` would create or change, without writing anything."""
    _finish(ctx, _result(_client(ctx).env_plan()))


@env_app.command("up")
def up(ctx: typer.Context) -> None:
    """Create what is missing and update what differs; a second run changes nothing."""
    _finish(ctx, _result(_client(ctx).env_up()))


@env_app.command("down")
def down(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option(help="Retire the environment's servers first (refused without it while any is there).")] = False,
) -> None:
    """Delete what `env up` created (found by its tags), in dependency order, waiting for each delete."""
    _finish(ctx, _result(_client(ctx).env_down(force=force)))
