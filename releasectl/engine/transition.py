"""Record changes as data: the release record after a decision, computed without I/O.

The runner applies the decision's action and computes `transition(release, decision, now)`; it writes it
only when it differs from what is stored (see `record_key`), so a pass that changes nothing costs no write.
"""

from __future__ import annotations

import dataclasses
import functools
import json

from releasectl.engine.actions import ReplaceBroken
from releasectl.engine.decide import Decision, Kind
from releasectl.engine.intents import MAX_EVENTS
from releasectl.engine.model import Phase, Pipeline, Release, SetWeight
from releasectl.engine.observe import Observed



def transition(release: Release, decision: Decision, now: float) -> Release:
    """The record once `decision` is carried out (for ACT: once its action succeeded)."""
    rel = copy_release(release)
    rel.reason = decision.reason
    kind = decision.kind
    if kind is Kind.ACT:
        if isinstance(decision.action, ReplaceBroken) and not decision.action.finishing:
            rel.relaunches += 1
        if decision.log:
            _log(rel, now, decision.log)
        if decision.clear_wake:
            rel.wake_at = None
    elif kind is Kind.WAIT:
        if decision.wake_at is not None and rel.wake_at is None:
            rel.wake_at = decision.wake_at
            if decision.baseline is not None:
                rel.baseline = {k: dict(v) for k, v in decision.baseline.items()}
    elif kind is Kind.ADVANCE:
        _log(rel, now, f"step {rel.step_index + 1} done: {decision.reason}", decision)
        rel.step_index += 1
        rel.step_started_at = now
        rel.wake_at = None
        rel.baseline = {}
        if rel.promote_full:
            # skip to the last weight step (100 %) and the retire step after it
            last_weight = max(i for i, s in enumerate(rel.pipeline.steps) if isinstance(s, SetWeight))
            rel.step_index = max(rel.step_index, last_weight)
    elif kind is Kind.FAIL:
        end = Phase.ABORTED if rel.abort_requested else Phase.FAILED
        rel.failure = decision.reason
        rel.failing_member = decision.failing_member or (decision.analysis and decision.analysis.failing_member)
        rel.failure_analysis = decision.analysis
        rel.rollback_outcome = end.value
        rel.phase = Phase.ROLLING_BACK
        rel.wake_at = None
        rel.step_started_at = now  # a relaunch of the previous version gets its own progress deadline
        _log(rel, now, f"rolling back: {decision.reason}", decision)
    elif kind is Kind.PAUSE:
        rel.phase = Phase.PAUSED
    elif kind is Kind.HALT:
        # the next runner (after the operator fixed the cause) gets a fresh progress deadline: one that
        # passed while halted would otherwise halt a relaunch again before it could get healthy
        rel.step_started_at = None
    elif kind is Kind.DONE:
        rel.phase = Phase(rel.rollback_outcome or Phase.FAILED.value) if rel.phase is Phase.ROLLING_BACK else Phase.SUCCEEDED
        rel.ended_at = now
        rel.wake_at = None
    return rel


def note_members(release: Release, obs: Observed, release_ids: tuple[str, ...]) -> Release:
    """Add the members of this release's servers to its own list (I3: what it may touch later)."""
    ids = [m.id for s in obs.servers if s.release_id in release_ids if (m := obs.member_of(s)) is not None]
    missing = [i for i in ids if i not in release.own_members]
    if not missing:
        return release
    rel = copy_release(release)
    rel.own_members = rel.own_members + missing
    return rel


def _log(rel: Release, now: float, message: str, decision: Decision | None = None) -> None:
    """An event line; an analysis verdict's figures and a failing member ride along as data (the timeline
    reads them, never the words)."""
    event: dict = {"at": now, "message": message}
    if decision is not None and decision.analysis is not None:
        event["analysis"] = decision.analysis.to_dict()
    if decision is not None and decision.failing_member is not None:
        event["failing_member"] = dataclasses.asdict(decision.failing_member)
    rel.events.append(event)
    del rel.events[:-MAX_EVENTS]


def copy_release(release: Release) -> Release:
    """A copy to change without touching the original: its mutable fields are copied (two levels deep, as
    deep as they go), the frozen pipeline is shared. Every pass makes one, so it must be cheap (a deepcopy
    was a tenth of the property test's time)."""
    rel = dataclasses.replace(release)
    rel.actor = dict(release.actor)
    rel.baseline = {k: dict(v) for k, v in release.baseline.items()}
    rel.events = [dict(e) for e in release.events]
    rel.own_members = list(release.own_members)
    rel.applied_intents = list(release.applied_intents)
    rel.samples = list(release.samples)
    return rel


NO_WRITE_OF_THEIR_OWN = frozenset({"updated_at", "reason", "own_members", "samples", "events"})
_KEYED = tuple(f.name for f in dataclasses.fields(Release) if f.name not in NO_WRITE_OF_THEIR_OWN | {"pipeline"})


def record_key(release: Release) -> str:
    """The record's content minus what needs no write of its own: updated_at and reason change every pass,
    own_members can be observed again (members of the release's servers), and an action's event line is an
    audit note (the action's effect is observed again after a crash), so they ride along with the next real
    change, as the traffic samples do: the runner writes before an action, at the end and on intents, not once
    per action or per step (engine/reconcile.py: _write_when_due). Computed on every pass: the fields are serialised directly (the pipeline, frozen, by its digest
    and name), not through to_json and back."""
    data = {name: getattr(release, name) for name in _KEYED}
    data["pipeline"] = _pipeline_key(release.pipeline)
    return json.dumps(data, sort_keys=True, default=str)


@functools.lru_cache(maxsize=32)
def _pipeline_key(pipeline: Pipeline) -> str:
    return f"{pipeline.name}:{pipeline.digest}"
