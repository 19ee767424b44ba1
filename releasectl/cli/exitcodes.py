"""Exit codes, the same for every command (DEVELOPERS.md), and the one table mapping errors onto them.

README's "Exit codes" section is this table in prose; tests/hostile/test_exit_classes.py keeps them in step.
"""

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


RESUME_HINT = "the release (if any) is resumable: `releasectl status`, then `releasectl rollout --resume` or `releasectl abort`"

# The exit classes. Most specific first: the first isinstance match wins.
# (error class, exit code, the `code` of the error in JSON output)
ERROR_CODES: list[tuple[type[BaseException], ExitCode, str]] = [
    (errors.CredentialsError, ExitCode.USAGE, "credentials"),  # missing, unusable or refused (401) credentials
    (errors.DamagedState, ExitCode.USAGE, "damaged_state"),  # a state file is unreadable: `releasectl doctor`
    (errors.UsageError, ExitCode.USAGE, "usage"),  # bad arguments, config, pipeline or version
    (errors.LockHeld, ExitCode.LOCKED, "locked"),
    (errors.PausedAtGate, ExitCode.PAUSED, "paused"),
    (errors.ReleaseFailed, ExitCode.ROLLED_BACK, "rolled_back"),  # new fleet failed to start/get healthy
    (errors.Interrupted, ExitCode.INFRA, "interrupted"),  # SIGINT/SIGTERM: resumable
    (errors.ProviderError, ExitCode.INFRA, "provider"),  # unreachable, 5xx after retries, timeouts
    (errors.ReleasectlError, ExitCode.INFRA, "error"),
]


def classify(exc: BaseException) -> tuple[ExitCode, str]:
    for cls, code, name in ERROR_CODES:
        if isinstance(exc, cls):
            return code, name
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INFRA, "interrupted"
    return ExitCode.INFRA, "internal"


def hint_for(code: ExitCode, hint: str | None) -> str | None:
    """The error's own hint, else the class's: interrupted and infrastructure errors are resumable."""
    if hint:
        return hint
    if code is ExitCode.INFRA:
        return RESUME_HINT
    return None
