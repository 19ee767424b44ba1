"""Exit codes, the same for every command (DEVELOPERS.md), and the one table mapping errors onto them."""

from __future__ import annotations

import enum

from releasectl import errors


class ExitCode(enum.IntEnum):
    OK = 0
    ROLLED_BACK = 1  # the release failed and was rolled back
    USAGE = 2  # usage or configuration error; nothing changed
    LOCKED = 3  # another release holds the lock; nothing changed
    PAUSED = 4  # paused at a manual gate
    INFRA = 5  # a provider or infrastructure error left the release unfinished


# Most specific first: the first isinstance match wins.
ERROR_CODES: list[tuple[type[BaseException], ExitCode, str]] = [
    (errors.UsageError, ExitCode.USAGE, "usage"),
    (errors.LockHeld, ExitCode.LOCKED, "locked"),
    (errors.PausedAtGate, ExitCode.PAUSED, "paused"),
    (errors.ReleaseFailed, ExitCode.ROLLED_BACK, "rolled_back"),
    (errors.Interrupted, ExitCode.INFRA, "interrupted"),
    (errors.ProviderError, ExitCode.INFRA, "provider"),
    (errors.ReleasectlError, ExitCode.INFRA, "error"),
]


def classify(exc: BaseException) -> tuple[ExitCode, str]:
    for cls, code, name in ERROR_CODES:
        if isinstance(exc, cls):
            return code, name
    return ExitCode.INFRA, "internal"
