"""OpenStack values -> releasectl's: labels from metadata or properties, timestamps, and the 255-byte rule."""

from __future__ import annotations

from typing import Any, Mapping

from releasectl.errors import UsageError
from releasectl.providers.base import LABEL_PREFIX as P

from .auth import parse_expiry


def labels_of(props: Mapping[str, Any]) -> dict[str, str]:
    """releasectl's labels (prefix removed) from Nova metadata or Glance properties."""
    return {k[len(P):]: str(v) for k, v in props.items() if isinstance(k, str) and k.startswith(P) and v is not None}


def epoch(value: Any) -> float:
    """An OpenStack ISO 8601 time as epoch seconds; 0.0 when absent or unreadable."""
    try:
        return parse_expiry(value) if value else 0.0
    except ValueError:
        return 0.0


def check_meta(meta: Mapping[str, str]) -> None:
    """Nova metadata and Glance properties stop at 255 bytes for a key and for a value."""
    for key, value in meta.items():
        if len(key.encode()) > 255 or len(value.encode()) > 255:
            raise UsageError(f"label {key[len(P):]!r} is too long for OpenStack metadata (255 bytes for key and value)")
