"""Release records kept with the provider, so any runner can read, resume or undo a release.

Key `current` holds the newest release of the environment (finished or not). Finished releases are also
copied to `history/<started>-<id>` so `history` can list them.
"""

from __future__ import annotations

from releasectl.engine.model import Release
from releasectl.errors import ProviderError
from releasectl.providers.base import Provider

CURRENT = "current"
HISTORY_PREFIX = "history/"


def load_current(provider: Provider) -> Release | None:
    return _parse(CURRENT, provider.read_record(CURRENT))


def _parse(key: str, text: str | None) -> Release | None:
    """None when there is no record; a corrupt one is an error, never silently "no release"."""
    if text is None:
        return None
    try:
        return Release.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise ProviderError(
            f"the release record {key!r} is unreadable ({type(exc).__name__}: {exc})",
            hint="check `releasectl history`; the servers and the pool still show what runs",
        ) from None


def save(provider: Provider, release: Release) -> None:
    """One write of the whole record; finished releases are also written to history."""
    provider.write_record(CURRENT, release.to_json())
    if release.phase.finished:
        provider.write_record(history_key(release), release.to_json())


def history_key(release: Release) -> str:
    return f"{HISTORY_PREFIX}{int(release.started_at):012d}-{release.id}"


def load_history(provider: Provider) -> list[Release]:
    """Newest first, including an unfinished current release."""
    releases = {}
    for key in provider.list_records(HISTORY_PREFIX):
        rel = _parse(key, provider.read_record(key))
        if rel is not None:
            releases[rel.id] = rel
    current = load_current(provider)
    if current is not None:
        releases[current.id] = current
    return sorted(releases.values(), key=lambda r: r.started_at, reverse=True)
