"""Shared state, id and time helpers, and the delayed-transition scheduler.

Every service module works on one ``Store`` under one lock. The simulator is small, and a single
lock makes cross-service changes atomic (a snapshot touches Nova and Glance, a member's health read
touches Octavia and Nova) without any lock-ordering rules.
"""

from __future__ import annotations

import datetime as _dt
import heapq
import itertools
import sys
import threading
import time
import traceback
import uuid
from typing import Any, Callable


def new_id() -> str:
    """A dashed UUID, as Nova, Glance, Neutron and Octavia use."""
    return str(uuid.uuid4())


def hex_id() -> str:
    """A 32-hex id, as Keystone uses for users, projects and roles."""
    return uuid.uuid4().hex


def iso(ts: float | None, *, micro: bool = False) -> str | None:
    """UTC ISO-8601 with a ``Z``: seconds for Nova/Glance, microseconds for Keystone."""
    if ts is None:
        return None
    dt = _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc)
    if micro:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    """Parse the ISO-8601 forms clients send in filters (``Z`` or an offset)."""
    text = text.strip().replace("Z", "+00:00")
    dt = _dt.datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    return dt.timestamp()


class Store:
    """All simulated resources, keyed by id, guarded by ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.servers: dict[str, Any] = {}
        self.flavors: dict[str, Any] = {}
        self.images: dict[str, Any] = {}
        self.networks: dict[str, dict] = {}
        self.subnets: dict[str, dict] = {}
        self.security_groups: dict[str, dict] = {}
        self.security_group_rules: dict[str, dict] = {}
        self.ports: dict[str, dict] = {}
        self.floatingips: dict[str, dict] = {}
        self.keypairs: dict[str, dict] = {}  # Nova keypairs, by name
        self.zones: dict[str, Any] = {}  # Designate
        self.recordsets: dict[str, Any] = {}
        self.loadbalancers: dict[str, Any] = {}
        self.listeners: dict[str, Any] = {}
        self.pools: dict[str, Any] = {}
        self.healthmonitors: dict[str, Any] = {}
        self.members: dict[str, Any] = {}
        self.tokens: dict[str, Any] = {}
        self.swift_accounts: dict[str, dict[str, Any]] = {}  # Swift: account -> container name -> Container
        self._seq = itertools.count(1)

    def next_seq(self) -> int:
        """A strictly increasing number that breaks ties between equal timestamps."""
        return next(self._seq)


class Scheduler:
    """Runs delayed state transitions (BUILD -> ACTIVE, PENDING_UPDATE -> ACTIVE, ...) on one thread.

    Transitions happen in wall-clock time, so a client polling over HTTP sees them exactly as it
    would against a cloud. Callbacks run one at a time, in due order, and must be quick.
    """

    _IDLE_WAIT = 0.5  # upper bound of one wait, so stop() is noticed promptly

    def __init__(self, name: str = "openstack-sim-scheduler") -> None:
        self._heap: list[tuple[float, int, Callable[..., None], tuple]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on the scheduler thread after ``delay`` seconds."""
        with self._cond:
            if self._stopped:
                return
            due = time.monotonic() + max(0.0, delay)
            heapq.heappush(self._heap, (due, next(self._seq), fn, args))
            self._cond.notify()

    def stop(self, timeout: float = 5.0) -> None:
        """Drop pending work and join the thread (bounded)."""
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        # Service loop: runs until stop(); every wait is bounded by _IDLE_WAIT.
        while not self._stopped:
            with self._cond:
                if self._stopped:
                    return
                now = time.monotonic()
                if not self._heap or self._heap[0][0] > now:
                    wait = self._heap[0][0] - now if self._heap else self._IDLE_WAIT
                    self._cond.wait(min(wait, self._IDLE_WAIT))
                    continue
                _, _, fn, args = heapq.heappop(self._heap)
            try:
                fn(*args)
            except Exception:  # a broken transition must not stop the others
                print("openstack_sim: scheduled transition failed:", file=sys.stderr)
                traceback.print_exc()
