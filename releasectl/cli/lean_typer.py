"""Keep pydantic out of start-up. typer >= 0.26 coerces every option through a pydantic TypeAdapter, and
importing pydantic costs more CPU than `status` does. Our global options are plain `str`, `bool` and `Path`:
a `str` or `bool` value coerces to itself, a `Path` to `Path(value)` after typer's own path checks. We do
that here and hand every other type (and any odd value) to typer's coercion unchanged. Older typer (no
`_coercion` module, no pydantic) is left alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


def install() -> None:
    try:
        from typer import core
        from typer._coercion import RuntimeParam, build_runtime_param
        from typer._param_types import coerce_cli_path
    except ImportError:
        return
    if not hasattr(getattr(core, "_TyperParameter", None), "get_runtime_param"):
        return  # another typer layout: leave its coercion as it is
    if getattr(core._TyperParameter, "_releasectl_lean", False):
        return

    @dataclass(frozen=True)
    class PlainParam(RuntimeParam):
        """`str`, `bool` and `pathlib.Path` parameters; anything unexpected goes to typer's pydantic coercion."""

        descriptor: Any = None

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            kind = self.annotation
            if (kind is bool and type(value) is bool) or (kind is str and type(value) is str):
                return value
            if kind is Path and (type(value) is str or isinstance(value, Path)):
                try:  # typer's checks on the value as typed (its messages quote it), then Path() as pydantic does
                    return Path(coerce_cli_path(value, self.parameter_info, path_type=None, param=param, ctx=ctx))
                except ValueError:  # NUL or an unencodable character: typer words that error
                    pass
            return build_runtime_param(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

    original = core._TyperParameter.get_runtime_param

    def get_runtime_param(self: Any) -> Any:
        descriptor = self.type_descriptor
        info = descriptor.parameter_info
        if (
            self._runtime_param is None
            and descriptor.file_annotation is None
            and getattr(info, "parser", None) is None
            and (descriptor.annotation in (str, bool) or (
                descriptor.annotation is Path and getattr(info, "path_type", None) is None and not getattr(info, "allow_dash", False)
            ))
        ):
            self._runtime_param = PlainParam(parameter_info=info, annotation=descriptor.annotation, descriptor=descriptor)
        return original(self)

    core._TyperParameter.get_runtime_param = get_runtime_param
    core._TyperParameter._releasectl_lean = True
