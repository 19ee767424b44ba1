"""Release records kept with the provider, so any runner can read, resume or undo a release.

Key `current` holds the newest release of the environment (finished or not). Finished releases are also
copied to `history/<started>-<id>` so `history` can list them.
"""

from __future__ import annotations

from releasectl.engine.model import Release
from releasectl.providers.base import Provider

CURRENT = "current"
HISTORY_PREFIX = "history/"


def load_current(provider: Provider) -> Release | None:
    text = provider.read_record(CURRENT)
    return Release.from_json(text) if text else None


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
        text = provider.read_record(key)
        if text:
            rel = Release.from_json(text)
            releases[rel.id] = rel
    current = load_current(provider)
    if current is not None:
        releases[current.id] = current
    return sorted(releases.values(), key=lambda r: r.started_at, reverse=True)
