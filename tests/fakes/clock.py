"""A fake clock for `releasectl.wait.Clock`: `sleep` advances time at once, so a 2-hour hold takes microseconds."""

from __future__ import annotations

import threading


class FakeClock:
    """Wall time and monotonic time move together, only when someone sleeps or calls `advance`."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._start = start
        self._now = start
        self._lock = threading.Lock()
        self.slept = 0.0  # total seconds slept, for tests that assert on waiting

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return 1_000.0 + (self._now - self._start)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        self.slept += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)
