"""releasectl's exception tree.

Every error the tool raises on purpose is a ReleasectlError. The CLI maps each class to one exit code in
one place (cli/exitcodes.py), so engine and providers never call sys.exit or print. Messages carry context
(which file, which resource, what to do next) and never a secret.
"""

from __future__ import annotations


class ReleasectlError(Exception):
    """Base class. `hint` is an optional second line telling the user what to do next."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


# --- exit 2: usage or configuration error, nothing changed ---------------------------------------------


class UsageError(ReleasectlError):
    """Bad input on the command line or in a file: nothing was changed."""


class ConfigError(UsageError):
    """releasectl.yaml or a pipeline file is invalid. `location` is 'file:line' when known."""

    def __init__(self, message: str, *, location: str | None = None, hint: str | None = None) -> None:
        super().__init__(f"{location}: {message}" if location else message, hint=hint)
        self.location = location


class QuotaExceeded(UsageError):
    """The project's quota cannot hold what the command would create: refused before anything is created.
    `rows` holds (resource, needed, used, limit) of every resource that does not fit."""

    def __init__(self, message: str, rows: list[tuple[str, int, int, int]], *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rows = rows


class CredentialsError(UsageError):
    """Credentials missing, unusable, or refused by the identity service (Keystone 400/401/403/404 on
    authentication): a configuration problem that waiting or resuming cannot fix. Never carries the credential
    itself. Providers raise this (or AuthError, which is one) for every authentication failure."""


DOCTOR_HINT = "run `releasectl doctor` to see what is damaged, then `releasectl doctor --fix` to repair it"


class DamagedState(ReleasectlError):
    """A state file (record, manifest, lock, lb.json, server.json) is unreadable: `path` names it and
    `what` says what is wrong with it. Commands that only read report it and go on; commands that would
    act on it refuse (exit 2) and point at `releasectl doctor`."""

    def __init__(self, path: str, what: str, *, hint: str | None = DOCTOR_HINT) -> None:
        super().__init__(f"{path} is damaged: {what}", hint=hint)
        self.path = path
        self.what = what


# --- exit 3: another release holds the lock -------------------------------------------------------------


class LockHeld(ReleasectlError):
    """Another run holds the app/environment lock: nothing was changed."""


# --- exit 4: paused at a manual gate --------------------------------------------------------------------


class PausedAtGate(ReleasectlError):
    """Not an error for the release: it waits for `releasectl promote`."""


# --- exit 1: the release failed and was rolled back -----------------------------------------------------


class ReleaseFailed(ReleasectlError):
    """The release failed its checks; traffic is back on the previous version."""


class RecipeFailed(ReleaseFailed):
    """The builder's recipe failed (or its builder broke): `bake --recipe` removed the builder, nothing baked."""


class SmokeCheckFailed(ReleaseFailed):
    """`stage` ran its smoke checks and at least one failed."""


# --- exit 5: provider or infrastructure error, release unfinished -------------------------------------


class ProviderError(ReleasectlError):
    """A provider call failed after its retries. The release, if any, is left resumable."""


class NotFound(ProviderError):
    """The resource does not exist (a 404, a missing file, a dead process)."""


class Conflict(ProviderError):
    """The resource is busy or in a state that forbids the call (a 409)."""


class ResourceFailure(ProviderError):
    """A resource reached a failure state (server ERROR, image killed, LB ERROR)."""


class WaitTimeout(ProviderError):
    """A bounded wait ran out before its condition held."""


class AuthError(CredentialsError, ProviderError):
    """Credentials were refused or missing (exit 2, like every CredentialsError). Never carries the
    credential itself. Still a ProviderError so that provider code catching those keeps working."""


class Interrupted(ReleasectlError):
    """SIGINT or SIGTERM stopped the run at a safe point; the release can be resumed."""
