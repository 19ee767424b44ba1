"""The `release` object in the JSON of rollout, promote, abort, rollback and pause, whatever the exit code.

A command that ends in an error (failed and rolled back, paused at a gate, lock held, infrastructure) still
tells a CD job which release it was about: the error carries it to the error boundary (cli/app.py `run`),
which prints it in the one JSON document."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from releasectl.engine.context import EngineContext
from releasectl.errors import ReleasectlError

JSON_DATA = "json_data"  # the attribute of a ReleasectlError the error boundary prints as the document's data


@contextlib.contextmanager
def reporting_release() -> Iterator[Callable[[EngineContext], EngineContext]]:
    """`with reporting_release() as track: ectx = track(engine_context(...))`: an error raised inside
    carries `{"release": {...} or null}`, read back from the record after the fact."""
    tracked: list[tuple[EngineContext, float]] = []

    def track(ectx: EngineContext) -> EngineContext:
        tracked.append((ectx, ectx.clock.time()))
        return ectx

    try:
        yield track
    except ReleasectlError as exc:
        setattr(exc, JSON_DATA, {"release": release_after_error(*tracked[0]) if tracked else None})
        raise


def release_after_error(ectx: EngineContext, since: float) -> dict | None:
    from releasectl.cli.views import release_json
    from releasectl.engine.status import release_of_command

    summary = release_of_command(ectx, since)
    return release_json(summary) if summary is not None else None


@contextlib.contextmanager
def live_release(g) -> Iterator[None]:
    """The live view while a release command runs with stderr on a terminal (cli/watch.py); imported only
    then, so a command in a CD job (no terminal) loads no rich."""
    import sys

    if not sys.stderr.isatty():
        yield
        return
    from releasectl.cli.runtime import engine_context
    from releasectl.cli.watch import live_release as live

    with live(g, lambda: engine_context(g, writes=False)):
        yield
