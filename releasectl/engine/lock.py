"""One release at a time per app and environment: a provider-held lease, renewed while the run lasts."""

from __future__ import annotations

import logging
import threading
from typing import Mapping

from releasectl.errors import Interrupted, LockHeld, ReleasectlError, UsageError
from releasectl.providers.base import Lease, Provider, describe_owner

log = logging.getLogger("releasectl.lock")


class LockKeeper:
    """Context manager: acquire on enter, renew on a daemon thread every ttl/3, release on exit.

    If a renewal finds the lease broken or taken, the run is told at its next safe point (`check`), so two
    runners never act at once for longer than one renewal interval.
    """

    def __init__(self, provider: Provider, owner: Mapping[str, str], ttl: float = 30.0) -> None:
        self.provider = provider
        self.owner = dict(owner)
        self.ttl = ttl
        self.lease: Lease | None = None
        self._lost: ReleasectlError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "LockKeeper":
        self.lease = self.provider.acquire_lock(self.owner, self.ttl)
        took_over = self.lease.owner.get("took_over")
        if took_over:
            log.warning("took over the lock of a dead holder: %s", took_over)
        self._thread = threading.Thread(target=self._renew_loop, name="releasectl-lease", daemon=True)
        self._thread.start()
        return self

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                assert self.lease is not None
                self.lease = self.provider.renew_lock(self.lease, self.ttl)
            except LockHeld as exc:
                self._lost = exc
                return
            except ReleasectlError as exc:  # a transient provider error: try again next interval
                log.warning("could not renew the lock lease: %s", exc)

    def check(self) -> None:
        if self._lost is not None:
            raise Interrupted(f"lost the release lock: {self._lost}")

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.lease is not None and self._lost is None:
            try:
                self.provider.release_lock(self.lease)
            except ReleasectlError as exc:
                log.warning("could not release the lock (its lease will expire): %s", exc)


def unlock(provider: Provider, *, force: bool, now: float) -> Lease | None:
    """Break the lock of a dead holder; refuse while its lease is alive unless forced."""
    lease = provider.read_lock()
    if lease is None:
        return None
    if lease.alive(now) and not force:
        raise UsageError(
            f"the lock is held by {describe_owner(lease.owner)} and its lease is alive "
            f"for {lease.expires_at - now:.0f}s more",
            hint="if that holder is really dead, wait for the lease to expire or run `releasectl unlock --force`",
        )
    provider.break_lock()
    return lease
