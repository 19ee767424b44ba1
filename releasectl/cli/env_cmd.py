"""`releasectl env plan|up|down`: the environment a release runs in, from the `env:` section."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from releasectl.cli.render import Result, table
from releasectl.errors import ConfigError
from releasectl.providers.base import EnvSpec

env_app = typer.Typer(
    help="Build the environment from releasectl.yaml's env: section (network, keypair, security group, load balancer, DNS).",
    no_args_is_help=True,
)


def _context(ctx: typer.Context, *, writes: bool):
    from releasectl.cli.app import _globals
    from releasectl.cli.runtime import engine_context, settings

    g = _globals(ctx)
    s = settings(g)
    if s.env_spec is None and s.provider == "local":  # the local environment needs no settings of its own
        s = replace(s, env_spec=EnvSpec(network=""))
    if s.env_spec is None:
        raise ConfigError(f"{s.path.name} has no env: section", hint="add `env: {network: {name: NAME, cidr: 10.20.0.0/24}}` "
                          "(see README, \"From an empty OpenStack project\")")
    return engine_context(g, s, writes=writes), s


def _result(report) -> Result:
    from releasectl.engine.env import change_rows, resource_rows

    changes = change_rows(report.changes) if report.action != "up" else []
    data = {"action": report.action, "changes": changes, "applied": report.applied, "unchanged": report.unchanged,
            "resources": resource_rows(report.resources), "retired": report.retired}

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
    from releasectl.engine.env import env_plan

    ectx, s = _context(ctx, writes=False)
    _finish(ctx, _result(env_plan(ectx, s.env_spec, s.app_port)))


@env_app.command("up")
def up(ctx: typer.Context) -> None:
    """Create what is missing and update what differs; a second run changes nothing."""
    from releasectl.engine.env import env_up

    ectx, s = _context(ctx, writes=True)
    _finish(ctx, _result(env_up(ectx, s.env_spec, s.app_port)))


@env_app.command("down")
def down(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option(help="Retire the environment's servers first (refused without it while any is there).")] = False,
) -> None:
    """Delete what `env up` created (found by its tags), in dependency order, waiting for each delete."""
    from releasectl.engine.env import env_down
    from releasectl.engine.release import down as retire_servers

    ectx, s = _context(ctx, writes=True)
    _finish(ctx, _result(env_down(ectx, s.env_spec, force=force, retire=retire_servers)))
