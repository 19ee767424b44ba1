"""Logging that imports `logging` only when something logs: `status` logs nothing, and the import costs every
command's start-up about 4 ms of CPU (issue 12).

A module takes `log = Logger("releasectl.x")` where it took `logging.getLogger("releasectl.x")`, and the CLI hands
its set-up (level, format, stderr) to `after_import`, which runs it as soon as `logging` is loaded, by whichever
module imports it first (ours or a library's): before anything can log, as if it had been done at start-up.
"""

from __future__ import annotations

import sys
from typing import Any, Callable


class Logger:
    """Stands for logging.getLogger(name); the first attribute asked for (debug, warning, isEnabledFor, ...)
    imports logging and is the real logger's."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        import logging

        return getattr(logging.getLogger(self.name), attr)


def after_import(set_up: Callable[[], None]) -> None:
    """Run `set_up` now if `logging` is loaded, else right after it is first imported (replacing a set-up that
    is still waiting)."""
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _AfterImport)]
    if "logging" in sys.modules:
        set_up()
    else:
        sys.meta_path.insert(0, _AfterImport(set_up))


class _AfterImport:
    """A meta-path finder for `logging` alone: the usual finders find it, its loader runs, then `set_up` does."""

    def __init__(self, set_up: Callable[[], None]) -> None:
        self.set_up = set_up

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "logging":
            return None
        sys.meta_path.remove(self)
        spec = next((found for finder in sys.meta_path if hasattr(finder, "find_spec")
                     for found in [finder.find_spec(name, path, target)] if found is not None), None)
        if spec is not None and spec.loader is not None:
            spec.loader = _SetUpAfter(spec.loader, self.set_up)
        return spec


class _SetUpAfter:
    """`logging`'s own loader, followed by the set-up."""

    def __init__(self, loader: Any, set_up: Callable[[], None]) -> None:
        self.loader, self.set_up = loader, set_up

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        self.set_up()

    def __getattr__(self, attr: str) -> Any:  # get_source, get_filename, ...: the real loader's
        return getattr(self.loader, attr)
