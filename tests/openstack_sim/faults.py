"""Fault injection: the failures a release tool must survive, on demand and reproducibly.

Random errors come from a seeded ``random.Random`` so a failing test can be replayed. One-shot
faults (``next_*``) and the Octavia 409 burst are counters consumed one use at a time, so a test
can say "the next call fails" without racing a timer.
"""

from __future__ import annotations

import random
import threading
from typing import Any

SERVICES = ("compute", "image", "load-balancer", "network", "object-store", "dns")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
HOLD_TIMEOUT = 60.0  # a held answer is sent after this long even if nobody releases it
DEFAULT_CREATE_ERROR = "No valid host was found. There are not enough hosts available."


def _defaults() -> dict[str, Any]:
    return {
        "error_rate": 0.0,  # probability of a random 5xx on each service call
        "error_statuses": [500, 503],
        "error_services": list(SERVICES),
        "seed": None,
        "octavia_conflicts": 0,  # the next N Octavia writes get 409 "immutable"
        "latency": 0.0,  # seconds added to every service call
        "latency_services": list(SERVICES),
        "next_create_error": None,  # message: next server create goes to ERROR with this fault
        "next_create_500": False,  # next server create succeeds but answers 500
        "next_snapshot_vanish": False,  # next snapshot image is deleted while saving
        "lose_put_answers": 0,  # the next N Swift object PUTs are stored, but answered 503 (a lost answer)
        "hold_after_writes": None,  # N: after N more service writes, the next one is done but its answer held
    }


class FaultInjector:
    """Holds the current fault settings; thread-safe."""

    MAX_LATENCY = 30.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings = _defaults()
        self._rng = random.Random()
        self._injected: dict[str, int] = {}
        self._release = threading.Event()  # set: held answers go out (a reset or a new hold setting sets it)

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge ``changes`` into the settings (``reset: true`` first restores the defaults).

        Raises ValueError on an unknown key or a bad value, so a typo in a test fails loudly.
        ``expire_tokens`` is not a setting: the control layer handles it before calling this.
        """
        changes = dict(changes)
        with self._lock:
            reset = changes.pop("reset", False)
            if reset or "hold_after_writes" in changes:
                self._release.set()  # let any held answer go: the client it was for is gone
                self._release = threading.Event()
            if reset:
                self._settings = _defaults()
                self._injected = {}
                self._rng = random.Random()
            for key, value in changes.items():
                if key not in self._settings:
                    raise ValueError(f"unknown fault {key!r}; known: {sorted(self._settings)}")
                self._settings[key] = self._check(key, value)
            if "seed" in changes:
                self._rng = random.Random(self._settings["seed"])
            return self._snapshot_locked()

    @staticmethod
    def _check(key: str, value: Any) -> Any:
        if key == "error_rate":
            value = float(value or 0.0)
            if not 0.0 <= value <= 1.0:
                raise ValueError("error_rate must be within 0..1")
        elif key == "latency":
            value = float(value or 0.0)
            if not 0.0 <= value <= FaultInjector.MAX_LATENCY:
                raise ValueError(f"latency must be within 0..{FaultInjector.MAX_LATENCY}")
        elif key == "hold_after_writes":
            value = None if value is None else int(value)
            if value is not None and value < 0:
                raise ValueError("hold_after_writes must be >= 0")
        elif key in ("octavia_conflicts", "lose_put_answers"):
            value = int(value or 0)
            if value < 0:
                raise ValueError(f"{key} must be >= 0")
        elif key == "error_statuses":
            value = [int(v) for v in value]
            if not value or any(not 500 <= v <= 599 for v in value):
                raise ValueError("error_statuses must be a non-empty list of 5xx codes")
        elif key in ("error_services", "latency_services"):
            value = [str(v) for v in value]
            unknown = set(value) - set(SERVICES) - {"identity"}
            if unknown:
                raise ValueError(f"unknown services {sorted(unknown)}")
        elif key == "next_create_error":
            if value is True:
                value = DEFAULT_CREATE_ERROR
            elif value is False:
                value = None
            elif value is not None:
                value = str(value)
        elif key in ("next_create_500", "next_snapshot_vanish"):
            value = bool(value)
        elif key == "seed":
            value = None if value is None else int(value)
        return value

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self._snapshot_locked()

    def _snapshot_locked(self) -> dict[str, Any]:
        return {"faults": dict(self._settings), "injected": dict(self._injected)}

    def _count(self, name: str) -> None:
        self._injected[name] = self._injected.get(name, 0) + 1

    def random_error(self, service: str) -> int | None:
        """A 5xx status to answer instead of serving the call, or None."""
        with self._lock:
            rate = self._settings["error_rate"]
            if rate <= 0 or service not in self._settings["error_services"]:
                return None
            if self._rng.random() >= rate:
                return None
            self._count("random_error")
            return self._rng.choice(self._settings["error_statuses"])

    def latency(self, service: str) -> float:
        with self._lock:
            if service in self._settings["latency_services"]:
                return self._settings["latency"]
            return 0.0

    def take(self, name: str) -> Any:
        """Consume a one-shot fault: returns its value once, then it is cleared."""
        with self._lock:
            value = self._settings[name]
            if value:
                self._settings[name] = _defaults()[name]
                self._count(name)
            return value

    def take_count(self, name: str) -> bool:
        """Consume one use of a counted fault (``lose_put_answers``): True while any are left."""
        with self._lock:
            if self._settings[name] > 0:
                self._settings[name] -= 1
                self._count(name)
                return True
            return False

    def hold_answer(self, service: str, method: str) -> threading.Event | None:
        """Count a service write done (Swift's and Keystone's aside: a lock or a token is not the work under
        test); the one after ``hold_after_writes`` gets an event to wait on before its answer goes out (a kill
        -9 hook: the client dies with the change made but unanswered)."""
        with self._lock:
            remaining = self._settings["hold_after_writes"]
            if remaining is None or method not in WRITES or service in ("identity", "object-store"):
                return None
            if remaining > 0:
                self._settings["hold_after_writes"] = remaining - 1
                return None
            self._settings["hold_after_writes"] = None
            self._count("held_answer")
            return self._release

    def take_octavia_conflict(self) -> bool:
        with self._lock:
            if self._settings["octavia_conflicts"] > 0:
                self._settings["octavia_conflicts"] -= 1
                self._count("octavia_conflict")
                return True
            return False
