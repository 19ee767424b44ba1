"""Output: a table (or text) for people, one JSON document for machines; progress always on stderr."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import weakref
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
    plain = plain_table(rows) if headers == "keys" else None
    if plain is not None:
        return plain
    from tabulate import tabulate  # here, not at the top: its import costs more than most commands' work

    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


_PLAIN_CELL = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")  # one line of ASCII, no space at either end


def plain_table(rows: list[Any]) -> str | None:
    """tabulate's "simple" table of dict rows (headers "keys", numbers not parsed) whose cells are one line of
    ASCII each, made here: importing tabulate reads the installed packages' metadata, about 30 ms of CPU on
    every command that prints a table. None for anything else (tabulate makes it); tests/unit/test_render.py
    holds the two side by side."""
    if not all(isinstance(row, dict) for row in rows):
        return None
    keys = list(dict.fromkeys(key for row in rows for key in row))
    if not keys:
        return None
    headers = [str(key) for key in keys]
    cells = [["" if row.get(key) is None else f"{row.get(key)}" for key in keys] for row in rows]
    if any(isinstance(row.get(key), bytes) for row in rows for key in keys):
        return None
    if not all(_PLAIN_CELL.fullmatch(text) for line in [headers, *cells] for text in line if text):
        return None
    widths = [max(len(header) + 2, *(len(line[i]) for line in cells)) for i, header in enumerate(headers)]

    def line(texts: list[str]) -> str:
        return "  ".join(text.ljust(width) for text, width in zip(texts, widths)).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *map(line, cells)])


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


HEARTBEAT = 30.0  # seconds of silence after which a progress line says what is being waited for

_printers: "weakref.WeakSet[ProgressPrinter]" = weakref.WeakSet()


class ProgressPrinter:
    """One timestamped line per event on stderr (for CD logs), and while nothing happens for `heartbeat`
    seconds, a line saying what it still waits for. On a terminal, waiting messages update a single live
    line instead of scrolling (and a release command shows the live view instead: cli/watch.py)."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None, heartbeat: float = HEARTBEAT) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.heartbeat = heartbeat
        self._live_line = False
        self._lock = threading.Lock()
        self._last_event: Event | None = None
        self._quiet_since = time.monotonic()
        self._beat: threading.Thread | None = None
        self._closed = threading.Event()
        _printers.add(self)

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._write(event.at, event.kind, event.message)
            self._last_event = event
        if not self.live and self.heartbeat > 0 and self._beat is None and not self._closed.is_set():
            self._beat = threading.Thread(target=self._beating, name="releasectl-heartbeat", daemon=True)
            self._beat.start()

    def _write(self, at: float, kind: str, message: str) -> None:
        line = f"{utc(at)} {kind:<8} {message}"
        if self.live and kind == "wait":
            self.stream.write("\r\033[K" + line)
            self._live_line = True
        else:
            if self._live_line:
                self.stream.write("\r\033[K")
                self._live_line = False
            self.stream.write(line + "\n")
        self.stream.flush()
        self._quiet_since = time.monotonic()

    def _beating(self) -> None:
        """While the command runs: after `heartbeat` seconds without a line, say what it waits for."""
        while not self._closed.wait(min(1.0, self.heartbeat / 4)):
            with self._lock:
                quiet = time.monotonic() - self._quiet_since
                if self._last_event is not None and quiet >= self.heartbeat and not self._closed.is_set():
                    last = self._last_event
                    what = last.message if last.kind == "wait" else f"the next step after: {last.message}"
                    self._write(time.time(), "waiting", f"still waiting ({quiet:.0f}s): {what}")

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._live_line:
                self.stream.write("\n")
                self._live_line = False


def close_printers() -> None:
    """At the end of a command, whatever way it ended: no heartbeat outlives it."""
    for printer in list(_printers):
        printer.close()
