"""What every engine operation runs with: the provider, the release parameters and the clock.

The CLI builds one from the validated settings; the engine never reads config files itself.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from releasectl.engine.events import Event, EventSink, discard
from releasectl.engine.model import SmokeCheck
from releasectl.errors import Interrupted
from releasectl.providers.base import HealthCheck, Provider
from releasectl.wait import REAL_CLOCK, Clock


class StopToken:
    """Set by a signal handler; the engine checks it at safe points and stops there."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name = ""

    def set(self, signal_name: str = "signal") -> None:
        self.signal_name = signal_name
        self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Interrupted(f"stopped by {self.signal_name}")


@dataclass
class EngineContext:
    """The provider, the release parameters and the clock of one engine operation."""

    provider: Provider
    app: str
    env: str
    image_name: str  # template with {app} and {version}
    count: int
    health: HealthCheck
    pipeline_name: str = "canary"
    progress_deadline: float = 600.0
    drain_timeout: float = 30.0  # for rollbacks and expired warm fleets (pipelines set their own)
    weight_tolerance: float = 1.0
    stage_checks: tuple[SmokeCheck, ...] = ()
    stage_timeout: float = 60.0
    image_keep: int = 5
    clock: Clock = REAL_CLOCK
    emit: EventSink = discard
    stop: StopToken = field(default_factory=StopToken)
    actor: dict[str, str] = field(default_factory=dict)  # host, user, pid, ci_job, command
    lock_ttl: float = 30.0

    def event(self, kind: str, message: str, **data: Any) -> None:
        self.emit(Event(kind=kind, message=message, at=self.clock.time(), data=data))

    def image_name_for(self, version: str) -> str:
        return self.image_name.format(app=self.app, version=version)
