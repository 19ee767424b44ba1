"""Release records kept with the provider, so any runner can read, resume or undo a release.

Key `current` holds the newest release of the environment (finished or not). Finished releases are also
copied to `history/<started>-<id>` so `history` can list them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from releasectl.engine.model import Release
from releasectl.errors import DamagedState, ReleasectlError
from releasectl.providers.base import Provider

if TYPE_CHECKING:
    from releasectl.engine.context import EngineContext

CURRENT = "current"
HISTORY_PREFIX = "history/"


# Fields the engine does arithmetic or comparisons on: a record where they have another type is damaged.
_TYPED_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (str,), "app": (str,), "env": (str,), "version": (str,), "image_id": (str,),
    "previous_version": (str, type(None)), "count": (int,), "step_index": (int,),
    "started_at": (int, float), "updated_at": (int, float), "ended_at": (int, float, type(None)),
    "step_started_at": (int, float, type(None)), "wake_at": (int, float, type(None)),
    "progress_deadline": (int, float), "relaunches": (int,), "actor": (dict,), "events": (list,),
    "baseline": (dict,), "reason": (str,), "samples": (list,),
}


def load_current(provider: Provider) -> Release | None:
    """The newest release, or None. A damaged record raises DamagedState (exit 2, pointing at doctor):
    it is never taken for "no release"."""
    return _parse(CURRENT, _read(provider, CURRENT))


def _read(provider: Provider, key: str) -> str | None:
    try:
        return provider.read_record(key)
    except DamagedState as exc:
        raise DamagedState(f"the release record {key!r} ({exc.path})", exc.what) from None


def _parse(key: str, text: str | None) -> Release | None:
    """None when there is no record; a corrupt one is DamagedState, never silently "no release"."""
    if text is None:
        return None
    try:
        release = Release.from_json(text)
    except RecursionError:
        raise DamagedState(f"the release record {key!r}", "is nested too deeply") from None
    except Exception as exc:  # any record that does not make a Release is damage, whatever broke on it
        raise DamagedState(f"the release record {key!r}", f"{type(exc).__name__}: {str(exc)[:200]}") from None
    for name, types in _TYPED_FIELDS.items():
        value = getattr(release, name)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise DamagedState(f"the release record {key!r}", f"field {name!r} has the wrong type")
    return release


def check(provider: Provider, key: str) -> DamagedState | None:
    """What is wrong with one record, or None (for doctor)."""
    try:
        _parse(key, _read(provider, key))
    except DamagedState as exc:
        return exc
    return None


def load_current_or_damage(provider: Provider) -> tuple[Release | None, DamagedState | None]:
    """For the read-mostly commands (status, gc, down): the release, or the damage to report instead."""
    try:
        return load_current(provider), None
    except DamagedState as exc:
        return None, exc


def save(provider: Provider, release: Release) -> None:
    """One write of the whole record; finished releases are also written to history."""
    provider.write_record(CURRENT, release.to_json())
    if release.phase.finished:
        provider.write_record(history_key(release), release.to_json())


def history_key(release: Release) -> str:
    return f"{HISTORY_PREFIX}{int(release.started_at):012d}-{release.id}"


def load_history(provider: Provider) -> list[Release]:
    """Newest first, including an unfinished current release."""
    return load_history_and_damage(provider)[0]


def load_history_and_damage(provider: Provider) -> tuple[list[Release], list[DamagedState]]:
    """Newest first, and the damaged records left out of it (reported, never fatal)."""
    releases = {}
    damaged = []
    for key in [*provider.list_records(HISTORY_PREFIX), CURRENT]:
        try:
            rel = _parse(key, _read(provider, key))
        except DamagedState as exc:
            damaged.append(exc)
            continue
        if rel is not None:
            releases[rel.id] = rel
    return sorted(releases.values(), key=lambda r: r.started_at, reverse=True), damaged


def find(provider: Provider, ref: str) -> Release:
    """One release by id (or a unique prefix of one), or `latest`: the newest, finished or not. An id that
    matches none (or several) is a usage error that names the newest ones."""
    from releasectl.errors import UsageError

    releases = load_history(provider)
    if ref == "latest":
        if not releases:
            raise UsageError("there is no release in this environment yet", hint="run `releasectl rollout` first")
        return releases[0]
    matches = [r for r in releases if r.id == ref] or [r for r in releases if ref and r.id.startswith(ref)]
    if len(matches) != 1:
        known = ", ".join(r.id for r in releases[:5]) or "none"
        what = "no release" if not matches else f"{len(matches)} releases"
        raise UsageError(f"{what} with id {ref[:64]!r} in this environment (newest: {known})",
                         hint="`releasectl history` lists the releases; `latest` is the newest")
    return matches[0]


def report_damage(ctx: EngineContext, damages: Iterable[DamagedState]) -> list[dict[str, str]]:
    """Damaged records plus what the provider finds wrong with its own state, as rows (for JSON), each
    also said once on stderr. For the commands that keep working around damage (status, history, gc,
    down); finding out never stops them."""
    rows = [{"path": d.path, "problem": d.what} for d in damages]
    try:
        rows += [{"path": i.path, "problem": i.problem} for i in ctx.provider.check_state()]
    except ReleasectlError as exc:
        ctx.event("damaged", f"could not check the provider's state: {exc}")
    for row in rows:
        ctx.event("damaged", f"{row['path']}: {row['problem']} (see `releasectl doctor`)")
    return rows
