"""Request counter and journal: what the client under test actually sent.

Counts are keyed ``"<service> <METHOD> <template>"`` where the template is the path below the
service root with ids replaced by ``{id}`` (for example ``compute GET /v2.1/servers/{id}``), so
tests can assert call budgets ("one snapshot, not two"). The bounded journal keeps the order,
for tests where order is the contract (no member write while the LB is PENDING_UPDATE).
"""

from __future__ import annotations

import collections
import re
import threading
import time
from typing import Any

_ID_SEGMENT = re.compile(
    r"/(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})(?=/|$)"
)


def templatize(path: str) -> str:
    """Replace UUID and 32-hex path segments by ``{id}`` (used for unrouted paths)."""
    return _ID_SEGMENT.sub("/{id}", path)


class Journal:
    """Thread-safe counter plus the last ``max_entries`` requests in order."""

    def __init__(self, max_entries: int = 10000) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_entries)
        self._seq = 0

    def record(self, service: str, method: str, template: str, path: str, status: int) -> None:
        with self._lock:
            self._seq += 1
            self._counts[f"{service} {method} {template}"] += 1
            self._entries.append(
                {
                    "seq": self._seq,
                    "time": time.time(),
                    "service": service,
                    "method": method,
                    "template": template,
                    "path": path,
                    "status": status,
                }
            )

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._entries.clear()

    def count(self, service: str | None = None, method: str | None = None, template: str | None = None) -> int:
        """Sum of the counts matching every given part (None matches anything)."""
        total = 0
        with self._lock:
            for key, n in self._counts.items():
                svc, meth, tmpl = key.split(" ", 2)
                if service not in (None, svc) or method not in (None, meth) or template not in (None, tmpl):
                    continue
                total += n
        return total

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self._counts.values()),
                "counts": dict(sorted(self._counts.items())),
                "journal": list(self._entries),
            }
