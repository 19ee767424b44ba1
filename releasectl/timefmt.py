"""The one time format of releasectl's output: RFC 3339 in UTC (`2026-12-06T03:03:20Z`), in JSON, tables and
messages alike, so CD jobs and people read the same instant the same way whatever the machine's zone."""

from __future__ import annotations

import time


def rfc3339(ts: float | None) -> str | None:
    """Epoch seconds as RFC 3339 UTC to the second; None stays None (JSON null)."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def rfc3339_or_dash(ts: float | None) -> str:
    """For tables: `-` where there is no time (a release still running has no end)."""
    return rfc3339(ts) if ts else "-"
