"""Operator intents: abort, promote, promote --full and pause, posted while another runner holds the lock.

As in Argo Rollouts, where abort and promote patch the rollout's status for the controller's next pass, an
operator does not act on a running release; they leave a note beside its record and the runner applies it.
Each intent is its own create-only record (`intents/<release id>/<time>-<random>`), never overwritten, so
two operators never lose each other's intent and no compare-and-swap is needed (Swift has none). The runner
reads them (`pending`), folds them into the release (`fold`, pure), writes the record, and only then deletes
them (`consume`): a crash in between re-reads intents whose ids the record already lists, and `fold`
ignores those.
"""

from __future__ import annotations

import enum
import json
import logging
import secrets
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping

from releasectl.engine import records
from releasectl.engine.context import EngineContext
from releasectl.engine.model import Pause, Phase, Release, SetWeight
from releasectl.errors import PausedAtGate, ProviderError, UsageError
from releasectl.providers.base import Provider

log = logging.getLogger("releasectl.intents")

PREFIX = "intents/"
MAX_EVENTS = 50  # the record's event log keeps the newest (engine.transition trims with it too)
MAX_APPLIED = 100  # ids of applied intents a record keeps, newest last (a crash re-reads only the last pass's)


class IntentKind(str, enum.Enum):
    ABORT = "abort"
    PROMOTE = "promote"
    PROMOTE_FULL = "promote_full"
    PAUSE = "pause"


@dataclass(frozen=True)
class Intent:
    id: str  # sortable: milliseconds since the epoch, then random
    kind: IntentKind
    release_id: str
    at: float
    actor: Mapping[str, str] = field(default_factory=dict)  # host, user, pid, ci_job of who posted it

    def to_json(self) -> str:
        return json.dumps(
            {"id": self.id, "kind": self.kind.value, "release_id": self.release_id, "at": self.at, "actor": dict(self.actor)},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> "Intent":
        data = json.loads(text)
        return cls(
            id=str(data["id"]),
            kind=IntentKind(data["kind"]),
            release_id=str(data["release_id"]),
            at=float(data["at"]),
            actor={str(k): str(v) for k, v in dict(data.get("actor") or {}).items()},
        )


@dataclass(frozen=True)
class Verdict:
    """What `fold` did with one intent: applied (possibly a no-op repeat) or ignored, and why, for the log."""

    intent: Intent
    applied: bool
    reason: str


def release_prefix(release_id: str) -> str:
    return f"{PREFIX}{release_id}/"


def key_of(intent: Intent) -> str:
    return f"{release_prefix(intent.release_id)}{intent.id}"


def post(provider: Provider, release_id: str, kind: IntentKind, actor: Mapping[str, str], now: float) -> Intent:
    """Record an intent for the release's runner. Create-only: an existing key is never overwritten."""
    for _ in range(5):
        intent = Intent(
            id=f"{int(now * 1000):013d}-{secrets.token_hex(4)}",
            kind=kind,
            release_id=release_id,
            at=now,
            actor={str(k): str(v) for k, v in actor.items()},
        )
        if provider.create_record(key_of(intent), intent.to_json()):
            return intent
    raise ProviderError(f"could not record the {kind.value} intent: its key was taken five times in a row")


RUNNER_COMMANDS = ("rollout", "promote", "abort", "rollback")  # lock holders that drive a release


@dataclass(frozen=True)
class Posted:
    """An intent handed to the live runner; with a wait, `release` is the record once it was applied."""

    intent: Intent
    release: Release
    runner: dict[str, str]  # the lock holder's owner record
    waited: bool = False


def hand_to_runner(ctx: EngineContext, kind: IntentKind) -> Posted | None:
    """Post the intent for the live runner of the unfinished release; None when no runner drives one (the
    verb then acts itself). Read-only looks first (the lock, then the record), then one create-only write.
    This module imports nothing of the engine's decision or provider code, so `abort` from a second shell
    returns at once (the CLI calls this before it imports `engine.release`)."""
    lease = ctx.provider.read_lock()
    if lease is None or not lease.alive(ctx.clock.time()) or lease.owner.get("command") not in RUNNER_COMMANDS:
        return None
    current = records.load_current(ctx.provider)
    if current is None or current.phase.finished:
        return None
    why_not = refusal(current, kind)
    if why_not is not None:
        raise UsageError(why_not, hint="see `releasectl status`")
    intent = post(ctx.provider, current.id, kind, {**ctx.actor, "command": kind.value}, ctx.clock.time())
    ctx.event("intent", f"{kind.value} of {current.version} handed to the running {lease.owner.get('command')} "
              f"(pid {lease.owner.get('pid', '?')} on {lease.owner.get('host', '?')}) as intent {intent.id}")
    return Posted(intent=intent, release=current, runner=dict(lease.owner))


def pending(provider: Provider, release_id: str) -> list[Intent]:
    """The release's intents not consumed yet, oldest first. One that vanished meanwhile was consumed."""
    found = []
    for key in provider.list_records(release_prefix(release_id)):
        text = provider.read_record(key)
        if text is None:
            continue
        try:
            intent = Intent.from_json(text)
        except (ValueError, KeyError, TypeError) as exc:
            # written create-only in one piece by `post`, so this is damage, not a race: leave it for
            # `releasectl doctor` and go on (one bad file must not stop the runner from applying the rest)
            log.warning("ignoring the unreadable intent record %r (%s: %s)", key, type(exc).__name__, exc)
            continue
        if intent.release_id == release_id:
            found.append(intent)
    return sorted(found, key=lambda i: (i.at, i.id))


def consume(provider: Provider, intents: Iterable[Intent]) -> None:
    """Delete applied intents. Only after the record that lists them in `applied_intents` was written."""
    for intent in intents:
        provider.delete_record(key_of(intent))


def discard_others(provider: Provider, release_id: str) -> bool:
    """Delete the intents of every release but this one; True when the listing showed intents of this one
    (when it showed none, the runner's first look need not list them again). Only one release of an app
    and environment is unfinished at a time, so they are leftovers: posted after their release's runner
    had ended (the operator's look and post raced its end). Never applied to another release: `pending`
    lists one release's intents only; this keeps them from piling up."""
    keys = provider.list_records(PREFIX)
    for key in keys:
        if not key.startswith(release_prefix(release_id)):
            provider.delete_record(key)
    return any(key.startswith(release_prefix(release_id)) for key in keys)


# ---- folding intents into the release (pure) -------------------------------------------------------------


def refusal(release: Release, kind: IntentKind) -> str | None:
    """Why an intent of this kind makes no sense for the release as it stands, or None if it applies."""
    if release.phase.finished:
        return f"the {release.kind.value} of {release.version} already ended ({release.phase.value})"
    rolling_back = release.phase is Phase.ROLLING_BACK or release.abort_requested
    if kind is IntentKind.ABORT:
        if release.phase is Phase.ROLLING_BACK:
            return f"the {release.kind.value} of {release.version} is already rolling back"
        return None
    if rolling_back:
        return f"the {release.kind.value} of {release.version} is rolling back; it cannot be {_verb(kind)}"
    if kind is IntentKind.PROMOTE and not (release.pause_requested or _at_gate(release)):
        return (
            f"the {release.kind.value} of {release.version} is {release.phase.value} at step "
            f"{release.step_index + 1}, not paused: use `promote --full` to skip the remaining steps"
        )
    return None


def fold(release: Release, intents: Iterable[Intent]) -> Release:
    """A new Release with the intents applied in order; ids it already lists are skipped. Pure."""
    return _fold(release, intents)[0]


def verdicts(release: Release, intents: Iterable[Intent]) -> list[Verdict]:
    """What `fold(release, intents)` does with each new intent, for the runner's log. Pure."""
    return _fold(release, intents)[1]


def _fold(release: Release, intents: Iterable[Intent]) -> tuple[Release, list[Verdict]]:
    rel = replace(release, applied_intents=list(release.applied_intents), events=list(release.events))
    done: list[Verdict] = []
    for intent in intents:
        if intent.id in rel.applied_intents or intent.release_id != rel.id:
            continue
        why_not = refusal(rel, intent.kind)
        if why_not is None:
            rel = apply(rel, intent.kind, intent.at)
            verdict = Verdict(intent, True, f"{_who(intent)} {_verb(intent.kind)} the release")
        else:
            verdict = Verdict(intent, False, f"ignored {_who(intent)}'s {intent.kind.value}: {why_not}")
        rel.applied_intents.append(intent.id)
        rel.events.append({"at": intent.at, "message": verdict.reason, "intent": intent.id, "applied": verdict.applied})
        done.append(verdict)
    # bounded: an intent is deleted right after the write that lists it, so only the newest ids can be read again
    del rel.applied_intents[:-MAX_APPLIED]
    del rel.events[:-MAX_EVENTS]
    return rel, done


def apply(rel: Release, kind: IntentKind, at: float) -> Release:
    """A new Release with one intent's fields set: what `fold` does per intent, and what `abort`, `promote`
    and `pause` do themselves when no runner is alive, so both paths mean the same. Check `refusal` first."""
    if kind is IntentKind.ABORT:
        return replace(rel, abort_requested=True, pause_requested=False, phase=Phase.PROGRESSING)
    if kind is IntentKind.PAUSE:
        return replace(rel, pause_requested=True)
    opened = replace(rel, pause_requested=False, promoted_step=rel.step_index, phase=Phase.PROGRESSING)
    if kind is IntentKind.PROMOTE:
        return opened
    # skipping the remaining steps skips what is left of the current hold or timed pause too (as Argo's full
    # promotion does); an analysis window or a drain is never cut short
    cut = opened.wake_at is not None and isinstance(opened.current_step, (SetWeight, Pause))
    return replace(opened, promote_full=True, wake_at=min(opened.wake_at, at) if cut else opened.wake_at)


def _at_gate(rel: Release) -> bool:
    step = rel.current_step
    return rel.phase is Phase.PAUSED or (isinstance(step, Pause) and step.duration is None)


def _verb(kind: IntentKind) -> str:
    return {
        IntentKind.ABORT: "aborted",
        IntentKind.PROMOTE: "promoted",
        IntentKind.PROMOTE_FULL: "fully promoted",
        IntentKind.PAUSE: "paused",
    }[kind]


def _who(intent: Intent) -> str:
    actor = intent.actor
    who = f"{actor.get('user', '?')}@{actor.get('host', '?')}"
    return who + (f" ({actor['ci_job']})" if actor.get("ci_job") else "")


def paused_error(release: Release) -> PausedAtGate:
    """The exit-4 error of a paused release: paused by an operator, or stopped at a manual gate."""
    where = f"step {release.step_index + 1}/{len(release.pipeline.steps)}"
    how = "paused by an operator at" if release.pause_requested else "paused at"
    return PausedAtGate(
        f"{release.app} {release.version} is {how} {where}",
        hint="run `releasectl promote` to continue, or `releasectl abort` to roll back",
    )
