"""Progress events (the engine emits them; the CLI decides how to show them: stderr lines, live view), and
how a release record keeps them. The timeline read back from them (`releasectl history show`) is in
engine/timeline.py (re-exported here)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Event:
    """One progress event: the engine emits it, the CLI shows it (stderr line, live view, webhook)."""

    kind: str  # e.g. "step", "action", "wait", "health", "rollback", "done"
    message: str
    at: float = field(default_factory=time.time)
    data: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[Event], None]


def discard(_event: Event) -> None:
    """The sink for callers that do not want progress."""


# ---- the events a release record keeps (engine/timeline.py reads them back) ------------------------------

MAX_RECORDED = 50  # events kept in a release record (engine/transition.py keeps the same bound)


def who(actor: Mapping[str, str]) -> str:
    """How a timeline names whoever acted: user@host, and the CI job when there is one."""
    name = f"{actor.get('user', '?')}@{actor.get('host', '?')}"
    return name + (f" ({actor['ci_job']})" if actor.get("ci_job") else "")


def note(events: list[dict[str, Any]], at: float, message: str, *, by: Mapping[str, str] | None = None) -> None:
    """Append an operator's act (a promote, abort, pause or resume done in person) to a record's events."""
    events.append({"at": at, "message": message, **({"by": who(by)} if by else {})})
    del events[:-MAX_RECORDED]


_TIMELINE = frozenset({"TimelineEntry", "timeline"})


def __getattr__(name: str) -> Any:
    """The timeline's names, re-exported from engine/timeline.py on first use (`status` never reads one back)."""
    if name in _TIMELINE:
        from releasectl.engine import timeline

        return getattr(timeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
