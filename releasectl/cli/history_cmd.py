"""`releasectl history` (the list, as before) and `releasectl history show [ID|latest]` (one release's story)."""

from __future__ import annotations

from typing import Annotated

import typer

history_app = typer.Typer(help="Releases of this environment, and the story of one.", invoke_without_command=True,
                          no_args_is_help=False)


@history_app.callback()
def history_list(ctx: typer.Context) -> None:
    """Releases of this environment, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from releasectl.cli.app import _finish, _globals
    from releasectl.cli.fastpath import history_result

    _finish(ctx, history_result(_globals(ctx)))


@history_app.command("show")
def history_show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="[ID|latest]", help="A release id (or a unique prefix of one), or latest.")] = "latest",
) -> None:
    """The timeline of one release: each event with its time (RFC 3339 UTC), step, weights, analysis figures,
    reason and who acted. Example: `releasectl history show latest -o json`."""
    from releasectl.cli import views
    from releasectl.cli.app import _finish, _globals
    from releasectl.cli.runtime import client

    _finish(ctx, views.history_show_result(client(_globals(ctx)).release_story(ref)))
