"""The one waiter. Every status poll in releasectl goes through `wait_for`.

Shaped after openstacksdk's `iterate_timeout`/`wait_for_status`, without its flaws: the wait is always
bounded, a declared failure raises at once instead of polling on, and giving up raises instead of returning
quietly. The clock is injectable so tests can run waits without real sleeps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol, TypeVar

from releasectl.errors import ReleasectlError, WaitTimeout
from releasectl.logs import Logger

T = TypeVar("T")
log = Logger("releasectl.wait")


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class RealClock:
    """Wall time and real sleeps. `stop_check` lets a sleeping wait notice a signal within 0.2 s."""

    stop_check: Callable[[], None] | None = None

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + max(0.0, seconds)
        while True:
            if self.stop_check is not None:
                self.stop_check()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.2))


REAL_CLOCK = RealClock()
FIRST_POLL = 0.2  # most waits end within a second: look again soon, then back off to the configured interval


def backoff_delay(looks: int, *, first: float, cap: float, backoff: float = 1.5) -> float:
    """The sleep before look `looks + 1` of a wait: `first`, growing by `backoff` per look, up to `cap`. The
    one schedule of every wait, whether it runs in `wait_for` or in a loop of its own (the engine's passes)."""
    return min(first * backoff**looks, cap)


@dataclass
class Pace:
    """How long the last wait of one kind took. An Octavia update settles in about the same time on a given
    cloud each time, so the next such wait looks once at half of that, then just before it, then often: it
    sees the change within `FINE` of settling, in no more calls than backing off from FIRST_POLL (which
    overshot by up to a quarter of the wait, on every LB write of a release's critical path). A wait that
    runs past `LATE` times the last one falls back to the backoff schedule."""

    last: float | None = None

    EARLY, LATE, FINE = 0.9, 1.5, 0.1

    def delay(self, elapsed: float, fallback: float) -> float:
        if not self.last:
            return fallback
        halfway, early = 0.5 * self.last, self.EARLY * self.last
        if elapsed < halfway - 0.01:
            return halfway - elapsed
        if elapsed < early - 0.01:
            return early - elapsed
        if elapsed < self.LATE * self.last:
            return min(self.FINE, fallback)
        return fallback


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.5,
    max_interval: float = 5.0,
    backoff: float = 1.5,
    what: str = "condition",
    clock: Clock = REAL_CLOCK,
    first: float = FIRST_POLL,
    pace: Pace | None = None,
) -> T:
    """Call `probe` until it returns something other than None or False, and return that.

    `probe` raises (typically ResourceFailure) to fail fast on a declared failure state. The first sleep is
    `first` (at most `interval`), so a short wait is not rounded up to a whole interval; it grows by `backoff`
    to `interval`, then on up to `max_interval`. With `pace`, the sleeps follow how long the last such wait
    took (see Pace), and this one's time is kept for the next. After `timeout` seconds this raises
    WaitTimeout naming `what`.
    """
    if timeout <= 0:
        raise ValueError("wait_for needs a positive timeout")
    started = clock.monotonic()
    deadline = started + timeout
    attempts = 0
    while True:
        attempts += 1
        result = probe()
        if result is not None and result is not False:
            if pace is not None and attempts > 1:  # a wait that was over at the first look teaches nothing
                pace.last = clock.monotonic() - started
            return result
        now = clock.monotonic()
        if now >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what} ({attempts} checks)")
        log.debug("waiting for %s (check %d)", what, attempts)
        delay = backoff_delay(attempts - 1, first=min(first, interval), cap=max_interval, backoff=backoff)
        if pace is not None:
            delay = pace.delay(now - started, delay)
        clock.sleep(min(delay, deadline - now))


def retry_call(
    func: Callable[[], T],
    *,
    retry_on: tuple[type[BaseException], ...],
    attempts: int,
    interval: float = 0.2,
    what: str = "call",
    clock: Clock = REAL_CLOCK,
) -> T:
    """Call `func`, retrying a bounded number of times on the listed exceptions; re-raise the last one."""
    last: BaseException | None = None
    for i in range(attempts):
        try:
            return func()
        except retry_on as exc:  # noqa: PERF203 - bounded retry
            last = exc
            log.debug("%s failed (attempt %d/%d): %s", what, i + 1, attempts, exc)
            if i + 1 < attempts:
                clock.sleep(interval * (2**i))
    assert last is not None
    if isinstance(last, ReleasectlError):
        raise last
    raise last
