"""Output: a table (or text) for people, one JSON document for machines; progress always on stderr."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

from releasectl.engine.events import Event
from releasectl.timefmt import rfc3339_or_dash

SCHEMA_VERSION = 1


@dataclass
class Result:
    """What a command hands back: data for JSON, and how to show it to a person."""

    data: dict[str, Any]
    text: Callable[[], str] | None = None
    exit_code: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)


def table(rows: list[dict[str, Any]] | list[list[Any]], headers: Any = "keys") -> str:
    if not rows:
        return "(none)"
    from tabulate import tabulate  # here, not at the top: its import costs more than most commands' work

    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def emit_result(result: Result, output: str, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if output == "json":
        document = {**result.data, "schema_version": SCHEMA_VERSION, "exit_code": result.exit_code, "errors": result.errors}
        out.write(json.dumps(document, indent=2, default=str, sort_keys=False) + "\n")
    elif result.text is not None:
        text = result.text()
        if text:
            out.write(text.rstrip("\n") + "\n")


def utc(ts: float | None) -> str:
    """RFC 3339 UTC for tables and messages, `-` for no time (releasectl.timefmt is the one format)."""
    return rfc3339_or_dash(ts)


class ProgressPrinter:
    """One timestamped line per event on stderr (for CD logs). On a terminal, waiting messages update a
    single live line instead of scrolling."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._live_line = False

    def __call__(self, event: Event) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(event.at)) if self.live else utc(event.at)
        line = f"{stamp} {event.kind:<8} {event.message}"
        if self.live and event.kind == "wait":
            self.stream.write("\r\033[K" + line)
            self._live_line = True
        else:
            if self._live_line:
                self.stream.write("\r\033[K")
                self._live_line = False
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._live_line:
            self.stream.write("\n")
            self._live_line = False
