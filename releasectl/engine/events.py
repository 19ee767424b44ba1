"""Progress events. The engine emits them; the CLI decides how to show them (stderr lines, live view)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Event:
    kind: str  # e.g. "step", "action", "wait", "health", "rollback", "done"
    message: str
    at: float = field(default_factory=time.time)
    data: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[Event], None]


def discard(_event: Event) -> None:
    """The sink for callers that do not want progress."""
